"""The .k front end: text -> ir.Cluster (and back, for `kspec fmt`).

    cluster, warnings = load("specs/nodeport-local.k")   # raises KspecError on any error
    text = format_cluster(cluster)                       # canonical .k text; parses back to an equal IR
"""
from __future__ import annotations

from pathlib import Path

from kspec import ir
from kspec.diagnostics import Diagnostic, KspecError, Severity, decode

from .parser import parse_tree
from .printer import format_cluster
from .resolve import resolve
from .to_ir import to_draft

__all__ = ["load", "parse_text", "format_cluster", "decode"]


def parse_text(text: str, filename: str = "<string>") -> tuple[ir.Cluster, list[Diagnostic]]:
    """Parse a spec; return the cluster and its warnings, or raise KspecError with every problem found."""
    tree = parse_tree(text, filename)
    cluster, diagnostics = resolve(to_draft(tree, filename))
    if any(d.severity is Severity.ERROR for d in diagnostics):
        raise KspecError(diagnostics)
    return cluster, diagnostics


def load(path: str | Path) -> tuple[ir.Cluster, list[Diagnostic]]:
    """Read and parse a .k file (the file name in diagnostics is ``str(path)``)."""
    filename = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KspecError([Diagnostic(None, f"cannot read {filename}: {exc.strerror}")]) from None
    return parse_text(decode(data, filename), filename)
