"""``kspec fuzz``: kspec.strategies against a property, for N examples or T seconds, with a progress bar; every
failure is shrunk by Hypothesis and written as a minimal ``.k`` reproducer.

Targets:

* ``--property MODULE:FUNC`` (or ``path/to/file.py:FUNC``): a function of an ``ir.Cluster`` that returns a
  false value or raises ``AssertionError`` when the property does not hold, e.g.
  ``lambda c: kspec.testing.verify(c, "local_keeps_client_ip").proved``.
* spec files or folders: each spec's verdicts (its checks and the built-ins of its Services) must not change
  when unrelated Services, drawn by ``kspec.strategies.services``, are added to its cluster.
* neither: the built-in properties must hold on generated clusters.
"""
from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kspec import ir, testing
from kspec import strategies as ks
from kspec.diagnostics import Diagnostic, KspecError, report
from kspec.grammar import format_cluster
from kspec.inputs import EXIT_FAILED, EXIT_OK, load_cluster, write_atomic
from kspec.report import outcomes
from kspec.verifier import verify
from kspec.verifier.builtins import builtin_checks, with_builtin_clients


@dataclass
class Failure:
    target: str
    message: str
    cluster: ir.Cluster
    path: Path | None = None


class Target:
    """What one example checks: ``strategy`` draws the input, ``check`` raises AssertionError on failure."""

    name: str

    def strategy(self):
        raise NotImplementedError

    def check(self, cluster: ir.Cluster) -> None:
        raise NotImplementedError


class PropertyTarget(Target):
    def __init__(self, spec: str, func: Callable[[ir.Cluster], object], strategy):
        self.name, self.func, self._strategy = spec, func, strategy

    def strategy(self):
        return self._strategy

    def check(self, cluster: ir.Cluster) -> None:
        testing._seen.clear()
        try:
            ok = self.func(cluster)
            why = f"{self.name} returned a false value"
        except AssertionError as exc:
            ok, why = False, f"{self.name} raised AssertionError: {exc}"
        if not ok:
            traces = [f"{v.what}:\n{v.trace}" for v in testing._seen if not v.proved]
            raise AssertionError("\n".join([why] + traces))


class BuiltinsTarget(Target):
    name = "built-in properties"

    def __init__(self, strategy):
        self._strategy = strategy

    def strategy(self):
        return self._strategy

    def check(self, cluster: ir.Cluster) -> None:
        bad = [o for o in outcomes(cluster.name + ".k", verify(cluster, (), builtins=True)) if o.failed]
        if bad:
            raise AssertionError("\n".join(o.text for o in bad))


class SpecTarget(Target):
    """A spec's verdicts are unchanged by unrelated Services."""

    def __init__(self, path: str, cluster: ir.Cluster, max_extra: int = 2):
        self.name, self.cluster, self.max_extra = path, cluster, max_extra
        self._baseline: dict | None = None

    def _verdicts(self, cluster: ir.Cluster, keys: set[str]) -> dict[str, str]:
        own = {r.check.name: r.verdict.value for r in verify(cluster)}
        original = replace(cluster, services=tuple(s for s in cluster.services if s.key in keys))
        builtins = builtin_checks(original)
        own.update({r.check.name: r.verdict.value for r in verify(with_builtin_clients(cluster), builtins)})
        return own

    def baseline(self) -> dict[str, str]:
        if self._baseline is None:
            self._baseline = self._verdicts(self.cluster, {s.key for s in self.cluster.services})
        return self._baseline

    def strategy(self):
        base = self.cluster

        @st.composite
        def extended(draw):
            alloc = ks._Allocator(base.proxy.node_port_range)
            for svc in base.services:
                alloc.used.update(svc.cluster_ips)
                alloc.used.update(svc.external_ips)
                alloc.used.update(i.ip for i in svc.load_balancer_ingress)
                alloc.used.update((p.node_port, p.protocol) for p in svc.ports if p.node_port)
                if svc.health_check_node_port:
                    alloc.used.add((svc.health_check_node_port, ir.Protocol.TCP))
            taken = {s.key for s in base.services}
            count = draw(st.integers(1, self.max_extra), label="extra services")
            extra = []
            for i in range(1, count + 1):
                name = next(f"fuzz-{n}" for n in range(i, i + 1000) if f"default/fuzz-{n}" not in taken)
                taken.add(f"default/{name}")
                extra.append(draw(ks.services(name, base.pods, _alloc=alloc), label=name))
            return replace(base, services=base.services + tuple(extra))

        return extended()

    def check(self, cluster: ir.Cluster) -> None:
        before = self.baseline()
        after = self._verdicts(cluster, {s.key for s in self.cluster.services})
        changed = {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v}
        if changed:
            lines = [f"{name}: {old} -> {new}" for name, (old, new) in changed.items()]
            added = ", ".join(s.key for s in cluster.services[len(self.cluster.services):])
            raise AssertionError(f"adding {added} changed verdicts:\n  " + "\n  ".join(lines))


# ------------------------------------------------------------------------------------------- loading


def load_property(spec: str) -> Callable[[ir.Cluster], object]:
    """``module:function`` or ``path/to/file.py:function``."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise KspecError([Diagnostic(None, f"--property wants MODULE:FUNCTION or FILE.py:FUNCTION, not {spec!r}")])
    try:
        if where.endswith(".py"):
            loader_spec = importlib.util.spec_from_file_location(Path(where).stem, where)
            if loader_spec is None or loader_spec.loader is None or not Path(where).is_file():
                raise ImportError(f"no file {where}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as exc:
        raise KspecError([Diagnostic(None, f"cannot import {where}: {exc}")]) from None
    func = getattr(module, name, None)
    if not callable(func):
        raise KspecError([Diagnostic(None, f"{where} has no function {name!r}")])
    return func


def spec_paths(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        found += sorted(path.glob("*.k")) if path.is_dir() else [path]
    return found


# ------------------------------------------------------------------------------------------- running


def reproducer(failure: Failure) -> str:
    header = [f"# kspec fuzz: {failure.target} failed on this cluster (shrunk by Hypothesis).",
              "# Save it, fix the cause, and re-run: kspec verify THIS_FILE (or your property on it)."]
    header += ["# " + line for line in failure.message.splitlines()[:80]]
    return "\n".join(header) + "\n" + format_cluster(failure.cluster)


def run_target(target: Target, *, examples: int, deadline: float, progress: Callable[[], None],
               batch: int = 20) -> tuple[int, Failure | None]:
    """Run ``target`` until ``examples`` examples or the deadline; (examples run, first failure or None)."""

    done = 0
    while done < examples and time.monotonic() < deadline:
        size = min(batch, examples - done)
        state: dict[str, Any] = {"cluster": None, "message": "", "count": 0, "first": 0}

        @settings(max_examples=size, deadline=None, database=None, derandomize=False, print_blob=False,
                  suppress_health_check=list(HealthCheck),
                  phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink))
        @given(target.strategy())
        def example(cluster):
            state["count"] += 1
            if state["count"] <= size:
                progress()
            try:
                target.check(cluster)
            except AssertionError as exc:
                state["cluster"], state["message"] = cluster, str(exc)
                state["first"] = state["first"] or state["count"]
                raise

        try:
            example()
        except AssertionError:
            # Hypothesis replays the shrunk example last: state holds the minimal failing cluster.
            return done + state["first"], Failure(target.name, state["message"], state["cluster"])
        done += size
    return done, None


def run_fuzz(args, out: TextIO, err: TextIO) -> int:
    strategy = ks.clusters(max_nodes=args.max_nodes, max_services=args.max_services)
    targets: list[Target] = []
    if args.property:
        targets.append(PropertyTarget(args.property, load_property(args.property), strategy))
    for path in spec_paths(args.specs):
        cluster, warnings = load_cluster(str(path))
        report(warnings, err, args.compact)
        targets.append(SpecTarget(str(path), cluster))
    if not targets:
        targets.append(BuiltinsTarget(strategy))
    if args.examples is None and args.seconds is None:
        args.examples = 100
    examples = args.examples if args.examples is not None else 10**9
    start, seconds = time.monotonic(), (args.seconds if args.seconds is not None else 10**9)


    console = Console(file=err, no_color=bool(args.no_color) or None, force_terminal=None)
    total = None if args.examples is None else examples * len(targets)
    failures: list[Failure] = []
    run_total = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=args.quiet) as bar:
        task = bar.add_task("fuzz", total=total)
        for index, target in enumerate(targets, 1):
            bar.update(task, description=f"fuzz {target.name}")
            # Time is shared out evenly: each target may run until its share of --seconds is used up.
            deadline = start + seconds * index / len(targets)
            count, failure = run_target(target, examples=examples, deadline=deadline,
                                        progress=lambda: bar.advance(task))
            run_total += count
            if failure is not None:
                failures.append(failure)
    folder = Path(args.output)
    for number, failure in enumerate(failures, 1):
        stem = Path(failure.target.split(":")[0]).stem or "property"
        failure.path = folder / f"fuzz-{stem}-{number}.k"
        write_atomic(failure.path, reproducer(failure))
        print(f"FAILED {failure.target}: {failure.message.splitlines()[0] if failure.message else ''}", file=out)
        print(f"  minimal reproducer ({len(failure.cluster.nodes)} nodes, {len(failure.cluster.services)} "
              f"Services): {failure.path}", file=out)
    plural = "s" if len(targets) != 1 else ""
    print(f"fuzz: {run_total} examples in {time.monotonic() - start:.0f}s over {len(targets)} target{plural}, "
          f"{len(failures)} failure{'s' if len(failures) != 1 else ''}", file=out)
    return EXIT_FAILED if failures else EXIT_OK
