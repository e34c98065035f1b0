"""Concrete journeys through the cluster: the concrete tracer (``tracer.trace``, one node) strung together by
the cluster's routing, independently of the Z3 model.

``journeys`` enumerates every way one concrete packet can go (statistic/recent choices are branches); it backs
``kspec trace`` and is the yardstick the Z3 model is compared with: every counterexample the model prints is
replayed here (``replays``), and the differential tests compare the two on random packets.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from kspec import ir
from kspec.verifier import tracer
from kspec.verifier.network import ClusterNetwork, Disposition, RouteKind

MAX_HOPS = 4


@dataclass(frozen=True, slots=True)
class Leg:
    node: str
    outcome: tracer.Outcome


@dataclass(frozen=True, slots=True)
class Journey:
    disposition: Disposition
    legs: tuple[Leg, ...]
    src: ir.IPAddress  # the source the receiver sees
    dst: ir.IPAddress
    dport: int | None
    pod: ir.Pod | None = None
    node: str | None = None
    reason: str = ""


class ConcreteCluster:
    """The concrete side: each node's ruleset traced by ``tracer.trace``; addressing shared with the model's
    ``ClusterNetwork`` (which node owns an address, how pods' interfaces are named)."""

    def __init__(self, network: ClusterNetwork):
        self.net = network
        self.cluster = network.cluster
        self.family = network.family

    def journeys(self, client: ir.Client, packet: tracer.Packet, entry_node: str | None) -> list[Journey]:
        if client.kind is ir.ClientKind.NODE:
            return self._at(client.node, replace(packet, in_interface=None), ())
        if client.kind is ir.ClientKind.POD:
            pod = self.net.pods_by_ip[client.ip]
            return self._at(pod.node, replace(packet, in_interface=self.net.pod_iface(pod)), ())
        if entry_node is None:
            return [Journey(Disposition.NO_ROUTE, (), packet.src, packet.dst, packet.dport,
                            reason=f"{packet.dst} is not reachable from outside the cluster")]
        return self._at(entry_node, replace(packet, in_interface="eth0"), ())

    def _at(self, node: str, packet: tracer.Packet, legs: tuple[Leg, ...]) -> list[Journey]:
        if len(legs) >= MAX_HOPS:
            return [Journey(Disposition.UNKNOWN, legs, packet.src, packet.dst, packet.dport, reason="routing loop")]
        model = self.net.models[node]
        found = []
        # The routing decision and MASQUERADE's address are the network model's, as the Z3 side uses them.
        route = lambda dst: self.net.route(node, dst).out_iface  # noqa: E731
        nat_source = lambda out_iface: self.net.nat_source(node, out_iface)  # noqa: E731
        for outcome in tracer.trace(model.rules, packet, model.local_ips, affinity=True, route=route,
                                    nat_source=nat_source):
            found += self._onward(node, outcome, legs + (Leg(node, outcome),), packet.protocol)
        return found

    def _onward(self, node: str, outcome: tracer.Outcome, legs: tuple[Leg, ...], protocol: str) -> list[Journey]:
        d = tracer.Disposition
        end = lambda disp, **kw: [Journey(disp, legs, outcome.src, outcome.dst, outcome.dport, **kw)]  # noqa: E731
        if outcome.disposition is d.DROPPED:
            return end(Disposition.DROPPED)
        if outcome.disposition is d.REJECTED:
            return end(Disposition.REJECTED)
        if outcome.disposition is d.ACCEPTED_LOCAL:
            return end(Disposition.HOST, node=node)
        if outcome.disposition is d.UNREACHABLE:
            return end(Disposition.NO_ROUTE, reason=f"no pod has {outcome.dst}")
        route = self.net.route(node, outcome.dst)
        if route.kind is RouteKind.OUTSIDE:
            return end(Disposition.NO_ROUTE, reason=f"{outcome.dst} leaves the cluster")
        if route.kind is RouteKind.POD:
            pod = self.net.pods_by_ip[outcome.dst]
            return [Journey(Disposition.DELIVERED, legs, outcome.src, outcome.dst, outcome.dport, pod=pod, node=node)]
        onward = tracer.Packet(outcome.src, outcome.dst, protocol, outcome.sport, outcome.dport, "eth0")
        return self._at(route.via, onward, legs)


def outcome_key(disposition: Disposition, pod: ir.Pod | None, src) -> tuple:
    """What the model and the concrete tracer must agree on for one path."""
    return (disposition.value, pod.key if pod is not None else None,
            str(src) if disposition is Disposition.DELIVERED else None)


def replays(concrete: ConcreteCluster, ce) -> str:
    """'' when the counterexample ``ce`` replays in the concrete tracer, else what went wrong."""
    target = ce.instance.target
    if target is None:
        return ""
    packet = tracer.Packet.of(ce.src, str(target.dst), target.protocol.lower, target.dport, sport=ce.sport or 40000)
    want = outcome_key(ce.fate.disposition, ce.fate.pod, ce.seen)
    got = {outcome_key(j.disposition, j.pod, j.src) for j in _journeys_via_lb(concrete, ce.instance.client, packet,
                                                                               target)}
    if want in got:
        return ""
    return f"the model's path ends {want}, the concrete tracer's paths end {sorted(got, key=str)}"


def _journeys_via_lb(concrete: ConcreteCluster, client: ir.Client, packet: tracer.Packet, target) -> list[Journey]:
    """Journeys of a packet that may first pass the cloud load balancer: it has no backend when no node
    passes the health check, and refuses sources outside the ranges it enforces itself."""
    if target.load_balancer is not None and target.entry_node is None:
        return [Journey(Disposition.DROPPED, (), packet.src, packet.dst, packet.dport, reason="no healthy backend")]
    if target.lb_source_ranges and not any(packet.src in net for net in target.lb_source_ranges
                                           if net.version == packet.src.version):
        return [Journey(Disposition.DROPPED, (), packet.src, packet.dst, packet.dport, reason="refused by the LB")]
    return concrete.journeys(client, packet, target.entry_node)
