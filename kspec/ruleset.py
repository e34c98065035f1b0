"""The rule IR: what an iptables ruleset *is*, independent of how it was written.

``Ruleset -> Table -> Chain -> Rule``; a rule is a tuple of matches (ANDed) and one target. Everything is a
frozen, slotted dataclass holding tuples, frozensets, ``ipaddress`` values and enums, so rulesets hash,
compare and can be shared freely between the tracer and the verifier.

Two spellings of the same rule compare equal: where a rule came from (``Origin``) and its original text are
excluded from equality, and the parser canonicalises what the kernel canonicalises:

* the base matches (``-s -d -i -o -p``) are checked by the kernel before any extension match whatever the
  order they were written in, so they come first in a fixed order; extension matches keep their written
  order (it matters: ``recent --set`` only fires when the matches before it matched);
* ``-s 10.0.0.1`` is the network ``10.0.0.1/32`` (``iptables-save`` prints the ``/32``);
* every MARK target is stored as the kernel's ``(value, mask)`` pair (``--or-mark 0x4000`` and
  ``--set-xmark 0x4000/0x4000`` are the same rule); the spelling is kept in ``MarkTarget.op`` for display.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

from kspec.ir import IPAddress, IPNetwork

# ------------------------------------------------------------------------------------------ origins


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a rule or chain declaration was written (1-based line)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def _origin() -> Origin | None:
    return field(default=None, compare=False, repr=False, kw_only=True)


# ------------------------------------------------------------------------------------------ matches


class PortDir(enum.Enum):
    DPORT = "--dport"
    SPORT = "--sport"


class AddrDir(enum.Enum):
    SRC = "--src-type"
    DST = "--dst-type"


class AddrKind(enum.Enum):
    """``-m addrtype`` address types (the kernel's route types)."""

    UNSPEC = "UNSPEC"
    UNICAST = "UNICAST"
    LOCAL = "LOCAL"
    BROADCAST = "BROADCAST"
    ANYCAST = "ANYCAST"
    MULTICAST = "MULTICAST"
    BLACKHOLE = "BLACKHOLE"
    UNREACHABLE = "UNREACHABLE"
    PROHIBIT = "PROHIBIT"
    THROW = "THROW"
    NAT = "NAT"
    XRESOLVE = "XRESOLVE"


class CtState(enum.Enum):
    """``-m conntrack --ctstate`` states; SNAT/DNAT are the virtual "this connection was NATed" states."""

    INVALID = "INVALID"
    NEW = "NEW"
    ESTABLISHED = "ESTABLISHED"
    RELATED = "RELATED"
    UNTRACKED = "UNTRACKED"
    SNAT = "SNAT"
    DNAT = "DNAT"


class RecentMode(enum.Enum):
    SET = "--set"
    RCHECK = "--rcheck"
    UPDATE = "--update"
    REMOVE = "--remove"


@dataclass(frozen=True, slots=True)
class Source:
    network: IPNetwork
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Destination:
    network: IPNetwork
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Protocol:
    name: str  # lower-case: tcp, udp, sctp, icmp, ... or a number
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Port:
    direction: PortDir
    low: int
    high: int
    module: str  # tcp, udp or sctp (the module that matched it)
    negated: bool = False

    def text(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}:{self.high}"

    def contains(self, port: int) -> bool:
        return (self.low <= port <= self.high) != self.negated


@dataclass(frozen=True, slots=True)
class Comment:
    text: str


@dataclass(frozen=True, slots=True)
class MarkMatch:
    """``-m mark --mark value[/mask]``: (packet mark & mask) == value."""

    value: int
    mask: int = 0xFFFFFFFF
    negated: bool = False

    def matches(self, mark: int) -> bool:
        return ((mark & self.mask) == self.value) != self.negated


@dataclass(frozen=True, slots=True)
class AddrType:
    """``-m addrtype --src-type/--dst-type T[,T...]`` (one match per direction)."""

    direction: AddrDir
    types: tuple[AddrKind, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Statistic:
    """``-m statistic --mode random --probability p`` (nth mode is not supported); ``probability`` is the
    value the kernel uses (quantised to multiples of 2^-31)."""

    probability: float
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Recent:
    name: str
    mode: RecentMode
    seconds: int | None = None
    reap: bool = False
    hitcount: int | None = None
    rdest: bool = False  # False: --rsource (the default)
    mask: IPAddress | None = None  # None: all ones (the default)
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Conntrack:
    """``-m conntrack --ctstate S,...`` (or the older ``-m state --state``, which has no SNAT/DNAT)."""

    states: frozenset[CtState]
    negated: bool = False
    module: str = field(default="conntrack", compare=False)


def _iface_matches(pattern: str, name: str) -> bool:
    # iptables: a trailing '+' matches every interface whose name starts with the prefix.
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return name == pattern


@dataclass(frozen=True, slots=True)
class InInterface:
    name: str  # may end in '+' (prefix wildcard)
    negated: bool = False

    def matches(self, iface: str) -> bool:
        return _iface_matches(self.name, iface) != self.negated


@dataclass(frozen=True, slots=True)
class OutInterface:
    name: str
    negated: bool = False

    def matches(self, iface: str) -> bool:
        return _iface_matches(self.name, iface) != self.negated


@dataclass(frozen=True, slots=True)
class Nfacct:
    """``-m nfacct --nfacct-name N``: a counter; always matches."""

    name: str


Match = Union[Source, Destination, Protocol, Port, Comment, MarkMatch, AddrType, Statistic, Recent, Conntrack,
              InInterface, OutInterface, Nfacct]

# The kernel checks these (struct ipt_ip) before any extension match.
BASE_MATCH_ORDER = (Source, Destination, InInterface, OutInterface, Protocol)

# ------------------------------------------------------------------------------------------ targets


@dataclass(frozen=True, slots=True)
class Jump:
    chain: str


@dataclass(frozen=True, slots=True)
class Goto:
    chain: str


@dataclass(frozen=True, slots=True)
class Accept:
    pass


@dataclass(frozen=True, slots=True)
class Drop:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    with_: str | None = None  # --reject-with; None = the default (icmp-port-unreachable / icmp6-...)


@dataclass(frozen=True, slots=True)
class Return:
    pass


@dataclass(frozen=True, slots=True)
class Dnat:
    ip: IPAddress | None
    port: int | None = None

    def text(self) -> str:
        """The ``--to-destination`` value (IPv6 bracketed when a port follows)."""
        ip = "" if self.ip is None else str(self.ip)
        if self.port is None:
            return ip
        return f"[{ip}]:{self.port}" if self.ip is not None and self.ip.version == 6 else f"{ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class Snat:
    ip: IPAddress
    port: int | None = None
    random_fully: bool = False


@dataclass(frozen=True, slots=True)
class Masquerade:
    random_fully: bool = False
    to_ports: tuple[int, int] | None = None
    random: bool = False


class MarkOp(enum.Enum):
    SET_XMARK = "--set-xmark"
    SET_MARK = "--set-mark"
    OR = "--or-mark"
    XOR = "--xor-mark"
    AND = "--and-mark"


@dataclass(frozen=True, slots=True)
class MarkTarget:
    """``-j MARK``: new mark = (mark & ~mask) ^ value, the kernel's single form of every MARK option."""

    value: int
    mask: int
    op: MarkOp = field(default=MarkOp.SET_XMARK, compare=False)

    def apply(self, mark: int) -> int:
        return (mark & ~self.mask & 0xFFFFFFFF) ^ self.value


@dataclass(frozen=True, slots=True)
class Empty:
    """No ``-j``: the rule only counts packets (e.g. kube-proxy's "other traffic ... will be dropped")."""


Target = Union[Jump, Goto, Accept, Drop, Reject, Return, Dnat, Snat, Masquerade, MarkTarget, Empty]

# Verdict targets: the walk of the current table's hook ends when one of these is reached.
TERMINAL_TARGETS = (Accept, Drop, Reject, Dnat, Snat, Masquerade)

# ------------------------------------------------------------------------------------------ structure


class Policy(enum.Enum):
    ACCEPT = "ACCEPT"
    DROP = "DROP"


BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


def is_builtin(table: str, chain: str) -> bool:
    return chain in BUILTIN_CHAINS.get(table, ())


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``-A`` line. Where it was written is kept as ``file`` and ``line`` rather than an ``Origin`` (one
    object fewer per rule of a 500k-line dump); ``origin`` builds that on demand."""

    chain: str
    matches: tuple[Match, ...]
    target: Target
    file: str | None = field(default=None, compare=False, repr=False, kw_only=True)
    line: int = field(default=0, compare=False, repr=False, kw_only=True)
    text: str = field(default="", compare=False, repr=False, kw_only=True)

    @property
    def origin(self) -> Origin | None:
        return Origin(self.file, self.line) if self.file is not None else None

    def first(self, kind: type) -> Match | None:
        """The first match of type ``kind`` (e.g. ``rule.first(Comment)``)."""
        return next((m for m in self.matches if isinstance(m, kind)), None)

    @property
    def comment(self) -> str | None:
        found = self.first(Comment)
        return found.text if found is not None else None


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    policy: Policy | None  # None: user chain, or a built-in declared with '-' (policy left as it was)
    rules: tuple[Rule, ...] = ()
    declared: Origin | None = _origin()  # None: never declared (a built-in that rules were appended to)


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    chains: tuple[Chain, ...] = ()
    deleted: tuple[str, ...] = ()  # chains removed with -X (restore semantics: delete them on merge)
    _index: dict = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {c.name: c for c in self.chains})

    def chain(self, name: str) -> Chain | None:
        return self._index.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._index


@dataclass(frozen=True, slots=True)
class Ruleset:
    tables: tuple[Table, ...] = ()

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)

    def chain(self, table: str, chain: str) -> Chain | None:
        found = self.table(table)
        return found.chain(chain) if found is not None else None

    def rules(self):
        """Every rule, table by table, chain by chain."""
        for table in self.tables:
            for chain in table.chains:
                yield from chain.rules

    def restore(self, other: "Ruleset", *, flush_declared_builtins: bool = True) -> "Ruleset":
        """The state after ``iptables-restore --noflush`` of ``other`` on top of this one.

        A chain declared in ``other`` is replaced by other's rules (its policy too, unless other's is '-');
        chains ``other`` only appends to keep their rules and get other's appended; ``-X`` deletes; chains
        ``other`` does not mention are kept. Real ``iptables-restore --noflush`` does not flush a *built-in*
        chain that is declared: pass ``flush_declared_builtins=False`` for that; the default mirrors
        kube-proxy's fake iptables, which the corpus flows are traced against (spec §11).
        """
        tables = {t.name: t for t in self.tables}
        order = [t.name for t in self.tables]
        for incoming in other.tables:
            if incoming.name not in tables:
                order.append(incoming.name)
            tables[incoming.name] = _restore_table(tables.get(incoming.name), incoming, flush_declared_builtins)
        return Ruleset(tuple(tables[name] for name in order))


def _restore_table(base: Table | None, incoming: Table, flush_builtins: bool) -> Table:
    chains = {c.name: c for c in base.chains} if base is not None else {}
    for chain in incoming.chains:
        old = chains.get(chain.name)
        replace = chain.declared is not None and (flush_builtins or not is_builtin(incoming.name, chain.name))
        if old is None:
            chains[chain.name] = chain
        elif replace:
            chains[chain.name] = Chain(chain.name, chain.policy or old.policy, chain.rules,
                                       declared=chain.declared)
        else:
            chains[chain.name] = Chain(old.name, chain.policy or old.policy, old.rules + chain.rules,
                                       declared=old.declared)
    for name in incoming.deleted:
        chains.pop(name, None)
    return Table(incoming.name, tuple(chains.values()))


# Bulk constructor for parsers: a frozen dataclass' __init__ sets each field through object.__setattr__,
# which is half the cost of building a rule when reading a 200k-line dump. Writing the slots directly
# builds the identical object (no __post_init__ or defaults involved).
_SET_RULE = tuple(Rule.__dict__[name].__set__ for name in ("chain", "matches", "target", "file", "line", "text"))
_SET_ORIGIN = (Origin.__dict__["file"].__set__, Origin.__dict__["line"].__set__)
_SET_CHAIN = tuple(Chain.__dict__[name].__set__ for name in ("name", "policy", "rules", "declared"))


def new_origin(file: str, line: int) -> Origin:
    """``Origin(file, line)``, faster."""
    origin = object.__new__(Origin)
    _SET_ORIGIN[0](origin, file)
    _SET_ORIGIN[1](origin, line)
    return origin


def new_rule(chain: str, matches: tuple, target: Target, file: str, line: int, text: str) -> Rule:
    """``Rule(chain, matches, target, file=file, line=line, text=text)``, faster."""
    rule = object.__new__(Rule)
    set_chain, set_matches, set_target, set_file, set_line, set_text = _SET_RULE
    set_chain(rule, chain)
    set_matches(rule, matches)
    set_target(rule, target)
    set_file(rule, file)
    set_line(rule, line)
    set_text(rule, text)
    return rule


def new_chain(name: str, policy: Policy | None, rules: tuple[Rule, ...], declared: Origin | None) -> Chain:
    """``Chain(name, policy, rules, declared=declared)``, faster (see ``new_rule``)."""
    chain = object.__new__(Chain)
    set_name, set_policy, set_rules, set_declared = _SET_CHAIN
    set_name(chain, name)
    set_policy(chain, policy)
    set_rules(chain, rules)
    set_declared(chain, declared)
    return chain
