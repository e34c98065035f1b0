"""Kubernetes objects as a first-class input: several files (and standard input) as one cluster, a spec that
adds clients and checks to them (``--k8s`` or its own ``objects "FILE"``), for verify, trace and fmt."""
from __future__ import annotations

import io
import subprocess
import sys

import pytest

from kspec.cli import main
from kspec.grammar import load, parse_text
from kspec.grammar.printer import format_cluster
from tests.conftest import REPO

DATA = REPO / "tests/data/k8s-objects"
OBJECTS = DATA / "cluster.yaml"


def _run(*args: str, stdin: bytes | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out, err)
    return code, out.getvalue(), err.getvalue()


def test_kubectl_objects_from_stdin_verify_with_user_checks_in_one_command():
    # The real pipe, as a user runs it: kubectl get ... -o yaml | kspec verify --k8s - checks.k
    run = subprocess.run([sys.executable, "-m", "kspec.cli", "verify", "--k8s", "-", str(DATA / "checks.k")],
                         input=OBJECTS.read_bytes(), capture_output=True, cwd=REPO, timeout=300)
    out = run.stdout.decode()
    assert run.returncode == 0, out + run.stderr.decode()
    assert "proved: node2 drops the node port" in out and "proved: node1 keeps the client's address" in out
    assert "builtin: externalTrafficPolicy Local keeps the client IP: shop/web" in out  # the built-ins too


def test_a_spec_names_its_objects_and_adds_its_own_pod(monkeypatch):
    code, out, _ = _run("verify", "--no-builtins", str(DATA / "with-objects.k"))
    assert code == 0, out
    assert "proved: a pod on node2 reaches web" in out  # the endpoint has no Pod object: it answers all the same


def test_object_files_given_as_specs_are_one_cluster(tmp_path):
    text = OBJECTS.read_text()
    nodes, rest = text.split("- apiVersion: v1\n  kind: Service")
    (tmp_path / "nodes.yaml").write_text(nodes)
    (tmp_path / "services.yaml").write_text("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service"
                                            + rest)
    code, out, err = _run("verify", str(tmp_path / "nodes.yaml"), str(tmp_path / "services.yaml"))
    assert code == 0, out + err
    assert out.count("checks:") == 1 and "every node reaches the Service: shop/web" in out


def test_stdin_is_read_once_and_its_errors_are_positioned(monkeypatch):
    code, _, err = _run("--compact", "verify", "--k8s", "-", stdin=b"apiVersion: v1\nkind: Node\nmetadata: 3\n",
                        monkeypatch=monkeypatch)
    assert code == 2 and "<stdin>:3:11: error: Node: metadata must be a mapping" in err, err
    code, _, err = _run("verify", "--k8s", "-", "-", stdin=OBJECTS.read_bytes(), monkeypatch=monkeypatch)
    assert code == 2 and "standard input was read already" in err


def test_trace_takes_objects_and_the_specs_clients(monkeypatch):
    code, out, err = _run("trace", "--k8s", "-", str(DATA / "checks.k"), "--from", "outside", "--to",
                          "10.240.0.4:30080", stdin=OBJECTS.read_bytes(), monkeypatch=monkeypatch)
    assert code == 0, err
    assert "DROPPED" in out and "has no local endpoints" in out


def test_spec_errors_against_objects_name_what_the_objects_hold(tmp_path):
    spec = tmp_path / "bad.k"
    spec.write_text(f'cluster c {{\n  objects "{OBJECTS}"\n  node node1 {{ ip 10.240.0.9 }}\n'
                    '  client x { ip 203.0.113.7  external }\n'
                    '  check "a" { from x  to shop/api:http via cluster_ip  assert delivered }\n}\n')
    code, _, err = _run("verify", str(spec))
    assert code == 2
    assert f"{spec}:3:8: error: duplicate node 'node1'" in err
    assert "unknown service 'shop/api'" in err and "known services: shop/web" in err, err
    missing = tmp_path / "missing.k"
    missing.write_text('cluster c {\n  objects "nowhere.yaml"\n}\n')
    code, _, err = _run("--compact", "verify", str(missing))
    assert code == 2 and f"{missing}:2:11: error: cannot read objects file 'nowhere.yaml'" in err


def test_fmt_keeps_the_objects_line_and_leaves_their_contents_out():
    cluster, _ = load(DATA / "with-objects.k")
    text = format_cluster(cluster)
    assert 'objects "cluster.yaml"' in text
    assert "node1" not in text and "service" not in text and "pod probe on node2" in text
    again, _ = parse_text(text, str(DATA / "formatted.k"))  # beside the objects, as the file would be
    assert again == cluster


@pytest.mark.parametrize("args", [["--k8s", str(OBJECTS), str(DATA / "checks.k")], [str(DATA / "with-objects.k")]])
def test_shipped_object_specs_are_formatted(args):
    code, out, err = _run("fmt", "--check", *args)
    assert code == 0, out + err
