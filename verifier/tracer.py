"""Concrete packet tracing over a ``kspec.ruleset.Ruleset`` for one node.

Two tracers live here:

* ``trace`` — the full model: netfilter's real hook order (nat PREROUTING or nat OUTPUT, the routing decision,
  filter INPUT/FORWARD/OUTPUT, nat POSTROUTING / nat INPUT), conntrack state NEW for the first packet (plus
  the virtual DNAT/SNAT states once the packet is NATed), packet marks, DNAT/SNAT/MASQUERADE rewrites,
  jumps, gotos, RETURN and chain policies. ``-m statistic`` and ``-m recent --rcheck`` are *branches*: every
  endpoint a packet can reach is enumerated (with its probability), never sampled.
* ``unit_test_trace`` — kube-proxy's unit-test tracer (``tracePacket`` in proxier_test.go), reproduced
  exactly as spec §11 describes, because the conformance corpus' flows are written against it.

Where the two disagree, and why, is documented in ``docs/tracer-vs-unit-tracer.md``.

``kube_proxy_state`` merges the jump rules kube-proxy installs in the built-in chains (spec §4.3; not part of
its restore input; see ``compiler/basechains.py``) with a restore text.
"""
from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Callable, Iterable

from kspec import ruleset as rs
from kspec.ingest.iptables_save import parse_iptables_save
from kspec.ir import IPAddress
from kspec.verifier import matches
from kspec.verifier.netfilter import (HOOKS_WITH_OUT, UNDO_DNAT_HOOKS, UNDO_SNAT_HOOKS, Reply, ct_states,
                                      protocol_matches, state_match, tables_of, tracked_in)

__all__ = [
    "Disposition", "Packet", "Step", "Rewrite", "Outcome", "TraceError", "trace", "unit_test_trace",
    "as_unit_test_output",
    "kube_proxy_state",
]

# ============================================================================ kube-proxy's built-in jumps


def kube_proxy_state(restore_text: str, file: str = "<restore>", has_kube_firewall: bool = True,
                     memo=None) -> rs.Ruleset:
    """The node's tables after kube-proxy's start-up jumps (``compiler.basechains``) and one
    ``iptables-restore --noflush`` of ``restore_text`` (what the kernel holds after a full sync). ``memo``: a
    ``RuleParser`` shared between the nodes of one cluster (see ``parse_iptables_save``)."""
    from kspec.compiler.basechains import base_rules

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
           **kwargs) -> "Packet":
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


class _Thread:
    """One possible path of the packet: its current header, state and history. Copied at each branch."""

    __slots__ = ("src", "sport", "dst", "dport", "mark", "dnat", "masq", "tracked", "in_iface", "out_iface",
                 "steps", "rewrites", "branches", "prob", "decided", "reason", "ctmark", "untracked")

    def copy(self) -> "_Thread":
        twin = _Thread()
        for name in self.__slots__:
            setattr(twin, name, getattr(self, name))
        return twin

    def step(self, step: Step) -> None:
        self.steps = self.steps + (step,)

    def rewrite(self, name: str, new, step: Step) -> None:
        old = getattr(self, name)
        if old != new:
            self.rewrites = self.rewrites + (Rewrite(name, str(old), str(new), step),)
            setattr(self, name, new)


_ACCEPT, _DROP, _REJECT, _UNKNOWN = "ACCEPT", "DROP", "REJECT", "UNKNOWN"
_ENDED = {_DROP: Disposition.DROPPED, _REJECT: Disposition.REJECTED, _UNKNOWN: Disposition.UNKNOWN}


class _Unmodelled(Exception):
    """A match or target the model does not follow exactly: the path's outcome is UNKNOWN, never a guess."""

    def __init__(self, reason: str, thread: "_Thread"):
        super().__init__(reason)
        self.reason, self.thread = reason, thread


def trace(ruleset: rs.Ruleset, packet: Packet, local_ips: Iterable[IPAddress | str], *,
          affinity: bool = False, masquerade_ip: IPAddress | str | None = None,
          route: Callable[[IPAddress], str | None] | None = None,
          nat_source: Callable[[str | None], IPAddress | None] | None = None,
          reply: Reply | None = None, ipsets=None) -> list[Outcome]:
    """Every way ``packet`` (the first packet of a new connection) can go through this node's tables.

    ``local_ips``: the node's addresses (``-m addrtype LOCAL``, and the routing decision); loopback is always
    local. ``affinity``: model ``recent --rcheck`` (ClientIP session affinity) as a branch — some earlier
    connection may have set the entry — instead of "no history, no match".

    The cluster network answers two questions (``network.ClusterNetwork.route`` and ``nat_source``, which the
    Z3 model asks too): ``route(dst)``, the outgoing interface of the routing decision (None: unreachable),
    and ``nat_source(out_iface)``, the address MASQUERADE picks. Without them, ``packet.out_interface`` is the
    outgoing interface and ``masquerade_ip`` (default: the first non-loopback local address of the packet's
    family) MASQUERADE's address.

    ``reply``: the packet is a reply of a connection (``netfilter.Reply``): ESTABLISHED (or INVALID where the
    node never saw the connection), never meeting nat's rules; conntrack undoes the node's NAT in their place.
    """
    return _Tracer(ruleset, local_ips, affinity, masquerade_ip, route, nat_source, reply, ipsets).run(packet)


class _Tracer:
    def __init__(self, ruleset: rs.Ruleset, local_ips, affinity: bool, masquerade_ip, route, nat_source, reply,
                 ipsets=None):
        self.ruleset = ruleset
        self.local = frozenset(ipaddress.ip_address(str(ip)) for ip in local_ips)
        self.affinity = affinity
        self.masquerade_ip = ipaddress.ip_address(str(masquerade_ip)) if masquerade_ip is not None else None
        self.route = route
        self.nat_source = nat_source
        self.reply = reply
        self.ipsets = ipsets
        self.outcomes: list[Outcome] = []
        self.packet: Packet | None = None

    # ---------------------------------------------------------------------------------- hook order

    def run(self, packet: Packet) -> list[Outcome]:
        self.packet = packet
        start = _Thread()
        start.src, start.sport, start.dst, start.dport = packet.src, packet.sport, packet.dst, packet.dport
        start.mark, start.dnat, start.masq, start.in_iface = packet.mark, False, False, packet.in_interface
        start.out_iface, start.tracked = None, True
        start.steps = start.rewrites = start.branches = ()
        start.prob, start.decided, start.reason = 1.0, None, ""
        start.ctmark = self.reply.connection.mark if self.reply is not None and self.reply.connection else 0
        start.untracked = False
        if packet.in_interface is None:
            self._locally_generated([start])
        else:
            self._arriving([start])
        return self.outcomes

    def _arriving(self, threads: list[_Thread]) -> None:
        threads = self._hook(threads, "PREROUTING")
        local = [t for t in threads if self._is_local(t.dst)]  # the routing decision
        self._deliver(self._hook(local, "INPUT"))
        routed = []
        for thread in threads:
            if self._is_local(thread.dst):
                continue
            if self.route is not None and self.route(thread.dst) is None:
                self._finish(thread, Disposition.UNREACHABLE)
            else:
                routed.append(thread)
        for thread in self._hook(self._hook(routed, "FORWARD"), "POSTROUTING"):
            self._finish(thread, Disposition.FORWARDED)

    def _locally_generated(self, threads: list[_Thread]) -> None:
        threads = self._hook(threads, "OUTPUT")  # each table re-routed on the destination it sees
        threads = self._hook(threads, "POSTROUTING")
        looped = []
        for thread in threads:
            if self._is_local(thread.dst):
                # Back in through lo, already NATed: PREROUTING and INPUT without nat.
                thread.in_iface, thread.out_iface = "lo", None
                looped.append(thread)
            else:
                self._finish(thread, Disposition.SENT)
        self._deliver(self._hook(self._hook(looped, "PREROUTING", looped=True), "INPUT", looped=True))

    def _deliver(self, threads: list[_Thread]) -> None:
        for thread in threads:
            self._finish(thread, Disposition.ACCEPTED_LOCAL)

    def _is_local(self, ip: IPAddress) -> bool:
        return ip in self.local or any(ip.version == net.version and ip in net for net in _LOOPBACK)

    def _out_iface(self, dst: IPAddress) -> str | None:
        if self.route is not None:
            return self.route(dst)
        return "lo" if self._is_local(dst) else self.packet.out_interface

    def _hook(self, threads: list[_Thread], hook: str, looped: bool = False) -> list[_Thread]:
        """Run every table of a hook (``netfilter.tables_of``); return the threads all of them accepted."""
        for table in tables_of(hook, looped):
            if table == "nat" and self.reply is not None:
                for thread in threads:
                    self._undo_nat(thread, hook)
                continue
            survivors = []
            for thread in threads:
                if table == "nat" and thread.untracked:  # no connection: nothing for nat to do
                    survivors.append(thread)
                    continue
                # What the kernel knows when this table runs: the route (re-decided on the current
                # destination) and whether conntrack has seen the packet (not yet in raw).
                thread.out_iface = self._out_iface(thread.dst) if hook in HOOKS_WITH_OUT else None
                thread.tracked = tracked_in(table, looped)
                for result, verdict in self._walk(thread, table, hook):
                    if verdict is _ACCEPT:
                        survivors.append(result)
                    else:
                        self._finish(result, _ENDED[verdict])
            threads = survivors
        return threads

    def _undo_nat(self, th: _Thread, hook: str) -> None:
        """Conntrack's reverse NAT of a reply, where nat would run (``netfilter.Connection``)."""
        conn = self.reply.connection
        if conn is None:
            return
        step = Step("nat", hook, 0, None, "conntrack undoes the connection's NAT (no rules for a reply)")
        if hook in UNDO_SNAT_HOOKS and conn.undo_snat is not None:
            th.step(step)
            th.rewrite("dst", conn.undo_snat[0], step)
            th.rewrite("dport", conn.undo_snat[1], step)
        elif hook in UNDO_DNAT_HOOKS and conn.undo_dnat is not None:
            th.step(step)
            th.rewrite("src", conn.undo_dnat[0], step)
            th.rewrite("sport", conn.undo_dnat[1], step)

    def _finish(self, thread: _Thread, disposition: Disposition) -> None:
        self.outcomes.append(Outcome(
            disposition, thread.src, thread.sport, thread.dst, thread.dport, thread.masq, thread.mark,
            thread.steps, thread.rewrites, thread.branches, thread.prob, thread.decided, thread.reason,
            thread.ctmark, thread.untracked))

    # ---------------------------------------------------------------------------------- chain walk

    def _walk(self, thread: _Thread, table_name: str, hook: str) -> list[tuple[_Thread, str]]:
        """Walk a built-in chain (and everything it jumps to); (thread, verdict) per branch."""
        table = self.ruleset.table(table_name)
        builtin = table.chain(hook) if table is not None else None
        if builtin is None:
            return [(thread, _ACCEPT)]
        results = []
        work = [(thread, [[hook, 0]], None)]  # (thread, call stack of [chain, next rule index], matched rule)
        while work:
            current, stack, matched = work.pop()
            self._run(current, table, hook, stack, matched, work, results)
        return results

    def _run(self, th: _Thread, table: rs.Table, hook: str, stack: list, matched, work: list,
             results: list) -> None:
        """Advance one thread until it reaches a verdict (appended to results) or branches (the other
        alternatives are pushed on work)."""
        try:
            self._run_until_verdict(th, table, hook, stack, matched, work, results)
        except _Unmodelled as exc:
            exc.thread.reason = exc.reason
            results.append((exc.thread, _UNKNOWN))

    def _run_until_verdict(self, th: _Thread, table: rs.Table, hook: str, stack: list, matched, work: list,
                           results: list) -> None:
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
                results.append((th, _ACCEPT if policy is rs.Policy.ACCEPT else _DROP))
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

    def _apply(self, th: _Thread, table: rs.Table, hook: str, stack: list, rule: rs.Rule, index: int,
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
            return _ACCEPT if kind is rs.Accept else _DROP if kind is rs.Drop else _REJECT
        if (kind is rs.Snat or kind is rs.Masquerade or kind is rs.Dnat) and matches.nat_range(target):
            raise _Unmodelled(f"{kind.__name__.upper()} to a range at {rule.origin}", th)
        if kind is rs.Dnat:
            self._dnat(th, target, step)
            return _ACCEPT
        if kind is rs.Snat or kind is rs.Masquerade:
            self._snat(th, target, step)
            return _ACCEPT
        if kind in matches.CONTINUE_TARGETS:
            return None
        if kind is rs.CtTarget and target == _NOTRACK:
            th.untracked = True
            return None
        if kind is rs.ConnmarkTarget:
            if th.tracked and not th.untracked and (self.reply is None or self.reply.connection is not None):
                mark, th.ctmark = matches.connmark_target(target, th.mark, th.ctmark)
                th.rewrite("mark", mark, step)
            return None
        raise _Unmodelled(matches.unmodelled(target, rule), th)

    def _dnat(self, th: _Thread, target: rs.Dnat, step: Step) -> None:
        if target.ip is not None:
            th.rewrite("dst", target.ip, step)
        if target.port is not None:
            th.rewrite("dport", target.port, step)
        th.dnat = True

    def _snat(self, th: _Thread, target, step: Step) -> None:
        if isinstance(target, rs.Snat):
            new_src, port = target.ip, target.port
        else:
            new_src, port = self._masquerade_source(th), target.to_ports[0] if target.to_ports else None
        th.rewrite("src", new_src, step)
        if port is not None:
            th.rewrite("sport", port, step)
        th.masq = True

    def _masquerade_source(self, th: _Thread) -> IPAddress:
        if self.nat_source is not None:
            found = self.nat_source(th.out_iface)
            if found is None:
                raise TraceError(f"no address to masquerade with towards {th.dst}")
            return found
        dst = th.dst
        if self.masquerade_ip is not None:
            return self.masquerade_ip
        for ip in sorted(self.local, key=lambda a: (a.version, int(a))):
            if ip.version == dst.version and not ip.is_loopback:
                return ip
        raise TraceError(f"MASQUERADE needs a local IPv{dst.version} address (pass masquerade_ip)")

    # ---------------------------------------------------------------------------------- matching

    def _matches(self, th: _Thread, rule: rs.Rule, table: str, hook: str) -> list[tuple[_Thread, bool]]:
        """[] when the rule cannot match; [(th, True)] when it does; otherwise the branches (each with the
        choice recorded), matched first."""
        chances: list[tuple[str, float | None]] = []  # branching matches that must all "take"
        unmodelled = None
        for match in rule.matches:
            if type(match) in _MODELLED:
                result = self._match(th, match, hook)
            elif matches.modelled(match):
                result = self._shared(th, matches.decide(match, self._view(th)), match)
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

    def _branch(self, th: _Thread, rule: rs.Rule, chances: list) -> list[tuple[_Thread, bool]]:
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

    def _match(self, th: _Thread, match, hook: str):
        """True / False, or (label, probability) for a branch."""
        kind = type(match)
        if kind is rs.Source:
            return _in(th.src, match.network) != match.negated
        if kind is rs.Destination:
            return _in(th.dst, match.network) != match.negated
        if kind is rs.Protocol:
            return protocol_matches(match.name, self.packet.protocol) != match.negated
        if kind is rs.Port:
            value = th.dport if match.direction is rs.PortDir.DPORT else th.sport
            if self.packet.protocol != match.module:
                return False
            if value is None:
                raise TraceError(f"a rule matches {match.direction.value}: the packet needs that port")
            return match.contains(value)
        if kind is rs.Comment or kind is rs.Nfacct:
            return True
        if kind is rs.MarkMatch:
            return match.matches(th.mark)
        if kind is rs.AddrType:
            return self._shared(th, matches.addrtype(match, self._view(th)), match)
        if kind is rs.Conntrack:
            conn = self.reply.connection if self.reply is not None else None
            if match.states is not None:
                states = ct_states(th.tracked, th.dnat, th.masq, untracked=th.untracked, established=conn is not None,
                                   related=self.reply is not None and self.reply.related,
                                   invalid=self.reply is not None and conn is None,
                                   nat_states=conn.nat_states if conn is not None else frozenset())
                if not state_match(match, states):
                    return False
            return self._shared(th, matches.conntrack_options(match, self._view(th)), match)
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

    def _shared(self, th: _Thread, decided, match):
        """A decision of ``verifier.matches`` in the tracer's terms: a bool, a branch, or None (unknown)."""
        if decided is matches.CHOICE:
            return (f"{type(match).__name__} may or may not match (a rate or a counter)", None)
        return decided

    def _view(self, th: _Thread) -> matches.PacketView:
        """The packet as ``verifier.matches`` reads it (the decisions both engines share)."""
        conn = None
        known = self.reply.connection if self.reply is not None else None
        if th.tracked and not th.untracked and (self.reply is None or known is not None):
            if self.reply is not None:
                conn = matches.Conn(rs.CtDir.REPLY, None, None, known.mark)
            else:
                first = self.packet
                conn = matches.Conn(rs.CtDir.ORIGINAL, (first.src, first.sport, first.dst, first.dport),
                                    (th.dst, th.dport, th.src, th.sport), th.ctmark)
        width = 32 if th.src.version == 4 else 128
        answer = self.reply is not None and not self.reply.related
        socket = self.packet.in_interface is None and self.reply is None
        return matches.PacketView(th.src, th.sport, th.dst, th.dport, self.packet.protocol, "", answer, conn,
                                  self.local, socket, self.ipsets, width)


_NOTRACK = rs.CtTarget(notrack=True)



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
