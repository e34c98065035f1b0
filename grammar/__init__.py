"""The .k front end: text -> ir.Cluster (and back, for `kspec fmt`).

    cluster, warnings = load("specs/nodeport-local.k")   # raises KspecError on any error
    text = format_cluster(cluster)                       # canonical .k text; parses back to an equal IR
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kspec import ir
from kspec.diagnostics import Diagnostic, KspecError, Severity, decode

from .parser import parse_tree
from .printer import format_cluster
from .resolve import resolve
from .to_ir import to_draft

__all__ = ["load", "parse_text", "format_cluster", "decode"]


def parse_text(text: str, filename: str = "<string>", k8s: Sequence[str] = (), proxy_config: str | None = None,
               stdin: bytes | None = None) -> tuple[ir.Cluster, list[Diagnostic]]:
    """Parse a spec; return the cluster and its warnings, or raise KspecError with every problem found.

    Kubernetes objects join it: those its ``objects`` statements name (beside the spec), then ``k8s`` (files,
    or ``-`` for ``stdin``), with ``proxy_config``, all read as one cluster (``kspec.ingest.k8s``)."""
    tree = parse_tree(text, filename)
    draft = to_draft(tree, filename)
    paths = [_beside(filename, path) for path in draft.cluster.objects] + list(k8s)
    missing = [Diagnostic(draft.object_spans.get(path), f"cannot read objects file '{path}' (looked for "
                                                         f"{_beside(filename, path)})")
               for path in draft.cluster.objects if path != "-" and not Path(_beside(filename, path)).is_file()]
    if missing:
        raise KspecError(draft.diagnostics + missing)
    base: ir.Cluster | None = None
    warnings: list[Diagnostic] = []
    if paths or proxy_config is not None:
        from kspec.ingest.k8s import load_k8s_with_diagnostics  # only specs with objects need YAML

        try:
            base, warnings = load_k8s_with_diagnostics(paths, proxy_config, stdin=stdin)
        except KspecError as exc:
            raise KspecError(draft.diagnostics + exc.diagnostics) from None
    cluster, diagnostics = resolve(draft, base)
    diagnostics = warnings + diagnostics
    if any(d.severity is Severity.ERROR for d in diagnostics):
        raise KspecError(diagnostics)
    return cluster, diagnostics


def _beside(spec: str, path: str) -> str:
    """An ``objects`` file as written, relative to the spec's folder (``-`` is standard input)."""
    if path == "-" or Path(path).is_absolute() or spec.startswith("<"):
        return path
    return str(Path(spec).parent / path)


def load(path: str | Path, k8s: Sequence[str] = (), proxy_config: str | None = None,
         stdin: bytes | None = None) -> tuple[ir.Cluster, list[Diagnostic]]:
    """Read and parse a .k file (the file name in diagnostics is ``str(path)``); see ``parse_text``."""
    filename = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KspecError([Diagnostic(None, f"cannot read {filename}: {exc.strerror}")]) from None
    return parse_text(decode(data, filename), filename, k8s, proxy_config, stdin)
