"""Real connections from a client's namespace to a probe's destination, and what became of each.

All tries of a batch run at once (non-blocking sockets, one selector), each from a fresh ephemeral source
port, so a batch costs one connect timeout at most. What the kernel did is read off the socket and off the
ICMP errors the client's namespace received (a raw ICMP or ICMPv6 socket sees every one; ICMPv6 says the same
things with other numbers: port unreachable is type 1 code 4, no route type 1 code 0):

==========================  ==================================================================================
what the client sees        observed outcome
==========================  ==================================================================================
an echo answer              ``delivered`` to the pod named in it, with its ``client_address``
TCP RST (ECONNREFUSED, no   ``host``: a node's TCP stack answered (nothing listens on a service port there)
ICMP)
ICMP port unreachable       ``rejected`` for TCP (kube-proxy's ``-j REJECT`` sends icmp-port-unreachable);
(ECONNREFUSED)              for UDP ``refused``: REJECT and a node's closed UDP port send the same ICMP, so
                            a refused UDP probe agrees with either prediction
EPERM sending (the sender's  ``rejected`` when the ICMP port unreachable came too (REJECT in OUTPUT), else
own node's OUTPUT chain)    ``dropped``
ICMP net/host unreachable,  ``no route``
EHOSTUNREACH/ENETUNREACH
nothing within the timeout  ``dropped``
connected, no echo answer   ``host``: something other than an echo server answered
==========================  ==================================================================================

A port unreachable that quotes a try counts even when its socket never reported it (IPv6 TCP keeps the one
for the first SYN as a soft error; see ``_with_icmp``).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import selectors
import socket
import struct
import time
from dataclasses import dataclass
from typing import cast

from kspec.lab.echo import parse_echo

CONNECT_TIMEOUT = 1.0  # seconds: inside one host a SYN-ACK takes microseconds
REPLY_TIMEOUT = 1.0  # seconds for the echo answer after connecting
REQUEST = b"GET / HTTP/1.1\r\nHost: kspec-lab\r\nUser-Agent: kspec-lab\r\nConnection: close\r\n\r\n"

DELIVERED, DROPPED, REJECTED, HOST, NO_ROUTE, REFUSED = (
    "delivered", "dropped", "rejected", "host", "no route", "refused")


@dataclass(frozen=True, slots=True)
class Try:
    """One connection attempt and what the client saw."""

    sport: int
    result: str  # one of the constants above
    pod: str | None = None
    client_address: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.result == DELIVERED:
            return f"sport {self.sport}: {self.pod} client_address={self.client_address}"
        return f"sport {self.sport}: {self.result}" + (f" ({self.detail})" if self.detail else "")


def send_batch(protocol: str, src: str, dst: str, dport: int, count: int,
               connect_timeout: float = CONNECT_TIMEOUT, owner: tuple[int, int] = (0, 0)) -> list[Try]:
    """``count`` simultaneous tries; to be called inside the client's namespace. ``owner``: the (uid, gid) a
    node process's sockets belong to (what ``-m owner`` matches)."""
    v6 = ipaddress.ip_address(dst).version == 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    icmp = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    icmp.setblocking(False)
    try:
        with _owned_by(*owner):
            if protocol == "tcp":
                tries = _tcp(family, src, dst, dport, count, connect_timeout)
            else:
                tries = _udp(family, src, dst, dport, count, connect_timeout)
        target = ipaddress.ip_address(dst).packed
        errors = _icmp6_errors(icmp, protocol, target) if v6 else _icmp_errors(icmp, protocol, target)
    finally:
        icmp.close()
    return [_with_icmp(t, errors.get(t.sport), protocol) for t in tries]


@contextlib.contextmanager
def _owned_by(uid: int, gid: int):
    """Sockets made inside belong to ``uid``/``gid``: xt_owner reads the socket file's fsuid and fsgid, which
    setfsuid(2)/setfsgid(2) change for the calling thread only (the probe's thread; the process stays root)."""
    if (uid, gid) == (0, 0):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    old_gid = libc.setfsgid(gid)
    old_uid = libc.setfsuid(uid)
    try:
        yield
    finally:
        libc.setfsuid(old_uid)
        libc.setfsgid(old_gid)


# An ICMP error, as (what, ICMP type and code in words, sender): what is PORT (port unreachable: REJECT's
# answer, or a closed UDP port) or OTHER (no route, host unreachable, time exceeded...).
PORT, OTHER = "port", "other"


def _with_icmp(attempt: Try, icmp: tuple[str, str, str] | None, protocol: str) -> Try:
    if attempt.detail.startswith("EPERM") and icmp is not None and icmp[0] == PORT:
        # Refused on the way out of the sender's own node: REJECT in OUTPUT answers with the ICMP itself.
        return Try(attempt.sport, REJECTED, detail=f"EPERM and {icmp[1]} from {icmp[2]}")
    if attempt.result == DROPPED and icmp is not None and icmp[0] == OTHER:
        # TCP treats net/host unreachable as soft errors and keeps retrying the SYN: the ICMP says why.
        return Try(attempt.sport, NO_ROUTE, detail=f"{icmp[1]} from {icmp[2]}")
    if attempt.result == DROPPED and icmp is not None:
        # A port unreachable the socket missed. Measured over IPv6: the ICMPv6 for the first SYN reaches the
        # client, yet connect() fails only on the retried SYN's answer a second later (tcp_v6_err keeps a
        # soft error while the socket is busy, as it is when the whole path runs within the sending call).
        # The ICMP quoting our packet is the kernel's verdict either way.
        return Try(attempt.sport, REJECTED if protocol == "tcp" else REFUSED,
                   detail=f"{icmp[1]} from {icmp[2]}, before the socket saw it")
    if attempt.result != REFUSED:
        return attempt
    if icmp is not None and icmp[0] == PORT:
        return Try(attempt.sport, REJECTED if protocol == "tcp" else REFUSED,
                   detail=f"{icmp[1]} from {icmp[2]}")
    if protocol == "tcp":
        return Try(attempt.sport, HOST, detail="TCP reset")
    return Try(attempt.sport, REFUSED, detail="connection refused")


def _socket_of(key: selectors.SelectorKey) -> socket.socket:
    # Only sockets are ever registered with the selector; the key types its object as any file-like thing.
    return cast(socket.socket, key.fileobj)


def _tcp(family: int, src: str, dst: str, dport: int, count: int, timeout: float) -> list[Try]:
    sel = selectors.DefaultSelector()
    state: dict[socket.socket, dict] = {}
    results: list[Try] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.bind((src, 0))
            sock.setblocking(False)
            sport = sock.getsockname()[1]
            code = sock.connect_ex((dst, dport))
            if code not in (0, errno.EINPROGRESS):
                results.append(_failed(sport, code))
                sock.close()
                continue
            state[sock] = {"sport": sport, "phase": "connect", "data": b""}
            sel.register(sock, selectors.EVENT_WRITE)
        connect_deadline = time.monotonic() + timeout
        reply_deadline = connect_deadline + REPLY_TIMEOUT
        for _ in range(100_000):  # bounded; every pass either waits or finishes a socket
            if not state:
                break
            now = time.monotonic()
            connecting = any(s["phase"] == "connect" for s in state.values())
            deadline = connect_deadline if connecting else reply_deadline
            if now >= deadline:
                for sock, s in list(state.items()):
                    if s["phase"] == "connect":
                        results.append(Try(s["sport"], DROPPED, detail=f"no answer within {timeout:g}s"))
                        _drop(sel, state, sock)
                if now >= reply_deadline:
                    for sock, s in list(state.items()):
                        results.append(_answer(s, f"no echo answer within {REPLY_TIMEOUT:g}s"))
                        _drop(sel, state, sock)
                continue
            for key, _mask in sel.select(deadline - now):
                sock = _socket_of(key)
                s = state[sock]
                if s["phase"] == "connect":
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        results.append(_failed(s["sport"], code))
                        _drop(sel, state, sock)
                        continue
                    try:
                        sock.send(REQUEST)
                    except OSError as exc:
                        results.append(_answer(s, f"send failed: {exc.strerror}"))
                        _drop(sel, state, sock)
                        continue
                    s["phase"] = "read"
                    sel.modify(sock, selectors.EVENT_READ)
                    continue
                try:
                    chunk = sock.recv(65536)
                except OSError as exc:
                    results.append(_answer(s, f"receive failed: {exc.strerror}"))
                    _drop(sel, state, sock)
                    continue
                s["data"] += chunk
                if not chunk or len(s["data"]) > 1 << 20:
                    results.append(_answer(s, "connection closed without an echo answer"))
                    _drop(sel, state, sock)
    finally:
        for sock in list(state):
            _drop(sel, state, sock)
        sel.close()
    return results


def _answer(s: dict, why: str) -> Try:
    pod, peer = parse_echo(s["data"].decode("utf-8", "replace"))
    if pod and peer:
        return Try(s["sport"], DELIVERED, pod, peer)
    return Try(s["sport"], HOST, detail=f"connected, but {why}")


def _drop(sel: selectors.BaseSelector, state: dict, sock: socket.socket) -> None:
    try:
        sel.unregister(sock)
    except (KeyError, ValueError):
        pass
    state.pop(sock, None)
    sock.close()


def _failed(sport: int, code: int) -> Try:
    if code == errno.ECONNREFUSED:
        return Try(sport, REFUSED)
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return Try(sport, NO_ROUTE, detail=errno.errorcode.get(code, str(code)))
    if code == errno.EPERM:  # a netfilter verdict on the sender's own node (OUTPUT): DROP, or REJECT + ICMP
        return Try(sport, DROPPED, detail="EPERM: dropped by netfilter on the way out")
    if code == errno.ETIMEDOUT:
        return Try(sport, DROPPED, detail="ETIMEDOUT")
    return Try(sport, "error", detail=errno.errorcode.get(code, str(code)))


def _udp(family: int, src: str, dst: str, dport: int, count: int, timeout: float) -> list[Try]:
    sel = selectors.DefaultSelector()
    state: dict[socket.socket, int] = {}
    results: list[Try] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.bind((src, 0))
            sock.setblocking(False)
            sport = sock.getsockname()[1]
            try:
                sock.connect((dst, dport))
                sock.send(b"kspec-lab\n")
            except OSError as exc:
                results.append(_failed(sport, exc.errno or 0))
                sock.close()
                continue
            state[sock] = sport
            sel.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout  # no handshake: the answer is the reply
        for _ in range(100_000):
            now = time.monotonic()
            if not state or now >= deadline:
                break
            for key, _mask in sel.select(deadline - now):
                sock = _socket_of(key)
                sport = state[sock]
                try:
                    data = sock.recv(65536)
                except OSError as exc:
                    results.append(_failed(sport, exc.errno or 0))
                else:
                    pod, peer = parse_echo(data.decode("utf-8", "replace"))
                    results.append(Try(sport, DELIVERED, pod, peer) if pod and peer
                                   else Try(sport, HOST, detail="an answer that is not the echo server's"))
                sel.unregister(sock)
                del state[sock]
                sock.close()
        for sock, sport in list(state.items()):
            results.append(Try(sport, DROPPED, detail=f"no answer within {timeout:g}s"))
            sel.unregister(sock)
            sock.close()
        state.clear()
    finally:
        for sock in state:
            sock.close()
        sel.close()
    return results


def _icmp_errors(icmp: socket.socket, protocol: str, dst: bytes) -> dict[int, tuple[str, str, str]]:
    """{our source port: (PORT or OTHER, the ICMP in words, sender)} for every ICMP error that quotes one of
    our packets to ``dst`` (a raw IPv4 socket reads the IP header too). Errors quoting a packet to another
    address are not about a try: e.g. the reset a client sends to a misrouted answer's source."""
    found: dict[int, tuple[str, str, str]] = {}
    want = socket.IPPROTO_TCP if protocol == "tcp" else socket.IPPROTO_UDP
    for _ in range(10_000):
        try:
            packet = icmp.recv(65536)
        except (BlockingIOError, InterruptedError):
            break
        if len(packet) < 20:
            continue
        ihl = (packet[0] & 0x0F) * 4
        sender = str(ipaddress.IPv4Address(packet[12:16]))
        body = packet[ihl:]
        if len(body) < 8 + 20 or body[0] not in (3, 11):  # destination unreachable, time exceeded
            continue
        inner = body[8:]
        inner_ihl = (inner[0] & 0x0F) * 4
        if inner[9] != want or len(inner) < inner_ihl + 4 or inner[16:20] != dst:
            continue
        sport = struct.unpack("!H", inner[inner_ihl:inner_ihl + 2])[0]
        if body[0] == 3 and body[1] == 3:
            found.setdefault(sport, (PORT, "ICMP port unreachable", sender))
        else:
            kind = "time exceeded" if body[0] == 11 else f"ICMP unreachable code {body[1]}"
            found.setdefault(sport, (OTHER, kind, sender))
    return found


def _icmp6_errors(icmp: socket.socket, protocol: str, dst: bytes) -> dict[int, tuple[str, str, str]]:
    """As ``_icmp_errors`` for ICMPv6: destination unreachable (1) and time exceeded (3). A raw ICMPv6 socket
    reads from the ICMPv6 header on; the quoted packet starts with its fixed 40-byte IPv6 header (the lab's
    packets carry no extension headers)."""
    found: dict[int, tuple[str, str, str]] = {}
    want = socket.IPPROTO_TCP if protocol == "tcp" else socket.IPPROTO_UDP
    for _ in range(10_000):
        try:
            body, peer = icmp.recvfrom(65536)
        except (BlockingIOError, InterruptedError):
            break
        if len(body) < 8 + 40 + 4 or body[0] not in (1, 3):
            continue
        inner = body[8:]
        if inner[6] != want or inner[24:40] != dst:
            continue
        sport = struct.unpack("!H", inner[40:42])[0]
        if body[0] == 1 and body[1] == 4:
            found.setdefault(sport, (PORT, "ICMPv6 port unreachable", peer[0]))
        else:
            kind = "time exceeded" if body[0] == 3 else f"ICMPv6 unreachable code {body[1]}"
            found.setdefault(sport, (OTHER, kind, peer[0]))
    return found
