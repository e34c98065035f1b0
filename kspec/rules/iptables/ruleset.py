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
  ``--set-xmark 0x4000/0x4000`` are the same rule); the spelling is kept in ``MarkTarget.op`` for display;
  likewise CONNMARK, ``--syn`` (the tcp flags it stands for), ICMP names (type and code range), limit rates
  (the kernel's period), LOG levels (numbers), ``NOTRACK`` (``CT --notrack``), multiport lists (sorted
  ranges), single-value NAT ranges (``a-a:p-p`` is ``a:p``);
* a module whose options the kernel evaluates together (conntrack, physdev, owner, set, limit) is one match;
  addrtype's source and destination tests are two (the kernel ANDs them), source first;
* a module or target kspec does not model is ``Opaque`` / ``OpaqueTarget``: its words as written.
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


class LimitIface(enum.Enum):
    IN = "--limit-iface-in"
    OUT = "--limit-iface-out"


@dataclass(frozen=True, slots=True)
class AddrType:
    """``-m addrtype --src-type/--dst-type T[,T...] [--limit-iface-in|--limit-iface-out]``: one match per
    direction (the kernel ANDs an instance's source and destination tests, so they are two matches; the
    parser emits the source one first, as iptables-save prints them).

    Matches iff the route type of the packet's source (destination) address is one of ``types``, XOR
    ``negated``. The type is the kernel's: IPv4 looks the address up in the *local* routing table only —
    0.0.0.0/8 and 255.255.255.255 are BROADCAST, 224/4 MULTICAST, an address with a local-table route has
    that route's type (LOCAL for the host's own addresses and 127/8, BROADCAST for subnet broadcasts), any
    other address UNICAST. IPv6 is another function: UNSPEC, UNICAST and MULTICAST are classes of the address
    itself (every one listed must hold), LOCAL, ANYCAST and UNREACHABLE come from a full route lookup (one
    listed must hold); see ``verifier.matches.route_type6``. ``limit_iface`` (shared by both matches of one
    instance; None: not given): the
    lookup is for the packet's input (``IN``: PREROUTING, INPUT, FORWARD only) or output interface (``OUT``:
    OUTPUT, FORWARD, POSTROUTING only): IPv4 gives a local-table route's type only if the route's device is
    that interface, otherwise UNICAST — e.g. ``--dst-type LOCAL --limit-iface-in`` is "addressed to an
    address held by the interface the packet came in on"; IPv6 restricts its route lookup to that device.
    Where the packet has no such interface (a user chain reached from OUTPUT, say: nf_tables accepts the
    option there) the lookup is as without it.
    Same for the first and later packets of a connection (a per-packet test)."""

    direction: AddrDir
    types: tuple[AddrKind, ...]
    negated: bool = False
    limit_iface: LimitIface | None = None


@dataclass(frozen=True, slots=True)
class Statistic:
    """``-m statistic --mode random --probability p`` (nth mode is ``StatisticNth``); ``probability`` is the
    value the kernel uses (quantised to multiples of 2^-31). Each packet that reaches it matches with that
    probability, independently of every other packet, XOR ``negated``."""

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


class CtStatus(enum.Enum):
    """``--ctstatus`` bits (NONE, the empty set, is not a member: ``--ctstatus NONE`` is ``frozenset()``)."""

    EXPECTED = "EXPECTED"
    SEEN_REPLY = "SEEN_REPLY"
    ASSURED = "ASSURED"
    CONFIRMED = "CONFIRMED"


class CtDir(enum.Enum):
    ORIGINAL = "ORIGINAL"
    REPLY = "REPLY"


@dataclass(frozen=True, slots=True)
class CtAddr:
    """A ``--ctorigsrc/--ctorigdst/--ctreplsrc/--ctrepldst`` test: the tuple's address is in ``network``."""

    network: IPNetwork
    negated: bool = False

    def matches(self, address: IPAddress) -> bool:
        return (address in self.network) != self.negated


@dataclass(frozen=True, slots=True)
class CtRange:
    """A ``--ct*port`` (tuple port) or ``--ctexpire`` (seconds left) test: the value is in [low, high]."""

    low: int
    high: int
    negated: bool = False

    def matches(self, value: int) -> bool:
        return (self.low <= value <= self.high) != self.negated


@dataclass(frozen=True, slots=True)
class CtProto:
    """``--ctproto P``: the connection's layer-4 protocol number is ``number`` (names are stored as numbers)."""

    number: int
    negated: bool = False


@dataclass(frozen=True, slots=True)
class CtStatusMatch:
    """``--ctstatus S,...``: the connection's status has at least one of ``statuses``."""

    statuses: frozenset[CtStatus]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Conntrack:
    """``-m conntrack`` (or the older ``-m state --state``, which has no SNAT/DNAT): one object per module
    instance, because the kernel (xt_conntrack's conntrack_mt) evaluates its options together, in this order:

    1. ``states`` (``--ctstate``; None: not given). The packet's state: NEW for a packet that starts a
       connection (the first packet), ESTABLISHED once the connection has seen packets both ways, RELATED for
       a packet of an expected connection or an ICMP error about a known one, INVALID when conntrack could not
       track it, UNTRACKED after ``CT --notrack``; plus the virtual SNAT / DNAT states when the connection's
       source / destination is NATed (its reply tuple is not the inverse of its original tuple). The test is
       "the packet's states meet ``states``" XOR ``negated``; if it fails, the match fails.
    2. A packet without a connection (INVALID or UNTRACKED) then matches iff ``states`` was given: every other
       option is skipped for it, negated or not (so ``-m conntrack ! --ctorigdst X`` alone never matches it).
    3. Otherwise every option given must hold, each XOR its own ``negated``:
       ``direction`` (``--ctdir``, not negatable): the packet travels in the connection's ORIGINAL direction
       (that of its first packet) or REPLY; ``orig_src/orig_dst`` (``--ctorigsrc/--ctorigdst``): the original
       tuple's source / destination address, i.e. the first packet's addresses before any NAT;
       ``repl_src/repl_dst`` (``--ctreplsrc/--ctrepldst``): the reply tuple's, i.e. the original destination
       after DNAT / the original source after SNAT (for the first packet: as NATed so far — the reply tuple is
       inverted from the original and rewritten by each NAT decision, so before DNAT repl_src is the
       original destination); ``orig_src_port`` ... ``repl_dst_port``: the tuple's port in [low, high] (for
       ICMP the kernel keeps the echo id as the source 'port' and type/code as the destination's; other
       protocols without ports have 0); ``proto`` (``--ctproto``): the connection's layer-4 protocol number;
       ``status`` (``--ctstatus``): the connection has one of the status bits (the first packet has none of
       them: a connection is CONFIRMED when its first packet leaves POSTROUTING or INPUT, SEEN_REPLY after a
       reply, ASSURED once it is established); ``expire`` (``--ctexpire``): its remaining timeout in seconds.
    """

    states: frozenset[CtState] | None
    negated: bool = False
    module: str = field(default="conntrack", compare=False)
    direction: CtDir | None = field(default=None, kw_only=True)
    orig_src: CtAddr | None = field(default=None, kw_only=True)
    orig_dst: CtAddr | None = field(default=None, kw_only=True)
    repl_src: CtAddr | None = field(default=None, kw_only=True)
    repl_dst: CtAddr | None = field(default=None, kw_only=True)
    orig_src_port: CtRange | None = field(default=None, kw_only=True)
    orig_dst_port: CtRange | None = field(default=None, kw_only=True)
    repl_src_port: CtRange | None = field(default=None, kw_only=True)
    repl_dst_port: CtRange | None = field(default=None, kw_only=True)
    proto: CtProto | None = field(default=None, kw_only=True)
    status: CtStatusMatch | None = field(default=None, kw_only=True)
    expire: CtRange | None = field(default=None, kw_only=True)

    @property
    def state_only(self) -> bool:
        """Only ``--ctstate``/``--state`` given: the form the engines have always handled."""
        return self.states is not None and self == Conntrack(self.states, self.negated)


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


# -- extension matches beyond kube-proxy's. Unless a docstring says otherwise a match is a per-packet test:
# the same for the first packet of a connection and for every later one.

# TCP header flag bits (byte 13), as libxt_tcp names them.
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
TCP_FLAG_NAMES = {"FIN": TCP_FIN, "SYN": TCP_SYN, "RST": TCP_RST, "PSH": TCP_PSH, "ACK": TCP_ACK, "URG": TCP_URG,
                  "ALL": 0x3F, "NONE": 0}


class MultiPortDir(enum.Enum):
    SRC = "--sports"  # also spelled --source-ports
    DST = "--dports"  # also spelled --destination-ports
    ANY = "--ports"


@dataclass(frozen=True, slots=True)
class MultiPort:
    """``-m multiport --sports/--dports/--ports P[,P:Q...]`` (up to 15 ports, a range counting as two).

    ``ranges``: inclusive (low, high) pairs, a single port as (p, p), sorted and without duplicates (the
    kernel tries them in written order, which cannot change the answer). Matches a packet whose source port
    (SRC), destination port (DST), or source *or* destination port (ANY) lies in one of the ranges, XOR
    ``negated`` (``! --ports``: neither port is in any range). The kernel refuses the rule unless it has
    ``-p tcp|udp|udplite|sctp|dccp`` (not negated); a non-first fragment never matches, negated or not."""

    direction: MultiPortDir
    ranges: tuple[tuple[int, int], ...]
    negated: bool = False

    def matches(self, sport: int, dport: int) -> bool:
        ports = (sport,) if self.direction is MultiPortDir.SRC else \
            (dport,) if self.direction is MultiPortDir.DST else (sport, dport)
        hit = any(low <= port <= high for port in ports for low, high in self.ranges)
        return hit != self.negated


@dataclass(frozen=True, slots=True)
class Icmp:
    """``-m icmp --icmp-type T[/C]`` or a name (``echo-request``, ``port-unreachable``, ``any``), stored as the
    kernel stores it: ``type``, and the code range [code_min, code_max] (0-255 when no code was given, e.g.
    ``echo-request`` = 8 with codes 0-255, ``port-unreachable`` = 3/3).

    Matches an ICMP packet whose type is ``type`` and code is in the range, XOR ``negated``; type 255 (also
    what ``any`` is) matches every ICMP packet whatever the code. Only ICMP packets: the kernel refuses the
    rule unless it has ``-p icmp``; a non-first fragment never matches, negated or not."""

    type: int
    code_min: int = 0
    code_max: int = 0xFF
    negated: bool = False

    def matches(self, type_: int, code: int) -> bool:
        hit = self.type == 0xFF or (type_ == self.type and self.code_min <= code <= self.code_max)
        return hit != self.negated


@dataclass(frozen=True, slots=True)
class Icmp6:
    """``-m icmp6 --icmpv6-type T[/C]`` or a name (``echo-request`` = 128, ``neighbour-solicitation`` = 135):
    like ``Icmp`` for ICMPv6 packets (``-p ipv6-icmp``), except that no type is a wildcard: 255 is type 255."""

    type: int
    code_min: int = 0
    code_max: int = 0xFF
    negated: bool = False

    def matches(self, type_: int, code: int) -> bool:
        return (type_ == self.type and self.code_min <= code <= self.code_max) != self.negated


@dataclass(frozen=True, slots=True)
class TcpFlags:
    """``-m tcp --tcp-flags MASK COMP`` (``--syn`` is ``FIN,SYN,RST,ACK SYN``): matches a TCP packet whose
    flags byte ANDed with ``mask`` equals ``comp`` (bits: ``TCP_FIN`` ... ``TCP_URG``; ALL is 0x3F), XOR
    ``negated``. ``--syn`` matches a packet with SYN set and ACK, RST and FIN clear: the first packet of a TCP
    connection (and its retransmissions), no other packet of a normal connection (they all carry ACK). Only
    TCP (``-p tcp``); a non-first fragment never matches, negated or not."""

    mask: int
    comp: int
    negated: bool = False

    def matches(self, flags: int) -> bool:
        return ((flags & self.mask) == self.comp) != self.negated


@dataclass(frozen=True, slots=True)
class TcpOption:
    """``-m tcp --tcp-option N``: the TCP header carries an option of kind ``N`` (0-255), XOR ``negated``.
    Only TCP; a non-first fragment never matches, negated or not."""

    kind: int
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Limit:
    """``-m limit --limit R[/second|minute|hour|day] --limit-burst B`` (defaults 3/hour, 5): a token bucket
    shared by every packet that reaches this match, in this rule only. It holds up to ``burst`` tokens and
    starts full; one token is added every ``avg`` / 10000 seconds; a packet matches iff it takes a token. So
    the first ``burst`` packets match, then about one per ``avg``. ``avg`` is the kernel's value (10000 x
    seconds per packet, integer division: ``3/min`` and ``180/hour`` are both 200000). Depends on timing
    and on every earlier packet: to a verifier, a choice either way. Not negatable."""

    avg: int
    burst: int = 5

    @property
    def per_second(self) -> float:
        return 10000 / self.avg


@dataclass(frozen=True, slots=True)
class HashLimit:
    """``-m hashlimit``: ``Limit`` with one bucket per flow key (``mode``: any of srcip, srcport, dstip,
    dstport; empty: one bucket for all), in the kernel table ``name`` (shared by every rule using that
    name). ``above`` False (``--hashlimit-upto``): a packet matches while its bucket has tokens; True
    (``--hashlimit-above``): it matches once its bucket is empty. ``rate`` as written with the unit spelled
    out (``5/second``; byte rates such as ``1mb/s`` lower-cased), ``burst`` (None: the default, 5), and the
    other options (``--hashlimit-srcmask``, ``--hashlimit-htable-*`` ...) as sorted (option, value) pairs.
    To a verifier, a choice either way."""

    name: str
    above: bool
    rate: str
    burst: int | None = None
    mode: tuple[str, ...] = ()
    options: tuple[tuple[str, str | None], ...] = ()


class SetDir(enum.Enum):
    SRC = "src"
    DST = "dst"


@dataclass(frozen=True, slots=True)
class SetCounter:
    """A ``--packets-*`` / ``--bytes-*`` test on the counters of the matching set element: ``op`` is eq, ne
    (``! --packets-eq``), lt or gt."""

    op: str
    value: int


@dataclass(frozen=True, slots=True)
class SetMatch:
    """``-m set [!] --match-set NAME FLAGS``: the packet's tuple is an element of the ipset ``name``.

    ``flags`` (``src,dst,...``, 1-6 of them): for the set's k-th dimension, take the packet's source (SRC)
    or destination (DST) value of that dimension's kind: address, port (for TCP/UDP/SCTP/UDPLITE the port;
    for ICMP/ICMPv6 type<<8|code; other protocols 0, and the element's protocol must be the packet's), or
    interface (SRC: input interface, DST: output). The packet is not a member of a set with more
    dimensions than flags, or of the other family. Membership is ``kspec.rules.iptables.ipset_save.IpSet.test``
    (hash:net-like types: the most specific containing entry decides, a ``nomatch`` one meaning not a member;
    list:set: any member set).
    The result is XOR ``negated``. ``return_nomatch``: for set types with nomatch entries, the answer is
    reversed for found entries: a ``nomatch`` entry matches, a plain entry does not, no entry does not.
    ``update_counters`` / ``update_subcounters`` (False for ``! --update-counters`` ...) only decide whether
    the element's counters count this packet; ``packets`` / ``bytes``: the element must also satisfy that
    counter test (the set needs ``counters``), which depends on earlier packets: a choice to a verifier.
    Same for the first and later packets (sets are not tied to connections), as long as the set is not
    changed meanwhile (``SET`` targets, timeouts)."""

    name: str
    flags: tuple[SetDir, ...]
    negated: bool = False
    return_nomatch: bool = False
    update_counters: bool = True
    update_subcounters: bool = True
    packets: SetCounter | None = None
    bytes: SetCounter | None = None


@dataclass(frozen=True, slots=True)
class Physdev:
    """``-m physdev`` (bridge ports, with br_netfilter): one object per module instance, evaluated together.

    Fields: ``physdev_in`` / ``physdev_out`` (interface names, a trailing '+' a prefix wildcard; None: not
    given) with their ``in_negated`` / ``out_negated``; ``is_in`` / ``is_out`` / ``is_bridged``: None not
    given, True ``--physdev-is-in`` ..., False ``! --physdev-is-in`` ....

    A packet that did not come through a bridge, or whose bridge path is not known yet (OUTPUT), matches iff
    every option given is negated. Otherwise, in order: ``is_bridged``: the packet is being bridged out
    through a bridge port (it has a bridge output port); ``is_in`` / ``is_out``: it entered through / leaves
    through a bridge port; ``physdev_in``: when it has a bridge input port, the port's name matches (a
    locally generated packet has none, and passes this test); ``physdev_out``: it needs a bridge output port
    (none: no match, negated or not) whose name matches. Each test XOR its own negation. The kernel refuses
    ``physdev_out`` / ``is_out`` in OUTPUT unless ``is_bridged`` is True."""

    physdev_in: str | None = None
    in_negated: bool = False
    physdev_out: str | None = None
    out_negated: bool = False
    is_in: bool | None = None
    is_out: bool | None = None
    is_bridged: bool | None = None


class RangeDir(enum.Enum):
    SRC = "--src-range"
    DST = "--dst-range"


@dataclass(frozen=True, slots=True)
class IpRange:
    """``-m iprange --src-range/--dst-range A[-B]`` (one match per option; the kernel ANDs them): the
    packet's source (destination) address is in [low, high] (inclusive), XOR ``negated``."""

    direction: RangeDir
    low: IPAddress
    high: IPAddress
    negated: bool = False

    def contains(self, address: IPAddress) -> bool:
        return (address.version == self.low.version and self.low <= address <= self.high) != self.negated


@dataclass(frozen=True, slots=True)
class ConnmarkMatch:
    """``-m connmark --mark V[/M]``: the packet's connection has (ctmark & mask) == value, XOR ``negated``. A
    packet without a connection (INVALID, UNTRACKED) never matches, negated or not. The first packet of a
    connection sees a new connection's mark: 0, unless a CONNMARK rule earlier on its path set it."""

    value: int
    mask: int = 0xFFFFFFFF
    negated: bool = False

    def matches(self, ctmark: int) -> bool:
        return ((ctmark & self.mask) == self.value) != self.negated


@dataclass(frozen=True, slots=True)
class Owner:
    """``-m owner`` (OUTPUT and POSTROUTING only): the local socket that sent the packet. One object per
    module instance. ``uid`` / ``gid``: inclusive id ranges (``--uid-owner 1000`` is (1000, 1000); names are
    not accepted), each with its ``*_negated``; ``suppl_groups``: ``--gid-owner`` also accepts the sender's
    supplementary groups; ``socket_exists``: None not given, True ``--socket-exists``, False ``!
    --socket-exists``.

    A packet with no local socket (forwarded, or some kernel-generated replies) matches iff every option given
    is negated. A packet from a socket: ``! --socket-exists`` fails; a socket without a file (e.g. a
    time-wait reply) matches iff uid and gid are each absent or negated; otherwise the socket's file owner's
    fsuid must be in ``uid`` and its fsgid (or a supplementary group) in ``gid``, each XOR its negation."""

    uid: tuple[int, int] | None = None
    uid_negated: bool = False
    gid: tuple[int, int] | None = None
    gid_negated: bool = False
    socket_exists: bool | None = None
    suppl_groups: bool = False


@dataclass(frozen=True, slots=True)
class StatisticNth:
    """``-m statistic --mode nth --every N [--packet P]``: a counter of this rule (shared by all packets and
    CPUs) starts at P (0-N-1) and counts the packets reaching the match modulo N; the packet that brings it
    back to 0 matches: the (N-P)-th, then every N-th one. XOR ``negated``. To a verifier, a choice."""

    every: int
    packet: int = 0
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Opaque:
    """A match module kspec does not model (``-m rpfilter --invert``, ``-m pkttype --pkt-type unicast``...):
    ``module`` and its option words as written (re-quoted when they hold blanks). Its answer is unknown:
    the engines report the paths that reach it as unknown, naming it. ``parse_iptables_save(strict=True)``
    refuses it instead."""

    module: str
    text: str


Match = Union[Source, Destination, Protocol, Port, Comment, MarkMatch, AddrType, Statistic, Recent, Conntrack,
              InInterface, OutInterface, Nfacct, MultiPort, Icmp, Icmp6, TcpFlags, TcpOption, Limit, HashLimit,
              SetMatch, Physdev, IpRange, ConnmarkMatch, Owner, StatisticNth, Opaque]

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
    """``-j DNAT --to-destination A[-B][:P[-Q]]`` (nat PREROUTING/OUTPUT): ends the walk of the nat chains
    for the packet. Only the first packet of a connection traverses the nat table: the kernel picks the new
    destination address in [ip, ip_high] (``ip_high`` None: just ``ip``; ``ip`` None: keep the address) and
    port in [port, port_high] (None: keep the port; a single port: ``port_high`` None), records the
    translation in the connection, and applies it to every later packet (and the inverse to replies). Within
    a range the choice is the kernel's: a hash of the addresses (of the source only with ``persistent``) for
    the address; the original port if in the range, else the range's first (``random``: a random one). See
    ``verifier.natpick``."""

    ip: IPAddress | None
    port: int | None = None
    ip_high: IPAddress | None = field(default=None, kw_only=True)
    port_high: int | None = field(default=None, kw_only=True)
    random: bool = field(default=False, kw_only=True)
    persistent: bool = field(default=False, kw_only=True)

    def text(self) -> str:
        """The ``--to-destination`` value (IPv6 bracketed when a port follows)."""
        return _nat_text(self.ip, self.ip_high, self.port, self.port_high)


def _nat_text(ip: IPAddress | None, ip_high: IPAddress | None, port: int | None, port_high: int | None) -> str:
    addresses = ("" if ip is None else str(ip)) + ("" if ip_high is None else f"-{ip_high}")
    if port is None:
        return addresses
    ports = f"{port}" if port_high is None else f"{port}-{port_high}"
    return f"[{addresses}]:{ports}" if ip is not None and ip.version == 6 else f"{addresses}:{ports}"


@dataclass(frozen=True, slots=True)
class Snat:
    """``-j SNAT --to-source A[-B][:P[-Q]]`` (nat INPUT/POSTROUTING): like ``Dnat`` for the source address and
    port, on the first packet of a connection; the port is kept when it lies in the range (or none is given)
    and otherwise, or with ``random_fully`` / ``random``, picked at random (``verifier.natpick``)."""

    ip: IPAddress
    port: int | None = None
    random_fully: bool = False
    ip_high: IPAddress | None = field(default=None, kw_only=True)
    port_high: int | None = field(default=None, kw_only=True)
    random: bool = field(default=False, kw_only=True)
    persistent: bool = field(default=False, kw_only=True)

    def text(self) -> str:
        """The ``--to-source`` value."""
        return _nat_text(self.ip, self.ip_high, self.port, self.port_high)


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


# -- extension targets beyond kube-proxy's. Unless a docstring says otherwise a target is not a verdict: the
# packet goes on to the next rule of the chain, unchanged as far as matching and routing are concerned.


@dataclass(frozen=True, slots=True)
class Redirect:
    """``-j REDIRECT [--to-ports P[-Q]] [--random]`` (nat PREROUTING/OUTPUT): DNAT to the host itself — to
    the first address of the interface the packet came in on (no address there: the packet is dropped), or
    127.0.0.1 / ::1 for a locally generated packet (OUTPUT) — and to a port of ``to_ports`` (None: keep the
    port). Otherwise like ``Dnat``: ends the nat walk, first packet of a connection only, the translation
    kept for the connection."""

    to_ports: tuple[int, int] | None = None
    random: bool = False


@dataclass(frozen=True, slots=True)
class Log:
    """``-j LOG``: writes a kernel log line about the packet and goes on to the next rule. ``level`` is the
    syslog level as a number (names such as ``warning`` are stored as numbers; default 4), ``prefix`` at most
    29 characters, the flags add fields to the line."""

    level: int = 4
    prefix: str = ""
    tcp_sequence: bool = False
    tcp_options: bool = False
    ip_options: bool = False
    uid: bool = False
    macdecode: bool = False


@dataclass(frozen=True, slots=True)
class Nflog:
    """``-j NFLOG``: hands the packet to nfnetlink_log group ``group`` (default 0) and goes on to the next
    rule. ``size``: ``--nflog-size`` (bytes copied; None: whole packet), ``range``: the obsolete
    ``--nflog-range`` (ignored by the kernel), ``threshold``: packets queued before sending (default 1)."""

    group: int = 0
    prefix: str = ""
    size: int | None = None
    range: int | None = None
    threshold: int = 1


@dataclass(frozen=True, slots=True)
class TcpMss:
    """``-j TCPMSS --set-mss N`` (``mss`` N) or ``--clamp-mss-to-pmtu`` (``mss`` None: path MTU minus 40 for
    IPv4, 60 for IPv6): rewrites the MSS option of a TCP SYN packet (the kernel refuses the rule unless it
    matches only SYNs; it only ever lowers the MSS) and goes on to the next rule. No effect on where packets
    go."""

    mss: int | None


@dataclass(frozen=True, slots=True)
class CtTarget:
    """``-j CT`` (raw table) and ``-j NOTRACK`` (the same as ``CT --notrack``; ``spelling`` keeps which, for
    display). Goes on to the next rule. Applies to the packet being processed, before conntrack looks at it:

    * ``notrack``: the packet gets no connection: conntrack matches see the state UNTRACKED, no NAT is
      applied to it (the nat table is not traversed), and it creates no connection, so a later packet of the
      same flow is again NEW unless it is NOTRACKed too. The other options are then ignored.
    * ``zone`` (``--zone``/``--zone-orig``/``--zone-reply``; ``zone_dir`` None both directions, else
      ``ORIGINAL``/``REPLY``; ``zone_from_mark``: the zone is the packet mark): the conntrack zone of the
      connection this packet creates — connections in different zones are separate even for equal tuples.
    * ``helper``, ``ctevents``, ``expevents``, ``timeout``: attached to the new connection (a helper can make
      later connections RELATED); no effect on this packet's path.
    Only a packet that creates a connection (the first) is affected by zone/helper/events/timeout."""

    notrack: bool = False
    zone: int | None = None
    zone_dir: CtDir | None = None
    zone_from_mark: bool = False
    helper: str | None = None
    ctevents: frozenset[str] = frozenset()
    expevents: frozenset[str] = frozenset()
    timeout: str | None = None
    spelling: str = field(default="CT", compare=False)


class ConnmarkMode(enum.Enum):
    SET = "set"
    SAVE = "--save-mark"
    RESTORE = "--restore-mark"


class ConnmarkOp(enum.Enum):
    """How a CONNMARK SET was spelled (display only)."""

    SET_XMARK = "--set-xmark"
    SET_MARK = "--set-mark"
    AND = "--and-mark"
    OR = "--or-mark"
    XOR = "--xor-mark"
    SAVE = "--save-mark"
    RESTORE = "--restore-mark"


@dataclass(frozen=True, slots=True)
class ConnmarkTarget:
    """``-j CONNMARK``, in the kernel's form (every spelling of a mode reduces to these fields; ``op`` keeps the
    spelling for display). Goes on to the next rule; a packet without a connection is left alone.

    * SET (``--set-xmark V/M``; ``--set-mark V/M`` is mask M|V; ``--and-mark B`` is value 0, mask ~B;
      ``--or-mark B`` value B, mask B; ``--xor-mark B`` value B, mask 0): ctmark = (ctmark & ~ctmask) ^ value.
    * SAVE (``--save-mark [--nfmask N] [--ctmask C]``, both default 0xffffffff; the old ``--mask M`` sets
      both): ctmark = (ctmark & ~ctmask) ^ (packet mark & nfmask).
    * RESTORE (``--restore-mark`` with the same masks): packet mark = (mark & ~nfmask) ^ (ctmark & ctmask).
    ``shift`` (revision 2's ``--left-shift-mark`` positive, ``--right-shift-mark`` negative, 0-31 bits): SET
    shifts its result; SAVE shifts (mark & nfmask) and RESTORE (ctmark & ctmask) before combining. SET stores
    nfmask 0, SAVE/RESTORE value 0 (as the kernel's struct holds them). The connection's mark lives as long as
    the connection: later packets of it see it (``ConnmarkMatch``, RESTORE)."""

    mode: ConnmarkMode
    value: int = 0
    ctmask: int = 0xFFFFFFFF
    nfmask: int = 0
    shift: int = 0
    op: ConnmarkOp = field(default=ConnmarkOp.SET_XMARK, compare=False)


@dataclass(frozen=True, slots=True)
class OpaqueTarget:
    """A target kspec does not model (``TRACE``, ``NFQUEUE``, ``TPROXY``...): ``name`` and its option words
    as written. What it does to the packet is unknown: the engines report the paths that reach it as unknown,
    naming it. ``parse_iptables_save(strict=True)`` refuses it instead."""

    name: str
    text: str


Target = Union[Jump, Goto, Accept, Drop, Reject, Return, Dnat, Snat, Masquerade, MarkTarget, Empty, Redirect, Log,
               Nflog, TcpMss, CtTarget, ConnmarkTarget, OpaqueTarget]

# Verdict targets: the walk of the current table's hook ends when one of these is reached.
TERMINAL_TARGETS = (Accept, Drop, Reject, Dnat, Snat, Masquerade, Redirect)

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

    def restore(self, other: Ruleset, *, flush_declared_builtins: bool = True) -> Ruleset:
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
_SET_DNAT = tuple(Dnat.__dict__[name].__set__ for name in ("ip", "port", "ip_high", "port_high", "random",
                                                           "persistent"))


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


def new_dnat(ip: IPAddress | None, port: int | None) -> Dnat:
    """``Dnat(ip, port)``, faster: a dump has one per endpoint (see ``new_rule``)."""
    dnat = object.__new__(Dnat)
    set_ip, set_port, set_ip_high, set_port_high, set_random, set_persistent = _SET_DNAT
    set_ip(dnat, ip)
    set_port(dnat, port)
    set_ip_high(dnat, None)
    set_port_high(dnat, None)
    set_random(dnat, False)
    set_persistent(dnat, False)
    return dnat


def save_text(ruleset: Ruleset) -> str:
    """The ruleset as ``iptables-save`` prints it (each rule's own line): what a node holding it would dump."""
    lines = []
    for table in ruleset.tables:
        lines.append(f"*{table.name}")
        for chain in table.chains:
            policy = chain.policy.value if chain.policy is not None and is_builtin(table.name, chain.name) else "-"
            lines.append(f":{chain.name} {policy} [0:0]")
        for chain in table.chains:
            lines += [_as_appended(rule) for rule in chain.rules]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _as_appended(rule: Rule) -> str:
    """A rule's line as ``-A CHAIN ...`` (an ``-I CHAIN [N]`` line is in its place already)."""
    words = rule.text.split(None, 3) if rule.text else []
    if len(words) >= 3 and words[0] == "-I":
        rest = words[2:] if not words[2].isdigit() else words[3:]
        return " ".join(["-A", rule.chain, *rest])
    return rule.text

