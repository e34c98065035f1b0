"""Golden diagnostics: each ``<case>.k`` here is wrong in one way (or, for warnings, merely suspicious),
and ``<case>.expected`` holds the exact text ``kspec`` prints for it: message, line:col, snippet, caret.

Regenerate after a deliberate wording change with ``KSPEC_UPDATE_GOLDENS=1 pytest tests/bad_input``
and review the diff.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from kspec.diagnostics import KspecError, Severity, render
from kspec.grammar import decode, parse_text

HERE = Path(__file__).parent
CASES = sorted(HERE.glob("*.k"))
WARNING_ONLY = {"selector-matches-nothing"}


def diagnose(path: Path) -> tuple[str, bool]:
    """The rendered diagnostics for a case (named by its base name) and whether loading failed."""
    name = path.name
    sources: dict[str, str] = {}
    try:
        text = decode(path.read_bytes(), name)
        sources[name] = text
        _, diagnostics = parse_text(text, name)
        failed = False
    except KspecError as err:
        diagnostics, failed = err.diagnostics, True
    return render(diagnostics, sources=sources) + "\n", failed


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_exact_diagnostics(path: Path) -> None:
    rendered, failed = diagnose(path)
    expected = path.with_suffix(".expected")
    if os.environ.get("KSPEC_UPDATE_GOLDENS"):
        expected.write_text(rendered, encoding="utf-8")
    assert rendered == expected.read_text(encoding="utf-8")
    assert failed is (path.stem not in WARNING_ONLY)


def test_every_case_has_a_golden() -> None:
    assert {p.stem for p in HERE.glob("*.expected")} == {p.stem for p in CASES}


def test_warning_is_a_warning() -> None:
    path = HERE / "selector-matches-nothing.k"
    cluster, warnings = parse_text(path.read_text(), path.name)
    assert [w.severity for w in warnings] == [Severity.WARNING]
    assert cluster.services[0].endpoints == ()
    assert cluster.services[0].selector == (("app", "wbe"),)
