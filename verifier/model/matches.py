"""The extension matches beyond kube-proxy's, decided once for both engines.

Each decision reads a ``PacketView`` whose addresses and ports are Python values in the concrete tracer and
may be Z3 terms in the model (a symbolic source, or an answer's symbolic destination). The small value
operations below (``port_in``, ``addr_in``...) give a Python bool on values and a Z3 term on terms, so one
function serves both engines. A decision answers True or False, a Z3 term, ``CHOICE`` (a rate limit or a
packet counter: either may hold, whatever the packet), or None: not modelled exactly, so the path is
unknown, never guessed.

What the model assumes, as the lab builds nodes: packets are routed, never bridged with br_netfilter (so
``physdev`` sees no bridge port), addresses are host routes (no subnet broadcast), and the packets are a
connection's first one (a TCP SYN), its answer (SYN-ACK), the client's data after the handshake (PSH|ACK),
or a REJECT's ICMP error (port unreachable).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import z3

from kspec.ir import IPAddress
from kspec.rules.iptables import ruleset as rs
from kspec.verifier.model.netfilter import ct_status

CHOICE = object()  # decided by a rate or a counter, not by the packet (see module docstring)

_LOOPBACK4 = ipaddress.ip_network("127.0.0.0/8")
_THIS4 = ipaddress.ip_network("0.0.0.0/8")
_MULTICAST4 = ipaddress.ip_network("224.0.0.0/4")
_ALL_ONES4 = ipaddress.ip_address("255.255.255.255")
_ANY6 = ipaddress.ip_address("::")
_MULTICAST6 = ipaddress.ip_network("ff00::/8")
_MAPPED6 = ipaddress.ip_network("::ffff:0:0/96")
_LINK_LOCAL6 = ipaddress.ip_network("fe80::/10")
_LOOPBACK6 = ipaddress.ip_address("::1")
_LINK_PREFIX6 = ipaddress.ip_network("fe80::/64")  # the prefix route every device gets
_SUBNET_ANYCAST6 = (ipaddress.ip_address("fe80::"), ipaddress.ip_address("ff00::"))
_PORT_PROTOCOLS = frozenset({"tcp", "udp", "sctp", "udplite", "dccp"})
_ICMP_ERROR = {"icmp": (3, 3), "ipv6-icmp": (1, 4)}  # what REJECT sends by default: port unreachable
_SYN, _SYN_ACK, _PSH_ACK = 0x02, 0x12, 0x18


@dataclass(frozen=True, slots=True)
class Conn:
    """What conntrack holds for the packet here: its direction and the connection's two tuples
    (src, sport, dst, dport) as far as they are known (None: not modelled for this packet), its mark and its
    status bits."""

    direction: rs.CtDir
    original: tuple | None
    reply: tuple | None
    mark: int = 0
    status: frozenset = frozenset()  # its rs.CtStatus bits (netfilter.ct_status)


@dataclass(frozen=True, slots=True)
class PacketView:
    src: Any  # IPAddress or a Z3 bit-vector
    sport: Any  # int or a Z3 bit-vector
    dst: Any
    dport: Any
    proto: str
    hook: str
    answer: bool  # the connection's answer (a TCP SYN-ACK), not its first packet
    conn: Conn | None  # None: no connection (raw before conntrack, INVALID, UNTRACKED)
    local_ips: frozenset[IPAddress]
    socket: bool  # sent by a local socket (a node's process; not a forwarded packet, not a kernel ICMP error)
    ipsets: Any = None  # kspec.rules.iptables.ipset_save.IpSets, when the node's sets are known
    width: int = 32
    data: bool = False  # the client's data after the handshake (TCP PSH|ACK)
    in_iface: str | None = None  # None: sent by the node itself
    out_iface: str | None = None  # None: not routed yet (PREROUTING, INPUT)
    local_routes: Any = None  # own address -> its local route's device, None if ambiguous (network.local_routes)
    owner: tuple[int, int] | None = None  # (uid, gid) of the sending node process (socket), None: not known
    random_port: str | None = None  # "sport"/"dport": the kernel's random pick, not known (natpick)
    device_routes: Any = None  # IPv6: the node's network.DeviceRoutes (what addrtype's route lookup meets)


def view(pkt, src, dst, dport, original: tuple | None, local_ips, ipsets, width: int, local_routes,
         device_routes=None) -> PacketView:
    """``pkt`` (either engine's packet: the fields ``walk.Engine`` names) as the decisions read it, with its
    addresses in the engine's terms (``src``, ``dst``, ``dport``; ``original``: the connection's original
    tuple) and its node's facts. A reply of a known connection sees the REPLY direction; the client's later
    packets and first packets the ORIGINAL one; no connection before conntrack, or INVALID, or UNTRACKED."""
    conn = None
    if pkt.tracked and not pkt.invalid and not pkt.untracked:
        if pkt.established and (not pkt.data or pkt.echo):
            conn = Conn(rs.CtDir.REPLY, None, None, pkt.ctmark, ct_status(pkt))
        else:
            conn = Conn(rs.CtDir.ORIGINAL, original, (dst, dport, src, pkt.sport), pkt.ctmark, ct_status(pkt))
    socket = pkt.in_iface is None and (not pkt.established or (pkt.data and not pkt.echo))
    answer = (pkt.established or pkt.invalid) and not pkt.related and not pkt.data  # a SYN-ACK
    return PacketView(src, pkt.sport, dst, dport, pkt.proto, "", answer, conn, local_ips, socket, ipsets, width,
                      pkt.data, pkt.in_iface, pkt.out_iface, local_routes, pkt.owner, pkt.random_port,
                      device_routes)


def unmodelled(what, rule) -> str:
    """Why a path is unknown, naming the match or target (an Opaque one by its module) and the rule."""
    kind = type(what)
    name = f"match -m {what.module}" if kind is rs.Opaque else f"target -j {what.name}" \
        if kind is rs.OpaqueTarget else f"{'target' if kind.__name__ in _TARGET_NAMES else 'match'} {kind.__name__}"
    return f"unsupported {name} at {rule.origin}"


_TARGET_NAMES = frozenset(t.__name__ for t in rs.Target.__args__)


def decide(match, view: PacketView):
    decision = _DECISIONS.get(type(match))
    return None if decision is None else decision(match, view)


def modelled(match) -> bool:
    return type(match) in _DECISIONS


# ----------------------------------------------------------------------------------- value operations


def _symbolic(value) -> bool:
    return isinstance(value, z3.ExprRef)


def neg(value, negated: bool):
    if not negated:
        return value
    return (not value) if isinstance(value, bool) else z3.Not(value)


def any_of(values):
    """Or over bools and terms: True as soon as one is True."""
    return _fold(values, True, z3.Or)


def all_of(values):
    """And over bools and terms: False as soon as one is False."""
    return _fold(values, False, z3.And)


def _fold(values, absorbing: bool, combine):
    """``combine`` of the terms among ``values``; ``absorbing`` as soon as one value is it, the other bool
    when none is left."""
    terms = []
    for value in values:
        if value is absorbing:
            return absorbing
        if value is not (not absorbing):
            terms.append(value)
    return (not absorbing) if not terms else terms[0] if len(terms) == 1 else combine(terms)


def port_in(port, low: int, high: int):
    if _symbolic(port):
        return z3.And(z3.UGE(port, low), z3.ULE(port, high))
    return low <= port <= high


def addr_between(addr, low: IPAddress, high: IPAddress, width: int):
    if _symbolic(addr):
        return z3.And(z3.UGE(addr, z3.BitVecVal(int(low), width)), z3.ULE(addr, z3.BitVecVal(int(high), width)))
    return addr.version == low.version and low <= addr <= high


def addr_in(addr, net, width: int):
    if _symbolic(addr):
        mask = z3.BitVecVal(int(net.netmask), width)
        return (addr & mask) == z3.BitVecVal(int(net.network_address), width)
    return addr.version == net.version and addr in net


def addr_is(addr, ip: IPAddress, width: int):
    if _symbolic(addr):
        return addr == z3.BitVecVal(int(ip), width)
    return addr == ip


# ------------------------------------------------------------------------------------------ decisions


def _multiport(m: rs.MultiPort, v: PacketView):
    if v.proto not in _PORT_PROTOCOLS:
        return False  # the rule needs -p tcp|udp...: another protocol never gets here matching
    read = {rs.MultiPortDir.SRC: ("sport",), rs.MultiPortDir.DST: ("dport",),
            rs.MultiPortDir.ANY: ("sport", "dport")}[m.direction]
    if v.random_port in read:
        return None
    ports = tuple(getattr(v, name) for name in read)
    return neg(any_of(port_in(p, low, high) for p in ports for low, high in m.ranges), m.negated)


def _icmp(m, v: PacketView):
    protocol = "icmp" if type(m) is rs.Icmp else "ipv6-icmp"
    if v.proto != protocol:
        return False
    kind, code = _ICMP_ERROR[protocol]
    any_type = type(m) is rs.Icmp and m.type == 0xFF
    return (any_type or (m.type == kind and m.code_min <= code <= m.code_max)) != m.negated


def _tcp_flags(m: rs.TcpFlags, v: PacketView):
    if v.proto != "tcp":
        return False
    return m.matches(_PSH_ACK if v.data else _SYN_ACK if v.answer else _SYN)


def _choice(m, v: PacketView):
    return CHOICE


def _physdev(m: rs.Physdev, v: PacketView):
    # A routed packet has no bridge port: the match holds only when every option given is negated.
    given = [(m.physdev_in, m.in_negated), (m.physdev_out, m.out_negated)]
    given += [(flag, flag is False) for flag in (m.is_in, m.is_out, m.is_bridged)]
    return all(negated for value, negated in given if value is not None)


def _iprange(m: rs.IpRange, v: PacketView):
    addr = v.src if m.direction is rs.RangeDir.SRC else v.dst
    return neg(addr_between(addr, m.low, m.high, v.width), m.negated)


def _connmark(m: rs.ConnmarkMatch, v: PacketView):
    if v.conn is None:
        return False  # no connection: no mark to compare, negated or not
    return ((v.conn.mark & m.mask) == m.value) != m.negated


def _owner(m: rs.Owner, v: PacketView):
    if not v.socket:
        # No socket (a forwarded packet, an ICMP error): the match holds only if every option is negated.
        given = [(m.uid, m.uid_negated), (m.gid, m.gid_negated)]
        given += [(m.socket_exists, m.socket_exists is False)]
        return all(negated for value, negated in given if value is not None)
    if m.socket_exists is False:
        return False
    if m.uid is None and m.gid is None:
        return True
    if v.owner is None:
        return None  # which user sent it is not known
    uid, gid = v.owner  # the socket file's fsuid and fsgid; the kernel tests the user first
    if m.uid is not None and (m.uid[0] <= uid <= m.uid[1]) == m.uid_negated:
        return False
    if m.gid is not None:
        primary = m.gid[0] <= gid <= m.gid[1]
        if not primary and m.suppl_groups:
            return None  # the process's supplementary groups are not part of the model
        return primary != m.gid_negated
    return True


def _set(m: rs.SetMatch, v: PacketView):
    if v.ipsets is None or m.packets is not None or m.bytes is not None:
        return None
    found = v.ipsets.get(m.name)
    if found is None or (v.random_port is not None and "port" in found.dimensions):
        return None  # (a set of ports may read the kernel's random pick: not looked into)
    if not any(_symbolic(x) for x in (v.src, v.sport, v.dst, v.dport)):
        from kspec.rules.iptables.ipset_save import SetPacket

        number = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58}.get(v.proto, 0)
        kind, code = _ICMP_ERROR.get(v.proto, (0, 0))
        packet = SetPacket(v.src, v.dst, number, v.sport, v.dport, kind, code)
        return v.ipsets.test(m, packet)
    return _set_symbolic(m, found, v)


def _set_symbolic(m: rs.SetMatch, found, v: PacketView):
    """An address set (hash:ip, hash:net, bitmap:ip) looked up by a symbolic address, without exceptions."""
    if found.dimensions not in (("ip",), ("net",)) or len(m.flags) != 1 or m.return_nomatch:
        return None
    if found.netmask is not None or any(entry.nomatch for entry in found.entries):
        return None
    addr = v.src if m.flags[0] is rs.SetDir.SRC else v.dst
    members = []
    for entry in found.entries:
        value = entry.values[0]
        if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            members.append(addr_in(addr, value, v.width) if value.version == (4 if v.width == 32 else 6)
                           else False)
        elif hasattr(value, "low"):
            members.append(addr_between(addr, value.low, value.high, v.width)
                           if value.low.version == (4 if v.width == 32 else 6) else False)
        else:
            return None
    return neg(any_of(members), m.negated)


def _conntrack(m: rs.Conntrack, v: PacketView):
    """The whole ``-m conntrack`` (the engines decide a state-only one themselves, faster)."""
    if m.states is not None:
        return None  # states with other options: left to the engines' own state check (see their guards)
    return conntrack_options(m, v)


def conntrack_options(m: rs.Conntrack, v: PacketView):
    """``-m conntrack`` options other than ``--ctstate``: with no connection, they are not looked at (the
    match then holds only if it has --ctstate, which the caller checked)."""
    if v.conn is None:
        return m.states is not None
    if m.expire is not None:
        return None  # timers are not part of the model
    checks = []
    if m.status is not None:
        checks.append((not v.conn.status.isdisjoint(m.status.statuses)) != m.status.negated)
    if m.direction is not None:
        checks.append(m.direction is v.conn.direction)
    if m.proto is not None:
        number = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58}.get(v.proto)
        checks.append((number == m.proto.number) != m.proto.negated)
    for tuple_, fields in ((v.conn.original, (m.orig_src, m.orig_src_port, m.orig_dst, m.orig_dst_port)),
                           (v.conn.reply, (m.repl_src, m.repl_src_port, m.repl_dst, m.repl_dst_port))):
        if all(f is None for f in fields):
            continue
        if tuple_ is None:
            return None
        src, sport, dst, dport = tuple_
        if v.random_port == "sport" and tuple_ is v.conn.reply and fields[3] is not None:
            return None  # the reply's destination port is the kernel's random pick
        for value, option, is_addr in ((src, fields[0], True), (sport, fields[1], False),
                                       (dst, fields[2], True), (dport, fields[3], False)):
            if option is None:
                continue
            hit = addr_in(value, option.network, v.width) if is_addr else port_in(value, option.low, option.high)
            checks.append(neg(hit, option.negated))
    return all_of(checks)


def addrtype(m: rs.AddrType, v: PacketView):
    addr = v.src if m.direction is rs.AddrDir.SRC else v.dst
    device = _limit_device(m, v)
    if v.width != 32:
        return _addrtype6(m, addr, device, v)
    if device is not None:
        local = _local_on(addr, device, v)
        if local is None:
            return None
        return neg(any_of(addr_kind_is(addr, kind, v, local) for kind in m.types), m.negated)
    return neg(any_of(addr_kind_is(addr, kind, v) for kind in m.types), m.negated)


def _limit_device(m: rs.AddrType, v: PacketView) -> str | None:
    """The device --limit-iface-in/out names here; None without the option, and where the packet has no
    such interface (a node's own packet has no input one; before routing there is no output one): the
    kernel then looks up as without it (a user chain may hold the option whatever hook reaches it)."""
    if m.limit_iface is None:
        return None
    return v.in_iface if m.limit_iface is rs.LimitIface.IN else v.out_iface


_ROUTED6 = frozenset({rs.AddrKind.LOCAL, rs.AddrKind.ANYCAST, rs.AddrKind.UNREACHABLE})


def _addrtype6(m: rs.AddrType, addr, device: str | None, v: PacketView):
    """IPv6 (the kernel's match_type6): UNSPEC, UNICAST and MULTICAST are classes of the address itself and
    each one listed must hold (so ``UNICAST,MULTICAST`` never matches); then, if LOCAL, ANYCAST or
    UNREACHABLE is listed, the route lookup must give one of those. (IPv4 ORs the list; ip6tables refuses
    BROADCAST, BLACKHOLE, PROHIBIT, THROW, NAT and XRESOLVE, see ``ingest.validity``.)"""
    checks = []
    kinds = set(m.types)
    if rs.AddrKind.UNSPEC in kinds:
        checks.append(addr_is(addr, _ANY6, 128))
    if rs.AddrKind.MULTICAST in kinds:
        checks.append(addr_in(addr, _MULTICAST6, 128))
    if rs.AddrKind.UNICAST in kinds:  # every address but ::, multicast and IPv4-mapped (ipv6_addr_type)
        checks.append(neg(any_of([addr_is(addr, _ANY6, 128), addr_in(addr, _MULTICAST6, 128),
                                  addr_in(addr, _MAPPED6, 128)]), True))
    if kinds & _ROUTED6:
        found = route_type6(addr, device, v, kinds & _ROUTED6)
        if found is None or None in found.values():
            return None
        checks.append(any_of(found.values()))
    return neg(all_of(checks), m.negated)


def route_type6(addr, device: str | None, v: PacketView, wanted) -> dict | None:
    """Those of LOCAL, ANYCAST and UNREACHABLE ``wanted`` (each a bool or a Z3 term) as the kernel's IPv6
    route lookup for ``addr`` gives them on the node's routes (``v.device_routes``, a
    ``network.DeviceRoutes``); None (for all, or for one) where they are not known: ``lo`` (and ``::1``
    through another device), whether a link-local address is one of the node's own (made from MAC addresses
    no spec states: LOCAL is None then), and, for a ruleset traced without its node's routes, everything but
    LOCAL (the node's addresses) without a device.

    Without a device: LOCAL is an address of the node's (a local route); ANYCAST is ``fe80::`` (the
    subnet-router anycast of the link-local prefix, with forwarding on) or ``ff00::`` (the destination of
    the multicast route itself); UNREACHABLE is an address of the node's own pod CIDRs that is neither a
    pod's nor its own (the reject route). With a device (``--limit-iface``) the lookup only takes routes
    through that device, and LOCAL means configured on it: through a pod's veth only that pod, the device's
    own addresses, ``fe80::/64`` and multicast are routed, everything else is UNREACHABLE; through the
    uplink everything is routed (the default route)."""
    routes = v.device_routes
    if device == "lo" or (device is not None and (routes is None or addr_is(addr, _LOOPBACK6, 128) is True)):
        return None
    if routes is None:
        held = frozenset(ip for ip in v.local_ips if ip.version == 6) | {_LOOPBACK6}
    else:
        held = routes.held.get(device, frozenset()) if device is not None else routes.own
    unknown_local = not _symbolic(addr) and addr in _LINK_LOCAL6 and addr != _SUBNET_ANYCAST6[0] and addr not in held
    # Each built only when asked: kube-proxy asks LOCAL a lot, and on a symbolic address each is a Z3 term.
    found = {rs.AddrKind.LOCAL: lambda: None if unknown_local else any_of([addr_is(addr, ip, 128) for ip in held]),
             rs.AddrKind.ANYCAST: lambda: any_of([addr_is(addr, ip, 128) for ip in _SUBNET_ANYCAST6]),
             rs.AddrKind.UNREACHABLE: lambda: _no_route6(addr, device, routes)}
    if routes is None:
        found[rs.AddrKind.ANYCAST] = found[rs.AddrKind.UNREACHABLE] = lambda: None
    elif device is not None and device != routes.uplink and device not in routes.hosts:
        return None  # a device the lab does not build
    return {kind: found[kind]() for kind in wanted}


def _no_route6(addr, device: str | None, routes):
    """Whether the lookup finds no route (``route_type6``)."""
    if device is None:  # the reject routes, less what has a host route
        return all_of([any_of([addr_in(addr, net, 128) for net in routes.unreachable]),
                       neg(any_of([addr_is(addr, ip, 128) for ip in routes.wired]), True)])
    if device == routes.uplink:
        return False  # the default route
    return neg(any_of([addr_is(addr, ip, 128) for ip in routes.hosts[device]]
                      + [addr_in(addr, _LINK_PREFIX6, 128), addr_in(addr, _MULTICAST6, 128)]), True)


def recent(m: rs.Recent, node: str, held) -> bool | None:
    """``-m recent`` with the client's history known: ``held``, the (node, list) pairs holding its address.
    --set always matches; --rcheck, --update and --remove match when this node's list holds it (the
    next connection comes within --seconds). By destination (--rdest) or with --hitcount: not modelled."""
    if m.mode is rs.RecentMode.SET:
        return not m.negated
    if m.rdest or m.hitcount is not None:
        return None
    return ((node, m.name) in held) != m.negated


def records(rule: rs.Rule) -> bool:
    """Whether the rule holds an -m recent that changes its list (--set, --remove)."""
    return any(_records(m) for m in rule.matches)


def recent_after(rule: rs.Rule, node: str, held) -> frozenset | None:
    """The history after the rule matched: --set adds this node's list, --remove takes it away. None when
    the recording match is not the rule's last one that can fail (the kernel records as it goes: what it
    recorded would depend on which later match failed)."""
    changing = [m for m in rule.matches if _records(m)]
    later = rule.matches[rule.matches.index(changing[0]) + 1:]
    if any(not _records(m) and m.__class__ is not rs.Comment for m in later):
        return None
    result = set(held)
    for m in changing:
        if m.rdest:
            return None
        (result.add if m.mode is rs.RecentMode.SET else result.discard)((node, m.name))
    return frozenset(result)


def _records(m) -> bool:
    return m.__class__ is rs.Recent and m.mode in (rs.RecentMode.SET, rs.RecentMode.REMOVE)


def _local_on(addr, device: str, v: PacketView):
    """Whether ``addr``'s local-table route names ``device`` (--limit-iface: LOCAL only there, else UNICAST),
    or None where that depends on which of several interfaces got the address first."""
    held = [addr_in(addr, _LOOPBACK4, 32)] if device == "lo" else []
    routes = v.local_routes or {}
    for ip, on in routes.items():
        if ip.version != 4:
            continue
        if on is None:
            if _symbolic(addr) or addr == ip:
                return None
            continue
        if on == device:
            held.append(addr_is(addr, ip, 32))
    return any_of(held)


def addr_kind_is(addr, kind: rs.AddrKind, v: PacketView, on_device=None):
    """IPv4: the type of the address's route in the local table (host routes only, as the lab builds).
    ``on_device``: with --limit-iface, whether the address is local through that interface (``_local_on``)."""
    # Built only as needed: on a symbolic address each is a Z3 term, and kube-proxy asks LOCAL a lot.
    local = (lambda: on_device) if on_device is not None else \
        lambda: any_of([addr_in(addr, _LOOPBACK4, 32)] + [addr_is(addr, ip, 32) for ip in v.local_ips  # noqa: E731
                                                           if ip.version == 4])
    broadcast = lambda: any_of([addr_in(addr, _THIS4, 32), addr_is(addr, _ALL_ONES4, 32)])  # noqa: E731
    multicast = lambda: addr_in(addr, _MULTICAST4, 32)  # noqa: E731
    if kind is rs.AddrKind.LOCAL:
        return local()
    if kind is rs.AddrKind.BROADCAST:  # 0/8 and 255.255.255.255 are BROADCAST before any route is looked at
        return broadcast() if on_device is not None else all_of([broadcast(), neg(local(), True)])
    if kind is rs.AddrKind.MULTICAST:
        return multicast()
    if kind is rs.AddrKind.UNICAST:
        return all_of([neg(local(), True), neg(broadcast(), True), neg(multicast(), True)])
    return False  # no local-table route has any other type here


_DECISIONS = {
    rs.MultiPort: _multiport,
    rs.Icmp: _icmp,
    rs.Icmp6: _icmp,
    rs.TcpFlags: _tcp_flags,
    rs.Limit: _choice,
    rs.HashLimit: _choice,
    rs.StatisticNth: _choice,
    rs.Physdev: _physdev,
    rs.IpRange: _iprange,
    rs.ConnmarkMatch: _connmark,
    rs.Owner: _owner,
    rs.SetMatch: _set,
}

# Targets that only look (or log, or clamp a TCP option): the packet goes on to the next rule.
CONTINUE_TARGETS = (rs.Log, rs.Nflog, rs.TcpMss)


def connmark_target(target: rs.ConnmarkTarget, mark: int, ctmark: int) -> tuple[int, int]:
    """(packet mark, connection mark) after ``-j CONNMARK`` (see ``rs.ConnmarkTarget``)."""
    full = 0xFFFFFFFF

    def shifted(value: int) -> int:
        return (value << target.shift if target.shift >= 0 else value >> -target.shift) & full

    if target.mode is rs.ConnmarkMode.SET:
        return mark, ((ctmark & ~target.ctmask) ^ shifted(target.value)) & full
    if target.mode is rs.ConnmarkMode.SAVE:
        return mark, ((ctmark & ~target.ctmask) ^ shifted(mark & target.nfmask)) & full
    return ((mark & ~target.nfmask) ^ shifted(ctmark & target.ctmask)) & full, ctmark
