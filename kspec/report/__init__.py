"""Verdict reports for people and for CI: ``human``, ``json``, ``junit``, ``sarif``, ``github``, ``html``.

Every format renders the same ``Outcome`` records (one per (spec, check)), built once from the verifier's
``CheckResult``: the JSON record of ``verifier.render.result_json`` (``format_version``), the human text
(verdict line + counterexample trace) and the check's full span. One vocabulary everywhere: disposition,
hops, steps, rewrites ``field: old -> new``, ``client_address=``.

    outs = outcomes("specs/x.k", verify(cluster, builtins=True))
    text = render("sarif", outs)
"""
from __future__ import annotations

import os

from kspec.report.github import render_github
from kspec.report.human import render_human
from kspec.report.jsonreport import render_json
from kspec.report.junit import render_junit
from kspec.report.outcome import Outcome, outcome, outcomes, summary_line
from kspec.report.picture import render_html
from kspec.report.sarif import render_sarif

__all__ = ["FORMATS", "Outcome", "outcome", "outcomes", "parse_format", "render", "summary_line", "use_color"]

FORMATS = ("human", "json", "junit", "sarif", "github", "html")


def parse_format(value: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME=PATH`` -> (name, path or None for standard output); ValueError on a bad name."""
    name, sep, path = value.partition("=")
    name = name.strip().lower()
    if name not in FORMATS:
        raise ValueError(f"unknown report format '{name}' (choose from {', '.join(FORMATS)})")
    if sep and not path:
        raise ValueError(f"--format {name}= needs a file name")
    return name, (path or None)


def render(name: str, outs: list[Outcome], *, color: bool = False) -> str:
    """The whole report in format ``name``."""
    if name == "human":
        return render_human(outs, color=color)
    if name == "json":
        return render_json(outs)
    if name == "junit":
        return render_junit(outs)
    if name == "sarif":
        return render_sarif(outs)
    if name == "github":
        return render_github(outs)
    if name == "html":
        return render_html(outs)
    raise ValueError(f"unknown report format {name!r}")


def use_color(stream, no_color: bool = False) -> bool:
    """Colour only on a terminal, and never with ``--no-color`` or a non-empty ``NO_COLOR``."""

    if no_color or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
