"""A whole cluster from real dumps: ``--rules DIR`` (one NODE.rules per node) for verify, trace and lab."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_cli import kspec
from tests.verifier.test_kernel_faithful import SPEC, _dump

# node0 drops whatever leaves it for anything but a pod: the pod's answers to node1's client.
NODE0 = _dump(filter="-A FORWARD ! -o veth+ -j DROP")


@pytest.fixture
def cluster_dir(tmp_path: Path) -> tuple[Path, Path]:
    spec = tmp_path / "c.k"
    spec.write_text(SPEC % {"wiring": ""})
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "node0.rules").write_text(NODE0)
    (dumps / "node1.rules").write_text(_dump())
    return spec, dumps


def test_verify_reads_a_directory_of_dumps(cluster_dir):
    spec, dumps = cluster_dir
    run = kspec("verify", str(spec), "--rules", str(dumps), "--no-builtins")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "proved: delivered" in run.stdout
    assert "violated: answered" in run.stdout and "  answer:" in run.stdout
    assert "=> DROPPED: drop in filter FORWARD on node0" in run.stdout


def test_trace_reads_a_directory_of_dumps(cluster_dir):
    spec, dumps = cluster_dir
    run = kspec("trace", str(spec), "--from", "c", "--to", "10.96.0.10:80", "--rules", str(dumps))
    assert run.returncode == 0, run.stderr
    assert "branch 1/1: DELIVERED, DROPPED" in run.stdout and "-A FORWARD ! -o veth+ -j DROP" in run.stdout


def test_a_dump_naming_no_node_is_refused(cluster_dir):
    spec, dumps = cluster_dir
    (dumps / "node9.rules").write_text(_dump())
    run = kspec("verify", str(spec), "--rules", str(dumps))
    assert run.returncode == 2 and "node9.rules names no node of the cluster" in run.stderr
    missing = kspec("verify", str(spec), "--rules", str(dumps / "nowhere"))
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr


@pytest.mark.netns
def test_lab_loads_the_dumps_as_given(cluster_dir):
    spec, dumps = cluster_dir
    run = kspec("lab", str(spec), "--rules", str(dumps))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "probes agree with the model" in run.stdout
