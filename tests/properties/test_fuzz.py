"""kspec fuzz: finds and shrinks a deliberately wrong user property; leaves the seed specs alone."""
from __future__ import annotations

import io
from pathlib import Path

from kspec.cli import main
from kspec.grammar import load
from kspec.testing import verify

REPO = Path(__file__).resolve().parents[2]

WRONG = '''
from kspec.testing import verify

def every_nodeport_keeps_client_ip(cluster):
    """Deliberately wrong: with externalTrafficPolicy Cluster, external traffic is SNATed."""
    return verify(cluster, "external_keeps_client_ip").proved
'''


def fuzz(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(["fuzz", "--quiet", *args], out, err), out.getvalue(), err.getvalue()


def test_a_wrong_property_is_found_and_shrunk(tmp_path: Path) -> None:
    module = tmp_path / "myprops.py"
    module.write_text(WRONG)
    code, out, _ = fuzz("--property", f"{module}:every_nodeport_keeps_client_ip", "-n", "200",
                        "-o", str(tmp_path / "out"))
    assert code == 1, out
    [reproducer] = sorted((tmp_path / "out").glob("*.k"))
    cluster, _ = load(reproducer)
    assert len(cluster.nodes) <= 2 and len(cluster.services) == 1
    assert not verify(cluster, "external_keeps_client_ip").proved  # the reproducer reproduces
    text = reproducer.read_text()
    assert "client_address=" in text and str(reproducer) in out


def test_the_seed_specs_keep_their_verdicts(tmp_path: Path) -> None:
    code, out, _ = fuzz(str(REPO / "specs"), "-n", "4", "-o", str(tmp_path / "out"))
    assert code == 0, out
    assert out.strip().endswith("0 failures") and not (tmp_path / "out").exists()


def test_builtins_on_generated_clusters_by_default(tmp_path: Path) -> None:
    code, out, _ = fuzz("-n", "5", "--max-nodes", "2", "--max-services", "1", "-o", str(tmp_path / "out"))
    assert code in (0, 1) and "over 1 target" in out


def test_bad_property_is_bad_input(tmp_path: Path) -> None:
    assert fuzz("--property", "no_such_module_xyz:f")[0] == 2
    assert fuzz("--property", "nocolon")[0] == 2
