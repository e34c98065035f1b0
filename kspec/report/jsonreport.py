"""The JSON report: ``{"format_version", "results": [...], "summary", "failures"}``.

Its shape is pinned by ``kspec/report/schema/results-<format_version>.schema.json`` (``schema()``).
"""
from __future__ import annotations

import json
from importlib import resources

from kspec.report.outcome import summary_line
from kspec.verifier.render import FORMAT_VERSION


def document(outs) -> dict:
    results = []
    for out in outs:
        record = dict(out.record)
        if out.span is not None and record.get("location") is not None:
            record["location"] = {**record["location"], "end_line": out.span[3], "end_column": out.span[4]}
        results.append(record)
    return {"format_version": FORMAT_VERSION, "results": results, "summary": summary_line(outs),
            "failures": sum(o.failed for o in outs)}


def render_json(outs) -> str:
    return json.dumps(document(outs), indent=2) + "\n"


def schema(version: str | None = None) -> dict:
    """The JSON schema of the report of ``version`` (default: the current FORMAT_VERSION)."""

    name = f"results-{version or FORMAT_VERSION}.schema.json"
    return json.loads(resources.files("kspec.report").joinpath("schema", name).read_text(encoding="utf-8"))
