"""Where NAT to a range lands: the address and port the kernel picks, for both engines.

The kernel (nf_nat_core's get_unique_tuple) picks, for a connection's first packet:

* the address in ``[low, high]`` by a hash of the connection's source address, seeded with its current
  destination (``--persistent``: unseeded, so a source always gets the same address): Bob Jenkins' jhash2
  over the 16-byte address as the machine's 32-bit words, scaled into the range (``reciprocal_scale``).
  ``pick_address`` computes it on a Python address or, for IPv4, on a Z3 term; the lab confirms it
  (tests/verifier/test_nat_ranges.py).
* the port: DNAT keeps the destination port when it lies in the range and takes the range's first one
  otherwise; SNAT and MASQUERADE keep the source port when it lies in the range (or no range is given) and
  otherwise, or with ``--random``/``--random-fully``, pick one at random (``source_port``).

A random port is the one thing neither engine can know: the packet carries ``random_port`` ("sport", and
"dport" for the answer until conntrack undoes the SNAT), and a rule that reads that port makes the path
unknown. The model assumes the chosen tuple is not in use by another connection (the lab flushes conntrack
between probes); on a busy node a clash moves the port on, as a random pick would.
"""
from __future__ import annotations

import ipaddress

import z3

from kspec.rules.iptables import ruleset as rs

_M = 0xFFFFFFFF
KEEP = object()  # the port stays as it is


def _symbolic(value) -> bool:
    return isinstance(value, z3.ExprRef)


def _add(a, b):
    return a + b if _symbolic(a) or _symbolic(b) else (a + b) & _M


def _sub(a, b):
    return a - b if _symbolic(a) or _symbolic(b) else (a - b) & _M


def _rol(x, k: int):
    return z3.RotateLeft(x, k) if _symbolic(x) else ((x << k) | (x >> (32 - k))) & _M


def _mix(a, b, c):
    a = _sub(a, c); a = a ^ _rol(c, 4); c = _add(c, b)  # noqa: E702
    b = _sub(b, a); b = b ^ _rol(a, 6); a = _add(a, c)  # noqa: E702
    c = _sub(c, b); c = c ^ _rol(b, 8); b = _add(b, a)  # noqa: E702
    a = _sub(a, c); a = a ^ _rol(c, 16); c = _add(c, b)  # noqa: E702
    b = _sub(b, a); b = b ^ _rol(a, 19); a = _add(a, c)  # noqa: E702
    c = _sub(c, b); c = c ^ _rol(b, 4); b = _add(b, a)  # noqa: E702
    return a, b, c


def _final(a, b, c):
    c = c ^ b; c = _sub(c, _rol(b, 14))  # noqa: E702
    a = a ^ c; a = _sub(a, _rol(c, 11))  # noqa: E702
    b = b ^ a; b = _sub(b, _rol(a, 25))  # noqa: E702
    c = c ^ b; c = _sub(c, _rol(b, 16))  # noqa: E702
    a = a ^ c; a = _sub(a, _rol(c, 4))  # noqa: E702
    b = b ^ a; b = _sub(b, _rol(a, 14))  # noqa: E702
    c = c ^ b; c = _sub(c, _rol(b, 24))  # noqa: E702
    return c


def jhash2(words: list, initval):
    """The kernel's jhash2 of 32-bit ``words`` (ints, or Z3 32-bit terms)."""
    a = b = c = _add(0xDEADBEEF + (len(words) << 2), initval)
    rest = list(words)
    while len(rest) > 3:
        a, b, c = _add(a, rest[0]), _add(b, rest[1]), _add(c, rest[2])
        a, b, c = _mix(a, b, c)
        rest = rest[3:]
    if not rest:
        return c
    padded = rest + [0] * (3 - len(rest))
    a, b, c = _add(a, padded[0]), _add(b, padded[1]), _add(c, padded[2])
    return _final(a, b, c)


def _words(addr, width: int) -> list:
    """The address's 16 bytes (an IPv4 one zero-padded) as the little-endian 32-bit words the kernel reads."""
    if _symbolic(addr):
        assert width == 32
        swapped = z3.Concat(*(z3.Extract(8 * i + 7, 8 * i, addr) for i in range(4)))
        return [swapped, 0, 0, 0]
    packed = ipaddress.ip_address(addr).packed.ljust(16, b"\0")
    return [int.from_bytes(packed[i:i + 4], "little") for i in range(0, 16, 4)]


def _scale(j, dist: int):
    """reciprocal_scale: ``j`` scaled into [0, dist)."""
    if _symbolic(j):
        return z3.Extract(31, 0, z3.LShR(z3.ZeroExt(32, j) * dist, 32))
    return (j * dist) >> 32


def pick_address(src, dst, low, high, persistent: bool, width: int):
    """The address the kernel picks in ``[low, high]`` for a connection from ``src`` to ``dst`` (its
    destination when the NAT happens). ``src`` may be a Z3 term (IPv4 only): then so is the result (host byte
    order, like the model's addresses); else an address."""
    seed = 0 if persistent else _words(dst, width)[0 if width == 32 else 3]
    j = jhash2(_words(src, width), seed)
    if width == 32:
        lo, hi = int(low), int(high)
        offset = _scale(j, (hi - lo + 1) & _M)
        if _symbolic(offset):
            return z3.BitVecVal(lo, 32) + offset
        return ipaddress.ip_address((lo + offset) & _M)
    return _pick6(j, low.packed, high.packed, dst, persistent)


def _pick6(j: int, low: bytes, high: bytes, dst, persistent: bool):
    """IPv6: word by word, the full range of a word once an earlier word fell below the top (the kernel's
    find_best_ips_proto)."""
    dst_words = _words(dst, 128)
    out = b""
    full = False
    for i in range(4):
        top = high[4 * i:4 * i + 4]
        lo, dist = (0, _M) if full else (int.from_bytes(low[4 * i:4 * i + 4], "big"),
                                         (int.from_bytes(top, "big") - int.from_bytes(low[4 * i:4 * i + 4], "big") + 1)
                                         & _M)
        word = ((lo + _scale(j, dist)) & _M).to_bytes(4, "big")
        out += word
        full = full or word != top
        if not persistent:
            j ^= dst_words[i]
    return ipaddress.ip_address(out)


def address_range(target) -> tuple | None:
    """(low, high) of a NAT target's addresses, or None for one address (or MASQUERADE's)."""
    high = getattr(target, "ip_high", None)
    if high is None or high == target.ip:
        return None
    return target.ip, high


def _port_range(target) -> tuple[int, int] | None:
    if type(target) is rs.Masquerade:
        return target.to_ports
    if target.port is None:
        return None
    return target.port, target.port_high if target.port_high is not None else target.port


def source_port(target, sport) -> list[tuple]:
    """SNAT/MASQUERADE's source port, as (port, random, condition) choices: ``port`` is ``KEEP`` (the
    packet's ``sport``), a port, or None (picked at random in the range); ``random``: the kernel picks it at
    random; ``condition``: None (always), or the Z3 condition on a symbolic ``sport`` for this choice."""
    randomly = target.random or getattr(target, "random_fully", False)
    span = _port_range(target)
    if span is None:
        return [(KEEP, randomly, None)]
    low, high = span
    if low == high:
        return [(low, False, None)]
    if randomly:
        return [(None, True, None)]
    inside = _port_in(sport, low, high)
    if inside is True:
        return [(KEEP, False, None)]
    if inside is False:
        return [(None, True, None)]
    return [(KEEP, False, inside), (None, True, z3.Not(inside))]


def destination_port(target: rs.Dnat, dport):
    """DNAT's destination port: ``KEEP``, a port, or None when the kernel picks at random (``--random``)."""
    if target.port is None:
        return KEEP
    high = target.port_high if target.port_high is not None else target.port
    if high == target.port:
        return target.port
    if target.random:
        return None
    return KEEP if target.port <= dport <= high else target.port


def _port_in(port, low: int, high: int):
    if _symbolic(port):
        return z3.And(z3.UGE(port, low), z3.ULE(port, high))
    return low <= port <= high


def random_port_after(random_port: str | None, attribute: str, conn) -> str | None:
    """Which port of a packet is the kernel's random pick after conntrack applied ``conn``'s ``attribute``
    (``netfilter.Connection``): undoing the SNAT gives the answer its client's port back; doing it again
    gives the client's later packet the picked one."""
    if attribute == "undo_snat" and random_port == "dport":
        return None
    if attribute == "snat_to" and conn.random_sport:
        return "sport"
    return random_port
