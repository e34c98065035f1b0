"""GitHub Actions workflow commands: an ``::error`` annotation at each failing check (``::warning`` for an
unknown verdict), then the summary line as a ``::notice``."""
from __future__ import annotations

from kspec.report.outcome import summary_line


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(out) -> str | None:
    if not out.failed:
        return None
    level = "warning" if out.verdict == "unknown" else "error"
    props = []
    if out.span is not None:
        file, line, column, end_line, end_column = out.span
        props += [f"file={_prop(file)}", f"line={line}", f"col={column}"]
        if end_line:
            props.append(f"endLine={end_line}")
        if end_column and end_line == line:
            props.append(f"endColumn={end_column}")
    props.append(f"title={_prop('kspec: ' + out.check)}")
    message = f"{out.verdict} (expected {out.record['expect']}): {out.check}"
    if out.record.get("reason"):
        message += f"\nreason: {out.record['reason']}"
    if out.trace:
        message += "\n" + out.trace
    return f"::{level} {','.join(props)}::{_data(message)}"


def render_github(outs) -> str:
    lines = [a for a in (annotation(o) for o in outs) if a]
    lines.append(f"::notice title=kspec verify::{_data(summary_line(outs))}")
    return "\n".join(lines) + "\n"
