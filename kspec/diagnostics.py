"""Positioned diagnostics, rendered rustc-style (or one line per diagnostic with ``compact``).

Every front end (the DSL, Kubernetes objects, iptables dumps) reports problems as ``Diagnostic`` values and
raises ``KspecError`` with all of them at once, so a user fixes a file in one round trip.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from kspec.ir import Span


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    span: Span | None
    message: str
    severity: Severity = Severity.ERROR
    notes: tuple[str, ...] = ()


def decode(data: bytes, filename: str) -> str:
    """UTF-8 text of an input file (a spec, objects, a dump); a bad byte is an error at its own line and
    column, not the codec's message."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        span = Span(filename, line, column, line, column + 1)
        raise KspecError([Diagnostic(span, f"invalid UTF-8 byte 0x{data[exc.start]:02x}")]) from None


# Texts that are not files to read again when a diagnostic is shown (standard input), by their name in spans.
_REMEMBERED: dict[str, str] = {}


def remember_source(name: str, text: str) -> None:
    _REMEMBERED[name] = text


def remembered_sources() -> dict[str, str]:
    return _REMEMBERED


def sources_of(diagnostics) -> dict[str, str]:
    """The text of every file the diagnostics point into (for their snippets), remembered ones included."""

    sources = dict(_REMEMBERED)
    for diag in diagnostics:
        if diag.span and diag.span.file not in sources:
            try:
                sources[diag.span.file] = Path(diag.span.file).read_text(encoding="utf-8", errors="replace")
            except OSError:
                pass
    return sources


def report(diagnostics, err, compact: bool = False) -> None:
    """Print ``diagnostics`` (with their snippets) to ``err``, if there are any."""
    if diagnostics:
        print(render(diagnostics, sources_of(diagnostics), compact=compact), file=err)


@dataclass
class KspecError(Exception):
    """Bad input: one or more error diagnostics (and any warnings collected on the way)."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __str__(self) -> str:
        return render(self.diagnostics, compact=True)


def render(diagnostics: list[Diagnostic] | tuple[Diagnostic, ...], sources: dict[str, str] | None = None,
           compact: bool = False) -> str:
    """Render diagnostics as text; ``sources`` maps file names to their text for the snippet and caret."""
    return "\n".join(_render_one(d, sources or {}, compact) for d in diagnostics)


def _render_one(diag: Diagnostic, sources: dict[str, str], compact: bool) -> str:
    head = f"{diag.severity.value}: {diag.message}"
    if diag.span is not None:
        head = f"{diag.span}: {head}"
    if compact:
        return head
    lines = [head]
    span = diag.span
    text = sources.get(span.file) if span else None
    if span is not None and text is not None:
        source_lines = text.splitlines()
        if 1 <= span.line <= len(source_lines):
            number = str(span.line)
            gutter = " " * len(number)
            source_line = source_lines[span.line - 1]
            width = 1
            if span.end_line == span.line and span.end_column:
                width = max(1, span.end_column - span.column)
            lines += [
                f"{gutter} |",
                f"{number} | {source_line}",
                f"{gutter} | {' ' * (span.column - 1)}{'^' * width}",
            ]
    lines += [f"  = note: {note}" for note in diag.notes]
    return "\n".join(lines)
