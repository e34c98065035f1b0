"""Endpoint selection: KUBE-SVC/KUBE-SVL dispatch with a statistic cascade (and ClientIP affinity), and one
KUBE-SEP chain per endpoint that DNATs to it (spec §5.10, §5.11)."""
from __future__ import annotations

from kspec.compiler.context import NodeContext
from kspec.compiler.iptables.words import comment, proto
from kspec.compiler.iptables.writer import Restore
from kspec.compiler.nodeview import EndpointView, PortView


def probability(remaining: int) -> str:
    """1/remaining as Go's %0.10f prints it."""
    return f"{1.0 / remaining:.10f}"


def dispatch_chain(out: Restore, ctx: NodeContext, view: PortView, chain: str,
                   eps: tuple[EndpointView, ...]) -> None:
    out.nat.declare(chain)
    key = ("dispatch", chain, tuple(ep.sep for ep in eps))
    out.nat.add_lines(chain, ctx.shared_lines(key, lambda: _dispatch_lines(view, chain, eps, ctx.large_cluster)))


def _dispatch_lines(view: PortView, chain: str, eps: tuple[EndpointView, ...], large_cluster: bool) -> list[str]:
    info = view.info
    notes = [() if large_cluster else comment(f"{info.name} -> {ep.text}") for ep in eps]
    lines = []
    if info.affinity_timeout is not None:
        for ep, note in zip(eps, notes):
            lines.append(_line(chain, *note, "-m", "recent", "--name", ep.sep, "--rcheck", "--seconds",
                               str(info.affinity_timeout), "--reap", "-j", ep.sep))
    for i, (ep, note) in enumerate(zip(eps, notes)):
        remaining = len(eps) - i
        chance = ("-m", "statistic", "--mode", "random", "--probability", probability(remaining)) \
            if remaining > 1 else ()
        lines.append(_line(chain, *note, *chance, "-j", ep.sep))
    return lines


def sep_chains(out: Restore, ctx: NodeContext, view: PortView) -> None:
    for ep in view.reachable:
        out.nat.declare(ep.sep)
        out.nat.add_lines(ep.sep, ctx.shared_lines(("sep", ep.sep), lambda: _sep_lines(view, ep, ctx.large_cluster)))


def _sep_lines(view: PortView, ep: EndpointView, large_cluster: bool) -> list[str]:
    info = view.info
    note = () if large_cluster else comment(info.name)
    affinity = ("-m", "recent", "--name", ep.sep, "--set") if info.affinity_timeout is not None else ()
    return [
        # An endpoint reaching its own service must be masqueraded, or the reply would bypass conntrack.
        _line(ep.sep, *note, "-s", ep.address, "-j", "KUBE-MARK-MASQ"),
        _line(ep.sep, *note, *affinity, *proto(info), "-j", "DNAT", "--to-destination", ep.text),
    ]


def _line(chain: str, *words: str) -> str:
    return f"-A {chain} {' '.join(words)}"
