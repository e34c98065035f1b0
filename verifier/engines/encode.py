"""The Z3 model of one node's netfilter: symbolic execution of a ``Ruleset`` (the only module importing z3).

A packet's destination, protocol, mark and conntrack state are concrete in every path (kube-proxy's rules
rewrite them to constants), while its source address, source port and every random choice (``statistic``,
``recent`` history) are Z3 terms. Walking a chain forks on every guard that depends on a symbolic field;
a fork whose path condition Z3 proves unsatisfiable is pruned, so each surviving ``SymPath`` is a feasible
class of packets with a concrete fate. Matches the model does not understand never match silently: the path
ends ``UNKNOWN`` naming the rule.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

import z3

from kspec.ir import IPAddress
from kspec.rules.iptables import ruleset as rs
from kspec.verifier.model import matches, natpick
from kspec.verifier.model.matches import CHOICE, CONTINUE_TARGETS, PacketView
from kspec.verifier.model.netfilter import (
    ACCEPT,
    DROP,
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

SHORT_CHAIN = 16  # chains up to this length are walked whole
SLICE_CACHE = 50_000  # (chain, destination) slices remembered per node


@dataclass(frozen=True, slots=True)
class Step:
    """One rule that matched (iptables-save syntax and origin line), with what it rewrote."""

    table: str
    chain: str
    rule: rs.Rule | None
    note: str = ""  # e.g. "dst: 10.0.0.1:80 -> 10.244.1.5:8080"


@dataclass(slots=True)
class SymPacket:
    """A class of packets: concrete where kube-proxy's rules make it so, symbolic elsewhere."""

    src: z3.BitVecRef  # symbolic until masqueraded
    src_value: IPAddress | None  # the same source as a Python address when it is concrete (no Z3 needed)
    sport: z3.BitVecRef
    dst: IPAddress | None  # None only in a reply to "any external host": then dst_term says which
    dport: int | None  # None only in a reply: dport_term is the client's source port
    proto: str
    mark: int = 0
    in_iface: str | None = None
    out_iface: str | None = None
    dnat: bool = False  # the connection was DNATed (conntrack's virtual DNAT state)
    snat: bool = False  # ... and source-NATed (MASQUERADE or SNAT)
    tracked: bool = True  # False in raw: conntrack has not seen the packet yet
    nat_address: IPAddress | None = None  # what MASQUERADE picks here (the network model says, per route)
    dst_term: z3.BitVecRef | None = None  # the destination, when symbolic (see dst)
    dport_term: z3.BitVecRef | None = None  # the destination port, when symbolic (see dport)
    established: bool = False  # a reply this node's conntrack knows (ESTABLISHED, nat not consulted)
    related: bool = False  # an ICMP error about a connection (RELATED where the node knows it)
    invalid: bool = False  # a TCP reply this node never saw the connection of (conntrack: INVALID)
    nat_states: frozenset = frozenset()  # the virtual SNAT/DNAT states of the connection a reply belongs to
    entered: tuple | None = None  # (src, src_value, sport, dst, dport) as the packet entered this node
    ctmark: int = 0  # the connection's mark on this node (CONNMARK)
    untracked: bool = False  # -j CT --notrack: no connection here, no NAT
    data: bool = False  # the client's data after the handshake (TCP PSH|ACK), ESTABLISHED in its direction
    confirmed: bool = False  # conntrack's entry is confirmed (see netfilter.ct_status)
    owner: tuple[int, int] | None = None  # (uid, gid) of the node process that sent it (-m owner)
    random_port: str | None = None  # "sport"/"dport": that port is the kernel's random pick (natpick)
    master: frozenset = frozenset()  # an ICMP error's: the status bits of the connection it is about
    echo: bool = False  # the pod's answer to the client's data (with data: a later packet, reply direction)
    # The (node, list) pairs of -m recent that hold the client's address (`assert sticky`); None: the history
    # is not known, so a check of a list may or may not hit.
    recent: frozenset | None = None
    conds: tuple[z3.BoolRef, ...] = ()  # the path condition, as conjuncts (built into one term on demand)
    steps: tuple[Step, ...] = ()
    unknown: str | None = None  # why this path's fate is unknown

    @property
    def cond(self) -> z3.BoolRef:
        return z3.And(self.conds) if self.conds else z3.BoolVal(True)

    @property
    def sport_value(self) -> int | None:
        """The source port when it is a constant (an answer's always is), else None."""
        port = z3.simplify(self.sport)
        return port.as_long() if z3.is_bv_value(port) else None

    def with_step(self, step: Step, **changes) -> SymPacket:
        new = self.evolve(**changes)
        new.steps = self.steps + (step,)
        return new

    def evolve(self, **changes) -> SymPacket:
        """A copy with ``changes`` (the hot path of the model: no ``dataclasses.replace`` overhead). Packets are
        never changed in place once made; every step makes a new one."""
        new = _copy_packet(self)
        for name, value in changes.items():
            setattr(new, name, value)
        return new


def _make_copier(fields: tuple[str, ...]):
    """A straight-line field-by-field copy of a SymPacket, generated once from its fields (as dataclasses
    generates __init__): several times faster than a loop of getattr/setattr."""
    body = "\n".join(f"    new.{name} = old.{name}" for name in fields)
    namespace: dict = {"_new": object.__new__, "SymPacket": SymPacket}
    exec(f"def copy(old):\n    new = _new(SymPacket)\n{body}\n    return new", namespace)  # noqa: S102
    return namespace["copy"]


_copy_packet = _make_copier(tuple(SymPacket.__dataclass_fields__))


@dataclass
class NodeModel:
    """One node: its merged ruleset and the addresses ``--src-type/--dst-type LOCAL`` match."""

    name: str
    rules: rs.Ruleset
    local_ips: frozenset[IPAddress]
    width: int = 32  # 32 for IPv4, 128 for IPv6
    ipsets: object = None  # kspec.rules.iptables.ipset_save.IpSets: the node's sets, for -m set
    local_routes: Mapping = field(default_factory=dict)  # own address -> its local route's device (network)
    device_routes: object = None  # IPv6: network.DeviceRoutes, what addrtype's route lookup meets

    def __post_init__(self) -> None:
        self._solver = z3.Solver()
        self._index: dict = {}
        self._sliced: dict = {}
        self._chains: dict = {}
        self._steps: dict[int, Step] = {}  # id(rule) -> its Step, made once
        self._feasibility: dict[int, tuple[z3.BoolRef, bool]] = {}
        self._consts: dict[IPAddress, z3.BitVecRef] = {}

    # ------------------------------------------------------------------------------ feasibility

    def feasible(self, cond: z3.BoolRef) -> bool:
        # Z3 hash-conses terms: equal conditions share an id, so a verdict is remembered exactly. The term is
        # kept with its verdict: Z3 reuses the id of a term once nothing refers to it.
        key = cond.get_id()
        found = self._feasibility.get(key)
        if found is None:
            if len(self._feasibility) >= SLICE_CACHE:
                self._feasibility.clear()
            found = self._feasibility[key] = (cond, self._decide(cond))
        return found[1]

    def _decide(self, cond: z3.BoolRef) -> bool:
        simplified = z3.simplify(cond)
        if z3.is_true(simplified):
            return True
        if z3.is_false(simplified):
            return False
        self._solver.push()
        self._solver.add(simplified)
        result = self._solver.check()
        self._solver.pop()
        return result != z3.unsat  # unknown keeps the path: never prune what was not refuted

    # ----------------------------------------------------------------------------------- guards

    def ip_const(self, ip: IPAddress) -> z3.BitVecRef:
        """The Z3 constant of ``ip``, made once per node (a MASQUERADE on every path asks for the same few)."""
        found = self._consts.get(ip)
        if found is None:
            found = self._consts[ip] = z3.BitVecVal(int(ip), self.width)
        return found

    def in_network(self, term: z3.BitVecRef, net: rs.IPNetwork) -> z3.BoolRef:
        mask = int(net.netmask)
        return (term & z3.BitVecVal(mask, self.width)) == z3.BitVecVal(int(net.network_address), self.width)

    def guard(self, match: rs.Match, pkt: SymPacket) -> bool | z3.BoolRef | None:
        """True/False when decided concretely, a Z3 term when it depends on symbolic fields, ``CHOICE`` for an
        unconstrained random choice, None when the model does not know this match."""
        decide = _GUARDS.get(type(match))
        return None if decide is None else decide(self, match, pkt)

    def _source(self, match: rs.Source, pkt: SymPacket):
        if pkt.src_value is not None:  # a concrete source needs no solver
            inside = pkt.src_value.version == match.network.version and pkt.src_value in match.network
            return inside != match.negated
        return _neg(self.in_network(pkt.src, match.network), match.negated)

    def _destination(self, match: rs.Destination, pkt: SymPacket):
        if pkt.dst is None:
            return _neg(self.in_network(pkt.dst_term, match.network), match.negated)
        return (pkt.dst in match.network if pkt.dst.version == match.network.version else False) != match.negated

    def _protocol(self, match: rs.Protocol, pkt: SymPacket):
        return protocol_matches(match.name, pkt.proto) != match.negated

    def _port(self, match: rs.Port, pkt: SymPacket):
        if match.module != pkt.proto:
            return False
        if pkt.random_port == match.direction.name.lower():
            return None  # the kernel's random pick (natpick): not known
        if match.direction is rs.PortDir.DPORT and pkt.dport is not None:
            return match.contains(pkt.dport)
        port = pkt.sport if match.direction is rs.PortDir.SPORT else pkt.dport_term
        inside = z3.And(z3.UGE(port, match.low), z3.ULE(port, match.high))
        return _neg(inside, match.negated)

    def _mark(self, match: rs.MarkMatch, pkt: SymPacket):
        return match.matches(pkt.mark)

    def _statistic(self, match: rs.Statistic, pkt: SymPacket):
        return CHOICE

    def _recent(self, match: rs.Recent, pkt: SymPacket):
        if pkt.recent is None and match.mode is not rs.RecentMode.SET:
            return CHOICE  # whether an earlier packet of this client set the entry is unknown: either may hold
        return matches.recent(match, self.name, pkt.recent)

    def _conntrack(self, match: rs.Conntrack, pkt: SymPacket):
        # A connection's first packet, or a reply, as netfilter.ct_states says.
        if match.states is not None:
            states = ct_states(pkt.tracked, pkt.dnat, pkt.snat, untracked=pkt.untracked,
                               established=pkt.established, related=pkt.related, invalid=pkt.invalid,
                               nat_states=pkt.nat_states)
            if not state_match(match, states):
                return False
            if not _CT_EXTENDED(match):
                return True
        return matches.conntrack_options(match, self.view(pkt))

    def _extension(self, match, pkt: SymPacket):
        return matches.decide(match, self.view(pkt))

    def view(self, pkt: SymPacket) -> PacketView:
        """The packet as ``verifier.matches`` reads it (the decisions both engines share)."""
        entered = pkt.entered
        original = (entered[1] if entered[1] is not None else entered[0], entered[2], entered[3], entered[4]) \
            if entered is not None else None
        return matches.view(pkt, self._src(pkt), self._dst(pkt), self._dport(pkt), original, self.local_ips,
                            self.ipsets, self.width, self.local_routes, self.device_routes)

    @staticmethod
    def _src(pkt: SymPacket):
        return pkt.src_value if pkt.src_value is not None else pkt.src

    @staticmethod
    def _dst(pkt: SymPacket):
        return pkt.dst if pkt.dst is not None else pkt.dst_term

    @staticmethod
    def _dport(pkt: SymPacket):
        return pkt.dport if pkt.dport is not None else pkt.dport_term

    # No interface (a packet the node sends has no input interface) is the empty name, as in the kernel:
    # `-i veth+` does not match it and `! -i veth+` does (xt: nulldevname; nft: meta iifname "").
    def _in_interface(self, match: rs.InInterface, pkt: SymPacket):
        return match.matches(pkt.in_iface or "")

    def _out_interface(self, match: rs.OutInterface, pkt: SymPacket):
        return match.matches(pkt.out_iface or "")

    def _addrtype(self, match: rs.AddrType, pkt: SymPacket) -> bool | z3.BoolRef | None:
        # kube-proxy's "--dst-type LOCAL" of a concrete IPv4 destination: decided here, fast; the rest (and
        # the meaning of every type) in verifier.matches.addrtype, which the concrete tracer asks too.
        if match.types == _LOCAL and match.limit_iface is None and self.width == 32 and pkt.dst is not None \
                and match.direction is rs.AddrDir.DST:
            return (pkt.dst in self.local_ips or pkt.dst in _LOOPBACK4) != match.negated
        return matches.addrtype(match, self.view(pkt))

    # ------------------------------------------------------------- packets, for walk.Walk (walk.Engine)

    @staticmethod
    def at_door(pkt: SymPacket) -> SymPacket:
        return pkt.evolve(steps=(), entered=NodeModel.ends(pkt))

    @staticmethod
    def ends(pkt: SymPacket) -> tuple:
        return (pkt.src, pkt.src_value, pkt.sport, pkt.dst, pkt.dport, pkt.ctmark, pkt.random_port)

    @staticmethod
    def connection(entered: tuple, left: tuple) -> Connection:
        """What a node's conntrack holds of a connection that came in as ``entered`` and left as ``left``."""
        src, _, sport, dst, dport, _, _ = entered
        out_src, _, out_sport, out_dst, out_dport, mark, random_port = left
        randomly = random_port == "sport"
        snat = randomly or not (src.eq(out_src) and sport.eq(out_sport))
        dnat = (dst, dport) != (out_dst, out_dport)
        return Connection((src, sport) if snat else None, (dst, dport) if dnat else None, mark,
                          (out_src, out_sport) if snat else None, (out_dst, out_dport) if dnat else None, randomly)

    def undo_nat(self, pkt: SymPacket, hook: str, conn: Connection) -> SymPacket:
        """Conntrack's reverse NAT of a reply at nat's place in ``hook`` (a step of its own in the trace)."""
        if hook in UNDO_SNAT_HOOKS and conn.undo_snat is not None:
            term, sport = conn.undo_snat
            value = _value(term)
            step = Step("nat", hook, None, f"conntrack undoes SNAT: dst: {pkt.dst or 'client'} -> {value or 'client'}")
            return pkt.with_step(step, dst=value, dst_term=None if value is not None else term, dport=None,
                                 dport_term=sport, random_port=natpick.random_port_after(pkt.random_port,
                                                                                       "undo_snat", conn))
        if hook in UNDO_DNAT_HOOKS and conn.undo_dnat is not None:
            dst, dport = conn.undo_dnat
            step = Step("nat", hook, None, f"conntrack undoes DNAT: src: {pkt.src_value} -> {dst}:{dport}")
            return pkt.with_step(step, src=self.ip_const(dst), src_value=dst, sport=z3.BitVecVal(dport, 16))
        return pkt

    def redo_nat(self, pkt: SymPacket, hook: str, conn: Connection) -> SymPacket:
        """Conntrack's NAT of the client's later packet, as nat did the first one's (a step of its own)."""
        if hook in REDO_DNAT_HOOKS and conn.dnat_to is not None:
            dst, dport = conn.dnat_to
            step = Step("nat", hook, None, f"conntrack redoes DNAT: dst: {pkt.dst} -> {_hostport(dst, dport)}")
            return pkt.with_step(step, dst=dst, dport=dport)
        if hook in REDO_SNAT_HOOKS and conn.snat_to is not None:
            term, sport = conn.snat_to
            value = _value(term)
            step = Step("nat", hook, None, f"conntrack redoes SNAT: src: {pkt.src_value or 'client'} -> "
                                           f"{value or 'client'}")
            return pkt.with_step(step, src=term, src_value=value, sport=sport,
                                 random_port=natpick.random_port_after(pkt.random_port, "snat_to", conn))
        return pkt

    def data_packet(self, ends: tuple, answer: SymPacket) -> SymPacket:
        """The client's data after the handshake: the first packet's header as it entered its first node
        (``ends``), on the answer's path condition."""
        src, src_value, sport, dst, dport, _, _ = ends
        return SymPacket(src=src, src_value=src_value, sport=sport, dst=dst, dport=dport, proto=answer.proto,
                         conds=answer.conds, data=True)

    def answer(self, pkt: SymPacket, in_iface: str) -> SymPacket:
        """The receiver's answer: from the delivered packet's (constant) destination to its source, which may
        be symbolic (any external host): then ``dst_term`` and ``dport_term`` say which."""
        return SymPacket(src=self.ip_const(pkt.dst), src_value=pkt.dst, sport=z3.BitVecVal(pkt.dport, 16),
                         dst=pkt.src_value, dport=None, proto=pkt.proto, in_iface=in_iface, conds=pkt.conds,
                         dst_term=pkt.src, dport_term=pkt.sport,
                         random_port="dport" if pkt.random_port == "sport" else None)

    def icmp_error(self, pkt: SymPacket, src: IPAddress, conn: Connection) -> SymPacket:
        return SymPacket(src=self.ip_const(src), src_value=src, sport=z3.BitVecVal(0, 16), dst=pkt.src_value,
                         dport=0, proto="icmp" if self.width == 32 else "ipv6-icmp", conds=pkt.conds,
                         dst_term=pkt.src, established=True, related=True, nat_states=conn.nat_states)

    # ------------------------------------------------------------------------------------ walking

    def has_chain(self, table: str, chain: str) -> bool:
        return self._chain(table, chain) is not None

    def walk_hook(self, table: str, chain: str, pkt: SymPacket) -> list[tuple[SymPacket, str]]:
        """Every (path, verdict) of ``pkt`` through a built-in chain; ACCEPT includes falling off the end
        under an ACCEPT (or unset) policy."""
        results = []
        for path, verdict in self.walk_chain(table, chain, pkt, depth=0):
            if verdict is None:
                policy = self._chain(table, chain)
                verdict = DROP if policy is not None and policy.policy is rs.Policy.DROP else ACCEPT
            results.append((path, verdict))
        return results

    def walk_chain(self, table: str, chain_name: str, pkt: SymPacket, depth: int
                   ) -> list[tuple[SymPacket, str | None]]:
        """Every (path, verdict) in the order netfilter would meet them; verdict None means the chain was
        left (its end, or RETURN)."""
        if depth > 64:
            return [(pkt.evolve(unknown=f"chain nesting deeper than 64 at {chain_name}"), UNKNOWN)]
        chain = self._chain(table, chain_name)
        if chain is None:
            return [(pkt, None)]
        out: list[tuple[SymPacket, str | None]] = []
        live = [pkt]
        for rule in self._candidates(table, chain, pkt):
            still: list[SymPacket] = []
            for path in live:
                taken, cont = self._match(rule, path)
                if taken is not None:
                    self._target(table, rule, taken, depth, still, out)
                if cont is not None:
                    still.append(cont)
            live = still
            if not live:
                return out
        out += [(path, None) for path in live]
        return out

    def _chain(self, table: str, name: str) -> rs.Chain | None:
        key = (table, name)
        if key not in self._chains:
            self._chains[key] = self.rules.chain(table, name)
        return self._chains[key]

    def _candidates(self, table: str, chain: rs.Chain, pkt: SymPacket) -> list[rs.Rule]:
        """The rules of ``chain`` that can match the packet's destination address and port, in order.

        This is the slicing that keeps big rulesets cheap: KUBE-SERVICES is mostly rules keyed by an exact
        destination address, KUBE-NODEPORTS by a destination port, and a packet's destination is always
        concrete. Exact: every skipped rule has a ``-d`` or ``--dport`` guard that would be False.
        """
        if len(chain.rules) <= SHORT_CHAIN or pkt.dst is None or pkt.dport is None:  # nothing to gain, or a
            return chain.rules  # reply to a symbolic address or port (not indexed)
        key = (table, chain.name, pkt.dst, pkt.dport)
        found = self._sliced.get(key)
        if found is None:
            if len(self._sliced) >= SLICE_CACHE:  # bounded memory on huge clusters
                self._sliced.clear()
            index = self._index.get((table, chain.name))
            if index is None:
                index = self._index[(table, chain.name)] = _destination_index(chain)
            positions = [i for bucket in ((pkt.dst, pkt.dport), (pkt.dst, None), (None, pkt.dport), (None, None))
                         for i in index.get(bucket, ())]
            found = self._sliced[key] = [chain.rules[i] for i in sorted(positions)]
        return found

    def _match(self, rule: rs.Rule, pkt: SymPacket) -> tuple[SymPacket | None, SymPacket | None]:
        """Split ``pkt`` into the part the rule matches and the part that goes on to the next rule."""
        cond, choice, unknown = [], False, None
        source = pkt  # what the matching side derives from: with what an -m recent records, where it does
        if pkt.recent is not None and matches.records(rule):
            recorded = matches.recent_after(rule, self.name, pkt.recent)
            if recorded is None:
                return pkt.evolve(unknown=f"-m recent records before another match at {rule.origin}: what it "
                                          "recorded depends on which match failed (not modelled)"), None
            source = pkt.evolve(recent=recorded)
        for match in rule.matches:
            decide = _GUARDS.get(type(match))
            g = None if decide is None else decide(self, match, pkt)
            if g is None:
                unknown = unknown or matches.unmodelled(match, rule)
                continue
            if g is False:
                return None, pkt  # whatever the other matches say
            if g is CHOICE:
                choice = True
            elif g is not True:
                cond.append(g)
        if unknown is not None:
            # Only the packets every known guard lets through meet the unknown match: theirs is unknown.
            if not cond:
                return pkt.evolve(unknown=unknown), None
            both = _conj(cond)
            taken = pkt.evolve(conds=pkt.conds + (both,), unknown=unknown)
            rest = pkt.evolve(conds=pkt.conds + (z3.Not(both),))
            return (taken if self.feasible(taken.cond) else None), (rest if self.feasible(rest.cond) else None)
        if choice:
            # A random choice (statistic, recent history) nothing else constrains: whatever the packet, the
            # rule may match or not. The matching side adds only the other guards; the other side adds
            # nothing. (Exact, and no Z3 variable per choice: a choice never decides a property.)
            if not cond:
                return source, pkt
            taken = source.evolve(conds=pkt.conds + (_conj(cond),))
            return (taken if self.feasible(taken.cond) else None), pkt
        if not cond:
            return source, None
        both = _conj(cond)
        taken = source.evolve(conds=pkt.conds + (both,))
        rest = pkt.evolve(conds=pkt.conds + (z3.Not(both),))
        return (taken if self.feasible(taken.cond) else None), (rest if self.feasible(rest.cond) else None)

    def _target(self, table: str, rule: rs.Rule, pkt: SymPacket, depth: int, cont: list, out: list) -> None:
        """Apply the rule's target: packets that go on to the next rule into ``cont``, ended ones (with their
        verdict, or None for a RETURN) into ``out``."""
        if pkt.unknown:
            out.append((pkt, UNKNOWN))
            return
        target = rule.target
        step = self._steps.get(id(rule))  # rules live as long as the model, so their ids are stable
        if step is None:
            step = self._steps[id(rule)] = Step(table, rule.chain, rule)
        kind = type(target)
        if kind is rs.Empty:
            cont.append(pkt.with_step(step))
        elif kind is rs.Jump or kind is rs.Goto:
            for path, verdict in self.walk_chain(table, target.chain, pkt.with_step(step), depth + 1):
                if verdict is not None:
                    out.append((path, verdict))
                elif kind is rs.Goto:
                    out.append((path, None))  # a goto returns to our caller
                else:
                    cont.append(path)
        elif kind is rs.Return:
            out.append((pkt.with_step(step), None))
        elif kind in _VERDICTS:
            out.append((pkt.with_step(step), _VERDICTS[kind]))
        elif kind is rs.MarkTarget:
            new = target.apply(pkt.mark)
            cont.append(pkt.with_step(_noted(step, f"mark: {pkt.mark:#x} -> {new:#x}"), mark=new))
        elif kind is rs.Dnat:
            out.extend(self._destination_nat(target, pkt, step))
        elif kind is rs.Masquerade or kind is rs.Snat:
            out.extend(self._source_nat(target, pkt, step))
        elif kind in CONTINUE_TARGETS:
            cont.append(pkt.with_step(step))
        elif kind is rs.CtTarget and target == _NOTRACK:
            cont.append(pkt.with_step(step, untracked=True))
        elif kind is rs.ConnmarkTarget:
            if not pkt.tracked or pkt.invalid or pkt.untracked:
                cont.append(pkt.with_step(step))  # no connection: nothing to mark
            else:
                mark, ctmark = matches.connmark_target(target, pkt.mark, pkt.ctmark)
                note = f"mark: {pkt.mark:#x} -> {mark:#x}, connmark: {pkt.ctmark:#x} -> {ctmark:#x}"
                cont.append(pkt.with_step(_noted(step, note), mark=mark, ctmark=ctmark))
        else:
            out.append((pkt.evolve(unknown=matches.unmodelled(target, rule)), UNKNOWN))


    def _destination_nat(self, target: rs.Dnat, pkt: SymPacket, step: Step) -> list[tuple[SymPacket, str]]:
        """DNAT to its address (or the kernel's pick in its range, natpick) and port."""
        origin = step.rule.origin
        if pkt.dst is None or pkt.dport is None:  # a reply to any address/port, DNATed as a new connection
            return [(pkt.evolve(unknown=f"DNAT of a reply to a symbolic address at {origin}"), UNKNOWN)]
        port = natpick.destination_port(target, pkt.dport)
        if port is None:
            return [(pkt.evolve(unknown=f"DNAT to a port the kernel picks at random at {origin}"), UNKNOWN)]
        dport = pkt.dport if port is natpick.KEEP else port
        found = []
        for path, dst in self._address_picks(target, pkt, origin, keep=pkt.dst):
            if path.unknown:
                found.append((path, UNKNOWN))
                continue
            note = f"dst: {_hostport(pkt.dst, pkt.dport)} -> {_hostport(dst, dport)}"
            found.append((path.with_step(_noted(step, note), dst=dst, dport=dport, dnat=True), ACCEPT))
        return found

    def _source_nat(self, target, pkt: SymPacket, step: Step) -> list[tuple[SymPacket, str]]:
        """SNAT to its address (or the kernel's pick in its range), MASQUERADE to the address the network
        model picked for this route; the port as natpick says (a random pick is flagged, not guessed)."""
        origin = step.rule.origin
        if type(target) is rs.Masquerade:
            if pkt.nat_address is None:
                return [(pkt.evolve(unknown=f"no address to masquerade with at {origin}"), UNKNOWN)]
            picks = [(pkt, pkt.nat_address)]
        else:
            picks = self._address_picks(target, pkt, origin, keep=None)
        found = []
        for path, new in picks:
            if path.unknown:
                found.append((path, UNKNOWN))
                continue
            for port, randomly, cond in natpick.source_port(target, path.sport):
                branch = path.evolve(conds=path.conds + (cond,)) if cond is not None else path
                if cond is not None and not self.feasible(branch.cond):
                    continue
                sport = path.sport if port is natpick.KEEP or port is None else z3.BitVecVal(port, 16)
                note = f"src: {path.src_value or 'client'} -> {new}" + (
                    ", a port the kernel picks at random" if randomly else "" if port is natpick.KEEP
                    else f":{port}")
                found.append((branch.with_step(_noted(step, note), src=self.ip_const(new), src_value=new,
                                               sport=sport, snat=True,
                                               random_port="sport" if randomly else branch.random_port), ACCEPT))
        return found

    def _address_picks(self, target, pkt: SymPacket, origin, keep) -> list[tuple[SymPacket, IPAddress]]:
        """(path, address) for each address a NAT target may give ``pkt``: its one address (``keep`` when it
        names none), or the kernel's hash pick in its range: computed for a known source, one path per
        address of a small IPv4 range for a symbolic one (its condition: the hash lands there)."""
        span = natpick.address_range(target)
        if span is None:
            return [(pkt, target.ip if target.ip is not None else keep)]
        low, high = span
        if pkt.dst is None:
            return [(pkt.evolve(unknown=f"NAT to a range of a packet to a symbolic address at {origin}"), None)]
        if pkt.src_value is not None:
            return [(pkt, natpick.pick_address(pkt.src_value, pkt.dst, low, high, target.persistent, self.width))]
        count = int(high) - int(low) + 1
        if self.width != 32 or count > MAX_RANGE_PICKS:
            return [(pkt.evolve(unknown=f"NAT to a range of {count} addresses, picked by a hash of a symbolic "
                                        f"source, at {origin}"), None)]
        term = natpick.pick_address(pkt.src, pkt.dst, low, high, target.persistent, 32)
        found = []
        for value in range(int(low), int(high) + 1):
            address = ipaddress.ip_address(value)
            path = pkt.evolve(conds=pkt.conds + (term == self.ip_const(address),))
            if self.feasible(path.cond):
                found.append((path, address))
        return found


MAX_RANGE_PICKS = 16  # a NAT range of a symbolic source: one path per address up to this many, else unknown
_VERDICTS = {rs.Accept: ACCEPT, rs.Drop: DROP, rs.Reject: REJECT}
_LOCAL = (rs.AddrKind.LOCAL,)
_LOOPBACK4 = ipaddress.ip_network("127.0.0.0/8")
_NOTRACK = rs.CtTarget(notrack=True)
_CT_OPTIONS = ("direction", "orig_src", "orig_dst", "repl_src", "repl_dst", "orig_src_port", "orig_dst_port",
               "repl_src_port", "repl_dst_port", "proto", "status", "expire")


def _CT_EXTENDED(match: rs.Conntrack) -> bool:  # noqa: N802
    """Whether a ``-m conntrack`` has more than --ctstate (the shared decisions read those options)."""
    return any(getattr(match, name) is not None for name in _CT_OPTIONS)



def _true(model: NodeModel, match, pkt: SymPacket) -> bool:
    return True


# How each kind of match is decided; a kind missing here makes the path's fate unknown (never assumed).
_GUARDS = {
    rs.Comment: _true,
    rs.Nfacct: _true,
    rs.Source: NodeModel._source,
    rs.Destination: NodeModel._destination,
    rs.Protocol: NodeModel._protocol,
    rs.Port: NodeModel._port,
    rs.MarkMatch: NodeModel._mark,
    rs.AddrType: NodeModel._addrtype,
    rs.Statistic: NodeModel._statistic,
    rs.Recent: NodeModel._recent,
    rs.Conntrack: NodeModel._conntrack,
    rs.InInterface: NodeModel._in_interface,
    rs.OutInterface: NodeModel._out_interface,
    **{kind: NodeModel._extension for kind in matches._DECISIONS},
}


def _destination_index(chain: rs.Chain) -> dict[tuple, list[int]]:
    """Rule positions grouped by (exact -d address or None, exact --dport or None), non-negated only."""
    index: dict[tuple, list[int]] = {}
    for i, rule in enumerate(chain.rules):
        dest = rule.first(rs.Destination)
        port = next((m for m in rule.matches if isinstance(m, rs.Port) and m.direction is rs.PortDir.DPORT), None)
        address = dest.network.network_address if dest is not None and not dest.negated \
            and dest.network.prefixlen == dest.network.max_prefixlen else None
        dport = port.low if port is not None and not port.negated and port.low == port.high else None
        index.setdefault((address, dport), []).append(i)
    return index




def _conj(terms: list[z3.BoolRef]) -> z3.BoolRef:
    return terms[0] if len(terms) == 1 else z3.And(terms)


def _neg(term: z3.BoolRef, negated: bool) -> z3.BoolRef:
    return z3.Not(term) if negated else term


def _noted(step: Step, note: str) -> Step:
    """``step`` with what it rewrote (``dataclasses.replace`` costs several times more on this hot path)."""
    return Step(step.table, step.chain, step.rule, note)


def _value(term: z3.BitVecRef):
    """The address a constant term stands for, else None (a symbolic one)."""
    if not z3.is_bv_value(term):
        return None
    return ipaddress.ip_address(term.as_long()) if term.size() == 32 else ipaddress.IPv6Address(term.as_long())


def _hostport(ip: IPAddress, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def symbolic_packet(width: int, src: IPAddress | None, **fields) -> SymPacket:
    """A packet whose source is ``src`` (or any address, when None) and whose source port is any port."""
    src_term = z3.BitVec("src", width) if src is None else z3.BitVecVal(int(src), width)
    return SymPacket(src=src_term, src_value=src, sport=z3.BitVec("sport", 16), **fields)
