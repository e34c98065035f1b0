"""Verdicts on a real node's ``iptables-save`` dump equal the verdicts on the compiled text.

Each spec's rules (plus kube-proxy's jumps from the built-in chains) are loaded into a throwaway network
namespace per node and read back with ``iptables-save``, which reorders matches, adds ``/32``, rewrites MARK
targets and adds header comments; ``verify(..., rules=dump)`` must reach the same verdicts.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kspec.compiler import compile_cluster
from kspec.compiler.iptables.basechains import base_rules
from kspec.grammar import load
from kspec.verifier import verify
from tests.conftest import REPO
from tests.netns import iptables_restore, throwaway_netns

pytestmark = pytest.mark.netns
SPECS = sorted((REPO / "specs").glob("*.k"))


def _dump(text: str) -> str:
    with throwaway_netns() as ns:
        for restore in (text, base_rules()):  # chains first, then the jumps into them
            ok, stderr = iptables_restore(ns, restore, noflush=True)
            assert ok, stderr
        saved = subprocess.run(["ip", "netns", "exec", ns, "iptables-save"], capture_output=True, text=True,
                               check=True)
        return saved.stdout


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_dump_verdicts_equal_compiled_verdicts(spec: Path):
    cluster, _ = load(str(spec))
    texts = compile_cluster(cluster)
    for node in cluster.nodes:
        dump = _dump(texts[node.name])
        assert "/32" in dump or "-A KUBE" in dump  # it really is iptables-save's rendering
        compiled = [(r.check.name, r.verdict) for r in verify(cluster)]
        from_dump = [(r.check.name, r.verdict) for r in verify(cluster, rules={node.name: dump})]
        assert from_dump == compiled, node.name
