"""Every ```k example of docs/language.md is a complete spec that parses, formats back to itself and verifies
as its checks expect."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from kspec.diagnostics import Severity
from kspec.grammar import parse_text
from kspec.grammar.printer import format_cluster
from kspec.verifier import verify

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def examples(text: str) -> list[tuple[str, str]]:
    """(id, source) of every ```k block, the id being the nearest heading above it and the block's index."""
    found: list[tuple[str, str]] = []
    heading = "top"
    fence: str | None = None  # the opening fence while inside a block
    lang = ""
    body: list[str] = []
    for line in text.splitlines():
        if fence is None:
            opened = FENCE.match(line)
            if opened:
                fence, lang, body = opened.group(1), opened.group(2), []
            elif match := HEADING.match(line):
                heading = match.group(1)
        elif line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            if lang == "k":
                slug = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "top"
                found.append((f"{slug}-{len(found)}", "\n".join(body) + "\n"))
            fence = None
        else:
            body.append(line)
    assert fence is None, "docs/language.md ends inside a fenced block"
    return found


EXAMPLES = examples(DOC.read_text(encoding="utf-8"))


def test_the_doc_has_enough_examples() -> None:
    assert len(EXAMPLES) >= 15


@pytest.mark.parametrize("source", [src for _, src in EXAMPLES], ids=[name for name, _ in EXAMPLES])
def test_example(source: str) -> None:
    cluster, diagnostics = parse_text(source, str(DOC))  # `objects` files are beside the doc
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    assert errors == []

    assert parse_text(format_cluster(cluster, source), str(DOC))[0] == cluster

    results = verify(cluster, builtins=False)
    assert len(results) == len(cluster.checks)
    wrong = [f"{r.check.name}: {r.verdict.value} ({r.reason or 'expected ' + r.check.expect.value})"
             for r in results if not r.as_expected]
    assert wrong == []
