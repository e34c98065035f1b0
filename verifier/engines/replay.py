"""The concrete engine over the whole cluster, and the yardstick for the Z3 model's counterexamples.

``ConcreteCluster`` is ``walk.Walk`` run with ``tracer.NodeTracer`` on every node: the same hooks, routes,
nodes and round trips as the model, each table's chain walked for one concrete packet (statistic/recent
choices are branches). It backs ``kspec trace``; every counterexample the model prints is replayed here
(``replays``), and the differential tests compare the two engines on random packets.
"""
from __future__ import annotations

from kspec import ir
from kspec.verifier.engines import tracer
from kspec.verifier.model.network import ClusterNetwork, Disposition, Fate, Hop
from kspec.verifier.model.walk import Walk


class ConcreteCluster(Walk):
    """Every node's ruleset traced by ``tracer.NodeTracer``; addresses and routes are ``network``'s."""

    def __init__(self, network: ClusterNetwork):
        engines = {name: tracer.NodeTracer(model.rules, model.local_ips, affinity=True, ipsets=model.ipsets,
                                            local_routes=model.local_routes, device_routes=model.device_routes)
                   for name, model in network.models.items()}
        super().__init__(network, engines)
        self.cluster = network.cluster

    def journeys(self, client: ir.Client, packet: tracer.Packet, entry_node: str | None) -> list[Fate]:
        """Every way ``packet`` sent by ``client`` can go (an external one enters at ``entry_node``)."""
        return self.send(client, tracer.ConcretePacket.of(packet), entry_node)

    def round_trips(self, client: ir.Client, packet: tracer.Packet, entry_node: str | None,
                    expect: tuple[ir.IPAddress, int]) -> list[Fate]:
        """``journeys``, each one something comes back for split by that's journeys (``Fate.reply``)."""
        return super().round_trips(self.journeys(client, packet, entry_node), client, expect)


def outcome_key(disposition: Disposition, pod: ir.Pod | None, src, reply: Disposition | None = None,
                data: Disposition | None = None, data_error: Disposition | None = None) -> tuple:
    """What the model and the concrete tracer must agree on for one path (and its answer's and the client's
    data's after it, if traced)."""
    return (disposition.value, pod.key if pod is not None else None,
            str(src) if disposition is Disposition.DELIVERED else None, reply.value if reply is not None else None,
            data.value if data is not None else None, data_error.value if data_error is not None else None)


def fate_key(fate: Fate) -> tuple:
    """``outcome_key`` of a fate of either engine."""
    return outcome_key(fate.disposition, fate.pod, fate.packet.src_value, *fate.later())


def replays(concrete: ConcreteCluster, ce) -> str:
    """'' when the counterexample ``ce`` replays in the concrete tracer, else what went wrong."""
    target = ce.instance.target
    if target is None:
        return ""
    packet = tracer.Packet.of(ce.src, str(target.dst), target.protocol.lower, target.dport, sport=ce.sport or 40000)
    answer = ce.fate.reply
    want = outcome_key(ce.fate.disposition, ce.fate.pod, ce.seen, *ce.fate.later())
    journeys = journeys_via_lb(concrete, ce.instance.client, packet, target, round_trip=answer is not None)
    got = {fate_key(j) for j in journeys}
    if want in got:
        return ""
    return f"the model's path ends {want}, the concrete tracer's paths end {sorted(got, key=str)}"


def journeys_via_lb(concrete: ConcreteCluster, client: ir.Client, packet: tracer.Packet, target,
                     round_trip: bool = False) -> list[Fate]:
    """Journeys of a packet that may first pass the cloud load balancer: it has no backend when no node
    passes the health check, and refuses sources outside the ranges it enforces itself."""
    lb = Hop("load balancer", (), "")
    if target.load_balancer is not None and target.entry_node is None:
        return [Fate(Disposition.DROPPED, (lb,), tracer.ConcretePacket.of(packet), reason="no healthy backend")]
    if target.lb_source_ranges and not any(packet.src in net for net in target.lb_source_ranges
                                           if net.version == packet.src.version):
        return [Fate(Disposition.DROPPED, (lb,), tracer.ConcretePacket.of(packet), reason="refused by the LB")]
    if round_trip:
        return concrete.round_trips(client, packet, target.entry_node, (target.dst, target.dport))
    return concrete.journeys(client, packet, target.entry_node)
