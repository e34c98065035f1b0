"""The human report: one verdict line per check, the counterexample trace under it, the summary line."""
from __future__ import annotations

import re

from kspec.report.outcome import summary_line

_VERDICT = re.compile(r": (proved|violated|unknown): ")
_CODES = {"ok": "\033[32m", "bad": "\033[1;31m", "warn": "\033[33m", "dim": "\033[2m", "end": "\033[0m"}


def _paint(out, color: bool) -> str:
    text = out.text
    if not color:
        return text
    first, nl, rest = text.partition("\n")
    tone = "bad" if out.failed else ("warn" if out.verdict == "unknown" else "ok")
    first = _VERDICT.sub(lambda m: f": {_CODES[tone]}{m.group(1)}{_CODES['end']}: ", first, count=1)
    rest = re.sub(r"(  => [A-Z ]+)", lambda m: f"{_CODES['dim'] if not out.failed else _CODES['bad']}{m.group(1)}"
                  f"{_CODES['end']}", rest)
    return first + nl + rest


def render_human(outs, *, color: bool = False) -> str:
    lines = [_paint(out, color) for out in outs]
    summary = summary_line(outs)
    if color:
        summary = f"{_CODES['bad' if any(o.failed for o in outs) else 'ok']}{summary}{_CODES['end']}"
    return "\n".join(lines + [summary]) + "\n"
