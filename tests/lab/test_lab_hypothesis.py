"""Differential test: Hypothesis-drawn small clusters through the lab; every observed outcome is predicted.

Two runs per CI build: a fixed set (``derandomize``: the same topologies every time, so a regression is
reproducible) and a few fresh ones whose failures are remembered in ``tests/lab/hypothesis-db`` and replayed
first next time. No shrinking: each example builds a whole lab, and a failure already prints the spec and
both traces.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from kspec.grammar import parse_text
from kspec.lab import run_lab
from tests.lab.lab_strategies import lab_specs

pytestmark = pytest.mark.netns

FIXED_EXAMPLES = 20
FRESH_EXAMPLES = 6
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=[Phase.explicit, Phase.reuse,
               Phase.generate], print_blob=True)


def _differential(text: str) -> None:
    cluster, _ = parse_text(text, "<hypothesis>")
    report = run_lab(cluster, spec="<hypothesis>")
    if not report.agree:
        pytest.fail(f"the kernel disagrees with the model on this spec:\n{text}\n{report.text()}", pytrace=False)


@settings(max_examples=FIXED_EXAMPLES, derandomize=True, database=None, **_COMMON)
@given(lab_specs())
def test_fixed_topologies(text):
    _differential(text)


@settings(max_examples=FRESH_EXAMPLES,
          database=DirectoryBasedExampleDatabase(str(Path(__file__).with_name("hypothesis-db"))), **_COMMON)
@given(lab_specs())
def test_fresh_topologies(text):
    _differential(text)
