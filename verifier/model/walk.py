"""A packet's way through the nodes and the cluster network, written once and run by both engines.

Two engines walk one table's chain: the Z3 model (``encode.NodeModel``: classes of packets, each with its
path condition) and the concrete tracer (``tracer.NodeTracer``: one packet, every random choice a branch).
Everything around that walk lives here, so that the two cannot drift:

* ``NodeWalk``: one node's hooks in the kernel's order (``netfilter.tables_of``); the routing decision before
  FORWARD, and before each of OUTPUT's tables (re-made on the destination that table sees), so ``-o`` is known
  where the kernel knows it; what each table knows of the packet (the outgoing interface, the address
  MASQUERADE would pick, whether conntrack has seen it yet); for a reply, conntrack undoing the connection's
  NAT in nat's place; a packet the node sends itself coming back in through ``lo``.
* ``Walk``: the cluster around the nodes: where a client's packet enters, the next node, the pod; and the
  round trip: the pod's answer (or a REJECT's ICMP error) back through the nodes that hold the connection to
  the client.

An engine brings its chain walk and its packet algebra (``Engine``); ``network.ClusterNetwork`` brings the
addresses, the routes and where an answer counts as answered.
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from kspec import ir
from kspec.rules.iptables import ruleset as rs
from kspec.verifier.model.netfilter import (
    ACCEPT,
    ANSWERED_LATER,
    DROP,
    HOOKS_WITH_OUT,
    REJECT,
    Connection,
    ct_status,
    tables_of,
    tracked_in,
)

if TYPE_CHECKING:
    from kspec.verifier.model.network import ClusterNetwork

MAX_HOPS = 4  # a packet crosses at most entry node -> endpoint node; more means a routing loop


class Disposition(enum.Enum):
    DELIVERED = "delivered"  # to a pod
    HOST = "host"  # to a socket on a node (nothing listens on a service port there)
    DROPPED = "dropped"
    REJECTED = "rejected"
    NO_ROUTE = "no route"  # left the cluster or went to an address nobody has
    ANSWERED = "answered"  # a reply reached the client, from the address and port the client sent to
    UNKNOWN = "unknown"


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


LOCAL_ROUTE = Route(RouteKind.LOCAL, "lo")


@dataclass(frozen=True, slots=True)
class Hop:
    """One node on a packet's way: the rules it met there (the engine's steps) and where it went next."""

    node: str
    steps: tuple
    route: str
    entered: tuple | None = None  # the packet as it came into the node, and as it left (its connection there)
    left: tuple | None = None
    packet: Any = None  # the engine's packet as it left (or ended at) this node


@dataclass(frozen=True, slots=True)
class Fate:
    """One feasible way of the packet (one class of packets, in the Z3 model) and what became of it."""

    disposition: Disposition
    hops: tuple[Hop, ...]
    packet: Any  # the final packet; in the Z3 model its cond is the path condition
    pod: ir.Pod | None = None
    node: str | None = None  # where it was delivered (pod's node or the host)
    reason: str = ""
    # One fate of what comes back (the pod's answer, a REJECT's ICMP error); of an answered TCP answer, one fate
    # of the client's data that follows it, and of that data's, the pod's echo (or the data's REJECT error):
    # the connection works only if the data reaches the pod and its echo the client.
    reply: Fate | None = None
    loops: bool = False  # NO_ROUTE: it left toward an address the outside routes back in, until its TTL ends
    # `assert sticky`: one fate of the client's next connection, sent after this one (its path condition
    # holds this one's).
    then: Fate | None = None

    @property
    def cond(self):
        if self.then is not None:
            return self.then.cond
        return self.reply.cond if self.reply is not None else self.packet.cond

    @property
    def not_known(self) -> Fate | None:
        """The first part of the round trip (this packet, the answer, the client's data, the echo) whose fate
        the model does not know, if any."""
        if self.then is not None and self.then.disposition is Disposition.UNKNOWN:
            return self.then
        part: Fate | None = self
        while part is not None and part.disposition is not Disposition.UNKNOWN:
            part = part.reply
        return part

    def later(self) -> tuple[Disposition | None, Disposition | None, Disposition | None]:
        """The dispositions of what comes back, of the client's data after it, and of the ICMP error a REJECT
        of that data sends back (None: not traced)."""
        answer = self.reply
        data = answer.reply if answer is not None else None
        error = data.reply if data is not None else None
        return tuple(f.disposition if f is not None else None for f in (answer, data, error))  # type: ignore

    @property
    def answered(self) -> bool:
        """The answer reached the client and (a TCP connection's) the client's data then reached the pod, and
        the pod's echo the client."""
        answer = self.reply
        if answer is None or answer.disposition is not Disposition.ANSWERED:
            return False
        data = answer.reply
        if data is None:
            return True
        echo = data.reply
        return data.disposition is Disposition.DELIVERED and (echo is None or echo.disposition is Disposition.ANSWERED)

    @property
    def source_seen(self):
        """The source address the receiver sees (a Z3 term in the model)."""
        return self.packet.src


class Engine(Protocol):
    """One node's rules, walked by one engine, and that engine's packets.

    A packet (``encode.SymPacket`` or ``tracer.ConcretePacket``) has the fields this module reads and
    ``evolve(**changes)`` (a copy with changes): ``dst``, ``src_value``, ``sport_value``, ``proto``,
    ``in_iface``, ``out_iface``, ``nat_address``, ``tracked``, ``untracked``, ``established``, ``related``,
    ``invalid``, ``nat_states``, ``dnat``, ``snat``, ``mark``, ``ctmark``, ``confirmed``, ``owner``,
    ``random_port``, ``master``, ``steps``, ``unknown``, ``entered``.
    """

    def has_chain(self, table: str, chain: str) -> bool: ...

    def walk_hook(self, table: str, chain: str, pkt) -> list[tuple[Any, str]]:
        """Every (packet, verdict) of ``pkt`` through a built-in chain: ACCEPT, DROP, REJECT or UNKNOWN."""

    def at_door(self, pkt):
        """``pkt`` as it comes into a node: no steps yet, its header remembered in ``entered``."""

    def ends(self, pkt) -> tuple:
        """The header a connection is made of (``Hop.entered``/``Hop.left``)."""

    def connection(self, entered: tuple, left: tuple) -> Connection: ...

    def undo_nat(self, pkt, hook: str, conn: Connection): ...

    def redo_nat(self, pkt, hook: str, conn: Connection):
        """The connection's NAT done again to the client's later packet (``pkt.data``)."""

    def data_packet(self, ends: tuple, answer):
        """The client's data after the handshake, with the header the first packet had at its first node."""

    def answer(self, pkt, in_iface: str):
        """The receiver's answer to ``pkt`` as delivered: addresses and ports swapped, sent on ``in_iface``."""

    def icmp_error(self, pkt, src: ir.IPAddress, conn: Connection):
        """The ICMP error a node sends from ``src`` about ``pkt`` (a REJECT), RELATED to ``conn``."""


class ExitKind(enum.Enum):
    HOST = "host"  # accepted to a socket of the node
    OUT = "out"  # left the node through Exit.route
    UNREACHABLE = "unreachable"  # the routing decision found no way
    DROPPED = "dropped"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # a rule on the way is not modelled exactly (packet.unknown names it)


_ENDED = {DROP: ExitKind.DROPPED, REJECT: ExitKind.REJECTED}


@dataclass(frozen=True, slots=True)
class Exit:
    """How one packet's walk through one node ended."""

    kind: ExitKind
    packet: Any
    route: Route | None = None  # for OUT and UNREACHABLE
    where: str = ""  # "table HOOK" that ended it


class NodeWalk:
    """One node's hooks in the kernel's order, for one engine's packets. ``route(dst)`` is the node's routing
    decision; ``nat_source(out_iface)`` the address MASQUERADE picks leaving through ``out_iface``."""

    def __init__(self, engine: Engine, route: Callable[[Any], Route], nat_source: Callable[[str | None], Any]):
        self.engine = engine
        self.route = route
        self.nat_source = nat_source

    def arriving(self, pkt, conn: Connection | None = None) -> list[Exit]:
        """A packet from the wire or a pod's veth: PREROUTING, the routing decision, then INPUT for the node
        itself or FORWARD and POSTROUTING for the rest. ``conn``: what this node holds of a reply's
        connection."""
        live, exits = self._hook("PREROUTING", [pkt], conn)
        for path in live:
            route = self.route(path.dst)
            if route.kind is RouteKind.LOCAL:
                exits += self._to_host(*self._hook("INPUT", [path], conn))
            elif route.kind is RouteKind.UNREACHABLE:
                exits.append(Exit(ExitKind.UNREACHABLE, path, route))
            else:
                forwarded, ended = self._hook("FORWARD", [path], conn)
                exits += ended + self._leaving(forwarded, conn)
        return exits

    def originating(self, pkt, conn: Connection | None = None) -> list[Exit]:
        """A packet the node sends (a process's, or the kernel's ICMP error): OUTPUT and POSTROUTING; to one of
        the node's own addresses it comes back in through ``lo``, PREROUTING and INPUT without nat (conntrack
        already holds the connection's NAT)."""
        live, exits = self._hook("OUTPUT", [pkt], conn)
        return exits + self._leaving(live, conn)

    def _leaving(self, live: list, conn) -> list[Exit]:
        sent, exits = self._hook("POSTROUTING", live, conn)
        looped = []
        for path in sent:
            route = self.route(path.dst)
            if route.kind is RouteKind.LOCAL:
                # A first packet's entry was confirmed as it left POSTROUTING.
                looped.append(path.evolve(in_iface="lo", out_iface=None, confirmed=True))
            else:
                exits.append(Exit(ExitKind.OUT, path, route))
        if looped:
            back, ended = self._hook("PREROUTING", looped, conn, looped=True)
            exits += ended + self._to_host(*self._hook("INPUT", back, conn, looped=True))
        return exits

    @staticmethod
    def _to_host(live: list, ended: list[Exit]) -> list[Exit]:
        return ended + [Exit(ExitKind.HOST, path, LOCAL_ROUTE) for path in live]

    def _hook(self, hook: str, live: list, conn: Connection | None, looped: bool = False
              ) -> tuple[list, list[Exit]]:
        """Every table of ``hook`` in priority order: the packets all of them accepted, and the exits of those
        one of them ended. A reply (established or invalid here) never meets nat's rules; where nat would run,
        conntrack undoes the NAT of the connection this node holds (``conn``)."""
        ended: list[Exit] = []
        for table in tables_of(hook, looped):
            if table == "nat" and conn is not None and any(_replying(p) for p in live):
                live = [self._conntrack_nat(p, hook, conn) if _replying(p) else p for p in live]
            if not self.engine.has_chain(table, hook):
                continue
            survivors = []
            for path in live:
                # nat: no rules for a reply (undone above), nor for an untracked packet (no connection)
                if table == "nat" and (_replying(path) or path.untracked):
                    survivors.append(path)
                    continue
                for walked, verdict in self.engine.walk_hook(table, hook, self._entering(hook, table, path, looped)):
                    if verdict == ACCEPT and not walked.unknown:
                        survivors.append(walked)
                    else:
                        kind = ExitKind.UNKNOWN if walked.unknown else _ENDED.get(verdict, ExitKind.UNKNOWN)
                        ended.append(Exit(kind, walked, where=f"{table} {hook}"))
            live = survivors
        return live, ended

    def _conntrack_nat(self, pkt, hook: str, conn: Connection):
        """What conntrack does at nat's place to a packet of a connection it knows: undo the NAT of a reply,
        redo it for the client's later packets."""
        later = pkt.data and not pkt.echo  # the client's later packet (the pod's echo is a reply)
        return self.engine.redo_nat(pkt, hook, conn) if later else self.engine.undo_nat(pkt, hook, conn)

    def _entering(self, hook: str, table: str, pkt, looped: bool):
        """What the kernel knows of the packet when ``table`` runs at ``hook``: the outgoing interface from the
        routing decision on (re-made on each table's destination, as OUTPUT re-routes after nat's DNAT), the
        address MASQUERADE would pick, and whether conntrack has seen it yet."""
        changes: dict = {}
        if hook in HOOKS_WITH_OUT:
            route = self.route(pkt.dst)
            if route.out_iface != pkt.out_iface:
                changes["out_iface"] = route.out_iface
            if hook == "POSTROUTING":
                changes["nat_address"] = self.nat_source(route.out_iface)
        elif pkt.out_iface is not None:
            changes["out_iface"] = None
        tracked = tracked_in(table, looped, attached=pkt.related and hook == "OUTPUT")
        if tracked != pkt.tracked:
            changes["tracked"] = tracked
        return pkt.evolve(**changes) if changes else pkt


def _replying(pkt) -> bool:
    """A reply conntrack handles (an untracked one, -j CT --notrack, it never sees: no NAT is undone)."""
    return (pkt.established or pkt.invalid) and not pkt.untracked


# The packet as the next node's conntrack first sees it: a new connection there, with no NAT or marks yet.
_ONWARD = dict(in_iface="eth0", out_iface=None, dnat=False, snat=False, mark=0, nat_address=None, ctmark=0,
               untracked=False, confirmed=False)


# What a node holds of a connection whose answer it never saw (see Walk._half_open).
HALF_OPEN = Connection()


class Walk:
    """The cluster's nodes strung together by its routes, for one engine (``engines``: one per node)."""

    def __init__(self, net: ClusterNetwork, engines: Mapping[str, Engine]):
        self.net = net
        self.engines = engines
        self._walks: dict[str, NodeWalk] = {}

    def node(self, name: str) -> NodeWalk:
        found = self._walks.get(name)
        if found is None:
            found = self._walks[name] = NodeWalk(self.engines[name], lambda dst: self.net.route(name, dst),
                                                 lambda iface: self.net.nat_source(name, iface))
        return found

    # ------------------------------------------------------------------------------- first packets

    def send(self, client: ir.Client, pkt, entry_node: str | None, conns: dict | None = None) -> list[Fate]:
        """Every fate of ``pkt`` sent by ``client``; an external client's packet enters at ``entry_node``.
        ``conns``: for the client's later packets, what each node holds of the connection."""
        if client.kind is ir.ClientKind.NODE:
            return self.originate(client.node, pkt.evolve(in_iface=None, owner=(client.uid, client.gid)), conns)
        if client.kind is ir.ClientKind.POD:
            pod = self.net.pods_by_ip.get(client.ip) or next(
                (p for p in self.net.cluster.pods if p.key == client.name), None)
            if pod is None:  # `client X { ip IP  pod on NODE }` with no pod of that address: no veth to send from
                return [Fate(Disposition.UNKNOWN, (), pkt, reason=f"no pod has client {client.name}'s address "
                             f"{client.ip}: declare it (`pod NAME on {client.node} {{ ip {client.ip} }}`)")]
            return self.arrive(pod.node, pkt.evolve(in_iface=self.net.pod_iface(pod)), conns=conns)
        if entry_node is None:
            return [Fate(Disposition.NO_ROUTE, (Hop("-", (), "no route from outside"),), pkt,
                         reason=f"{pkt.dst} is not reachable from outside the cluster")]
        # The outside steers the Service's external address to the entry node; it would steer it back there.
        steered = None if self.net.node_of(pkt.dst) is not None else pkt.dst
        return self.arrive(entry_node, pkt.evolve(in_iface="eth0"), steered=steered, conns=conns)

    def arrive(self, node: str, pkt, hops: tuple[Hop, ...] = (), steered=None, conns: dict | None = None
               ) -> list[Fate]:
        """A packet arriving at ``node`` from the wire (or a pod's veth). ``steered``: the address the outside
        routes into the cluster at the external client's entry node (its Service's external IP)."""
        if len(hops) >= MAX_HOPS:
            return [Fate(Disposition.UNKNOWN, hops, pkt, reason="routing loop")]
        if conns is not None and conns.get(node) is HALF_OPEN:
            return [self._half_open(node, pkt, hops)]
        pkt, conn = self._door(node, pkt, conns)
        return self._first(node, self.node(node).arriving(pkt, conn), hops, steered, conns)

    def originate(self, node: str, pkt, conns: dict | None = None) -> list[Fate]:
        """A packet sent by a process on ``node``."""
        if conns is not None and conns.get(node) is HALF_OPEN:
            return [self._half_open(node, pkt, ())]
        pkt, conn = self._door(node, pkt, conns)
        return self._first(node, self.node(node).originating(pkt, conn), (), None, conns)

    def _door(self, node: str, pkt, conns: dict | None):
        """``pkt`` as ``node``'s conntrack first sees it: a new connection, or (``conns`` given: the client's
        later packet) ESTABLISHED where the node holds the connection; where it does not, conntrack picks
        the packet up as a new one (nf_conntrack_tcp_loose, on by default)."""
        pkt = self.engines[node].at_door(pkt)
        conn = conns.get(node) if conns is not None else None
        if conn is not None:
            pkt = pkt.evolve(established=True, nat_states=conn.nat_states, ctmark=conn.mark)
        return pkt, conn

    @staticmethod
    def _half_open(node: str, pkt, hops: tuple[Hop, ...]) -> Fate:
        # The answer bypassed this node: its conntrack holds the connection without SEEN_REPLY, so it sees the
        # client's data as NEW yet with the NAT already bound (no nat rules). Not modelled: unknown.
        return Fate(Disposition.UNKNOWN, hops, pkt, node=node,
                    reason=f"the answer bypassed {node}, which holds the connection: the client's data is NEW there "
                           "with its NAT already bound (not modelled)")

    def _first(self, node: str, exits: list[Exit], hops: tuple[Hop, ...], steered=None,
               conns: dict | None = None) -> list[Fate]:
        fates: list[Fate] = []
        for ex in exits:
            pkt = ex.packet
            if ex.kind is ExitKind.HOST:
                hop = Hop(node, pkt.steps, f"{pkt.dst} is local to {node}", packet=pkt)
                fates.append(Fate(Disposition.HOST, hops + (hop,), pkt, node=node,
                                  reason=f"reached a socket on {node}, not a pod"))
            elif ex.kind is ExitKind.UNREACHABLE:
                hop = Hop(node, pkt.steps, f"{pkt.dst}: no route", packet=pkt)
                fates.append(Fate(Disposition.NO_ROUTE, hops + (hop,), pkt, reason=f"no pod has {pkt.dst}"))
            elif ex.kind is ExitKind.OUT:
                fates += self._delivered(node, ex, hops, steered, conns)
            else:
                fates.append(self._stopped(node, ex, hops))
        return fates

    def _delivered(self, node: str, ex: Exit, hops: tuple[Hop, ...], steered, conns) -> list[Fate]:
        pkt, route = ex.packet, ex.route
        engine = self.engines[node]
        # An untracked packet (-j CT --notrack) left no connection here for its answers to find.
        hop = Hop(node, pkt.steps, f"{pkt.dst} {route}", None if pkt.untracked else pkt.entered, engine.ends(pkt),
                  pkt)
        if route.kind is RouteKind.OUTSIDE and pkt.dst == steered:
            # Back in at the entry node, the same connection again (the same decisions): a loop until its TTL
            # runs out. It reaches no pod; what the client then hears (an ICMP time exceeded from some hop,
            # unless a rule drops it) is not modelled: see answers.
            return [Fate(Disposition.NO_ROUTE, hops + (hop,), pkt, loops=True,
                         reason=f"{pkt.dst} leaves {node} untranslated and the outside routes it back in: a loop")]
        if route.kind is RouteKind.OUTSIDE:
            return [Fate(Disposition.NO_ROUTE, hops + (hop,), pkt, reason=f"{pkt.dst} leaves the cluster")]
        if route.kind is RouteKind.UNREACHABLE:
            return [Fate(Disposition.NO_ROUTE, hops + (hop,), pkt, reason=f"no pod has {pkt.dst}")]
        if route.kind is RouteKind.POD:
            return [Fate(Disposition.DELIVERED, hops + (hop,), pkt, pod=self.net.pods_by_ip[pkt.dst], node=node)]
        return self.arrive(route.via, pkt.evolve(**_ONWARD), hops + (hop,), steered, conns)

    @staticmethod
    def _stopped(node: str, ex: Exit, hops: tuple[Hop, ...]) -> Fate:
        disposition = {ExitKind.DROPPED: Disposition.DROPPED,
                       ExitKind.REJECTED: Disposition.REJECTED}.get(ex.kind, Disposition.UNKNOWN)
        pkt = ex.packet
        verdict = {ExitKind.DROPPED: DROP, ExitKind.REJECTED: REJECT}.get(ex.kind, "")
        return Fate(disposition, hops + (Hop(node, pkt.steps, ex.where, packet=pkt),), pkt,
                    reason=pkt.unknown or f"{verdict} in {ex.where} on {node}")

    # ---------------------------------------------------------------------------------- round trips

    def round_trips(self, fates: list[Fate], client: ir.Client, expect: tuple[ir.IPAddress, int]) -> list[Fate]:
        """``fates``, each one something comes back for split by the fates of that (``Fate.reply``)."""
        return [replace(fate, reply=answer) for fate in fates for answer in self.answers(fate, client, expect)]

    def answers(self, fate: Fate, client: ir.Client, expect: tuple[ir.IPAddress, int]) -> list[Fate | None]:
        """The fates of what comes back for ``fate``: the pod's answer, a REJECT's ICMP error, or nothing the
        client hears ([None] when nothing comes back that the walk follows)."""
        pkt = fate.packet
        if not fate.hops or pkt.entered is None:
            return [None]  # e.g. refused by the load balancer before any node
        if fate.disposition is Disposition.DELIVERED:
            refused = self.net.silent_pod(fate.pod, pkt.proto, pkt.dport)
            if refused:
                return [Fate(Disposition.UNKNOWN, (), pkt, node=fate.node, reason=refused)]
            return [then for answer in self.replies(fate, client, expect)
                    for then in self._then_data(fate, answer, client, expect)]
        if fate.disposition is Disposition.REJECTED:
            return self.rejections(fate, client, expect)
        if fate.disposition is Disposition.HOST:
            return self.host_answers(fate, client, expect)
        if fate.loops:
            return [Fate(Disposition.UNKNOWN, (), pkt, reason=f"{fate.reason}; what the client hears of it (an "
                         "ICMP time exceeded, unless a rule drops it) is not modelled")]
        client_src = self.net.cluster.client_address(client, self.net.family)
        if fate.disposition is Disposition.NO_ROUTE and \
                self.net.unanswerable_outside(fate.hops[-1].node, pkt.src_value, pkt.dst, client_src):
            return [Fate(Disposition.DROPPED, (), pkt, reason=f"it left the cluster from {pkt.src_value}, where the "
                         "outside's answer does not come back to the client from")]
        return [None]

    def replies(self, fate: Fate, client: ir.Client, expect: tuple[ir.IPAddress, int]) -> list[Fate]:
        """Every fate of the pod's answer to ``fate`` (a DELIVERED one): back through the nodes, each undoing
        the NAT of the connection its conntrack holds, to the client. ANSWERED only when the answer reaches
        the client from ``expect``, the address and port the client sent to."""
        conns = self._connections(fate)
        if conns is None:
            return [Fate(Disposition.UNKNOWN, (), fate.packet, reason="the connection crossed a node twice")]
        answer = self.engines[fate.node].answer(fate.packet, self.net.pod_iface(fate.pod))
        return self._answer_at(fate.node, answer, (), conns, client, expect)

    def _then_data(self, fate: Fate, answer: Fate, client: ir.Client, expect: tuple[ir.IPAddress, int]
                   ) -> list[Fate]:
        """``answer``, split by the fates of the client's data that follows an answered TCP handshake (as
        ``answer.reply``): ESTABLISHED on each node that holds the connection, NATed again as the first packet
        was, by the first packet's way; it must reach the same pod."""
        first = fate.hops[0]
        if answer.disposition is not Disposition.ANSWERED or fate.packet.proto != "tcp" or first.entered is None:
            return [answer]
        # Each node holds the connection as the answer left it (its CONNMARK too); one the answer bypassed
        # holds it half open.
        marks = {hop.node: hop.packet.ctmark for hop in answer.hops if hop.packet is not None}
        conns = {node: replace(conn, mark=marks[node], status=ANSWERED_LATER) if node in marks else HALF_OPEN
                 for node, conn in self._connections(fate).items()}
        data = self.engines[first.node].data_packet(first.entered, answer.packet)
        entry = first.node if client.kind is ir.ClientKind.EXTERNAL else None
        found = []
        for then in self.send(client, data, entry, conns):
            if then.disposition is Disposition.DELIVERED and then.pod != fate.pod:
                then = replace(then, disposition=Disposition.NO_ROUTE,
                               reason=f"the client's data reaches {then.pod.key}, not {fate.pod.key}")
            if then.disposition is Disposition.REJECTED:  # the client may hear the refusal of its data
                found += [replace(answer, reply=replace(then, reply=error))
                          for error in self.rejections(then, client, expect, established=True)]
            elif then.disposition is Disposition.DELIVERED:  # and the pod's echo must come back too
                found += [replace(answer, reply=replace(then, reply=echo))
                          for echo in self._echoes(then, conns, client, expect)]
            else:
                found.append(replace(answer, reply=then))
        return found

    def _echoes(self, data: Fate, conns: dict, client: ir.Client, expect: tuple[ir.IPAddress, int]) -> list[Fate]:
        """Every fate of the pod's echo of the client's data (``data``, DELIVERED): a reply like the
        handshake's answer, but of an answered connection (ASSURED) and with the marks the data left."""
        marks = {hop.node: hop.packet.ctmark for hop in data.hops if hop.packet is not None}
        held = {node: replace(conn, mark=marks.get(node, conn.mark)) for node, conn in conns.items()
                if conn is not HALF_OPEN}
        echo = self.engines[data.node].answer(data.packet, self.net.pod_iface(data.pod)).evolve(data=True, echo=True)
        return self._answer_at(data.node, echo, (), held, client, expect)

    def host_answers(self, fate: Fate, client: ir.Client, expect: tuple[ir.IPAddress, int]) -> list[Fate]:
        """Every fate of what a node's stack answers a packet that reached it (``fate``, HOST: nothing listens
        there in the model): a TCP reset from the address it was sent to, or for UDP an ICMP port
        unreachable; the client hears it only if it comes back as its own connection's."""
        at = fate.packet
        if at.proto != "tcp":
            return self.rejections(fate, client, expect, accepted=True)
        conns = self._connections(fate)
        if conns is None:
            return [Fate(Disposition.UNKNOWN, (), at, reason="the connection crossed a node twice")]
        node = fate.node
        engine = self.engines[node]
        conns[node] = conn = engine.connection(at.entered, engine.ends(at))
        reset = engine.at_door(engine.answer(at, None)).evolve(established=True, nat_states=conn.nat_states,
                                                               ctmark=conn.mark)
        return self._answer_exits(node, self.node(node).originating(reset, conn), (), conns, client, expect)

    def rejections(self, fate: Fate, client: ir.Client, expect: tuple[ir.IPAddress, int],
                   established: bool = False, accepted: bool = False) -> list[Fate]:
        """Every fate of the ICMP error a REJECT sends back (``fate`` is a REJECTED one): from the rejecting
        node's OUTPUT, RELATED to the connection on every node that holds it (which undoes its NAT), INVALID
        elsewhere. ANSWERED when it reaches the client, whatever its source: the client's kernel matches it
        by the packet it quotes. ``established``: the refused packet is the client's data; ``accepted``: it
        passed INPUT (its connection confirmed) and the node's UDP stack answers port unreachable."""
        conns = self._connections(fate)
        at = fate.packet
        if conns is None:
            return [Fate(Disposition.UNKNOWN, (), at, reason="the connection crossed a node twice")]
        if established:  # a refused later packet: every node on its way holds the answered connection
            conns = {name: replace(conn, status=ANSWERED_LATER) for name, conn in conns.items()}
        node = fate.hops[-1].node
        engine = self.engines[node]
        status = ct_status(at) | ({rs.CtStatus.CONFIRMED} if accepted else set())
        conns[node] = conn = replace(engine.connection(at.entered, engine.ends(at)), status=frozenset(status))
        local = self.net.route(node, at.dst).kind is RouteKind.LOCAL
        src = at.dst if local else self.net.nat_source(node, self.net.route(node, at.src_value).out_iface)
        if src is None:
            return [Fate(Disposition.UNKNOWN, (), at, reason=f"{node} has no address to send the ICMP error from")]
        error = engine.at_door(engine.icmp_error(at, src, conn)).evolve(master=conn.status)
        return self._answer_exits(node, self.node(node).originating(error, conn), (), conns, client, expect)

    def _connections(self, fate: Fate) -> dict[str, Connection] | None:
        """What each node on ``fate``'s path holds of its connection (None: a node was crossed twice)."""
        conns: dict[str, Connection] = {}
        for hop in fate.hops:
            if hop.entered is None:
                continue
            if hop.node in conns:
                return None
            conns[hop.node] = self.engines[hop.node].connection(hop.entered, hop.left)
        return conns

    def _answer_at(self, node: str, pkt, hops: tuple[Hop, ...], conns: dict[str, Connection], client: ir.Client,
                   expect: tuple[ir.IPAddress, int]) -> list[Fate]:
        """An answer (or ICMP error) arriving at ``node`` from a pod or the wire."""
        if len(hops) >= MAX_HOPS:
            return [Fate(Disposition.UNKNOWN, hops, pkt, reason="routing loop of the answer")]
        conn = conns.get(node)
        # A node that never saw the connection: a TCP answer or any ICMP error is INVALID there (nothing to
        # undo, no nat); a UDP answer starts a new connection, as a first packet would.
        known = conn is not None
        pkt = self.engines[node].at_door(pkt).evolve(
            established=known, invalid=not known and (pkt.proto == "tcp" or pkt.related),
            nat_states=conn.nat_states if known else frozenset(), dnat=False, snat=False, mark=0,
            ctmark=conn.mark if known else 0, untracked=False, confirmed=False,
            master=conn.status if known and pkt.related else frozenset())
        return self._answer_exits(node, self.node(node).arriving(pkt, conn), hops, conns, client, expect)

    def _answer_exits(self, node: str, exits: list[Exit], hops: tuple[Hop, ...], conns: dict[str, Connection],
                      client: ir.Client, expect) -> list[Fate]:
        fates: list[Fate] = []
        for ex in exits:
            pkt = ex.packet
            if ex.kind not in (ExitKind.HOST, ExitKind.OUT, ExitKind.UNREACHABLE):
                fates.append(self._stopped(node, ex, hops))
                continue
            here = hops + (Hop(node, pkt.steps, str(ex.route), packet=pkt),)
            if ex.kind is ExitKind.UNREACHABLE:
                fates.append(Fate(Disposition.NO_ROUTE, here, pkt, reason="the answer has no route"))
            elif ex.route.kind is RouteKind.NODE:
                onward = pkt.evolve(in_iface="eth0", out_iface=None, nat_address=None)
                fates += self._answer_at(ex.route.via, onward, here, conns, client, expect)
            else:
                fates.append(self._answer_end(node, pkt, here, ex.route, client, expect, conns))
        return fates

    def _answer_end(self, node: str, pkt, hops: tuple[Hop, ...], route: Route, client: ir.Client,
                    expect: tuple[ir.IPAddress, int], conns: dict[str, Connection]) -> Fate:
        # Nodes that undid their NAT in the quoted header: an error left untracked there (-j CT --notrack)
        # was never seen as RELATED, so its quote keeps that node's translation.
        crossed = {hop.node for hop in hops if hop.packet is None or not hop.packet.untracked}
        quoted = self.net.quotes_original(crossed, conns) if pkt.related else None
        disposition, reason = self.net.answer_end(node, route, pkt.dst, pkt.src_value, pkt.sport_value, client,
                                                  expect, quoted=quoted)
        return Fate(disposition, hops, pkt, node=node, reason=reason)
