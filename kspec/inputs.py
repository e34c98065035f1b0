"""What every command reads and writes, below the command line: a cluster from a spec and/or Kubernetes
objects (as a kube-proxy release programs it), files written atomically, and the exit codes. The CLI and
the library commands (``kspec.fuzz``, ``kspec.report.run``) share these; nothing here imports the CLI.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kspec import ir
from kspec.diagnostics import Diagnostic, KspecError
from kspec.grammar import load
from kspec.ingest.k8s import load_k8s_with_diagnostics
from kspec.releases import with_release

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
OBJECT_SUFFIXES = (".yaml", ".yml", ".json")  # files of Kubernetes objects, not specs


def load_cluster(spec: str | None, k8s: list[str] | None = None, proxy_config: str | None = None,
                 release: str | None = None, stdin: bytes | None = None) -> tuple[ir.Cluster, list[Diagnostic]]:
    """A cluster from a ``.k`` spec, or from Kubernetes objects (YAML/JSON; ``-`` is ``stdin``) with an
    optional proxy config, or both: the objects joined by the spec's own nodes, pods, Services, clients and
    checks. As kube-proxy ``release`` programs it (``--kube-proxy-version``; None: the newest supported)."""

    if not k8s and spec is not None and Path(spec).suffix in OBJECT_SUFFIXES:
        k8s, spec = [spec], None
    if spec is None:
        if not k8s:
            raise KspecError([Diagnostic(None, "no input: give a .k spec or --k8s OBJECTS")])

        cluster, warnings = load_k8s_with_diagnostics(list(k8s), proxy_config, stdin=stdin)
        return with_release(cluster, release), list(warnings)

    cluster, warnings = load(spec, k8s or (), proxy_config, stdin)
    return with_release(cluster, release), warnings


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that ``path`` holds either the old content or all of the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
