"""The compiler against kube-proxy's own unit-test expectations (shared/conformance/kube-proxy).

Every case compiles through the same path a user's spec takes: corpus input -> IR -> compile_node.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kspec.compiler import compile_node
from kspec.ingest.conformance import load_case
from tests.conftest import corpus_cases, require_corpus


def _compile(case: Path) -> str:
    cluster, node, family, sync = load_case(case)
    return compile_node(cluster, node, family, sync=sync)


def _chain_rules(text: str, table: str, chain: str) -> list[str]:
    body = text.split(f"*{table}\n", 1)[1].split("COMMIT\n", 1)[0]
    return [line for line in body.splitlines() if line.startswith(f"-A {chain} ")]


def test_corpus_present_or_skipped():
    require_corpus()
    assert len(corpus_cases("input.json")) == 68


@pytest.mark.parametrize("case", corpus_cases("expected.iptables"), ids=lambda p: p.name)
def test_full_dump(case: Path):
    assert _compile(case) == (case / "expected.iptables").read_text()


@pytest.mark.parametrize("case", corpus_cases("expected_chains.json"), ids=lambda p: p.name)
def test_chain(case: Path):
    text = _compile(case)
    for expected in json.loads((case / "expected_chains.json").read_text()):
        assert _chain_rules(text, expected["table"], expected["chain"]) == expected["rules"]


def _dnat_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("-A KUBE-SEP-") and "-j DNAT" in line]


@pytest.mark.parametrize("case", corpus_cases("assertions.json"), ids=lambda p: p.name)
def test_assertions(case: Path):
    text = _compile(case)
    dnat = _dnat_lines(text)
    for check in json.loads((case / "assertions.json").read_text()):
        if "match" in check:
            found = [line for line in dnat if check["match"] in line]
            assert found == ([check["equals"]] if check["equals"] else [])
        elif "numDnat" in check:
            assert len(dnat) == check["numDnat"]
        elif "numDnatWithComment" in check:
            assert sum("--comment" in line for line in dnat) == check["numDnatWithComment"]
        elif "natKubeServicesHasDestination" in check:
            rules = _chain_rules(text, "nat", "KUBE-SERVICES")
            has = any(f"-d {check['natKubeServicesHasDestination']} " in rule for rule in rules)
            assert has is check["expected"]
        else:
            pytest.fail(f"unknown assertion {check}")


def test_counts_match_readme():
    """The README promises 11 full dumps, 12 chain checks and 10 assertion groups; run them all."""
    require_corpus()
    counts = [len(corpus_cases(k)) for k in ("expected.iptables", "expected_chains.json", "assertions.json")]
    assert counts == [11, 12, 10], f"corpus changed: {counts}"
