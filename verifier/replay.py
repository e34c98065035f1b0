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
from kspec.verifier.netfilter import Connection, Reply
from kspec.verifier.network import ClusterNetwork, Disposition, RouteKind

MAX_HOPS = 4


@dataclass(frozen=True, slots=True)
class Leg:
    node: str
    outcome: tracer.Outcome
    entered: tracer.Packet | None = None  # the packet as it came into the node (for its replies)


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
    reply: "Journey | None" = None  # of a DELIVERED journey: one journey of the pod's answer


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
        found = []
        for outcome in self._trace(node, packet):
            found += self._onward(node, outcome, legs + (Leg(node, outcome, packet),), packet.protocol)
        return found

    def _trace(self, node: str, packet: tracer.Packet, reply: Reply | None = None) -> list[tracer.Outcome]:
        model = self.net.models[node]
        # The routing decision and MASQUERADE's address are the network model's, as the Z3 side uses them.
        route = lambda dst: self.net.route(node, dst).out_iface  # noqa: E731
        nat_source = lambda out_iface: self.net.nat_source(node, out_iface)  # noqa: E731
        return tracer.trace(model.rules, packet, model.local_ips, affinity=True, route=route, nat_source=nat_source,
                            reply=reply, ipsets=model.ipsets)

    # ---------------------------------------------------------------------------------- round trips

    def round_trips(self, client: ir.Client, packet: tracer.Packet, entry_node: str | None,
                    expect: tuple[ir.IPAddress, int]) -> list[Journey]:
        """``journeys``, each DELIVERED (REJECTED) one split by the journeys of the pod's answer (the REJECT's
        ICMP error): ``Journey.reply``."""
        found = []
        for journey in self.journeys(client, packet, entry_node):
            if journey.disposition is Disposition.DELIVERED:
                refused = self.net.silent_pod(journey.pod, packet.protocol, journey.dport)
                answers = [Journey(Disposition.UNKNOWN, (), journey.src, journey.dst, journey.dport, reason=refused)] \
                    if refused else self._answers(journey, client, expect, packet.protocol)
            elif journey.disposition is Disposition.REJECTED and journey.legs:
                answers = self._rejections(journey, client, expect)
            elif journey.disposition is Disposition.NO_ROUTE and journey.legs and \
                    self.net.unanswerable_outside(journey.legs[-1].node, journey.src, journey.dst):
                answers = [Journey(Disposition.DROPPED, (), journey.src, journey.dst, journey.dport,
                                   reason="it left the cluster from a pod address, which the outside cannot answer")]
            else:
                found.append(journey)
                continue
            found += [replace(journey, reply=answer) for answer in answers]
        return found

    def _connections(self, journey: Journey) -> dict[str, Connection] | None:
        conns: dict[str, Connection] = {}
        for leg in journey.legs:
            if leg.node in conns:
                return None
            if not leg.outcome.untracked:  # -j CT --notrack left no connection there
                conns[leg.node] = _connection(leg.entered, leg.outcome)
        return conns

    def _answers(self, journey: Journey, client: ir.Client, expect, protocol: str) -> list[Journey]:
        conns = self._connections(journey)
        if conns is None:
            return [self._twice(journey)]
        answer = tracer.Packet(journey.dst, journey.src, protocol, journey.dport, journey.legs[-1].outcome.sport,
                               self.net.pod_iface(journey.pod))
        return self._answer_at(journey.node, answer, (), conns, client, expect)

    def _rejections(self, journey: Journey, client: ir.Client, expect) -> list[Journey]:
        """The REJECT's ICMP error, sent by the rejecting node (see ``ClusterNetwork.rejections``)."""
        conns = self._connections(journey)
        if conns is None:
            return [self._twice(journey)]
        leg = journey.legs[-1]
        at = leg.outcome
        local = self.net.route(leg.node, at.dst).kind is RouteKind.LOCAL
        src = at.dst if local else self.net.nat_source(leg.node, self.net.route(leg.node, at.src).out_iface)
        proto = "icmp" if at.src.version == 4 else "ipv6-icmp"
        error = tracer.Packet(src, at.src, proto, None, None, in_interface=None)
        return self._answer_at(leg.node, error, (), conns, client, expect, related=True)

    @staticmethod
    def _twice(journey: Journey) -> Journey:
        return Journey(Disposition.UNKNOWN, (), journey.src, journey.dst, journey.dport,
                       reason="the connection crossed a node twice")

    def _answer_at(self, node: str, packet: tracer.Packet, legs: tuple[Leg, ...], conns: dict, client: ir.Client,
                   expect, related: bool = False) -> list[Journey]:
        if len(legs) >= MAX_HOPS:
            return [Journey(Disposition.UNKNOWN, legs, packet.src, packet.dst, packet.dport, reason="routing loop")]
        conn = conns.get(node)
        # See netfilter.Reply: a UDP answer a node never saw is a new connection there.
        reply = None if conn is None and packet.protocol == "udp" and not related else Reply(conn, related)
        found = []
        for outcome in self._trace(node, packet, reply):
            legs_now = legs + (Leg(node, outcome, packet),)
            ended = self._stopped(outcome, legs_now)
            if ended is not None:
                found.append(ended)
                continue
            route = self.net.route(node, outcome.dst)
            if route.kind is RouteKind.NODE:
                onward = tracer.Packet(outcome.src, outcome.dst, packet.protocol, outcome.sport, outcome.dport, "eth0")
                found += self._answer_at(route.via, onward, legs_now, conns, client, expect, related)
                continue
            crossed = {leg.node for leg in legs_now}
            quoted = self.net.quotes_original(crossed, conns) if related else None
            disposition, reason = self.net.answer_end(node, route, outcome.dst, outcome.src, outcome.sport, client,
                                                      expect, quoted=quoted)
            found.append(Journey(disposition, legs_now, outcome.src, outcome.dst, outcome.dport, node=node,
                                 reason=reason))
        return found

    @staticmethod
    def _stopped(outcome: tracer.Outcome, legs: tuple[Leg, ...]) -> Journey | None:
        d = tracer.Disposition
        ended = {d.DROPPED: Disposition.DROPPED, d.REJECTED: Disposition.REJECTED,
                 d.UNREACHABLE: Disposition.NO_ROUTE, d.UNKNOWN: Disposition.UNKNOWN}.get(outcome.disposition)
        if ended is None:
            return None
        reason = outcome.reason or (f"no pod has {outcome.dst}" if ended is Disposition.NO_ROUTE else "")
        return Journey(ended, legs, outcome.src, outcome.dst, outcome.dport, reason=reason)

    def _onward(self, node: str, outcome: tracer.Outcome, legs: tuple[Leg, ...], protocol: str) -> list[Journey]:
        d = tracer.Disposition
        end = lambda disp, **kw: [Journey(disp, legs, outcome.src, outcome.dst, outcome.dport, **kw)]  # noqa: E731
        ended = self._stopped(outcome, legs)
        if ended is not None:
            return [ended]
        if outcome.disposition is d.ACCEPTED_LOCAL:
            return end(Disposition.HOST, node=node)
        route = self.net.route(node, outcome.dst)
        if route.kind is RouteKind.OUTSIDE:
            return end(Disposition.NO_ROUTE, reason=f"{outcome.dst} leaves the cluster")
        if route.kind is RouteKind.POD:
            pod = self.net.pods_by_ip[outcome.dst]
            return [Journey(Disposition.DELIVERED, legs, outcome.src, outcome.dst, outcome.dport, pod=pod, node=node)]
        onward = tracer.Packet(outcome.src, outcome.dst, protocol, outcome.sport, outcome.dport, "eth0")
        return self._at(route.via, onward, legs)


def outcome_key(disposition: Disposition, pod: ir.Pod | None, src, reply: Disposition | None = None) -> tuple:
    """What the model and the concrete tracer must agree on for one path (and its answer's, if traced)."""
    return (disposition.value, pod.key if pod is not None else None,
            str(src) if disposition is Disposition.DELIVERED else None, reply.value if reply is not None else None)


def _connection(entered: tracer.Packet, outcome: tracer.Outcome) -> Connection:
    """What a node's conntrack holds of a connection that came in as ``entered`` and left as ``outcome``."""
    snat = (entered.src, entered.sport) != (outcome.src, outcome.sport)
    dnat = (entered.dst, entered.dport) != (outcome.dst, outcome.dport)
    return Connection((entered.src, entered.sport) if snat else None, (entered.dst, entered.dport) if dnat else None,
                      outcome.ctmark)


def replays(concrete: ConcreteCluster, ce) -> str:
    """'' when the counterexample ``ce`` replays in the concrete tracer, else what went wrong."""
    target = ce.instance.target
    if target is None:
        return ""
    packet = tracer.Packet.of(ce.src, str(target.dst), target.protocol.lower, target.dport, sport=ce.sport or 40000)
    answer = ce.fate.reply
    want = outcome_key(ce.fate.disposition, ce.fate.pod, ce.seen, answer.disposition if answer else None)
    journeys = _journeys_via_lb(concrete, ce.instance.client, packet, target, round_trip=answer is not None)
    got = {outcome_key(j.disposition, j.pod, j.src, j.reply.disposition if j.reply else None) for j in journeys}
    if want in got:
        return ""
    return f"the model's path ends {want}, the concrete tracer's paths end {sorted(got, key=str)}"


def _journeys_via_lb(concrete: ConcreteCluster, client: ir.Client, packet: tracer.Packet, target,
                     round_trip: bool = False) -> list[Journey]:
    """Journeys of a packet that may first pass the cloud load balancer: it has no backend when no node
    passes the health check, and refuses sources outside the ranges it enforces itself."""
    if target.load_balancer is not None and target.entry_node is None:
        return [Journey(Disposition.DROPPED, (), packet.src, packet.dst, packet.dport, reason="no healthy backend")]
    if target.lb_source_ranges and not any(packet.src in net for net in target.lb_source_ranges
                                           if net.version == packet.src.version):
        return [Journey(Disposition.DROPPED, (), packet.src, packet.dst, packet.dport, reason="refused by the LB")]
    if round_trip:
        return concrete.round_trips(client, packet, target.entry_node, (target.dst, target.dport))
    return concrete.journeys(client, packet, target.entry_node)
