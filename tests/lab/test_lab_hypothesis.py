"""Differential test: Hypothesis-drawn small clusters through the lab; every observed outcome is predicted.

Four runs per CI build: a fixed set (``derandomize``: the same topologies every time, so a regression is
reproducible), ten fixed topologies moved into IPv6 (``as_ipv6``: the kernel's ip6tables against the IPv6
model), four made dual-stack (``as_dual_stack``, a lab per family), and a few fresh ones whose failures are
remembered in ``tests/lab/hypothesis-db`` and replayed first next time. No shrinking: each example builds a
whole lab, and a failure already prints the spec and both traces.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from kspec import ir
from kspec.families import as_dual_stack, as_ipv6
from kspec.grammar import format_cluster, parse_text
from kspec.lab import run_lab
from tests.lab.lab_strategies import lab_specs

pytestmark = pytest.mark.netns

FIXED_EXAMPLES = 20
FIXED_IPV6_EXAMPLES = 10
FIXED_DUAL_STACK_EXAMPLES = 4
FRESH_EXAMPLES = 6
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=[Phase.explicit, Phase.reuse,
               Phase.generate], print_blob=True)


def _differential(text: str, ipv6: bool = False) -> None:
    cluster, _ = parse_text(text, "<hypothesis>")
    if ipv6:  # the same topology under fd00::/96, built with ip6tables
        cluster = as_ipv6(cluster)
        text = format_cluster(cluster)
    report = run_lab(cluster, spec="<hypothesis>")
    if not report.agree:
        pytest.fail(f"the kernel disagrees with the model on this spec:\n{text}\n{report.text()}", pytrace=False)


@settings(max_examples=FIXED_EXAMPLES, derandomize=True, database=None, **_COMMON)
@given(lab_specs())
def test_fixed_topologies(text):
    _differential(text)


@settings(max_examples=FIXED_IPV6_EXAMPLES, derandomize=True, database=None, **_COMMON)
@given(lab_specs())
def test_fixed_topologies_in_ipv6(text):
    _differential(text, ipv6=True)


@settings(max_examples=FIXED_DUAL_STACK_EXAMPLES, derandomize=True, database=None, **_COMMON)
@given(lab_specs())
def test_fixed_topologies_dual_stack(text):
    """The topology beside its IPv6 twin (``as_dual_stack``), one lab per family: the other family's pods,
    addresses and rules are there in the spec and must change nothing."""
    cluster = as_dual_stack(parse_text(text, "<hypothesis>")[0])
    for family in ir.IPFamily:
        report = run_lab(cluster, spec="<hypothesis>", family=family)
        if not report.agree:
            pytest.fail(f"the kernel disagrees with the model in {family.value} on this spec:\n"
                        f"{format_cluster(cluster)}\n{report.text()}", pytrace=False)


@settings(max_examples=FRESH_EXAMPLES,
          database=DirectoryBasedExampleDatabase(str(Path(__file__).with_name("hypothesis-db"))), **_COMMON)
@given(lab_specs())
def test_fresh_topologies(text):
    _differential(text)
