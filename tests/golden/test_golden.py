"""Golden files: each spec's compiled ruleset per node, byte for byte.

After an intended change to the compiler, regenerate with ``KSPEC_UPDATE_GOLDENS=1 pytest tests/golden`` and
review the diff like any other change.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from kspec.compiler import compile_cluster
from kspec.grammar import load

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted((REPO / "specs").glob("*.k"))
GOLDEN = Path(__file__).resolve().parent / "rules"


def test_there_are_specs():
    assert SPECS, "specs/*.k is empty"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_compiled_rules_match_golden(spec: Path):
    cluster, _ = load(str(spec))
    texts = compile_cluster(cluster)
    folder = GOLDEN / spec.stem
    if os.environ.get("KSPEC_UPDATE_GOLDENS"):
        folder.mkdir(parents=True, exist_ok=True)
        for node, text in texts.items():
            (folder / f"{node}.rules").write_text(text)
    expected = {p.stem: p.read_text() for p in folder.glob("*.rules")}
    assert texts == expected
