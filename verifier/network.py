"""The cluster network around the nodes' netfilter: where a packet enters, how nodes route it, where it ends.

The per-node engine (``encode.NodeModel``) walks one table's chain; this module strings tables, hooks and
nodes together in the kernel's order (``netfilter.HOOK_TABLES``):

* a packet from outside (external host, load balancer, another node, a pod's veth) runs PREROUTING, then
  the routing decision (``route``): to a local address -> INPUT (a host socket: nothing listens on a
  NodePort); to a pod on this node -> FORWARD, POSTROUTING, the pod; to a pod of another node -> FORWARD,
  POSTROUTING, out to that node, where the same happens again; anywhere else -> it leaves the cluster.
* a packet from a process on the node runs OUTPUT and POSTROUTING; to one of the node's own addresses it
  comes back in through ``lo``.

The outgoing interface is known from the routing decision on, so ``-o`` matches in FORWARD, OUTPUT and
POSTROUTING as in the kernel. Source NAT takes its address where the kernel's MASQUERADE does
(``nat_source``: an address of the outgoing interface, else the node's). The concrete tracer asks the same
``route`` and ``nat_source``, so the two engines agree on addresses by construction.
"""
from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

import z3

from kspec import ir
from kspec.verifier.encode import ACCEPT, DROP, REJECT, NodeModel, Step, SymPacket
from kspec.verifier.netfilter import (HOOKS_WITH_OUT, UNDO_DNAT_HOOKS, UNDO_SNAT_HOOKS, Connection, tables_of,
                                      tracked_in)

MAX_HOPS = 4  # a packet crosses at most entry node -> endpoint node; more means a routing loop


class Disposition(enum.Enum):
    DELIVERED = "delivered"  # to a pod
    HOST = "host"  # to a socket on a node (nothing listens on a service port there)
    DROPPED = "dropped"
    REJECTED = "rejected"
    NO_ROUTE = "no route"  # left the cluster or went to an address nobody has
    ANSWERED = "answered"  # a reply reached the client, from the address and port the client sent to
    UNKNOWN = "unknown"


Ends = tuple  # (src term, src value or None, sport term, dst, dport, connmark) of a packet at a node's door


@dataclass(frozen=True, slots=True)
class Hop:
    node: str
    steps: tuple[Step, ...]
    route: str
    entered: Ends | None = None  # the packet as it came into the node, and as it left (for its replies)
    left: Ends | None = None


@dataclass(frozen=True, slots=True)
class Fate:
    """One feasible class of packets and what became of it."""

    disposition: Disposition
    hops: tuple[Hop, ...]
    packet: SymPacket  # the final packet (its cond is the path condition)
    pod: ir.Pod | None = None
    node: str | None = None  # where it was delivered (pod's node or the host)
    reason: str = ""
    reply: "Fate | None" = None  # of a DELIVERED fate: one fate of the pod's answer (its cond implies ours)

    @property
    def cond(self) -> z3.BoolRef:
        return self.reply.packet.cond if self.reply is not None else self.packet.cond

    @property
    def answered(self) -> bool:
        return self.reply is not None and self.reply.disposition is Disposition.ANSWERED

    @property
    def source_seen(self) -> z3.BitVecRef:
        """The source address the receiver sees."""
        return self.packet.src


def _endpoint_pods(cluster: ir.Cluster) -> list[ir.Pod]:
    """Pods implied by endpoints: clusters read from Kubernetes objects often carry no Pod objects, yet an
    endpoint in a node's pod CIDR is a pod that answers."""
    pods = []
    for svc in cluster.services:
        for ep in svc.endpoints:
            if ep.node is None:
                continue
            namespace, _, name = (ep.pod or f"{svc.namespace}/endpoint-{ep.ip}").rpartition("/")
            pods.append(ir.Pod(namespace or svc.namespace, name, ep.node, ep.ip, ready=ep.ready,
                               serving=ep.serving, terminating=ep.terminating))
    return pods


def listening_ports(cluster: ir.Cluster, family: ir.IPFamily) -> dict[str, dict[str, set[int]]]:
    """For each pod of ``family``: the TCP and UDP ports something listens on (its container ports, and the
    ports of every endpoint with its address). The lab starts its echo servers on exactly these."""
    own = [pod for pod in cluster.pods if ir.IPFamily.of(pod.ip) is family]
    ports: dict[str, dict[str, set[int]]] = {pod.key: {"tcp": set(), "udp": set()} for pod in own}
    by_ip = {pod.ip: pod.key for pod in own}
    for pod in own:
        for cport in pod.ports:
            if cport.protocol in (ir.Protocol.TCP, ir.Protocol.UDP):
                ports[pod.key][cport.protocol.lower].add(cport.port)
    for svc in cluster.services:
        for ep in svc.endpoints:
            key = by_ip.get(ep.ip)
            for eport in ep.ports if key is not None else ():
                if eport.protocol in (ir.Protocol.TCP, ir.Protocol.UDP):
                    ports[key][eport.protocol.lower].add(eport.port)
    return ports


def pod_gateway(node: ir.Node, family: ir.IPFamily) -> ir.IPAddress | None:
    """The address the node holds on the host side of its pods' network, if its wiring gives it one."""
    if node.pod_wiring is ir.PodWiring.UNNUMBERED:
        return None
    cidr = next((c for c in node.pod_cidrs if ir.IPFamily.of(c) is family), None)
    return None if cidr is None else cidr.network_address + 1


class RouteKind(enum.Enum):
    LOCAL = "local"  # one of the node's own addresses
    POD = "pod"  # a pod on this node, through its veth (or the bridge)
    NODE = "node"  # another node, or a pod behind it
    OUTSIDE = "outside"  # leaves the cluster through the default route
    UNREACHABLE = "unreachable"  # inside this node's pod CIDR, but no pod has it


@dataclass(frozen=True, slots=True)
class Route:
    kind: RouteKind
    out_iface: str | None  # None when unreachable
    via: str | None = None  # the next node, for RouteKind.NODE

    def __str__(self) -> str:
        return {RouteKind.LOCAL: "local", RouteKind.POD: f"dev {self.out_iface}",
                RouteKind.NODE: f"via {self.via} dev {self.out_iface}", RouteKind.OUTSIDE: "leaves the cluster",
                RouteKind.UNREACHABLE: "unreachable"}[self.kind]


class ClusterNetwork:
    def __init__(self, cluster: ir.Cluster, models: dict[str, NodeModel], family: ir.IPFamily):
        self.cluster = cluster
        self.models = models
        self.family = family
        self.pods_by_ip = {pod.ip: pod for pod in cluster.pods}
        for pod in _endpoint_pods(cluster):
            self.pods_by_ip.setdefault(pod.ip, pod)
        # Interface numbering: the spec's pods in order, then pods known only from endpoints.
        self._pod_number = {ip: i for i, ip in enumerate(self.pods_by_ip)}
        self._owner: dict = {}
        self._routes: dict = {}
        self._listening: dict | None = None

    # ------------------------------------------------------------------------------- addressing

    def node_of(self, ip: ir.IPAddress) -> tuple[str, str] | None:
        """(node, "local"|"pods") owning ``ip`` as an own address or inside its pod CIDR."""
        if ip not in self._owner:
            self._owner[ip] = self._find_owner(ip)
        return self._owner[ip]

    def _find_owner(self, ip: ir.IPAddress) -> tuple[str, str] | None:
        for node in self.cluster.nodes:
            if ip in self.models[node.name].local_ips:
                return node.name, "local"
        for node in self.cluster.nodes:
            if any(ip in cidr for cidr in node.pod_cidrs if cidr.version == ip.version):
                return node.name, "pods"
        return None

    def pod_iface(self, pod: ir.Pod) -> str:
        detect = self.cluster.proxy.detect_local
        if detect.mode is ir.LocalDetectMode.BRIDGE_INTERFACE and detect.interface:
            return detect.interface
        prefix = detect.interface if detect.mode is ir.LocalDetectMode.INTERFACE_NAME_PREFIX and detect.interface \
            else "veth"
        return f"{prefix}{self._pod_number[pod.ip]}"

    def route(self, node: str, dst: ir.IPAddress | None) -> Route:
        """The routing decision on ``node`` for ``dst`` (the lab's routes are built to match); None is the
        answer to "any external host", outside every cluster range by its constraint."""
        if dst is None:
            return Route(RouteKind.OUTSIDE, "eth0")
        key = (node, dst)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = self._route_of(node, dst)
        return found

    def _route_of(self, node: str, dst: ir.IPAddress) -> Route:
        owner = self.node_of(dst)
        if owner is None:
            return Route(RouteKind.OUTSIDE, "eth0")
        owner_node, kind = owner
        if owner_node != node:
            return Route(RouteKind.NODE, "eth0", owner_node)
        if kind == "local":
            return Route(RouteKind.LOCAL, "lo")
        pod = self.pods_by_ip.get(dst)
        return Route(RouteKind.POD, self.pod_iface(pod)) if pod is not None else Route(RouteKind.UNREACHABLE, None)

    def nat_source(self, node: str, out_iface: str | None) -> ir.IPAddress | None:
        """The address MASQUERADE picks on ``node`` for a packet leaving through ``out_iface``: one of that
        interface's own (the pod gateway, towards the node's pods), else, as the kernel falls back to the
        other interfaces when it has none, the node's primary address."""
        node_ir = self.cluster.node(node)
        if out_iface not in (None, "eth0", "lo"):
            gateway = pod_gateway(node_ir, self.family)
            if gateway is not None:
                return gateway
        return node_ir.primary_ip(self.family)

    # --------------------------------------------------------------------------------- journeys

    def arrive(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...] = ()) -> list[Fate]:
        """A packet arriving at ``node`` from the wire (or a pod's veth)."""
        if len(hops) >= MAX_HOPS:
            return [Fate(Disposition.UNKNOWN, hops, pkt, reason="routing loop")]
        live, fates = self._hook(node, "PREROUTING", pkt.evolve(steps=(), entered=_ends(pkt)), hops)
        for path in live:
            fates += self._routed(node, path, hops)
        return fates

    def originate(self, node: str, pkt: SymPacket) -> list[Fate]:
        """A packet sent by a process on ``node``."""
        live, fates = self._hook(node, "OUTPUT", pkt.evolve(entered=_ends(pkt)), ())
        for path in live:
            fates += self._leave(node, path, ())
        return fates

    def _hook(self, node: str, hook: str, pkt: SymPacket, hops: tuple[Hop, ...], looped: bool = False,
              conn: Connection | None = None) -> tuple[list[SymPacket], list[Fate]]:
        """Every table of ``hook`` in priority order: the paths all of them accepted, and the fates of the
        paths one of them ended. A reply (``pkt.established`` or ``pkt.invalid``) never meets nat's rules;
        where nat would run, conntrack undoes the NAT of the connection this node holds (``conn``)."""
        model = self.models[node]
        live, ended = [pkt], []
        replying = pkt.established or pkt.invalid
        for table in tables_of(hook, looped):
            if table == "nat" and replying:
                live = [_undo_nat(path, hook, conn) for path in live] if conn is not None else live
                continue
            if not model.has_chain(table, hook):
                continue
            untracked = [path for path in live if table == "nat" and path.untracked]  # nat: nothing to do
            survivors, stopped = self._table(node, hook, table, [p for p in live if p not in untracked], hops,
                                             looped)
            live = survivors + untracked
            ended += stopped
        return live, ended

    def _table(self, node: str, hook: str, table: str, live: list[SymPacket], hops: tuple[Hop, ...],
               looped: bool) -> tuple[list[SymPacket], list[Fate]]:
        survivors, ended = [], []
        for path in live:
            entering = self._entering(node, hook, table, path, looped)
            for walked, verdict in self.models[node].walk_hook(table, hook, entering):
                if verdict == ACCEPT and not walked.unknown:
                    survivors.append(walked)
                else:
                    ended.append(self._stopped(node, walked, verdict, hops, f"{table} {hook}"))
        return survivors, ended

    def _entering(self, node: str, hook: str, table: str, pkt: SymPacket, looped: bool) -> SymPacket:
        """What the kernel knows of the packet when ``table`` runs at ``hook``: the outgoing interface from
        the routing decision on (for a packet the node sends, re-routed after nat OUTPUT's DNAT), the address
        MASQUERADE would pick, and whether conntrack has seen it yet."""
        changes: dict = {}
        if hook in HOOKS_WITH_OUT:
            route = self.route(node, pkt.dst)
            if route.out_iface != pkt.out_iface:
                changes["out_iface"] = route.out_iface
            if hook == "POSTROUTING":
                changes["nat_address"] = self.nat_source(node, route.out_iface)
        elif pkt.out_iface is not None:
            changes["out_iface"] = None
        tracked = tracked_in(table, looped)
        if tracked != pkt.tracked:
            changes["tracked"] = tracked
        return pkt.evolve(**changes) if changes else pkt

    def _routed(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...]) -> list[Fate]:
        """After PREROUTING: the routing decision, then INPUT for the node itself or FORWARD for the rest."""
        route = self.route(node, pkt.dst)
        if route.kind is RouteKind.LOCAL:
            return self._to_host(node, pkt, hops)
        if route.kind is RouteKind.UNREACHABLE:
            hop = Hop(node, pkt.steps, f"{pkt.dst}: no route")
            return [Fate(Disposition.NO_ROUTE, hops + (hop,), pkt, reason=f"no pod has {pkt.dst}")]
        live, fates = self._hook(node, "FORWARD", pkt, hops)
        for path in live:
            fates += self._leave(node, path, hops)
        return fates

    def _to_host(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...]) -> list[Fate]:
        live, fates = self._hook(node, "INPUT", pkt, hops)
        return fates + self._host_fates(node, live, hops)

    @staticmethod
    def _host_fates(node: str, live: list[SymPacket], hops: tuple[Hop, ...]) -> list[Fate]:
        return [Fate(Disposition.HOST, hops + (Hop(node, path.steps, f"{path.dst} is local to {node}"),), path,
                     node=node, reason=f"reached a socket on {node}, not a pod") for path in live]

    def _leave(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...]) -> list[Fate]:
        """POSTROUTING, then hand the packet to the pod, the next node, or the outside."""
        live, fates = self._hook(node, "POSTROUTING", pkt, hops)
        for path in live:
            fates += self._deliver(node, path, hops)
        return fates

    def _deliver(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...]) -> list[Fate]:
        route = self.route(node, pkt.dst)
        # An untracked packet (-j CT --notrack) left no connection here for its answers to find.
        hop = Hop(node, pkt.steps, f"{pkt.dst} {route}", None if pkt.untracked else pkt.entered, _ends(pkt))
        if route.kind is RouteKind.OUTSIDE:
            return [Fate(Disposition.NO_ROUTE, hops + (hop,), pkt, reason=f"{pkt.dst} leaves the cluster")]
        if route.kind is RouteKind.UNREACHABLE:
            return [Fate(Disposition.NO_ROUTE, hops + (hop,), pkt, reason=f"no pod has {pkt.dst}")]
        if route.kind is RouteKind.LOCAL:
            # A process on this node talking to itself: back in through lo, PREROUTING and INPUT without nat
            # (conntrack already holds the connection's NAT).
            live, fates = self._looped_in(node, [pkt], hops, None)
            return fates + self._host_fates(node, live, hops)
        if route.kind is RouteKind.POD:
            return [Fate(Disposition.DELIVERED, hops + (hop,), pkt, pod=self.pods_by_ip[pkt.dst], node=node)]
        # A new node means a new conntrack entry: the packet is NEW there, with no DNAT state or mark.
        onward = pkt.evolve(in_iface="eth0", out_iface=None, dnat=False, snat=False, mark=0, nat_address=None,
                            ctmark=0, untracked=False)
        return self.arrive(route.via, onward, hops + (hop,))

    def _stopped(self, node: str, pkt: SymPacket, verdict: str, hops: tuple[Hop, ...], where: str) -> Fate:
        disposition = {DROP: Disposition.DROPPED, REJECT: Disposition.REJECTED}.get(verdict, Disposition.UNKNOWN)
        if pkt.unknown:
            disposition = Disposition.UNKNOWN
        return Fate(disposition, hops + (Hop(node, pkt.steps, where),), pkt,
                    reason=pkt.unknown or f"{verdict} in {where} on {node}")

    # ---------------------------------------------------------------------------------- replies

    def silent_pod(self, pod: ir.Pod | None, proto: str, port: int | None) -> str:
        """Why a pod cannot answer a packet to ``port`` ('' when something listens there): it resets the
        connection (or, for UDP, answers port unreachable), and that answer's way back is not modelled."""
        if pod is None or port is None or proto not in ("tcp", "udp"):
            return ""
        if self._listening is None:
            self._listening = listening_ports(self.cluster, self.family)
        if port in self._listening.get(pod.key, {}).get(proto, ()):
            return ""
        return f"nothing listens on {pod.key}'s {proto} port {port}: it refuses the connection (not modelled)"

    def unanswerable_outside(self, node: str, src: ir.IPAddress | None, dst: ir.IPAddress | None) -> bool:
        """Whether a packet ``node`` sent out of the cluster from ``src`` hears nothing back: the outside world
        has no route to the nodes' pod CIDRs (the lab's router has none either), so the ICMP error it answers
        with is lost. Both engines ask this of what left the cluster."""
        if dst is None or self.route(node, dst).kind is not RouteKind.OUTSIDE:
            return False
        owner = self.node_of(src) if src is not None else None
        return owner is not None and owner[1] == "pods"

    def replies(self, fate: Fate, client: ir.Client, expect: tuple[ir.IPAddress, int]) -> list[Fate]:
        """Every fate of the pod's answer to ``fate`` (a DELIVERED one): back through the nodes, each undoing
        the NAT of the connection its conntrack holds, to the client. ANSWERED only when the answer reaches
        the client from ``expect``, the address and port the client sent to."""
        conns = self._connections(fate)
        if conns is None:
            return [Fate(Disposition.UNKNOWN, (), fate.packet, reason="the connection crossed a node twice")]
        first = fate.packet
        pod = fate.pod
        answer = SymPacket(
            src=z3.BitVecVal(int(pod.ip), first.src.size()), src_value=pod.ip,
            sport=z3.BitVecVal(first.dport, 16), dst=first.src_value, dport=None, proto=first.proto,
            in_iface=self.pod_iface(pod), conds=first.conds, dst_term=first.src, dport_term=first.sport)
        return self._answer_at(fate.node, answer, (), conns, client, expect)

    def rejections(self, fate: Fate, client: ir.Client, expect: tuple[ir.IPAddress, int]) -> list[Fate]:
        """Every fate of the ICMP error a REJECT sends back (``fate`` is a REJECTED one): from the rejecting
        node's OUTPUT, RELATED to the connection on every node that holds it (which undoes its NAT), INVALID
        elsewhere. ANSWERED when it reaches the client, whatever its source: the client's kernel matches it
        by the packet it quotes."""
        conns = self._connections(fate)
        at = fate.packet
        if conns is None or at.entered is None:
            return [Fate(Disposition.UNKNOWN, (), at, reason="the connection crossed a node twice")]
        node = fate.hops[-1].node
        conns[node] = conn = _connection(at.entered, _ends(at))
        local = at.dst is not None and self.route(node, at.dst).kind is RouteKind.LOCAL
        src = at.dst if local else self.nat_source(node, self.route(node, at.src_value).out_iface)
        if src is None:
            return [Fate(Disposition.UNKNOWN, (), at, reason=f"{node} has no address to send the ICMP error from")]
        error = SymPacket(src=z3.BitVecVal(int(src), at.src.size()), src_value=src, sport=z3.BitVecVal(0, 16),
                          dst=at.src_value, dport=0, proto="icmp" if at.src.size() == 32 else "ipv6-icmp",
                          conds=at.conds, dst_term=at.src, established=True, related=True,
                          nat_states=conn.nat_states)
        live, fates = self._hook(node, "OUTPUT", error, (), conn=conn)
        for path in live:
            fates += self._answer_onward(node, path, (), conns, client, expect, local_origin=True)
        return fates

    def _connections(self, fate: Fate) -> dict[str, Connection] | None:
        """What each node on ``fate``'s path holds of its connection (None: a node was crossed twice)."""
        conns: dict[str, Connection] = {}
        for hop in fate.hops:
            if hop.entered is None:
                continue
            if hop.node in conns:
                return None
            conns[hop.node] = _connection(hop.entered, hop.left)
        return conns

    def _answer_at(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...], conns: dict[str, Connection],
                   client: ir.Client, expect: tuple[ir.IPAddress, int]) -> list[Fate]:
        """An answer (or ICMP error) arriving at ``node`` from a pod or the wire."""
        if len(hops) >= MAX_HOPS:
            return [Fate(Disposition.UNKNOWN, hops, pkt, reason="routing loop of the answer")]
        conn = conns.get(node)
        # A node that never saw the connection: a TCP answer or any ICMP error is INVALID there (nothing to
        # undo, no nat); a UDP answer starts a new connection, as a first packet would.
        known = conn is not None
        pkt = pkt.evolve(steps=(), established=known, invalid=not known and (pkt.proto == "tcp" or pkt.related),
                         nat_states=conn.nat_states if known else frozenset(), dnat=False, snat=False, mark=0,
                         entered=None)
        live, fates = self._hook(node, "PREROUTING", pkt, hops, conn=conn)
        for path in live:
            fates += self._answer_onward(node, path, hops, conns, client, expect)
        return fates

    def _answer_onward(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...], conns: dict[str, Connection],
                       client: ir.Client, expect, local_origin: bool = False) -> list[Fate]:
        """After PREROUTING (or, for what the node sends itself, OUTPUT): the route, INPUT or FORWARD and
        POSTROUTING, then the next node or the end."""
        conn = conns.get(node)
        route = self.route(node, pkt.dst)
        hop = lambda p: Hop(node, p.steps, str(route))  # noqa: E731
        if route.kind is RouteKind.UNREACHABLE:
            return [Fate(Disposition.NO_ROUTE, hops + (hop(pkt),), pkt, reason="the answer has no route")]
        fates: list[Fate] = []
        live = [pkt]
        if not local_origin:
            live, fates = self._hook(node, "INPUT" if route.kind is RouteKind.LOCAL else "FORWARD", pkt, hops,
                                     conn=conn)
        if route.kind is not RouteKind.LOCAL or local_origin:
            live, ended = self._post_hooks(node, live, hops, conn)
            fates += ended
        if route.kind is RouteKind.LOCAL and local_origin:  # to itself: back in through lo
            live, ended = self._looped_in(node, live, hops, conn)
            fates += ended
        for done in live:
            if route.kind is RouteKind.NODE:
                onward = done.evolve(in_iface="eth0", out_iface=None, nat_address=None)
                fates += self._answer_at(route.via, onward, hops + (hop(done),), conns, client, expect)
            else:
                fates.append(self._answer_end(node, done, hops + (hop(done),), route, client, expect, conns))
        return fates

    def _looped_in(self, node: str, live: list[SymPacket], hops, conn) -> tuple[list[SymPacket], list[Fate]]:
        out, ended = [], []
        for path in live:
            back = path.evolve(in_iface="lo", out_iface=None)
            survived, stopped = self._hook(node, "PREROUTING", back, hops, looped=True, conn=conn)
            ended += stopped
            for inside in survived:
                kept, stopped = self._hook(node, "INPUT", inside, hops, looped=True, conn=conn)
                out += kept
                ended += stopped
        return out, ended

    def _post_hooks(self, node: str, live: list[SymPacket], hops, conn) -> tuple[list[SymPacket], list[Fate]]:
        out, ended = [], []
        for path in live:
            survived, stopped = self._hook(node, "POSTROUTING", path, hops, conn=conn)
            out += survived
            ended += stopped
        return out, ended

    @staticmethod
    def quotes_original(crossed: set[str], conns: dict[str, Connection]) -> bool:
        """Whether an ICMP error that crossed ``crossed`` quotes the packet the client sent: each node that
        DNATed it undoes that in the quoted header too, so it must be on the way back."""
        return all(node in crossed for node, conn in conns.items() if conn.undo_dnat is not None)

    def _answer_end(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...], route: Route, client: ir.Client,
                    expect: tuple[ir.IPAddress, int], conns: dict[str, Connection]) -> Fate:
        sport = z3.simplify(pkt.sport).as_long()  # an answer's source port is always a constant
        crossed = {hop.node for hop in hops}
        disposition, reason = self.answer_end(node, route, pkt.dst, pkt.src_value, sport, client, expect,
                                              quoted=self.quotes_original(crossed, conns) if pkt.related else None)
        return Fate(disposition, hops, pkt, node=node, reason=reason)

    def answer_end(self, node: str, route: Route, dst: ir.IPAddress | None, src: ir.IPAddress, sport: int,
                   client: ir.Client, expect: tuple[ir.IPAddress, int],
                   quoted: bool | None = None) -> tuple[Disposition, str]:
        """Where an answer stopped (``route``, on ``node``): at the client, ANSWERED when it comes from the
        address and port the client sent to (else its socket ignores it); anywhere else, lost. An ICMP error
        is matched by the packet it quotes instead: ``quoted`` says whether that is the client's own (see
        ``quotes_original``). Both engines end their answers here."""
        kind = {RouteKind.LOCAL: ir.ClientKind.NODE, RouteKind.POD: ir.ClientKind.POD,
                RouteKind.OUTSIDE: ir.ClientKind.EXTERNAL}.get(route.kind)
        at_client = client.kind is kind and (kind is not ir.ClientKind.NODE or client.node == node)
        if kind is ir.ClientKind.POD:
            at_client = at_client and dst == self.cluster.client_address(client, self.family)
        if at_client and (quoted if quoted is not None else (src, sport) == tuple(expect)):
            return Disposition.ANSWERED, ""
        where = f"{dst} ({route})" if dst is not None else "the client"
        return Disposition.NO_ROUTE, f"the answer reaches {where} from {src}:{sport}, not from {expect[0]}:{expect[1]}"


def _ends(pkt: SymPacket) -> Ends:
    return (pkt.src, pkt.src_value, pkt.sport, pkt.dst, pkt.dport, pkt.ctmark)


def _connection(entered: Ends, left: Ends) -> Connection:
    """What a node's conntrack holds of a connection that came in as ``entered`` and left as ``left``."""
    src, _, sport, dst, dport, _ = entered
    out_src, _, out_sport, out_dst, out_dport, mark = left
    snat = not (src.eq(out_src) and sport.eq(out_sport))
    dnat = (dst, dport) != (out_dst, out_dport)
    return Connection((src, sport) if snat else None, (dst, dport) if dnat else None, mark)


def _undo_nat(pkt: SymPacket, hook: str, conn: Connection) -> SymPacket:
    """Conntrack's reverse NAT of a reply at nat's place in ``hook`` (a step of its own in the trace)."""
    if hook in UNDO_SNAT_HOOKS and conn.undo_snat is not None:
        term, sport = conn.undo_snat
        value = _value(term)
        step = Step("nat", hook, None, f"conntrack undoes SNAT: dst: {pkt.dst or 'client'} -> {value or 'client'}")
        return pkt.with_step(step, dst=value, dst_term=None if value is not None else term, dport=None,
                             dport_term=sport)
    if hook in UNDO_DNAT_HOOKS and conn.undo_dnat is not None:
        dst, dport = conn.undo_dnat
        step = Step("nat", hook, None, f"conntrack undoes DNAT: src: {pkt.src_value} -> {dst}:{dport}")
        return pkt.with_step(step, src=z3.BitVecVal(int(dst), pkt.src.size()), src_value=dst,
                             sport=z3.BitVecVal(dport, 16))
    return pkt


def _value(term: z3.BitVecRef):
    """The address a constant term stands for, else None (a symbolic one)."""
    if not z3.is_bv_value(term):
        return None
    return ipaddress.ip_address(term.as_long()) if term.size() == 32 else ipaddress.IPv6Address(term.as_long())
