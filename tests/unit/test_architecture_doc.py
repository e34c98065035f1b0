"""ARCHITECTURE.md has one line per module (issue 13): a module added without its line, or a line left for a
module that moved, fails here."""
from __future__ import annotations

import re

from tests.conftest import REPO

FOLDERS = ("kspec", "compiler", "verifier", "grammar")
LINKS = ("kspec/compiler", "kspec/verifier", "kspec/grammar")  # links to the top-level folders


def modules() -> set[str]:
    """Every module as the table names it: a package by its folder (``compiler/iptables/``), others by file."""
    found = set()
    for folder in FOLDERS:
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith(LINKS):
                continue
            found.add(rel[: -len("__init__.py")] if rel.endswith("/__init__.py") else rel)
    return found


def documented() -> set[str]:
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Modules, one line each", 1)[1].split("\n## ", 1)[0]
    return {match for line in section.splitlines() if line.startswith("| `")
            for match in re.findall(r"`([\w/.]+)`", line.split("|")[1])}


def test_every_module_has_its_line():
    missing = sorted(modules() - documented())
    assert not missing, f"ARCHITECTURE.md has no line for {missing}"


def test_every_line_names_a_module():
    stale = sorted(name for name in documented() - modules() if not name.endswith(".lark"))
    assert not stale, f"ARCHITECTURE.md describes modules that do not exist: {stale}"
