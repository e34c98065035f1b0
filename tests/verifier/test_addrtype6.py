"""IPv6 ``-m addrtype`` (``verifier.matches``): the address classes, the route types from the node's routes,
and the sources an external host can have. The kernel judges the same decisions in
tests/lab/test_lab_addrtype6.py; these pin the parts no probe there reaches."""
from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from kspec import ir
from kspec.grammar import parse_text
from kspec.rules.iptables import ruleset as rs
from kspec.verifier import verify
from kspec.verifier.model import matches
from kspec.verifier.model.network import device_routes
from kspec.verifier.properties import Verdict

ip = ipaddress.ip_address

SPEC = """cluster c {
  node node0 { ip fd00:240::10  pod_cidr fd00:244::/64 %s}
  pod web on node0 { ip fd00:244::10  labels { app = web }  ports { http = 8080/tcp } }
  service web { cluster_ip fd00:96::10  external_ips 2001:db8:50::1  selector app = web  port http 80 -> 8080/tcp }
  client ext { ip 2001:db8::7  external }
  check "external delivered" { from ext  to web:http via external_ip  assert delivered }
}
"""
DUMP = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
%s
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 2001:db8:50::1/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:244::10]:8080
COMMIT
"""


def _decide(kinds: str, addr: str, wiring: str = "", device: str | None = None, negated: bool = False):
    cluster, _ = parse_text(SPEC % wiring)
    match = rs.AddrType(rs.AddrDir.DST, tuple(rs.AddrKind(k) for k in kinds.split(",")), negated,
                        rs.LimitIface.IN if device else None)
    view = matches.PacketView(ip("2001:db8::7"), 40000, ip(addr), 80, "tcp", "PREROUTING", False, None,
                              frozenset(), False, width=128, in_iface=device or "eth0",
                              device_routes=device_routes(cluster, cluster.node("node0")))
    return matches.addrtype(match, view)


@pytest.mark.parametrize("kinds, addr, expected", [
    ("UNSPEC", "::", True), ("UNSPEC", "::1", False),
    ("UNICAST", "::", False), ("UNICAST", "ff02::1", False), ("UNICAST", "::ffff:192.0.2.1", False),
    ("UNICAST", "fd00:240::10", True),  # unlike IPv4, the node's own address is UNICAST too
    ("UNICAST", "fe80::", True), ("MULTICAST", "ff02::1", True),
    ("UNICAST,MULTICAST", "ff02::1", False), ("UNICAST,MULTICAST", "2001:db8::1", False),  # IPv6 ANDs classes
    ("LOCAL", "::1", True), ("LOCAL", "fd00:244::1", True), ("LOCAL", "fd00:244::10", False),
    ("ANYCAST", "fe80::", True), ("ANYCAST", "ff00::", True), ("ANYCAST", "fd00:244::", False),
    ("UNREACHABLE", "fd00:244::99", True), ("UNREACHABLE", "fd00:244::10", False),
    ("UNREACHABLE", "fd00:244::1", False), ("UNREACHABLE", "2001:db8::1", False),
    ("LOCAL,UNREACHABLE", "fd00:244::99", True), ("UNICAST,UNREACHABLE", "fd00:244::99", True),
])
def test_address_classes_and_route_types(kinds, addr, expected):
    assert _decide(kinds, addr) is expected


def test_a_link_local_address_is_local_only_if_known():
    # The node's own link-local addresses come from MAC addresses: whether fe80::1234 is one is not known.
    assert _decide("LOCAL", "fe80::1234") is None
    assert _decide("ANYCAST", "fe80::1234") is False  # what does not depend on it is still decided
    assert _decide("LOCAL", "fe80::1", wiring="pod_wiring unnumbered ") is True  # the hop the lab configures


def test_limit_iface_restricts_the_lookup_to_the_device():
    # The pod's veth routes only the pod, the device's own addresses, fe80::/64 and multicast.
    assert _decide("UNREACHABLE", "fd00:240::10", device="veth0") is True  # the node's address is on eth0
    assert _decide("LOCAL", "fd00:240::10", device="veth0") is False
    assert _decide("LOCAL", "fd00:244::1", device="veth0") is True
    assert _decide("UNREACHABLE", "fd00:244::10", device="veth0") is False
    assert _decide("UNREACHABLE", "fe80::5", device="veth0") is False
    assert _decide("UNREACHABLE", "fd00:244::99", device="eth0") is False  # the default route
    assert _decide("LOCAL", "::1", device="veth0") is None  # loopback on another device: not modelled


@pytest.mark.parametrize("rule, verdict", [
    ("-A PREROUTING -m addrtype --src-type UNICAST -j DROP", Verdict.VIOLATED),
    ("-A PREROUTING -m addrtype ! --src-type UNICAST -j DROP", Verdict.PROVED),
    ("-A PREROUTING -m addrtype --src-type LOCAL -j DROP", Verdict.PROVED),
    ("-A PREROUTING -m addrtype --src-type MULTICAST -j DROP", Verdict.PROVED),
    ("-A PREROUTING -m addrtype --dst-type UNREACHABLE -j DROP", Verdict.PROVED),
])
def test_an_external_host_sends_from_a_global_unicast_address(rule, verdict):
    # Before: every IPv6 type but LOCAL made the path unknown; and "any external host" included ::,
    # multicast, IPv4-mapped and link-local sources, which no remote host's packet reaches a node with.
    cluster, _ = parse_text(SPEC % "")
    anyone = dataclasses.replace(cluster.clients[0], ip=None)  # "any external host": a symbolic source
    cluster = dataclasses.replace(cluster, clients=(anyone,))
    [result] = verify(cluster, rules={"node0": DUMP % rule}, family=ir.IPFamily.V6)
    assert result.verdict is verdict, result
    if verdict is Verdict.VIOLATED:
        source = ip(result.counterexample.src)
        assert not (source.is_link_local or source.is_multicast or source.is_unspecified
                    or source.ipv4_mapped is not None), source
