"""``ipset save`` output (and the same lines as ``ipset restore`` input) -> frozen ipset IR, with the kernel's
membership test for ``-m set --match-set NAME FLAGS`` (``kspec.rules.iptables.ruleset.SetMatch``).

Calico, kube-router, Weave and firewalld keep addresses in ipsets and match them from iptables; a node's
rules only mean something together with ``ipset save`` of the same node. Lines::

    create NAME TYPE [family inet|inet6] [hashsize N] [maxelem N] [timeout N] [netmask CIDR] [range R] ...
    add NAME ENTRY [timeout N] [nomatch] [packets N] [bytes N] [comment "..."] [skbmark M] ...

Types read: hash:ip, hash:net, hash:ip,port, hash:net,port, hash:ip,port,ip, hash:ip,port,net, hash:net,iface,
bitmap:ip, bitmap:port, list:set. Another type is kept as an opaque set (its entries as written) whose test
answers None, "unknown", unless ``strict=True`` refuses it. An entry's parts are separated by commas, one per
dimension: an address (``10.0.0.1``, a range ``a-b`` or a CIDR, which add every address, or for a net
dimension the CIDRs that cover the range as ipset does), a port (``[proto:]port[-port]``, tcp when no protocol
is given, ``icmp:type/code`` or an ICMP name, ``proto:0`` for protocols without ports), an interface
(``[physdev:]name``) or, for list:set, a set name. ``timeout`` values are ignored (a saved entry is present),
counters, comments and skb* values too. Problems are reported as ``file:line:column`` errors, all at once.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from kspec.diagnostics import Diagnostic, KspecError
from kspec.ir import IPAddress, IPNetwork, Span
from kspec.rules.iptables import ruleset as rs
from kspec.rules.iptables.iptables_save import PROTOCOLS
from kspec.rules.iptables.words import LineError as _LineError
from kspec.rules.iptables.words import columns as _columns
from kspec.rules.iptables.words import tokenize

__all__ = ["AddressRange", "IpSet", "IpSets", "SetEntry", "SetIface", "SetPacket", "SetPort", "parse_ipset_save",
           "parse_ipset_save_file"]

_MAX_ERRORS = 50

# The dimensions of each type, in element order: ip (an address), net (a network; the most specific entry
# containing the packet decides, and may be 'nomatch'), port, iface, set (list:set's members).
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "hash:ip": ("ip",), "hash:net": ("net",), "hash:ip,port": ("ip", "port"), "hash:net,port": ("net", "port"),
    "hash:ip,port,ip": ("ip", "port", "ip"), "hash:ip,port,net": ("ip", "port", "net"),
    "hash:net,iface": ("net", "iface"), "bitmap:ip": ("ip",), "bitmap:port": ("port",), "list:set": ("set",),
}

# ------------------------------------------------------------------------------------------ IR


@dataclass(frozen=True, slots=True)
class AddressRange:
    """An ip dimension's value: the addresses low..high (inclusive; one address: low == high), already masked
    to the set's ``netmask`` when it has one."""

    low: IPAddress
    high: IPAddress

    def __contains__(self, address: IPAddress) -> bool:
        return address.version == self.low.version and self.low <= address <= self.high


@dataclass(frozen=True, slots=True)
class SetPort:
    """A port dimension's value: IP protocol number and port range. ICMP / ICMPv6 elements hold
    type << 8 | code as the port (as the kernel does); a protocol without ports has port 0. bitmap:port's
    have ``proto`` None (any of TCP and UDP)."""

    proto: int | None
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class SetIface:
    """An iface dimension's value. A ``physdev:`` element names a bridge port; the kernel's lookup from an
    iptables rule never asks for bridge ports, so such elements never match a packet there."""

    name: str
    physdev: bool = False


SetValue = Union[AddressRange, IPNetwork, SetPort, SetIface, str]


@dataclass(frozen=True, slots=True)
class SetEntry:
    """One element: a value per dimension (``IpSet.dimensions``); ``nomatch`` (net types only): an exception,
    see ``IpSet.test``. An opaque set's entries hold the entry text as their only value."""

    values: tuple[SetValue, ...]
    nomatch: bool = False
    line: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SetPacket:
    """What a set lookup reads of a packet. ``proto`` is the IP protocol number; ports are read for TCP (6),
    UDP (17), SCTP (132) and UDPLITE (136); ICMP (1) and ICMPv6 (58) give type << 8 | code instead; any other
    protocol gives port 0. ``in_iface`` / ``out_iface``: "" when the packet has none (e.g. OUTPUT has no
    input interface)."""

    src: IPAddress
    dst: IPAddress
    proto: int = 6
    sport: int = 0
    dport: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    in_iface: str = ""
    out_iface: str = ""

    def port(self, source: bool) -> int:
        if self.proto in (6, 17, 132, 136):
            return self.sport if source else self.dport
        if self.proto in (1, 58):
            return self.icmp_type << 8 | self.icmp_code
        return 0


@dataclass(frozen=True, slots=True)
class IpSet:
    """One set. ``family`` 4 or 6 (None: bitmap:port and list:set, which serve both); ``netmask`` (hash:ip,
    bitmap:ip): entries and looked-up addresses are masked to that prefix length; ``range`` (bitmap types):
    the addresses (as ints) or ports the set covers; ``members``: list:set's member sets, in order;
    ``options``: the other create options as written (hashsize, maxelem, timeout, counters, comment...)."""

    name: str
    type: str
    family: int | None
    entries: tuple[SetEntry, ...] = ()
    netmask: int | None = None
    range: tuple[int, int] | None = None
    members: tuple[IpSet, ...] = ()
    options: tuple[tuple[str, str | None], ...] = ()
    line: int = field(default=0, compare=False, repr=False)

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The kinds of the element's parts (``DIMENSIONS``); () for a type kspec does not model."""
        return DIMENSIONS.get(self.type, ())

    def test(self, flags: Iterable[rs.SetDir | str], packet: SetPacket, *,
             return_nomatch: bool = False) -> bool | None:
        """Does ``-m set --match-set NAME FLAGS`` (not negated) match ``packet``? None: unknown (a set type
        kspec does not model, or a list:set whose answer depends on one).

        As the kernel answers: the k-th flag says which of the packet's values (SRC or DST; for an interface
        the input or output one) the k-th dimension reads. Fewer flags than dimensions, or a set of the other
        family, never match. bitmap:port only looks at TCP and UDP packets, bitmap:ip only at addresses in
        its range. For a type with a net dimension, among the elements containing the packet's values the
        one with the longest prefix decides: the packet is a member unless it is ``nomatch``; with
        ``return_nomatch`` (``--return-nomatch``) the answer is reversed for a found element: a ``nomatch``
        one matches, a plain one does not (no element: no match either way). list:set: a member set
        matches (with the same flags), in order."""
        flags = tuple(rs.SetDir(flag) for flag in flags)
        kinds = self.dimensions
        if not kinds:
            return None
        if len(flags) < len(kinds):
            return False
        if self.type == "list:set":
            return _any_member(self.members, flags, packet, return_nomatch)
        if self.family is not None and packet.src.version != self.family:
            return False
        keys = tuple(self._key(kind, flag is rs.SetDir.SRC, packet) for kind, flag in zip(kinds, flags))
        if not self._in_range(keys, packet):
            return False
        entry = self._find(kinds, keys)
        if entry is None:
            return False
        return entry.nomatch if return_nomatch and "net" in kinds else not entry.nomatch

    def _key(self, kind: str, source: bool, packet: SetPacket):
        if kind == "ip":
            return _masked(packet.src if source else packet.dst, self.netmask)
        if kind == "net":
            return packet.src if source else packet.dst
        if kind == "port":
            return packet.proto, packet.port(source)
        return packet.in_iface if source else packet.out_iface

    def _in_range(self, keys: tuple, packet: SetPacket) -> bool:
        if self.type == "bitmap:port":
            return packet.proto in (6, 17) and self.range[0] <= keys[0][1] <= self.range[1]
        if self.type == "bitmap:ip":
            return self.range[0] <= int(keys[0]) <= self.range[1]
        return True

    def _find(self, kinds: tuple[str, ...], keys: tuple) -> SetEntry | None:
        net = kinds.index("net") if "net" in kinds else None
        best = None
        for entry in self.entries:
            if all(_contains(value, key) for value, key in zip(entry.values, keys)):
                if net is None:
                    return entry
                if best is None or entry.values[net].prefixlen >= best.values[net].prefixlen:
                    best = entry  # the longest prefix; of equal ones the last added
        return best


def _any_member(members: tuple[IpSet, ...], flags: tuple, packet: SetPacket, return_nomatch: bool) -> bool | None:
    answers = [member.test(flags, packet, return_nomatch=return_nomatch) for member in members]
    return True if True in answers else None if None in answers else False


def _contains(value: SetValue, key) -> bool:
    if isinstance(value, SetPort):
        proto, port = key
        return (value.proto is None or value.proto == proto) and value.low <= port <= value.high
    if isinstance(value, SetIface):
        return not value.physdev and key != "" and value.name == key
    return key in value  # AddressRange, network


def _masked(address: IPAddress, prefix: int | None) -> IPAddress:
    if prefix is None:
        return address
    width = address.max_prefixlen
    return type(address)(int(address) >> (width - prefix) << (width - prefix))


@dataclass(frozen=True, slots=True)
class IpSets:
    """Every set of one ``ipset save``, in file order."""

    sets: tuple[IpSet, ...] = ()

    def get(self, name: str) -> IpSet | None:
        return next((s for s in self.sets if s.name == name), None)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def test(self, match: rs.SetMatch, packet: SetPacket) -> bool | None:
        """Does the ``-m set`` match (its negation included) match ``packet``? None: unknown (no such set
        here, or ``IpSet.test`` cannot tell). Counter tests (``--packets-gt``...) are not evaluated: an
        answer that depends on one is None."""
        found = self.get(match.name)
        member = found.test(match.flags, packet, return_nomatch=match.return_nomatch) if found else None
        if member is None or (member and (match.packets is not None or match.bytes is not None)):
            return None
        return member != match.negated


# ------------------------------------------------------------------------------------------ parser

_FAMILIES = {"inet": 4, "inet6": 6}
_CREATE_OPTIONS = {"family": 1, "hashsize": 1, "maxelem": 1, "timeout": 1, "netmask": 1, "range": 1, "size": 1,
                   "counters": 0, "comment": 0, "skbinfo": 0, "forceadd": 0, "bucketsize": 1, "initval": 1,
                   "markmask": 1}
_ADD_OPTIONS = {"timeout": 1, "nomatch": 0, "packets": 1, "bytes": 1, "comment": 1, "skbmark": 1, "skbprio": 1,
                "skbqueue": 1, "before": 1, "after": 1}
_PORT_PROTOCOLS = frozenset({6, 17, 132, 136})
# ipset's ICMP names: each one type/code.
_ICMP_NAMES = {
    "echo-reply": (0, 0), "pong": (0, 0), "network-unreachable": (3, 0), "host-unreachable": (3, 1),
    "protocol-unreachable": (3, 2), "port-unreachable": (3, 3), "fragmentation-needed": (3, 4),
    "source-route-failed": (3, 5), "network-unknown": (3, 6), "host-unknown": (3, 7), "host-isolated": (3, 8),
    "network-prohibited": (3, 9), "host-prohibited": (3, 10), "tos-network-unreachable": (3, 11),
    "tos-host-unreachable": (3, 12), "communication-prohibited": (3, 13), "host-precedence-violation": (3, 14),
    "precedence-cutoff": (3, 15), "source-quench": (4, 0), "network-redirect": (5, 0), "host-redirect": (5, 1),
    "tos-network-redirect": (5, 2), "tos-host-redirect": (5, 3), "echo-request": (8, 0), "ping": (8, 0),
    "router-advertisement": (9, 0), "router-solicitation": (10, 0), "ttl-zero-during-transit": (11, 0),
    "ttl-zero-during-reassembly": (11, 1), "ip-header-bad": (12, 0), "required-option-missing": (12, 1),
    "timestamp-request": (13, 0), "timestamp-reply": (14, 0), "address-mask-request": (17, 0),
    "address-mask-reply": (18, 0),
}
_ICMP6_NAMES = {
    "no-route": (1, 0), "communication-prohibited": (1, 1), "address-unreachable": (1, 3),
    "port-unreachable": (1, 4), "packet-too-big": (2, 0), "ttl-zero-during-transit": (3, 0),
    "ttl-zero-during-reassembly": (3, 1), "bad-header": (4, 0), "unknown-header-type": (4, 1),
    "unknown-option": (4, 2), "echo-request": (128, 0), "ping": (128, 0), "echo-reply": (129, 0),
    "pong": (129, 0), "router-solicitation": (133, 0), "router-advertisement": (134, 0),
    "neighbour-solicitation": (135, 0), "neighbor-solicitation": (135, 0), "neighbour-advertisement": (136, 0),
    "neighbor-advertisement": (136, 0), "redirect": (137, 0),
}


class _SetBuilder:
    """Mutable state of one set while its lines are read."""

    def __init__(self, name: str, type_: str, line: int):
        self.name, self.type, self.line = name, type_, line
        self.family: int | None = None if type_ in ("bitmap:port", "list:set") else 4
        self.netmask: int | None = None
        self.range: tuple[int, int] | None = None
        self.options: list = []
        self.entries: dict = {}  # values -> SetEntry: a repeated element replaces the earlier one
        self.members: list = []  # list:set: (name, line, column word)

    def build(self, members: tuple[IpSet, ...] = ()) -> IpSet:
        return IpSet(self.name, self.type, self.family, tuple(self.entries.values()), self.netmask, self.range,
                     members, tuple(self.options), line=self.line)


class _IpsetParser:
    def __init__(self, text: str, file: str, strict: bool):
        self.text, self.file, self.strict = text, file, strict
        self.sets: dict[str, _SetBuilder] = {}
        self.errors: list[Diagnostic] = []

    def run(self) -> IpSets:
        lines = self.text.splitlines()
        for number, line in enumerate(lines, 1):
            if len(self.errors) >= _MAX_ERRORS:
                break
            try:
                self._line(tokenize(line), number)
            except _LineError as err:
                self._error(line, number, err)
        built = self._build(lines)
        if self.errors:
            raise KspecError(self.errors)
        return built

    def _error(self, line: str, number: int, err: _LineError) -> None:
        cols = _columns(line)
        col = cols[min(err.token, len(cols) - 1)] if cols else 1
        self.errors.append(Diagnostic(Span(self.file, number, col), err.message, notes=err.notes))

    def _line(self, words: list[str], number: int) -> None:
        if not words or words[0].startswith("#"):
            return
        if words[0] not in ("create", "add", "-N", "-A"):
            raise _LineError(0, f"unsupported ipset command '{words[0]}' (ipset save writes create and add)")
        if len(words) < 3:
            raise _LineError(len(words) - 1, f"'{words[0]}' needs a set name and a "
                                             f"{'type' if words[0] in ('create', '-N') else 'entry'}")
        if words[0] in ("create", "-N"):
            self._create(words, number)
        else:
            self._add(words, number)

    # -------------------------------------------------------------------------------------- create

    def _create(self, words: list[str], number: int) -> None:
        name, type_ = words[1], words[2]
        if name in self.sets:
            raise _LineError(1, f"set '{name}' is created twice")
        if len(name) > 31:
            raise _LineError(1, f"set name '{name}' is longer than 31 characters")
        if type_ not in DIMENSIONS and self.strict:
            raise _LineError(2, f"unsupported set type '{type_}'")
        builder = _SetBuilder(name, type_, number)
        for option, value, at in _options(words, 3, _CREATE_OPTIONS, "create"):
            self._create_option(builder, option, value, at)
        if builder.netmask is not None and builder.netmask > (32 if builder.family == 4 else 128):
            raise _LineError(words.index("netmask") + 1, f"netmask {builder.netmask} is too long for the set's "
                                                         "family")
        if type_ in ("bitmap:ip", "bitmap:port") and builder.range is None:
            raise _LineError(2, f"{type_} needs 'range'")
        if builder.range is not None and type_ == "bitmap:ip" and builder.netmask is not None:
            low, high = builder.range  # the kernel widens the range to whole netmask blocks
            host = (1 << (32 - builder.netmask)) - 1
            builder.range = (low & ~host, high | host)
        self.sets[name] = builder

    def _create_option(self, builder: _SetBuilder, option: str, value: str | None, at: int) -> None:
        type_ = builder.type
        if option == "family":
            if value not in _FAMILIES or builder.family is None or (type_ == "bitmap:ip" and value != "inet"):
                raise _LineError(at, f"invalid family '{value}' for {type_} (inet or inet6)")
            builder.family = _FAMILIES[value]
        elif option == "netmask":
            if type_ not in ("hash:ip", "bitmap:ip"):
                raise _LineError(at - 1, f"{type_} takes no netmask")
            builder.netmask = _number(value, at, "netmask", 1, 128)
        elif option == "range":
            if type_ not in ("bitmap:ip", "bitmap:port"):
                raise _LineError(at - 1, f"{type_} takes no range")
            builder.range = _port_span(value, at) if type_ == "bitmap:port" else _address_span(value, at, 4)
        else:
            builder.options.append((option, value))

    # -------------------------------------------------------------------------------------- add

    def _add(self, words: list[str], number: int) -> None:
        builder = self.sets.get(words[1])
        if builder is None:
            raise _LineError(1, f"set '{words[1]}' is not created before this line")
        options = {option: value for option, value, _ in _options(words, 3, _ADD_OPTIONS, "add")}
        kinds = DIMENSIONS.get(builder.type)
        if kinds is None:  # an opaque set: kept as written
            builder.entries[(words[2],)] = SetEntry((words[2],), "nomatch" in options, number)
            return
        if "nomatch" in options and "net" not in kinds:
            raise _LineError(words.index("nomatch"), f"nomatch is only for sets with a net dimension, not "
                                                     f"{builder.type}")
        if builder.type == "list:set":
            builder.members.append((words[2], number))
            return
        for values in _entry_values(words[2], kinds, builder):
            builder.entries.pop(values, None)  # re-added: the new flags, at the end
            builder.entries[values] = SetEntry(values, "nomatch" in options, number)

    # -------------------------------------------------------------------------------------- lists

    def _build(self, lines: list[str]) -> IpSets:
        plain = {name: b.build() for name, b in self.sets.items() if b.type != "list:set"}
        built = dict(plain)
        for name, builder in self.sets.items():
            if builder.type == "list:set":  # members may be created after the list: resolved at the end
                members = [self._member(member, plain, lines) for member in builder.members]
                built[name] = builder.build(tuple(member for member in members if member is not None))
        return IpSets(tuple(built[name] for name in self.sets))

    def _member(self, member: tuple[str, int], plain: dict, lines: list[str]) -> IpSet | None:
        name, number = member
        found = plain.get(name)
        if found is None:
            nested = " (a list:set cannot hold a list:set)" if name in self.sets else ""
            self._error(lines[number - 1], number, _LineError(2, f"list member '{name}' is not a set{nested}"))
        return found


def _options(words: list[str], i: int, arities: dict, command: str):
    """(option, value, value's word index) of the words from ``i`` on."""
    while i < len(words):
        arity = arities.get(words[i])
        if arity is None:
            raise _LineError(i, f"unknown {command} option '{words[i]}'")
        if i + arity >= len(words):
            raise _LineError(i, f"'{words[i]}' needs a value")
        yield words[i], (words[i + 1] if arity else None), i + arity
        i += 1 + arity


def _number(text: str, at: int, what: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise _LineError(at, f"invalid {what} '{text}' ({low}-{high})")
    return int(text)


def _address(text: str, at: int, family: int) -> IPAddress:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _LineError(at, f"invalid address '{text}' (host names are not supported)") from None
    if address.version != family:
        raise _LineError(at, f"IPv{address.version} address '{text}' in an IPv{family} set")
    return address


def _address_span(text: str, at: int, family: int) -> tuple[int, int]:
    """``a``, ``a-b`` or ``a/cidr`` as inclusive address ints."""
    if "/" in text:
        network = _network(text, at, family)
        return int(network.network_address), int(network.broadcast_address)
    low_text, dash, high_text = text.partition("-")
    low = int(_address(low_text, at, family))
    high = int(_address(high_text, at, family)) if dash else low
    if low > high:
        raise _LineError(at, f"invalid address range '{text}'")
    return low, high


def _network(text: str, at: int, family: int) -> IPNetwork:
    try:
        network = ipaddress.ip_network(text, strict=False)  # ipset masks the host bits too
    except ValueError:
        raise _LineError(at, f"invalid network '{text}'") from None
    if network.version != family:
        raise _LineError(at, f"IPv{network.version} network '{text}' in an IPv{family} set")
    return network


def _port_span(text: str, at: int) -> tuple[int, int]:
    low, dash, high = text.partition("-")
    first = _number(low, at, "port", 0, 65535)
    last = _number(high, at, "port", first, 65535) if dash else first
    return first, last


def _entry_values(text: str, kinds: tuple[str, ...], builder: _SetBuilder) -> list[tuple]:
    """The elements one entry adds: its values per dimension (a net range adds several networks)."""
    parts = text.split(",")
    if len(parts) != len(kinds):
        raise _LineError(2, f"'{text}' is not a {builder.type} element ({len(kinds)} part"
                            f"{'s' if len(kinds) > 1 else ''} separated by commas)")
    options = [_part(kind, part, builder) for kind, part in zip(kinds, parts)]
    elements: list[tuple] = [()]
    for choices in options:
        elements = [element + (choice,) for element in elements for choice in choices]
    return elements


def _part(kind: str, text: str, builder: _SetBuilder) -> list[SetValue]:
    family = builder.family
    if kind == "ip":
        low, high = _address_span(text, 2, family or 4)
        if builder.range is not None and not (builder.range[0] <= low and high <= builder.range[1]):
            raise _LineError(2, f"'{text}' is outside the set's range")
        make = ipaddress.IPv4Address if (family or 4) == 4 else ipaddress.IPv6Address
        return [AddressRange(_masked(make(low), builder.netmask), _masked(make(high), builder.netmask))]
    if kind == "net":
        if "-" in text:
            low, high = (_address(t, 2, family) for t in text.split("-", 1))
            if low > high:
                raise _LineError(2, f"invalid address range '{text}'")
            return list(ipaddress.summarize_address_range(low, high))  # the CIDRs ipset adds for a range
        return [_network(text, 2, family)]
    if kind == "port":
        return [_set_port(text, builder)]
    physdev = text.startswith("physdev:")
    name = text[8:] if physdev else text
    if not name or len(name) > 15:
        raise _LineError(2, f"invalid interface name '{name}'")
    return [SetIface(name, physdev)]


def _set_port(text: str, builder: _SetBuilder) -> SetPort:
    if builder.type == "bitmap:port":
        low, high = _port_span(text.split(":", 1)[-1], 2)
        if not (builder.range[0] <= low and high <= builder.range[1]):
            raise _LineError(2, f"'{text}' is outside the set's range")
        return SetPort(None, low, high)
    proto_text, colon, port_text = text.rpartition(":") if ":" in text else ("tcp", ":", text)
    proto = PROTOCOLS.get(proto_text.lower())
    if proto is None:
        proto = _number(proto_text, 2, "protocol", 0, 255)
    if proto in (1, 58):
        type_, code = _icmp(port_text, proto)
        return SetPort(proto, type_ << 8 | code, type_ << 8 | code)
    if proto not in _PORT_PROTOCOLS:
        if port_text != "0":
            raise _LineError(2, f"protocol '{proto_text}' has no ports: write '{proto_text}:0'")
        return SetPort(proto, 0, 0)
    return SetPort(proto, *_port_span(port_text, 2))


def _icmp(text: str, proto: int) -> tuple[int, int]:
    names = _ICMP_NAMES if proto == 1 else _ICMP6_NAMES
    if text.lower() in names:
        return names[text.lower()]
    type_text, slash, code_text = text.partition("/")
    if not slash:
        raise _LineError(2, f"invalid ICMP element '{text}' (type/code or a name such as echo-request)")
    return _number(type_text, 2, "ICMP type", 0, 255), _number(code_text, 2, "ICMP code", 0, 255)


# ------------------------------------------------------------------------------------------ API


def parse_ipset_save(text: str, file: str = "<ipset>", *, strict: bool = False) -> IpSets:
    """Parse ``ipset save`` output; raise ``KspecError`` listing every problem (``file:line:column``).
    ``strict``: a set type kspec does not model is an error rather than an opaque set."""
    return _IpsetParser(text, file, strict).run()


def parse_ipset_save_file(path: str | Path, *, strict: bool = False) -> IpSets:
    path = Path(path)
    return parse_ipset_save(path.read_text(), str(path), strict=strict)
