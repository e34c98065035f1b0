"""Refuse the rulesets iptables-restore and the kernel refuse, for the same reason, at the offending rule.

A verifier that gives verdicts on a ruleset the kernel would never load answers a question nobody asked, so
a complete ruleset is checked against what was measured on the real kernel (docs/iptables-validity.md:
iptables 1.8.9 with the nf_tables backend, Linux 6.18):

* where a target may stand: REJECT only in the filter table; DNAT, SNAT, MASQUERADE and REDIRECT only in
  the nat table and only in chains reached from some of its built-in chains (the kernel's hook mask: a user
  chain inherits the hooks of every built-in chain that reaches it through jumps and gotos; in a chain
  nothing reaches, only the table is checked); CT/NOTRACK only in raw; DROP nowhere in nat; TCPMSS only
  with ``-p tcp``, and ``--clamp-mss-to-pmtu`` not directly in a PREROUTING or INPUT built-in chain;
* a target's own conditions: a ``--reject-with`` type the rules' family knows, ``tcp-reset`` only with
  ``-p tcp`` on the same rule, a NAT port only with a protocol that has ports;
* the jump graph: jumps only to declared user chains of the same table, no loop that a built-in chain
  reaches, at most 15 user chains below a built-in chain (nf_tables' jump stack has 16 levels).

Linear in the ruleset, and cheap next to parsing it (a few percent; ``bench/parse_speed.py``): every rule
is visited once, by one flat loop, since a dump's rules are too many and too spread out in memory to visit
twice; what follows works on the few rules of restricted kinds and on the jump graph, walked level by level
with set unions over chain numbers (C loops); columns are only worked out for the rules reported.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter, not_

from kspec.diagnostics import Diagnostic, KspecError
from kspec.heap import heap_frozen
from kspec.ir import Span
from kspec.rules.iptables import ruleset as rs
from kspec.rules.iptables.words import LineError, tokenize_with_columns

__all__ = ["MAX_DEPTH", "REJECT_TYPES", "check_ruleset", "require_valid"]

# User chains below a built-in chain: nf_tables refuses a chain at level NFT_JUMP_STACK_SIZE (16) or deeper.
MAX_DEPTH = 15

# What `iptables -j REJECT --help` / `ip6tables -j REJECT --help` list (aliases included).
REJECT_TYPES = {
    4: frozenset({"icmp-net-unreachable", "net-unreach", "icmp-host-unreachable", "host-unreach",
                  "icmp-proto-unreachable", "proto-unreach", "icmp-port-unreachable", "port-unreach",
                  "icmp-net-prohibited", "net-prohib", "icmp-host-prohibited", "host-prohib", "tcp-reset",
                  "tcp-rst", "icmp-admin-prohibited", "admin-prohib"}),
    # ip6tables lists 'tcp-reset' twice and has no 'tcp-rst' (measured: refused).
    6: frozenset({"icmp6-no-route", "no-route", "icmp6-adm-prohibited", "adm-prohibited",
                  "icmp6-addr-unreachable", "addr-unreach", "icmp6-port-unreachable", "port-unreach",
                  "tcp-reset", "icmp6-policy-fail", "policy-fail", "icmp6-reject-route", "reject-route"}),
}
_TCP_RESET = frozenset({"tcp-reset", "tcp-rst"})
_FAMILY_NAME = {4: "IPv4 (iptables)", 6: "IPv6 (ip6tables)"}
_FAMILY_SHORT = {4: "IPv4", 6: "IPv6"}

# libxt_DNAT/SNAT/MASQUERADE/REDIRECT take a port only with one of these protocol numbers after -p (negated
# or not: only the number is looked at); IPv4 also takes ICMP (its id is NATed as a port), IPv6 not ICMPv6.
_PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "dccp": 33, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58,
                     "all": 0}
_PORT_PROTOCOLS = {4: frozenset({6, 17, 132, 33, 1}), 6: frozenset({6, 17, 132, 33})}

# TCPMSS's own check sees the hook only in a built-in chain (nft_compat gives a user chain no hooks).
_CLAMP_HOOKS = ("FORWARD", "OUTPUT", "POSTROUTING")


@dataclass(frozen=True)
class _Place:
    """Where a target may stand, as x_tables declares it (table, hooks) and libxt checks its options."""

    name: str  # as written after -j
    table: str | None  # the one table it is valid in; None: any
    hooks: tuple[str, ...] | None = None  # the built-in chains it may be reached from; None: any
    port: str | None = None  # the target's field holding a NAT port (needs a protocol with ports)

    def text(self) -> str:
        if self.hooks is None:
            return f"the {self.table} table ({', '.join(rs.BUILTIN_CHAINS[self.table])}, and chains they reach)"
        if len(self.hooks) == 1:
            return f"{self.table} {self.hooks[0]} (and chains it reaches)"
        return f"{self.table} {' and '.join(self.hooks)} (and chains they reach)"


def _places() -> dict[type, _Place]:
    """By target class. Redirect, CtTarget and TcpMss are looked up by name: the IR may not have them."""
    places = {
        "Reject": _Place("REJECT", "filter"),
        "Dnat": _Place("DNAT", "nat", ("PREROUTING", "OUTPUT"), "port"),
        "Snat": _Place("SNAT", "nat", ("INPUT", "POSTROUTING"), "port"),
        "Masquerade": _Place("MASQUERADE", "nat", ("POSTROUTING",), "to_ports"),
        "Redirect": _Place("REDIRECT", "nat", ("PREROUTING", "OUTPUT"), "to_ports"),
        "CtTarget": _Place("CT", "raw"),
        "TcpMss": _Place("TCPMSS", None),
        "Drop": _Place("DROP", None),
    }
    return {getattr(rs, name): place for name, place in places.items() if hasattr(rs, name)}


_PLACES = _places()
_JUMPS = frozenset({rs.Jump, rs.Goto})
_MATCHES_OF, _NAME_OF = attrgetter("matches"), attrgetter("name")


class _Enough(Exception):
    """The diagnostic limit is reached: stop looking."""


# ------------------------------------------------------------------------------------------ API


def check_ruleset(ruleset: rs.Ruleset, *, family: int | None = None, limit: int = 50,
                  addrtype_rules: Mapping[str, list[rs.Rule]] | None = None) -> list[Diagnostic]:
    """Every reason the kernel or iptables-restore would refuse ``ruleset`` — whole tables: a jump to a
    chain that is not in it is one — as positioned diagnostics in file order, at most ``limit`` of them.

    ``family`` (4 or 6) decides which ``--reject-with`` names exist; None infers it from the rules'
    addresses (else from the first family-specific reject type). ``addrtype_rules``: per table, the rules
    holding an addrtype match that ``needs_addrtype_check`` (the parser collects them); None: look at all.
    """
    if limit <= 0:
        return []
    checker = _Checker(ruleset, family, limit, addrtype_rules=addrtype_rules)
    try:
        for table in ruleset.tables:
            checker.table(table)
    except _Enough:
        pass
    return sorted(checker.found, key=_position)


def require_valid(ruleset: rs.Ruleset, *, family: int | None = None) -> rs.Ruleset:
    """``ruleset`` itself, or ``KspecError`` with ``check_ruleset``'s diagnostics: for a ruleset assembled
    from several texts (kube-proxy's built-in jumps and its ``--noflush`` restore), which no one parse sees
    whole."""
    with heap_frozen():  # the ruleset is big and acyclic: collections would rescan it for nothing (the
        found = check_ruleset(ruleset, family=family)  # parser calls check_ruleset with collections paused)
    if found:
        raise KspecError(found)
    return ruleset


def unreached_chains(table: rs.Table) -> list[str]:
    """The user chains of ``table`` that no built-in chain reaches through jumps and gotos, in table order."""
    graph = _Graph(table)
    _scan_graph(graph, {})
    reached = set().union(*(graph.reach(root) for root in graph.roots.values()))
    return [chain.name for number, chain in enumerate(table.chains) if number not in reached]


def _position(diag: Diagnostic) -> tuple:
    span = diag.span
    return (span.file, span.line, span.column) if span is not None else ("", 0, 0)


# ------------------------------------------------------------------------------------------ targets


@dataclass
class _Checker:
    ruleset: rs.Ruleset
    family: int | None
    limit: int
    found: list[Diagnostic] = field(default_factory=list)
    family_why: str = ""  # how the family was learnt, for messages
    family_known: bool = False
    addrtype_rules: Mapping[str, list[rs.Rule]] | None = None  # per table; None: look at every rule

    def report(self, rule: rs.Rule, word: str, message: str, notes: tuple[str, ...] = ()) -> None:
        self.found.append(Diagnostic(_span(rule, word), message, notes=notes))
        if len(self.found) >= self.limit:
            raise _Enough

    def table(self, table: rs.Table) -> None:
        graph = _Graph(table)
        found: dict[type, list[rs.Rule]] = {kind: [] for kind in _PLACES if kind is not rs.Drop or
                                            table.name == "nat"}  # DROP is refused in the nat table only
        (_scan_graph if graph.roots_jump() else _scan)(graph, found)
        graph.check_jumps(self)
        graph.walk(self)
        for kind, rules in found.items():
            if rules:
                self.kind(table, graph, kind, rules)
        suspects = _addrtype_suspects(table) if self.addrtype_rules is None else \
            _still_there(table, self.addrtype_rules.get(table.name, ()))
        if suspects:
            self.addrtypes(graph, suspects)

    def addrtypes(self, graph: _Graph, rules: list[rs.Rule]) -> None:
        """``-m addrtype`` as xt_addrtype's checkentry refuses it: in IPv6 the route types IPv6 has not, and
        --limit-iface-in (-out) directly in a built-in chain whose hook has no input (output) interface."""
        for rule in rules:
            for match in _addrtype_matches(rule):
                refused = [kind.value for kind in match.types if kind in _NOT_IPV6_TYPES]
                if refused and self.guess_family() == 6:
                    self.report(rule, match.direction.value,
                                f"ip6tables refuses -m addrtype {refused[0]}: IPv6 has no such route type (the "
                                "kernel accepts UNSPEC, UNICAST, LOCAL, ANYCAST, MULTICAST and UNREACHABLE there); "
                                f"these are {_FAMILY_NAME[6]} rules ({self.family_why})")
                    break
        # Only in the built-in chain itself: nf_tables checks a match in a user chain with no hook at all
        # (measured: accepted there; the kernel then reads the missing interface as "no limit").
        for rule in rules:
            for match in _addrtype_matches(rule):
                if match.limit_iface is not None and rule.chain in _LIMIT_HOOKS[match.limit_iface] and \
                        rs.is_builtin(graph.table.name, rule.chain):
                    side = "input" if match.limit_iface is rs.LimitIface.IN else "output"
                    self.report(rule, match.limit_iface.value,
                                f"-m addrtype {match.limit_iface.value} is not valid in {graph.table.name} "
                                f"{rule.chain}: the packet has no {side} interface there (the kernel refuses it)")
                    break

    def kind(self, table: rs.Table, graph: _Graph, kind: type, rules: list[rs.Rule]) -> None:
        """Every rule of one target kind in ``table``."""
        place = _PLACES[kind]
        if place.name == "DROP":
            if table.name == "nat":  # iptables-restore: the nat table is not for filtering
                self.each(rules, lambda rule: "DROP is not valid in the nat table (iptables-restore: the nat table "
                                              "is not intended for filtering); here it is in "
                                              f"{_where(table.name, rule.chain)}")
            return
        if place.table is not None and table.name != place.table:
            return self.each(rules, lambda rule: f"{_spelling(rule, place)} is only valid in {place.text()}; here "
                                                 f"it is in {_where(table.name, rule.chain)}")
        if place.hooks is not None:
            graph.restrict(self, kind, rules)
        if place.port is not None:
            self.nat_ports(place, rules)
        if place.name == "REJECT":
            for rule in rules:
                self.reject(rule, _reject_with(rule))
        elif place.name == "TCPMSS":
            self.tcpmss(table, rules)

    def each(self, rules: list[rs.Rule], message, word: str = "target") -> None:
        for rule in rules:
            self.report(rule, word, message(rule))

    def nat_ports(self, place: _Place, rules: list[rs.Rule]) -> None:
        """A port needs a protocol that has ports. Looked at once per distinct match tuple (the parser shares
        one between the rules of one match text), the targets only where that protocol has none."""
        matches = list(map(_MATCHES_OF, rules))
        for key, found in dict(zip(map(id, matches), matches)).items():
            number = _protocol_number(found)
            if number in _PORT_PROTOCOLS[6] or (number == 1 and self.guess_family() != 6):  # ICMP: IPv4 only
                continue
            ported = [rule for rule in rules if id(rule.matches) == key
                      and getattr(rule.target, place.port) is not None]
            self.each(ported, lambda rule: f"{place.name} to a port needs '-p tcp', '-p udp', '-p sctp' or '-p "
                                           "dccp' on the same rule (iptables-restore: Need TCP, UDP, SCTP or DCCP "
                                           "with port specification)", "port")

    def reject(self, rule: rs.Rule, kind: str | None) -> None:
        if kind is None:
            return
        known = [family for family, names in REJECT_TYPES.items() if kind in names]
        if not known:
            return self.report(rule, "--reject-with", f"unknown reject type '{kind}' (iptables-restore refuses "
                                                      "it)", _reject_notes(self.guess_family()))
        if len(known) == 1 and self.claim(known[0], rule, kind) != known[0]:
            return self.report(rule, "--reject-with", f"reject type '{kind}' only exists for "
                                                      f"{_FAMILY_NAME[known[0]]}, and these are "
                                                      f"{_FAMILY_NAME[self.family]} rules ({self.family_why})",
                               _reject_notes(self.family))
        if kind in _TCP_RESET and not _is_tcp(rule.matches):
            self.report(rule, "--reject-with", f"--reject-with {kind} needs '-p tcp' on the same rule (the kernel "
                                               "refuses a TCP reset for packets that may not be TCP)")

    def tcpmss(self, table: rs.Table, rules: list[rs.Rule]) -> None:
        for rule in rules:
            if not _is_tcp(rule.matches):  # x_tables: "TCPMSS target: only valid for protocol 6"
                self.report(rule, "target", "TCPMSS needs '-p tcp' on the same rule (the kernel refuses it "
                                            "otherwise: only valid for protocol 6)")
            elif rule.target.mss is None and rs.is_builtin(table.name, rule.chain) and \
                    rule.chain not in _CLAMP_HOOKS:
                self.report(rule, "target", f"TCPMSS --clamp-mss-to-pmtu is not valid directly in {table.name} "
                                            f"{rule.chain}: the kernel only allows it in FORWARD, OUTPUT and "
                                            "POSTROUTING (or a user chain)")

    # -------------------------------------------------------------------------------- the family

    def guess_family(self) -> int | None:
        """The rules' family: as given, else that of their first address (None: they have none)."""
        if not self.family_known:
            self.family_known = True
            if self.family is None:
                self.family = _address_family(self.ruleset)
                self.family_why = f"they hold {_FAMILY_SHORT.get(self.family)} addresses"
            else:
                self.family_why = f"checked as {_FAMILY_NAME[self.family]}"
        return self.family

    def claim(self, family: int, rule: rs.Rule, word: str) -> int:
        """A family-specific word: without addresses, the first one decides the family."""
        if self.guess_family() is None:
            self.family = family
            self.family_why = f"line {rule.line} uses the {_FAMILY_SHORT[family]}-only reject type '{word}'"
        return self.family


_NOT_IPV6_TYPES = frozenset({rs.AddrKind.BROADCAST, rs.AddrKind.BLACKHOLE, rs.AddrKind.PROHIBIT, rs.AddrKind.THROW,
                             rs.AddrKind.NAT, rs.AddrKind.XRESOLVE})
_LIMIT_HOOKS = {rs.LimitIface.IN: ("OUTPUT", "POSTROUTING"), rs.LimitIface.OUT: ("PREROUTING", "INPUT")}


def needs_addrtype_check(match) -> bool:
    """Whether an ``-m addrtype`` match is one ``_Checker.addrtypes`` may refuse (the parser keeps the rules
    holding one, so that a big dump's matches need not all be looked at again)."""
    return match.__class__ is rs.AddrType and (match.limit_iface is not None or
                                                not _NOT_IPV6_TYPES.isdisjoint(match.types))


def _addrtype_matches(rule: rs.Rule) -> list:
    return [match for match in rule.matches if match.__class__ is rs.AddrType]


def _still_there(table: rs.Table, rules) -> list[rs.Rule]:
    """Those of ``rules`` the table still holds (a later -F or -X may have removed some)."""
    chains = [table.chain(name) for name in {rule.chain for rule in rules}]
    held = {id(rule) for chain in chains if chain is not None for rule in chain.rules}
    return [rule for rule in rules if id(rule) in held]


def _addrtype_suspects(table: rs.Table) -> list[rs.Rule]:
    return [rule for chain in table.chains for rule in chain.rules
            if any(needs_addrtype_check(match) for match in rule.matches)]


def _scan(graph: _Graph, found: dict[type, list[rs.Rule]]) -> None:
    """The one visit of every rule (a dump's rules are too many, and too spread out in memory, to visit
    again): every rule of a kind ``found`` has a list for goes into it; a jump or goto to a chain that is not
    a declared user chain goes into ``graph.unknown``. Hot loop, kept flat."""
    index, unknown, get, jump, goto = graph.index, graph.unknown, found.get, rs.Jump, rs.Goto
    for chain in graph.table.chains:
        for rule in chain.rules:
            target = rule.target
            kind = target.__class__
            if kind is jump or kind is goto:
                if target.chain not in index:
                    unknown.add(target.chain)
            else:
                rules = get(kind)
                if rules is not None:
                    rules.append(rule)


def _scan_graph(graph: _Graph, found: dict[type, list[rs.Rule]]) -> None:
    """``_scan``, and each chain's jumps and gotos into ``graph.succ`` as chain numbers: only when a built-in
    chain jumps (lists per chain cost as much again as the rest of the visit)."""
    index, unknown, succ, get, jump, goto = graph.index, graph.unknown, graph.succ, found.get, rs.Jump, rs.Goto
    for number, chain in enumerate(graph.table.chains):
        jumps = None
        for rule in chain.rules:
            target = rule.target
            kind = target.__class__
            if kind is jump or kind is goto:
                if jumps is None:
                    jumps = succ[number] = []
                try:
                    jumps.append(index[target.chain])
                except KeyError:
                    unknown.add(target.chain)
            else:
                rules = get(kind)
                if rules is not None:
                    rules.append(rule)


def _address_family(ruleset: rs.Ruleset) -> int | None:
    for rule in ruleset.rules():
        for match in rule.matches:
            if match.__class__ is rs.Source or match.__class__ is rs.Destination:
                return match.network.version
        target = rule.target
        if (target.__class__ is rs.Dnat or target.__class__ is rs.Snat) and target.ip is not None:
            return target.ip.version
    return None


def _reject_notes(family: int | None) -> tuple[str, ...]:
    families = [family] if family is not None else [4, 6]
    return tuple(f"{_FAMILY_NAME[f]} knows: {', '.join(sorted(REJECT_TYPES[f]))}" for f in families)


def _protocol(matches: tuple) -> rs.Protocol | None:
    for match in matches:
        if match.__class__ is rs.Protocol:
            return match
    return None


def _protocol_number(matches: tuple) -> int | None:
    """The number of the rule's -p (negated or not), as iptables resolves it; None: no -p, or a name not
    known here (none of which has ports)."""
    match = _protocol(matches)
    if match is None:
        return None
    return int(match.name) if match.name.isdigit() else _PROTOCOL_NUMBERS.get(match.name)


def _is_tcp(matches: tuple) -> bool:
    match = _protocol(matches)
    return match is not None and not match.negated and _protocol_number(matches) == 6


def _spelling(rule: rs.Rule, place: _Place) -> str:
    """The target's name as written (NOTRACK is read as CT --notrack)."""
    return getattr(rule.target, "spelling", place.name)


def _where(table: str, chain: str) -> str:
    return f"{table} {chain}" if rs.is_builtin(table, chain) else f"chain {chain} of the {table} table"


# ------------------------------------------------------------------------------------------ the jump graph


class _Graph:
    """The jump graph of one table, chains numbered in table order: each chain's jumps and gotos to user
    chains (``succ``, filled by ``_scan_graph``), walked level by level with set unions from the built-in
    chains (the roots), for the hooks that reach each chain and for the loops and depths the kernel refuses.
    Numbers rather than names: the walk then reads a few small, adjacent int objects instead of name strings
    spread over a big heap."""

    def __init__(self, table: rs.Table):
        self.table = table
        builtins = rs.BUILTIN_CHAINS[table.name]
        numbered = dict(zip(map(_NAME_OF, table.chains), range(len(table.chains))))
        self.roots = {name: numbered.pop(name) for name in builtins if name in numbered}
        self.index = numbered  # user chains only: a jump to a built-in chain is refused
        self.succ: list = [()] * len(table.chains)
        self.unknown: set[str] = set()  # jumped or gone to, not a declared user chain
        self.reached: dict[int, set[int]] = {}

    def roots_jump(self) -> bool:
        """Whether a built-in chain jumps or goes anywhere (if not, nothing but it reaches can be refused)."""
        chains = self.table.chains
        return any(rule.target.__class__ in _JUMPS for number in self.roots.values() for rule in chains[number].rules)

    def check_jumps(self, checker: _Checker) -> None:
        """Jumps to a chain the table does not have, or to a built-in chain."""
        for name in self.unknown:
            if rs.is_builtin(self.table.name, name):
                self.report(checker, None, name, f"jump to built-in chain '{name}': only user-defined chains "
                                                 "can be jumped to (the kernel refuses it)")
            else:
                self.report(checker, None, name, f"jump to undeclared chain '{name}' in table "
                                                 f"'{self.table.name}'",
                            ("declare it with ':NAME - [0:0]', or parse with require_declared_jumps=False if "
                             "this is a --noflush restore relying on chains already in the kernel",))

    def report(self, checker: _Checker, source: str | None, name: str, message: str,
               notes: tuple[str, ...] = ()) -> None:
        """At every jump or goto to ``name`` (in chain ``source`` only, if given)."""
        chains = self.table.chains if source is None else (self.table.chain(source),)
        for chain in chains:
            for rule in chain.rules:
                if rule.target.__class__ in _JUMPS and rule.target.chain == name:
                    checker.report(rule, "target", message, notes)

    def step(self, frontier: set[int]) -> set[int]:
        """The user chains ``frontier`` jumps or goes to (in C: a dump has many chains)."""
        return set().union(*map(self.succ.__getitem__, frontier))

    def successors(self, name: str) -> list[str]:
        """The user chains ``name`` jumps or goes to, once each, in rule order."""
        number = self.roots[name] if name in self.roots else self.index[name]
        return [self.table.chains[n].name for n in dict.fromkeys(self.succ[number])]

    def walk(self, checker: _Checker) -> None:
        """Level by level from the built-in chains: a chain still met MAX_DEPTH + 1 levels down is too deep
        or in a loop; the slower ordered walk then says which."""
        frontier = set(self.roots.values())
        for _ in range(MAX_DEPTH + 1):
            frontier = self.step(frontier)
            if not frontier:
                return
        _Explainer(self, checker).run()

    def reach(self, hook: int) -> set[int]:
        """Every chain the built-in chain numbered ``hook`` reaches (itself included)."""
        seen = self.reached.get(hook)
        if seen is None:
            seen = frontier = {hook}
            while frontier:
                frontier = self.step(frontier) - seen
                seen = seen | frontier
            self.reached[hook] = seen
        return seen

    def reaching(self, targets: set[int]) -> set[int]:
        """Every chain that reaches one of ``targets`` (them included): level by level backwards, each level
        one pass over every chain's jumps in C."""
        seen = frontier = set(targets)
        numbers, roots = range(len(self.succ)), self.roots.values()
        while frontier:
            frontier = frontier.difference(roots)  # nothing jumps to a built-in chain: no pass for them
            if not frontier:
                break
            frontier = set(compress(numbers, map(not_, map(frontier.isdisjoint, self.succ)))) - seen
            seen = seen | frontier
        return seen

    def number(self, name: str) -> int:
        return self.roots[name] if name in self.roots else self.index[name]

    def restrict(self, checker: _Checker, kind: type, rules: list[rs.Rule]) -> None:
        """Rules of a target valid from some hooks only, in chains that other hooks reach."""
        place = _PLACES[kind]
        wrong = [hook for hook in self.roots if hook not in place.hooks]
        if wrong and len(rules) * 16 < len(self.succ):  # few (MASQUERADE): which hooks reach them at all
            back = self.reaching({self.number(rule.chain) for rule in rules})
            wrong = [hook for hook in wrong if self.roots[hook] in back]
        for hook in wrong:
            for rule in self.rules_in(self.reach(self.roots[hook]), rules, kind):
                where = (f"{self.table.name} {hook}" if rule.chain == hook else
                         f"chain {rule.chain}, which {self.table.name} {hook} reaches")
                checker.report(rule, "target", f"{place.name} is only valid in {place.text()}; here it is in "
                                               f"{where}")

    def rules_in(self, chains: set[int], rules: list[rs.Rule], kind: type) -> list[rs.Rule]:
        """Those of ``rules`` in ``chains``, from whichever side is smaller: a hook that reaches few chains
        (nat INPUT) is checked without visiting the many DNAT rules."""
        if len(chains) < len(rules):
            return [rule for number in sorted(chains) for rule in self.table.chains[number].rules
                    if rule.target.__class__ is kind]
        return [rule for rule in rules if self.number(rule.chain) in chains]


class _Explainer:
    """Names the loops and too-deep chains a walk found: a depth-first walk in rule order (each loop is named
    at the jump that closes it), then the longest way down to each chain in that walk's topological order."""

    def __init__(self, graph: _Graph, checker: _Checker):
        self.graph, self.checker = graph, checker
        self.order: list[str] = []
        self.depth: dict[str, int] = {}
        self.parent: dict[str, str] = {}

    def run(self) -> None:
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for root in self.graph.roots:
            if root not in state:
                self.dfs(root, state)
        self.depths()

    def dfs(self, root: str, state: dict[str, int]) -> None:
        state[root] = 1
        stack = [(root, iter(self.graph.successors(root)))]
        while stack:
            name, todo = stack[-1]
            for succ in todo:
                if succ not in state:
                    state[succ] = 1
                    stack.append((succ, iter(self.graph.successors(succ))))
                    break
                if state[succ] == 1:
                    path = [n for n, _ in stack]
                    cycle = " -> ".join(path[path.index(succ):] + [succ])
                    self.graph.report(self.checker, name, succ, f"jump loop {cycle}, reached from "
                                                                f"{self.graph.table.name} {root}: the kernel "
                                                                "refuses a loop that a built-in chain reaches")
            else:
                stack.pop()
                state[name] = 2
                self.order.append(name)

    def depths(self) -> None:
        """Longest way down, loops' closing jumps left out (the reverse post-order ranks them backwards)."""
        rank = {name: i for i, name in enumerate(reversed(self.order))}
        depth, parent = self.depth, self.parent
        for name in self.graph.roots:
            depth[name] = 0
        for name in reversed(self.order):
            for succ in self.graph.successors(name):
                if rank[succ] > rank[name] and depth[name] + 1 > depth.get(succ, -1):
                    depth[succ], parent[succ] = depth[name] + 1, name
        for name in self.order:
            if depth[name] == MAX_DEPTH:
                for succ in self.graph.successors(name):
                    if rank[succ] > rank[name]:
                        self.too_deep(name, succ)

    def too_deep(self, name: str, succ: str) -> None:
        way = [name]
        while way[-1] in self.parent:
            way.append(self.parent[way[-1]])
        way.reverse()
        self.graph.report(self.checker, name, succ,
                          f"chains nest too deep: {self.graph.table.name} {' -> '.join(way)} -> {succ} puts {succ} "
                          f"{MAX_DEPTH + 1} user chains below {way[0]}; the kernel (nf_tables) allows {MAX_DEPTH}")


# ------------------------------------------------------------------------------------------ positions

_TARGET_OPTIONS = ("-j", "--jump", "-g", "--goto")
_VALUE_OPTIONS = {"--reject-with": ("--reject-with",), "--src-type": ("--src-type",), "--dst-type": ("--dst-type",),
                  "port": ("--to-destination", "--to-source", "--to-ports")}


def _span(rule: rs.Rule, word: str) -> Span | None:
    """Where on its line the rule's target name (``word`` "target") or an option's value is."""
    if rule.file is None:
        return None
    return Span(rule.file, rule.line, _column(rule.text, word))


def _column(line: str, word: str) -> int:
    if word in _FLAGS:  # an option without a value: where it is itself
        try:
            return next((at + 1 for text, at in tokenize_with_columns(line) if text == word), 1)
        except LineError:
            return 1
    found = _value(line, _VALUE_OPTIONS.get(word, _TARGET_OPTIONS))
    return found[1] + 1 if found is not None else 1


_FLAGS = frozenset({"--limit-iface-in", "--limit-iface-out"})


def _value(line: str, options: tuple[str, ...]) -> tuple[str, int] | None:
    """The word after the last of ``options`` on ``line`` (a target's options follow its name), with its
    0-based column."""
    try:
        words = tokenize_with_columns(line)
    except LineError:
        return None
    found = [i for i, (text, _) in enumerate(words) if text in options and i + 1 < len(words)]
    return words[found[-1] + 1] if found else None


def _reject_with(rule: rs.Rule) -> str | None:
    """The ``--reject-with`` type as written: the parser stores the default as None whichever family's
    name spelled it, and ip6tables refuses IPv4's icmp-port-unreachable (and iptables IPv6's)."""
    kind = rule.target.with_
    if kind is None and "--reject-with" in rule.text:
        found = _value(rule.text, ("--reject-with",))
        kind = found[0] if found is not None else None
    return kind
