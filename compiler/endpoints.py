"""Endpoint selection: KUBE-SVC/KUBE-SVL dispatch with a statistic cascade (and ClientIP affinity), and one
KUBE-SEP chain per endpoint that DNATs to it (spec §5.10, §5.11)."""
from __future__ import annotations

from kspec.compiler.context import NodeContext
from kspec.compiler.nodeview import EndpointView, PortView
from kspec.compiler.words import comment, proto
from kspec.compiler.writer import Restore


def probability(remaining: int) -> str:
    """1/remaining as Go's %0.10f prints it."""
    return f"{1.0 / remaining:.10f}"


def dispatch_chain(out: Restore, ctx: NodeContext, view: PortView, chain: str,
                   eps: tuple[EndpointView, ...]) -> None:
    info = view.info
    out.nat.declare(chain)
    seps = [info.sep_chain(ep) for ep in eps]
    notes = [() if ctx.large_cluster else comment(f"{info.name} -> {ep.text}") for ep in eps]
    if info.affinity_timeout is not None:
        for sep, note in zip(seps, notes):
            out.nat.add(chain, *note, "-m", "recent", "--name", sep, "--rcheck", "--seconds",
                        str(info.affinity_timeout), "--reap", "-j", sep)
    for i, (sep, note) in enumerate(zip(seps, notes)):
        remaining = len(eps) - i
        chance = ("-m", "statistic", "--mode", "random", "--probability", probability(remaining)) \
            if remaining > 1 else ()
        out.nat.add(chain, *note, *chance, "-j", sep)


def sep_chains(out: Restore, ctx: NodeContext, view: PortView) -> None:
    info = view.info
    note = () if ctx.large_cluster else comment(info.name)
    for ep in view.reachable:
        sep = info.sep_chain(ep)
        out.nat.declare(sep)
        # An endpoint reaching its own service must be masqueraded, or the reply would bypass conntrack.
        out.nat.add(sep, *note, "-s", str(ep.ip), "-j", "KUBE-MARK-MASQ")
        affinity = ("-m", "recent", "--name", sep, "--set") if info.affinity_timeout is not None else ()
        out.nat.add(sep, *note, *affinity, *proto(info), "-j", "DNAT", "--to-destination", ep.text)
