"""Shared fixtures: where kube-proxy's conformance corpus lives (``../shared`` beside the clone)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "conformance" / "kube-proxy"


def corpus_cases(kind: str) -> list[Path]:
    """Case folders holding ``kind`` (a file name); empty when the corpus is absent."""
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in (CORPUS / "cases").iterdir() if (p / kind).exists())


def require_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"kube-proxy conformance corpus not found at {CORPUS} (it lives in the team's shared/)")
