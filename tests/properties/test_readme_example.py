"""The README's testing example, run as a user would: its code block saved as a test file in a fresh project
folder beside a copy of specs/, then ``python -m pytest`` there (nothing installed beyond kspec and its
declared dependencies). Also: collecting specs does not import z3, and a failing given_cluster test prints
the shrunk cluster as a .k spec."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _example() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- example: test_user_example\.py.*?-->\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its runnable testing example"
    return match.group(1)


def _project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    (tmp_path / "test_user_example.py").write_text(_example())
    return tmp_path


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HYPOTHESIS"))}
    env["HYPOTHESIS_PROFILE"] = ""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=folder,
                          capture_output=True, text=True, env=env, timeout=600)


def test_the_readme_example_runs_as_a_user_would(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    run = _pytest(folder, "test_user_example.py", "specs", "--hypothesis-seed=0")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"\b(\d+) passed\b", run.stdout) and "failed" not in run.stdout


def test_collecting_specs_does_not_import_z3(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    (folder / "conftest.py").write_text(
        "import sys\n\ndef pytest_collection_finish(session):\n"
        "    assert 'z3' not in sys.modules, 'collection imported z3'\n    print('Z3-NOT-IMPORTED')\n")
    run = _pytest(folder, "specs", "--collect-only", "-s")
    assert run.returncode == 0 and "Z3-NOT-IMPORTED" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    assert "specs/nodeport-local.k::a node without an endpoint drops" in run.stdout


def test_a_failing_generated_test_prints_the_trace_and_the_shrunk_spec(tmp_path: Path) -> None:
    (tmp_path / "test_wrong.py").write_text(
        "from hypothesis import strategies as st\nfrom kspec import ir\nfrom kspec.strategies import ServiceShape\n"
        "from kspec.testing import given_cluster, verify\n\n"
        "@given_cluster(services=st.just(ServiceShape(ir.ServiceType.NODE_PORT)), min_pods=1)\n"
        "def test_wrong(cluster):\n"
        "    assert verify(cluster, 'external_keeps_client_ip').proved\n")
    run = _pytest(tmp_path, "test_wrong.py", "--hypothesis-seed=0")
    assert run.returncode == 1
    out = run.stdout
    assert "client_address=" in out and "MASQUERADE" in out  # the trace
    spec = out[out.index("as a .k spec you can save"):]
    # Policy Cluster SNATs external traffic even on the endpoint's node: one node is enough.
    assert "node node1" in spec and "node node2" not in spec
    # (Hypothesis's shrinker does not always delete a Service drawn before the failing one: at most 2.)
    assert 1 <= spec.count("service svc-") <= 2 and "type NodePort" in spec


def test_assertion_helpers_hide_their_frames(tmp_path: Path) -> None:
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    (tmp_path / "test_helpers.py").write_text(
        "from kspec.testing import assert_proved\n\n"
        "def test_cluster_policy_keeps_ip(kspec_specs):\n"
        "    assert_proved(kspec_specs['specs/nodeport-cluster.k'], 'external_keeps_client_ip')\n")
    run = _pytest(tmp_path, "test_helpers.py")
    assert run.returncode == 1
    assert "kspec/testing.py" not in run.stdout, run.stdout[-3000:]
    assert "external_keeps_client_ip: wanted proved" in run.stdout and "client_address=10.240.0." in run.stdout
    assert "as a .k spec you can save" in run.stdout and "cluster source-ip {" in run.stdout
