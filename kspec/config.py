"""Project settings in ``[tool.kspec]`` of the nearest ``pyproject.toml`` (this directory or a parent):

    [tool.kspec]
    timeout = 10                 # seconds per Z3 query
    jobs = 2                     # specs verified in parallel
    formats = ["human", "junit=reports/kspec.xml", "sarif=reports/kspec.sarif"]
    allow-unknown = false

Command-line options win over these.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from kspec.diagnostics import Diagnostic, KspecError

KEYS = {"timeout": int, "jobs": int, "formats": list, "allow-unknown": bool}


def find_pyproject(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_settings(start: Path | None = None) -> dict:
    """``[tool.kspec]`` of the nearest pyproject.toml ({} when there is none); bad values are bad input."""
    path = find_pyproject(start)
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KspecError([Diagnostic(None, f"{path}: cannot read [tool.kspec]: {exc}")]) from None
    table = data.get("tool", {}).get("kspec", {})
    settings = {}
    for key, value in table.items():
        kind = KEYS.get(key)
        if kind is None:
            raise KspecError([Diagnostic(None, f"{path}: unknown [tool.kspec] setting '{key}' "
                                         f"(known: {', '.join(KEYS)})")])
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or (
                isinstance(value, list) and not all(isinstance(v, str) for v in value)):
            raise KspecError([Diagnostic(None, f"{path}: [tool.kspec] {key} must be "
                                         f"{'a list of strings' if kind is list else kind.__name__}")])
        if isinstance(value, int) and value < 1:
            raise KspecError([Diagnostic(None, f"{path}: [tool.kspec] {key} must be at least 1")])
        settings[key] = value
    return settings
