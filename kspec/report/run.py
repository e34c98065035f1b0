"""``kspec verify``'s back half: verdicts for the loaded specs (in worker processes with ``--jobs``), then
every requested report (``--format NAME[=FILE]``, several at once)."""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kspec import ir
from kspec.inputs import write_atomic
from kspec.report import Outcome, outcomes, parse_format, render, use_color
from kspec.report.picture import scene
from kspec.verifier import verify


def _verify_one(path: str, cluster, timeout_ms: int, rules, builtins: bool, allow_unknown: bool,
                family=None, ipsets=None, strict: bool = False, progress=None) -> list[Outcome]:

    results = verify(cluster, timeout_ms=timeout_ms, rules=rules, builtins=builtins, family=family, ipsets=ipsets,
                     strict=strict, progress=progress)
    return outcomes(path, results, allow_unknown, scene(cluster))


def verify_outcomes(loaded: Sequence[tuple[str, ir.Cluster]], *, timeout_ms: int, rules=None, builtins: bool = True,
                    allow_unknown: bool = False, jobs: int = 1, family=None, ipsets=None,
                    strict: bool = False, progress=None) -> list[Outcome]:
    """Outcomes for every (spec, check), in spec order; specs are verified ``jobs`` at a time. ``family``:
    one IP family, or None for every family each cluster's nodes and Services have (``kspec.verifier.verify``);
    ``rules``, ``ipsets``: real nodes' dumps and sets; ``strict``: what kspec does not model is an error;
    ``progress``: told of each check (one spec at a time only; see ``verifier.verify``)."""
    args = (timeout_ms, rules, builtins, allow_unknown, family, ipsets, strict)
    if jobs <= 1 or len(loaded) <= 1:
        return [o for path, cluster in loaded for o in _verify_one(path, cluster, *args, progress)]

    with ProcessPoolExecutor(max_workers=min(jobs, len(loaded))) as pool:
        futures = [pool.submit(_verify_one, path, cluster, *args) for path, cluster in loaded]
        return [o for future in futures for o in future.result()]


@contextlib.contextmanager
def progress_bar(err: TextIO):
    """A ``progress`` callback drawing a transient bar on ``err`` when it is a terminal, else None (silent in
    CI, pipes and files)."""
    if not err.isatty():
        yield None
        return

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=Console(file=err), transient=True) as bar:
        task = bar.add_task("verifying", total=None)

        def tell(what: str, done: int, total: int) -> None:
            bar.update(task, description=what[:60], completed=done, total=total)

        yield tell


def targets(formats: list[str]) -> list[tuple[str, str | None]]:
    """Parsed ``--format`` values; at most one of them may write to standard output."""
    parsed = [parse_format(f) for f in formats] or [("human", None)]
    to_stdout = [name for name, path in parsed if path is None]
    if len(to_stdout) > 1:
        raise ValueError(f"only one report can go to standard output (got {', '.join(to_stdout)}); "
                         "give the others a file: --format NAME=FILE")
    return parsed


def emit(parsed: list[tuple[str, str | None]], outs: list[Outcome], out: TextIO, *, no_color: bool = False) -> None:
    for name, path in parsed:
        if path is None:
            out.write(render(name, outs, color=name == "human" and use_color(out, no_color)))
        else:
            write_atomic(Path(path), render(name, outs))
