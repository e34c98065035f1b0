"""The real-node corpus (tests/data/real-nodes) through the verifier: no node's dump is refused whole, every
unknown names the rule it stopped at, and where kspec models every rule on the way the verdicts are the
spec's. The lab runs the same dumps against the kernel (tests/lab/test_lab_real_nodes.py)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from kspec.grammar import load
from kspec.verifier import verify
from kspec.verifier.properties import Verdict
from tests.conftest import REPO

CORPUS = REPO / "tests" / "data" / "real-nodes"
CNIS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
# Where a rule on every path is one kspec does not model exactly (so checks are unknown, naming it):
# Cilium's `-m socket --transparent` in mangle PREROUTING.
UNKNOWN_AT = {"cilium": "unsupported match -m socket"}


def dumps(cni: str) -> tuple[dict[str, Path], dict[str, Path]]:
    rules = {path.stem: path for path in sorted((CORPUS / cni).glob("*.rules"))}
    sets = {path.stem: path for path in sorted((CORPUS / cni).glob("*.ipsets"))}
    return rules, sets


@pytest.mark.parametrize("cni", CNIS)
def test_corpus_verdicts(cni: str):
    cluster, _ = load(str(CORPUS / "cluster.k"))
    rules, sets = dumps(cni)
    results = verify(cluster, rules=rules, ipsets=sets, builtins=True)
    assert results and not any(r.replay_error for r in results)
    for result in results:
        if result.verdict is Verdict.UNKNOWN:
            assert re.search(r"\.rules:\d+", result.reason), result.reason  # the rule is named
            assert UNKNOWN_AT.get(cni, "nothing expected") in result.reason, (cni, result.reason)
        else:
            assert result.as_expected, (cni, result.check.name, result.verdict)
    if cni not in UNKNOWN_AT:
        assert all(r.verdict is Verdict.PROVED for r in results), cni
