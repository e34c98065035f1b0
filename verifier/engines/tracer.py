"""Concrete packet tracing over a ``kspec.rules.iptables.ruleset.Ruleset``: the engine that follows one packet.

Two tracers live here:

* ``NodeTracer`` — the concrete engine: one table's chain walked for one ``ConcretePacket`` (matches, marks,
  conntrack states, DNAT/SNAT/MASQUERADE rewrites, jumps, gotos, RETURN, policies). ``-m statistic`` and
  ``-m recent --rcheck`` are *branches*: every endpoint a packet can reach is enumerated (with its
  probability), never sampled. The hooks, routes and nodes around it are ``walk``'s, the same the Z3 model
  runs; ``trace`` runs them for one node.
* ``unit_test_trace`` — kube-proxy's unit-test tracer (``tracePacket`` in proxier_test.go), reproduced
  exactly as spec §11 describes, because the conformance corpus' flows are written against it.

Where the two disagree, and why, is documented in ``docs/tracer-vs-unit-tracer.md``.

``kube_proxy_state`` merges the jump rules kube-proxy installs in the built-in chains (spec §4.3; not part of
its restore input; see ``compiler/iptables/basechains.py``) with a restore text.
"""
from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from kspec.ir import IPAddress
from kspec.rules.iptables import ruleset as rs
from kspec.rules.iptables.iptables_save import parse_iptables_save
from kspec.verifier.model import matches, natpick
from kspec.verifier.model.netfilter import (
    ACCEPT,
    DROP,
    HOOKS_WITH_OUT,
    REDO_DNAT_HOOKS,
    REDO_SNAT_HOOKS,
    REJECT,
    UNDO_DNAT_HOOKS,
    UNDO_SNAT_HOOKS,
    UNKNOWN,
    Connection,
    ct_states,
    protocol_matches,
    state_match,
)

__all__ = [
    "Disposition", "Packet", "ConcretePacket", "NodeTracer", "Step", "Rewrite", "Outcome", "TraceError", "trace",
    "outcome", "unit_test_trace",
    "as_unit_test_output",
    "kube_proxy_state",
]

# ============================================================================ kube-proxy's built-in jumps


def kube_proxy_state(restore_text: str, file: str = "<restore>", has_kube_firewall: bool = True,
                     memo=None) -> rs.Ruleset:
    """The node's tables after kube-proxy's start-up jumps (``compiler.basechains``) and one
    ``iptables-restore --noflush`` of ``restore_text`` (what the kernel holds after a full sync). ``memo``: a
    ``RuleParser`` shared between the nodes of one cluster (see ``parse_iptables_save``)."""
    from kspec.compiler.iptables.basechains import base_rules

    base = parse_iptables_save(base_rules(has_kube_firewall, declare_targets=True), "<kube-proxy jumps>", memo=memo)
    return base.restore(parse_iptables_save(restore_text, file, require_declared_jumps=False, memo=memo),
                        flush_declared_builtins=False)


# ============================================================================ the unit-test tracer (§11)


_UNIT_FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL")


def unit_test_trace(ruleset: rs.Ruleset, src: str, proto: str, dst: str, dport: int | str,
                    local_ips: Iterable[str]) -> tuple[str, bool]:
    """kube-proxy's ``tracePacket``: (output, masq) exactly as its unit tests compute them (spec §11).

    ``output`` joins with ", " every DNAT destination reachable through a statistic cascade and every
    ACCEPT/REJECT/DROP reached; ``masq`` is whether any walked rule jumped to KUBE-MARK-MASQ.
    """
    tracer = _UnitTracer(ruleset, src, (proto or "tcp").lower(), dst, str(dport), frozenset(local_ips))
    tracer.walk("nat", "PREROUTING")
    if tracer.outputs:
        # The test rewrites the destination to the first result up to its first ':' (IPv6 becomes
        # '[fd00', which matches nothing), and keeps the destination port.
        tracer.dst = tracer.outputs[0].split(":")[0]
    for chain in _UNIT_FILTER_CHAINS:
        tracer.walk("filter", chain)
    return ", ".join(tracer.outputs), tracer.masq


class _UnitTracer:
    def __init__(self, ruleset: rs.Ruleset, src: str, proto: str, dst: str, dport: str,
                 local_ips: frozenset[str]):
        self.ruleset, self.src, self.proto, self.dst, self.dport = ruleset, src, proto, dst, dport
        self.local_ips = local_ips
        self.outputs: list[str] = []
        self.masq = False

    def walk(self, table: str, chain_name: str, depth: int = 0) -> bool:
        """Walk one chain; True when it terminated (a verdict or DNAT was reached)."""
        if depth > 64:
            raise TraceError(f"jump loop through {table} {chain_name}")
        chain = self.ruleset.chain(table, chain_name)
        if chain is None:  # RETURN, MARK, MASQUERADE... are "chains" that do not exist: nothing happens
            return False
        for rule in chain.rules:
            target = rule.target
            if isinstance(target, (rs.Empty, rs.Goto)):  # no '-j' word: skipped
                continue
            if not self._matches(rule):
                continue
            word = _unit_target_word(target)
            if word == "KUBE-MARK-MASQ":
                self.masq = True
                continue
            if word in ("ACCEPT", "REJECT", "DROP"):
                self.outputs.append(word)
                return True
            if word == "DNAT":
                self.outputs.append(target.text())
                return True
            terminated = self.walk(table, word, depth + 1)
            if terminated and rule.first(rs.Statistic) is None:
                return True
        return False

    def _matches(self, rule: rs.Rule) -> bool:
        for match in rule.matches:
            kind = type(match)
            if kind is rs.Source or kind is rs.Destination:
                ip = self.src if kind is rs.Source else self.dst
                if _unit_in(ip, match.network) == match.negated:
                    return False
            elif kind is rs.AddrType:
                ip = self.src if match.direction is rs.AddrDir.SRC else self.dst
                addr_type = "LOCAL" if ip in self.local_ips else "not-matched"
                if (",".join(k.value for k in match.types) == addr_type) == match.negated:
                    return False
            elif kind is rs.Protocol:
                if (match.name == self.proto) == match.negated:
                    return False
            elif kind is rs.Port:
                if match.direction is rs.PortDir.DPORT and (match.text() == self.dport) == match.negated:
                    return False
            elif kind is rs.Recent:
                if match.mode is rs.RecentMode.RCHECK:  # no affinity history in the test
                    return False
            elif kind is rs.MarkMatch or (kind is rs.Conntrack and match.module == "conntrack"):
                return False  # '--mark' and '--ctstate' rules never match in the test tracer
        return True  # everything else (--sport, -i, statistic, nfacct, recent --set...) is assumed to match


def _unit_target_word(target: rs.Target) -> str:
    if isinstance(target, rs.Jump):
        return target.chain
    return {rs.Accept: "ACCEPT", rs.Drop: "DROP", rs.Reject: "REJECT", rs.Return: "RETURN", rs.Dnat: "DNAT",
            rs.Snat: "SNAT", rs.Masquerade: "MASQUERADE", rs.MarkTarget: "MARK"}[type(target)]


def _unit_in(ip_text: str, network: rs.IPNetwork) -> bool:
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        return False  # e.g. the '[fd00' an IPv6 DNAT result is cut down to: matches nothing
    return ip.version == network.version and ip in network


# ============================================================================ the full tracer


class TraceError(Exception):
    """The ruleset or packet cannot be traced (jump to a missing chain, loop, missing packet field)."""


class Disposition(enum.Enum):
    ACCEPTED_LOCAL = "ACCEPTED to local"  # delivered to a socket on this node
    FORWARDED = "FORWARDED"  # routed through the node (to a pod on it, or out of it)
    SENT = "SENT"  # generated on this node and sent out of it
    UNREACHABLE = "UNREACHABLE"  # the routing decision found no way (an own pod address no pod has)
    UNKNOWN = "UNKNOWN"  # a rule on the way is one the model does not follow exactly (Outcome.reason names it)
    DROPPED = "DROPPED"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class Packet:
    """The first packet of a connection. ``in_interface=None`` means a process on this node sent it."""

    src: IPAddress
    dst: IPAddress
    protocol: str = "tcp"
    sport: int | None = None
    dport: int | None = None
    in_interface: str | None = "eth0"
    out_interface: str | None = None  # only needed when a rule matches on -o
    mark: int = 0

    @staticmethod
    def of(src: str, dst: str, protocol: str = "tcp", dport: int | None = None, sport: int | None = 40000,
           **kwargs) -> Packet:
        return Packet(ipaddress.ip_address(src), ipaddress.ip_address(dst), protocol.lower(), sport, dport,
                      **kwargs)


@dataclass(frozen=True, slots=True)
class Step:
    """One rule that matched (or a chain policy that applied) on the packet's way."""

    table: str
    chain: str
    index: int  # 1-based rule number in the chain; 0 for a policy
    rule: rs.Rule | None
    note: str = ""

    @property
    def origin(self) -> rs.Origin | None:
        return self.rule.origin if self.rule is not None else None

    def __str__(self) -> str:
        where = f"{self.table}/{self.chain}#{self.index}" if self.index else f"{self.table}/{self.chain}"
        text = self.rule.text if self.rule is not None and self.rule.text else ""
        origin = f" [{self.origin}]" if self.origin is not None else ""
        note = f"  ({self.note})" if self.note else ""
        return f"{where}{origin}: {text}{note}".rstrip()


@dataclass(frozen=True, slots=True)
class Rewrite:
    field: str  # src, sport, dst, dport, mark
    old: str
    new: str
    step: Step

    def __str__(self) -> str:
        return f"{self.field}: {self.old} -> {self.new}"


@dataclass(frozen=True, slots=True)
class Outcome:
    disposition: Disposition
    src: IPAddress
    sport: int | None
    dst: IPAddress
    dport: int | None
    masqueraded: bool  # MASQUERADE or SNAT rewrote the source
    mark: int
    steps: tuple[Step, ...]
    rewrites: tuple[Rewrite, ...]
    branches: tuple[str, ...]  # the statistic/recent choices this outcome assumes
    probability: float | None  # product of the statistic branches; None when a recent branch is involved
    decided_by: Step | None  # the rule (or policy) that dropped/rejected/accepted it in filter, if any
    reason: str = ""  # why the outcome is UNKNOWN
    ctmark: int = 0  # the connection's mark on this node (CONNMARK)
    untracked: bool = False  # -j CT --notrack: this node keeps no connection for it

    @property
    def dnat(self) -> tuple[IPAddress, int | None] | None:
        """The DNAT destination, if the packet was DNATed."""
        found = [r for r in self.rewrites if r.field == "dst"]
        return (self.dst, self.dport) if found else None

    def summary(self) -> str:
        parts = [self.disposition.value, f"{_hostport(self.src, self.sport)} -> {_hostport(self.dst, self.dport)}"]
        if self.masqueraded:
            parts.append("masqueraded")
        if self.probability is not None and self.probability < 1:
            parts.append(f"p={self.probability:.4g}")
        return ", ".join(parts)


def _hostport(ip: IPAddress, port: int | None) -> str:
    if port is None:
        return str(ip)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class ConcretePacket:
    """One way of the packet: its header, what conntrack knows of it, and its history on this node. The field
    names are ``encode.SymPacket``'s, so ``walk`` moves both engines' packets alike."""

    __slots__ = ("src", "sport", "dst", "dport", "proto", "mark", "in_iface", "out_iface", "dnat", "snat",
                 "tracked", "nat_address", "established", "related", "invalid", "nat_states", "entered", "ctmark",
                 "untracked", "data", "confirmed", "owner", "random_port", "master", "echo", "steps", "rewrites",
                 "branches", "prob", "decided", "unknown")

    def copy(self) -> ConcretePacket:
        twin = ConcretePacket.__new__(ConcretePacket)
        for name in self.__slots__:
            setattr(twin, name, getattr(self, name))
        return twin

    def evolve(self, **changes) -> ConcretePacket:
        twin = self.copy()
        for name, value in changes.items():
            setattr(twin, name, value)
        return twin

    @property
    def src_value(self) -> IPAddress:
        return self.src

    @property
    def sport_value(self) -> int | None:
        return self.sport

    def step(self, step: Step) -> None:
        self.steps = self.steps + (step,)

    def rewrite(self, name: str, new, step: Step) -> None:
        old = getattr(self, name)
        if old != new:
            self.rewrites = self.rewrites + (Rewrite(name, str(old), str(new), step),)
            setattr(self, name, new)

    @staticmethod
    def of(packet: Packet) -> ConcretePacket:
        """The first packet of a connection, ``packet``, before any node has seen it."""
        new = ConcretePacket.__new__(ConcretePacket)
        new.src, new.sport, new.dst, new.dport, new.proto = packet.src, packet.sport, packet.dst, packet.dport, \
            packet.protocol
        new.mark, new.in_iface, new.out_iface = packet.mark, packet.in_interface, packet.out_interface
        new.dnat = new.snat = new.established = new.related = new.invalid = new.untracked = new.data = False
        new.confirmed, new.owner, new.random_port, new.master, new.echo = False, None, None, frozenset(), False
        new.tracked, new.nat_address, new.nat_states, new.entered, new.ctmark = True, None, frozenset(), None, 0
        new.steps = new.rewrites = new.branches = ()
        new.prob, new.decided, new.unknown = 1.0, None, None
        return new


# Where conntrack rewrites which fields of a packet of a connection it knows, from which of its tuples.
_UNDO = ((UNDO_SNAT_HOOKS, "undo_snat", ("dst", "dport")), (UNDO_DNAT_HOOKS, "undo_dnat", ("src", "sport")))
_REDO = ((REDO_DNAT_HOOKS, "dnat_to", ("dst", "dport")), (REDO_SNAT_HOOKS, "snat_to", ("src", "sport")))


def _conntrack_nat(pkt: ConcretePacket, hook: str, conn: Connection, table: tuple, verb: str, what: str
                   ) -> ConcretePacket:
    for hooks, attribute, fields in table:
        values = getattr(conn, attribute)
        if hook in hooks and values is not None:
            step = Step("nat", hook, 0, None, f"conntrack {verb} the connection's NAT (no rules for {what})")
            done = pkt.copy()
            done.step(step)
            for name, value in zip(fields, values):
                done.rewrite(name, value, step)
            done.random_port = natpick.random_port_after(pkt.random_port, attribute, conn)
            return done
    return pkt


class _Unmodelled(Exception):
    """A match or target the model does not follow exactly: the path's outcome is UNKNOWN, never a guess."""

    def __init__(self, reason: str, packet: ConcretePacket):
        super().__init__(reason)
        self.reason, self.packet = reason, packet


def trace(ruleset: rs.Ruleset, packet: Packet, local_ips: Iterable[IPAddress | str], *,
          affinity: bool = False, masquerade_ip: IPAddress | str | None = None, ipsets=None) -> list[Outcome]:
    """Every way ``packet`` (the first packet of a new connection) can go through this one node's tables, in
    the order ``walk.NodeWalk`` runs them (the cluster's walk runs the same, node after node).

    ``local_ips``: the node's addresses (``-m addrtype LOCAL``, and the routing decision: anything else is
    forwarded, or sent, through ``packet.out_interface``); loopback is always local. ``affinity``: model
    ``recent --rcheck`` (ClientIP session affinity) as a branch (some earlier connection may have set the
    entry) instead of "no history, no match". ``masquerade_ip``: MASQUERADE's address (default: the first
    non-loopback local address of the packet's family).
    """
    from kspec.verifier.model.walk import LOCAL_ROUTE, ExitKind, NodeWalk, Route, RouteKind

    engine = NodeTracer(ruleset, local_ips, affinity, ipsets)
    local = engine.local
    masquerade = ipaddress.ip_address(str(masquerade_ip)) if masquerade_ip is not None else \
        next((ip for ip in sorted(local, key=lambda a: (a.version, int(a)))
              if ip.version == packet.dst.version and not ip.is_loopback), None)

    def route(dst: IPAddress) -> Route:
        if _is_local(dst, local):
            return LOCAL_ROUTE
        return Route(RouteKind.OUTSIDE, packet.out_interface)

    walk = NodeWalk(engine, route, lambda out_iface: masquerade)
    start = engine.at_door(ConcretePacket.of(packet))
    sent = packet.in_interface is None
    exits = walk.originating(start) if sent else walk.arriving(start)
    ended = {ExitKind.HOST: Disposition.ACCEPTED_LOCAL, ExitKind.OUT: Disposition.SENT if sent else
             Disposition.FORWARDED, ExitKind.UNREACHABLE: Disposition.UNREACHABLE,
             ExitKind.DROPPED: Disposition.DROPPED, ExitKind.REJECTED: Disposition.REJECTED,
             ExitKind.UNKNOWN: Disposition.UNKNOWN}
    return [outcome(ex.packet, ended[ex.kind]) for ex in exits]


def outcome(pkt: ConcretePacket, disposition: Disposition) -> Outcome:
    """What ``pkt``'s way through one node came to, in the tracer's terms."""
    return Outcome(disposition, pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.snat, pkt.mark, pkt.steps,
                   pkt.rewrites, pkt.branches, pkt.prob, pkt.decided, pkt.unknown or "", pkt.ctmark, pkt.untracked)


def _is_local(ip: IPAddress, local: frozenset) -> bool:
    return ip in local or any(ip.version == net.version and ip in net for net in _LOOPBACK)


class NodeTracer:
    """The concrete engine (``walk.Engine``): one node's ruleset, a table's chain walked for one packet, every
    ``statistic``/``recent``/rate choice a branch."""

    def __init__(self, ruleset: rs.Ruleset, local_ips, affinity: bool = False, ipsets=None,
                 local_routes=None, device_routes=None):
        self.ruleset = ruleset
        self.local = frozenset(ipaddress.ip_address(str(ip)) for ip in local_ips)
        self.local_routes = local_routes or {}  # own address -> its local route's device (network.local_routes)
        self.device_routes = device_routes  # IPv6: network.DeviceRoutes
        self.affinity = affinity
        self.ipsets = ipsets

    # --------------------------------------------------------------------- packets (walk.Engine)

    @staticmethod
    def at_door(pkt: ConcretePacket) -> ConcretePacket:
        return pkt.evolve(steps=(), rewrites=(), branches=(), decided=None, entered=NodeTracer.ends(pkt))

    @staticmethod
    def ends(pkt: ConcretePacket) -> tuple:
        return (pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.ctmark, pkt.random_port)

    @staticmethod
    def connection(entered: tuple, left: tuple) -> Connection:
        src, sport, dst, dport, _, _ = entered
        out_src, out_sport, out_dst, out_dport, mark, random_port = left
        randomly = random_port == "sport"
        snat = randomly or (src, sport) != (out_src, out_sport)
        dnat = (dst, dport) != (out_dst, out_dport)
        return Connection((src, sport) if snat else None, (dst, dport) if dnat else None, mark,
                          (out_src, out_sport) if snat else None, (out_dst, out_dport) if dnat else None, randomly)

    @staticmethod
    def undo_nat(pkt: ConcretePacket, hook: str, conn: Connection) -> ConcretePacket:
        """Conntrack's reverse NAT of a reply, where nat would run (``netfilter.Connection``)."""
        return _conntrack_nat(pkt, hook, conn, _UNDO, "undoes", "a reply")

    @staticmethod
    def redo_nat(pkt: ConcretePacket, hook: str, conn: Connection) -> ConcretePacket:
        """Conntrack's NAT of the client's later packet, as nat did the first one's."""
        return _conntrack_nat(pkt, hook, conn, _REDO, "redoes", "a later packet")

    @staticmethod
    def data_packet(ends: tuple, answer: ConcretePacket) -> ConcretePacket:
        src, sport, dst, dport, _, _ = ends
        return ConcretePacket.of(Packet(src, dst, answer.proto, sport, dport)).evolve(data=True)

    @staticmethod
    def answer(pkt: ConcretePacket, in_iface: str) -> ConcretePacket:
        answer = ConcretePacket.of(Packet(pkt.dst, pkt.src, pkt.proto, pkt.dport, pkt.sport, in_iface))
        answer.random_port = "dport" if pkt.random_port == "sport" else None
        return answer

    @staticmethod
    def icmp_error(pkt: ConcretePacket, src: IPAddress, conn: Connection) -> ConcretePacket:
        proto = "icmp" if pkt.src.version == 4 else "ipv6-icmp"
        return ConcretePacket.of(Packet(src, pkt.src, proto, None, None, in_interface=None)).evolve(
            established=True, related=True, nat_states=conn.nat_states)

    # ---------------------------------------------------------------------------------- chain walk

    def has_chain(self, table: str, chain: str) -> bool:
        return self.ruleset.chain(table, chain) is not None

    def walk_hook(self, table_name: str, hook: str, pkt: ConcretePacket) -> list[tuple[ConcretePacket, str]]:
        """Walk a built-in chain (and everything it jumps to); (packet, verdict) per branch."""
        table = self.ruleset.table(table_name)
        results: list[tuple[ConcretePacket, str]] = []
        work = [(pkt.copy(), [[hook, 0]], None)]  # (packet, call stack of [chain, next rule index], matched rule)
        while work:
            current, stack, matched = work.pop()
            try:
                self._run_until_verdict(current, table, hook, stack, matched, work, results)
            except _Unmodelled as exc:
                exc.packet.unknown = exc.reason
                results.append((exc.packet, UNKNOWN))
        return results

    def _run_until_verdict(self, th: ConcretePacket, table: rs.Table, hook: str, stack: list, matched, work: list,
                           results: list) -> None:
        """Advance one packet until it reaches a verdict (appended to results) or branches (the other
        alternatives are pushed on work)."""
        while True:
            if matched is not None:
                rule, index, chain = matched
                matched = None
                verdict = self._apply(th, table, hook, stack, rule, index, chain)
                if verdict is not None:
                    results.append((th, verdict))
                    return
                continue
            if not stack:  # fell off (or RETURNed from) the built-in chain: its policy decides
                policy = table.chain(hook).policy or rs.Policy.ACCEPT
                step = Step(table.name, hook, 0, None, f"policy {policy.value}")
                th.step(step)
                if table.name == "filter":
                    th.decided = step
                results.append((th, ACCEPT if policy is rs.Policy.ACCEPT else DROP))
                return
            frame = stack[-1]
            chain = table.chain(frame[0])
            if frame[1] >= len(chain.rules):
                stack.pop()  # end of a user chain: implicit RETURN
                continue
            rule = chain.rules[frame[1]]
            frame[1] += 1
            alternatives = self._matches(th, rule, table.name, hook)
            if not alternatives:
                continue
            if len(alternatives) == 1 and alternatives[0][1]:
                matched = (rule, frame[1], chain.name)
                continue
            for alt, hit in reversed(alternatives[1:]):
                work.append((alt, [list(f) for f in stack], (rule, frame[1], chain.name) if hit else None))
            th, hit = alternatives[0]
            if hit:
                matched = (rule, frame[1], chain.name)

    def _apply(self, th: ConcretePacket, table: rs.Table, hook: str, stack: list, rule: rs.Rule, index: int,
               chain: str) -> str | None:
        """Apply a matched rule's target; return a verdict when the table's walk ends here."""
        target = rule.target
        step = Step(table.name, chain, index, rule)
        th.step(step)
        kind = type(target)
        if kind is rs.Jump or kind is rs.Goto:
            if target.chain not in table:
                raise TraceError(f"{rule.origin}: jump to missing chain '{target.chain}' in table '{table.name}'")
            if len(stack) > 128:
                raise TraceError(f"{rule.origin}: jump loop through '{target.chain}'")
            if kind is rs.Goto:
                stack.pop()
            stack.append([target.chain, 0])
            return None
        if kind is rs.Return:
            stack.pop()
            return None
        if kind is rs.Empty:
            return None
        if kind is rs.MarkTarget:
            th.rewrite("mark", target.apply(th.mark), step)
            return None
        if kind is rs.Accept or kind is rs.Drop or kind is rs.Reject:
            if table.name == "filter":
                th.decided = step
            return ACCEPT if kind is rs.Accept else DROP if kind is rs.Drop else REJECT
        if kind is rs.Dnat:
            self._dnat(th, target, step, rule)
            return ACCEPT
        if kind is rs.Snat or kind is rs.Masquerade:
            self._snat(th, target, step, rule)
            return ACCEPT
        if kind in matches.CONTINUE_TARGETS:
            return None
        if kind is rs.CtTarget and target == _NOTRACK:
            th.untracked = True
            return None
        if kind is rs.ConnmarkTarget:
            if th.tracked and not th.untracked and not th.invalid:
                mark, th.ctmark = matches.connmark_target(target, th.mark, th.ctmark)
                th.rewrite("mark", mark, step)
            return None
        raise _Unmodelled(matches.unmodelled(target, rule), th)

    @staticmethod
    def _dnat(th: ConcretePacket, target: rs.Dnat, step: Step, rule: rs.Rule) -> None:
        """DNAT to its address (or the kernel's pick in its range, natpick) and port."""
        port = natpick.destination_port(target, th.dport)
        if port is None:
            raise _Unmodelled(f"DNAT to a port the kernel picks at random at {rule.origin}", th)
        new = _pick(target, th) or target.ip
        if new is not None:
            th.rewrite("dst", new, step)
        if port is not natpick.KEEP:
            th.rewrite("dport", port, step)
        th.dnat = True

    @staticmethod
    def _snat(th: ConcretePacket, target, step: Step, rule: rs.Rule) -> None:
        """SNAT to its address (or the kernel's pick in its range), MASQUERADE to the address the walk says
        it picks on this route; the port as natpick says (a random pick is flagged, not guessed)."""
        if isinstance(target, rs.Snat):
            new_src = _pick(target, th) or target.ip
        else:
            new_src = th.nat_address
            if new_src is None:
                raise _Unmodelled(f"no address to masquerade with at {rule.origin}", th)
        [(port, randomly, _)] = natpick.source_port(target, th.sport)  # a concrete port: one choice
        th.rewrite("src", new_src, step)
        if port is not natpick.KEEP and port is not None:
            th.rewrite("sport", port, step)
        if randomly:
            th.random_port = "sport"
            th.rewrites = th.rewrites + (Rewrite("sport", str(th.sport), "a port the kernel picks at random",
                                                 step),)
        th.snat = True

    # ---------------------------------------------------------------------------------- matching

    def _matches(self, th: ConcretePacket, rule: rs.Rule, table: str, hook: str
                 ) -> list[tuple[ConcretePacket, bool]]:
        """[] when the rule cannot match; [(th, True)] when it does; otherwise the branches (each with the
        choice recorded), matched first."""
        chances: list[tuple[str, float | None]] = []  # branching matches that must all "take"
        unmodelled = None
        for match in rule.matches:
            if type(match) in _MODELLED:
                result = self._match(th, match, hook)
            elif matches.modelled(match):
                result = self._shared(matches.decide(match, self._view(th)), match)
            else:
                result = None
            if result is None:  # not modelled exactly (here, or for this packet)
                unmodelled = unmodelled or matches.unmodelled(match, rule)
                continue
            if result is False:
                return []  # whatever the other matches say
            if result is not True:
                chances.append(result)
        if unmodelled is not None:
            raise _Unmodelled(unmodelled, th)
        if not chances:
            return [(th, True)]
        return self._branch(th, rule, chances)

    @staticmethod
    def _branch(th: ConcretePacket, rule: rs.Rule, chances: list) -> list[tuple[ConcretePacket, bool]]:
        p_all: float | None = 1.0
        for _, p in chances:
            p_all = None if p is None or p_all is None else p_all * p
        where = f"{rule.chain}:{rule.origin.line if rule.origin else '?'}"
        label = " and ".join(text for text, _ in chances)
        hit, miss = th.copy(), th.copy()
        hit.branches = th.branches + (f"{where} {label}",)
        miss.branches = th.branches + (f"{where} not ({label})",)
        hit.prob = None if p_all is None or th.prob is None else th.prob * p_all
        miss.prob = None if p_all is None or th.prob is None else th.prob * (1 - p_all)
        return [(hit, True), (miss, False)]

    def _match(self, th: ConcretePacket, match, hook: str):
        """True / False, or (label, probability) for a branch."""
        kind = type(match)
        if kind is rs.Source:
            return _in(th.src, match.network) != match.negated
        if kind is rs.Destination:
            return _in(th.dst, match.network) != match.negated
        if kind is rs.Protocol:
            return protocol_matches(match.name, th.proto) != match.negated
        if kind is rs.Port:
            value = th.dport if match.direction is rs.PortDir.DPORT else th.sport
            if th.proto != match.module:
                return False
            if th.random_port == match.direction.name.lower():
                return None  # the kernel's random pick (natpick): not known
            if value is None:
                raise TraceError(f"a rule matches {match.direction.value}: the packet needs that port")
            return match.contains(value)
        if kind is rs.Comment or kind is rs.Nfacct:
            return True
        if kind is rs.MarkMatch:
            return match.matches(th.mark)
        if kind is rs.AddrType:
            return self._shared(matches.addrtype(match, self._view(th)), match)
        if kind is rs.Conntrack:
            if match.states is not None:
                states = ct_states(th.tracked, th.dnat, th.snat, untracked=th.untracked, established=th.established,
                                   related=th.related, invalid=th.invalid, nat_states=th.nat_states)
                if not state_match(match, states):
                    return False
            return self._shared(matches.conntrack_options(match, self._view(th)), match)
        if kind is rs.InInterface:
            return match.matches(th.in_iface or "")  # locally generated: no input interface
        if kind is rs.OutInterface:
            if hook in HOOKS_WITH_OUT and th.out_iface is None:
                raise TraceError("a rule matches -o: give the packet an out_interface")
            return match.matches(th.out_iface or "")
        if kind is rs.Statistic:
            return self._statistic(match)
        if kind is rs.Recent:
            return self._recent(match)
        raise AssertionError(f"{kind.__name__} is in _MODELLED but not decided here")

    @staticmethod
    def _statistic(match: rs.Statistic):
        p = 1 - match.probability if match.negated else match.probability
        if p >= 1:
            return True
        if p <= 0:
            return False
        return (f"statistic {'!' if match.negated else ''}p={match.probability:.10g} taken", p)

    def _recent(self, match: rs.Recent):
        if match.mode is rs.RecentMode.SET:
            return not match.negated  # --set always matches (and records the source)
        if not self.affinity or match.mode is rs.RecentMode.REMOVE:
            return match.negated  # empty history: --rcheck/--update/--remove do not match
        return (f"recent {match.name} {match.mode.value} {'misses' if match.negated else 'hits'} "
                f"(an earlier connection within {match.seconds}s)", None)

    @staticmethod
    def _shared(decided, match):
        """A decision of ``verifier.matches`` in the tracer's terms: a bool, a branch, or None (unknown)."""
        if decided is matches.CHOICE:
            return (f"{type(match).__name__} may or may not match (a rate or a counter)", None)
        return decided

    def _view(self, th: ConcretePacket) -> matches.PacketView:
        """The packet as ``verifier.matches`` reads it (the decisions both engines share)."""
        original = th.entered[:4] if th.entered is not None else None
        return matches.view(th, th.src, th.dst, th.dport, original, self.local, self.ipsets,
                            32 if th.src.version == 4 else 128, self.local_routes, self.device_routes)

_NOTRACK = rs.CtTarget(notrack=True)


def _pick(target, th: ConcretePacket) -> IPAddress | None:
    """The address the kernel picks in a NAT target's range for this packet (None: no range)."""
    span = natpick.address_range(target)
    if span is None:
        return None
    return natpick.pick_address(th.src, th.dst, span[0], span[1], target.persistent, 32 if th.src.version == 4
                                else 128)



# The matches _Tracer._match decides itself; verifier.matches decides the extension matches (both engines);
# a rule with any other makes the path UNKNOWN (unless another match of the rule is decided False).
_MODELLED = frozenset({rs.Source, rs.Destination, rs.Protocol, rs.Port, rs.Comment, rs.Nfacct, rs.MarkMatch,
                       rs.AddrType, rs.Conntrack, rs.InInterface, rs.OutInterface, rs.Statistic, rs.Recent})


def _in(ip: IPAddress, network: rs.IPNetwork) -> bool:
    return ip.version == network.version and ip in network


def as_unit_test_output(outcomes: list[Outcome]) -> tuple[str, bool]:
    """The full tracer's outcomes in the unit-test tracer's vocabulary, for comparing the two models.

    DNAT destinations first (outcome order, duplicates dropped), then the verdict words of outcomes decided
    by an explicit rule in the filter chains the unit tracer walks (KUBE-SERVICES, KUBE-EXTERNAL-SERVICES,
    KUBE-NODEPORTS, KUBE-PROXY-FIREWALL) or by KUBE-FIREWALL (which the unit tracer cannot see, so its drops
    show up as a difference); masq = some outcome was masqueraded.
    """
    words: list[str] = []
    for outcome in outcomes:
        if outcome.dnat is not None:
            text = rs.Dnat(outcome.dst, outcome.dport).text()
            if text not in words:
                words.append(text)
    for outcome in outcomes:
        step = outcome.decided_by
        if step is None or step.rule is None or step.chain not in _UNIT_FILTER_CHAINS + ("KUBE-FIREWALL",):
            continue
        word = {Disposition.DROPPED: "DROP", Disposition.REJECTED: "REJECT"}.get(outcome.disposition, "ACCEPT")
        if word not in words:
            words.append(word)
    return ", ".join(words), any(outcome.masqueraded for outcome in outcomes)
