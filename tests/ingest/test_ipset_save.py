"""``ipset save`` files (kspec.rules.iptables.ipset_save): the set types of Calico, kube-proxy's IPVS mode, Weave and
kube-router, the kernel's membership answer for a packet and the ``--match-set`` flags, positioned errors."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from kspec.diagnostics import KspecError
from kspec.rules.iptables import ruleset as rs
from kspec.rules.iptables.ipset_save import (
    AddressRange,
    SetEntry,
    SetIface,
    SetPacket,
    SetPort,
    parse_ipset_save,
    parse_ipset_save_file,
)
from kspec.rules.iptables.iptables_save import parse_iptables_save

ip = ipaddress.ip_address
net = ipaddress.ip_network

CALICO = r"""create cali40all-ipam-pools hash:net family inet hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x1b5ed785
add cali40all-ipam-pools 10.244.0.0/16
create cali40masq-ipam-pools hash:net family inet hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x6d5ab2b4
add cali40masq-ipam-pools 10.244.0.0/16
create cali40s:1fGl2kQmPbBW0d1zqVhHhQx hash:net family inet hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x9b06b8c0
add cali40s:1fGl2kQmPbBW0d1zqVhHhQx 10.244.1.7
add cali40s:1fGl2kQmPbBW0d1zqVhHhQx 10.244.2.0/24
create cali40all-hosts-net hash:net family inet hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x3bc4a06f
add cali40all-hosts-net 192.168.1.10
add cali40all-hosts-net 192.168.1.11
create cali60all-ipam-pools hash:net family inet6 hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x59f3a1f2
add cali60all-ipam-pools fd00:10:244::/64
"""

KUBE_PROXY_IPVS = """create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536
add KUBE-CLUSTER-IP 10.96.0.1,tcp:443
add KUBE-CLUSTER-IP 10.96.0.10,udp:53
add KUBE-CLUSTER-IP 10.96.0.10,tcp:53
create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536
add KUBE-LOOP-BACK 10.244.1.5,tcp:8080,10.244.1.5
create KUBE-NODE-PORT-TCP bitmap:port range 0-65535
add KUBE-NODE-PORT-TCP 30080
create KUBE-LOAD-BALANCER-SOURCE-CIDR hash:ip,port,net family inet hashsize 1024 maxelem 65536
add KUBE-LOAD-BALANCER-SOURCE-CIDR 1.2.3.4,tcp:80,10.0.0.0/8
add KUBE-LOAD-BALANCER-SOURCE-CIDR 1.2.3.4,tcp:80,10.1.0.0/16 nomatch
"""

WEAVE_KUBE_ROUTER = r"""create weave-;rGqyMIl1HN^cfDki~Z$3]6!N hash:ip family inet hashsize 1024 maxelem 65536 comment
add weave-;rGqyMIl1HN^cfDki~Z$3]6!N 10.32.0.5 comment "namespace: default, pod: web-7d4b9"
create KUBE-SRC-ABCDEF hash:ip family inet hashsize 1024 maxelem 65536 timeout 0
add KUBE-SRC-ABCDEF 10.1.1.5 timeout 0
"""


def _pkt(src: str = "10.244.1.7", dst: str = "10.96.0.10", proto: int = 6, sport: int = 40000, dport: int = 53,
         **kw) -> SetPacket:
    return SetPacket(ip(src), ip(dst), proto, sport, dport, **kw)


def _error(text: str, **kwargs) -> str:
    with pytest.raises(KspecError) as info:
        parse_ipset_save(text, "s.ipset", **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------ real files


def test_calico_sets():
    sets = parse_ipset_save(CALICO, "calico.ipset")
    assert [s.name for s in sets.sets][:2] == ["cali40all-ipam-pools", "cali40masq-ipam-pools"]
    pools = sets.get("cali40all-ipam-pools")
    assert pools.type == "hash:net" and pools.family == 4 and pools.entries == (SetEntry((net("10.244.0.0/16"),)),)
    assert ("hashsize", "1024") in pools.options and pools.dimensions == ("net",)
    assert pools.test(["src"], _pkt()) and not pools.test(["dst"], _pkt())
    policy = sets.get("cali40s:1fGl2kQmPbBW0d1zqVhHhQx")
    assert policy.test(["src"], _pkt("10.244.1.7")) and policy.test(["src"], _pkt("10.244.2.99"))
    assert not policy.test(["src"], _pkt("10.244.1.8"))
    v6 = sets.get("cali60all-ipam-pools")
    assert v6.family == 6 and v6.test(["dst"], _pkt("fd00::1", "fd00:10:244::5"))
    assert not v6.test(["dst"], _pkt())  # an IPv4 packet never matches an inet6 set


def test_calico_rules_with_their_sets():
    """A Calico nat rule, evaluated with the node's sets: MASQUERADE pod traffic leaving the pools."""
    rules = parse_iptables_save(
        "*nat\n:cali-nat-outgoing - [0:0]\n-A cali-nat-outgoing -m set --match-set cali40masq-ipam-pools src "
        "-m set ! --match-set cali40all-ipam-pools dst -j MASQUERADE --random-fully\nCOMMIT\n", "calico.rules",
        require_declared_jumps=False)
    sets = parse_ipset_save(CALICO, "calico.ipset")
    masq, not_pools = next(iter(rules.rules())).matches

    def masqueraded(packet: SetPacket) -> bool:
        return sets.test(masq, packet) and sets.test(not_pools, packet)

    assert masqueraded(_pkt("10.244.1.7", "8.8.8.8"))
    assert not masqueraded(_pkt("10.244.1.7", "10.244.3.3"))  # pod to pod
    assert not masqueraded(_pkt("192.168.1.10", "8.8.8.8"))  # not from a pod


def test_kube_proxy_ipvs_sets():
    sets = parse_ipset_save(KUBE_PROXY_IPVS, "ipvs.ipset")
    cluster_ip = sets.get("KUBE-CLUSTER-IP")
    assert cluster_ip.entries[1].values == (AddressRange(ip("10.96.0.10"), ip("10.96.0.10")), SetPort(17, 53, 53))
    assert cluster_ip.test(["dst", "dst"], _pkt(dport=53)) and cluster_ip.test(["dst", "dst"], _pkt(proto=17))
    assert not cluster_ip.test(["dst", "dst"], _pkt(proto=132))  # SCTP: no such element
    assert not cluster_ip.test(["dst", "src"], _pkt(sport=1, dport=53))  # the port read from the source
    assert not cluster_ip.test(["dst"], _pkt())  # fewer flags than dimensions
    loop = sets.get("KUBE-LOOP-BACK")
    assert loop.test(["dst", "dst", "src"], _pkt("10.244.1.5", "10.244.1.5", dport=8080))
    node_port = sets.get("KUBE-NODE-PORT-TCP")
    assert node_port.family is None and node_port.test(["dst"], _pkt(dport=30080))
    assert node_port.test(["dst"], _pkt(proto=17, dport=30080))  # bitmap:port reads TCP and UDP ports
    assert not node_port.test(["dst"], _pkt(proto=132, dport=30080))
    source = sets.get("KUBE-LOAD-BALANCER-SOURCE-CIDR")
    lb = ["dst", "dst", "src"]
    assert source.test(lb, _pkt("10.2.0.1", "1.2.3.4", dport=80))
    assert not source.test(lb, _pkt("10.1.0.1", "1.2.3.4", dport=80))  # the more specific nomatch entry


def test_weave_and_kube_router_sets():
    sets = parse_ipset_save(WEAVE_KUBE_ROUTER, "cni.ipset")
    weave = sets.get("weave-;rGqyMIl1HN^cfDki~Z$3]6!N")
    assert ("comment", None) in weave.options and weave.test(["dst"], _pkt(dst="10.32.0.5"))
    assert sets.get("KUBE-SRC-ABCDEF").test(["src"], _pkt("10.1.1.5"))  # timeouts ignored


def test_a_file(tmp_path: Path):
    path = tmp_path / "node.ipset"
    path.write_text(CALICO)
    assert parse_ipset_save_file(path) == parse_ipset_save(CALICO, str(path))
    assert "cali40all-ipam-pools" in parse_ipset_save_file(path)


# ------------------------------------------------------------------------------------------ semantics


def test_nomatch_longest_prefix_and_return_nomatch():
    sets = parse_ipset_save("create n hash:net\nadd n 10.0.0.0/8\nadd n 10.1.0.0/16 nomatch\nadd n 10.1.2.0/24\n")
    n = sets.get("n")
    assert n.test(["src"], _pkt("10.9.9.9")) and not n.test(["src"], _pkt("10.1.9.9"))
    assert n.test(["src"], _pkt("10.1.2.3"))  # the /24 beats the nomatch /16
    assert n.test(["src"], _pkt("10.1.9.9"), return_nomatch=True)  # reversed for a found element
    assert not n.test(["src"], _pkt("10.9.9.9"), return_nomatch=True)
    assert not n.test(["src"], _pkt("11.0.0.1"), return_nomatch=True)  # not found: no match either way
    plain = parse_ipset_save("create h hash:ip\nadd h 10.0.0.1\n").get("h")
    assert plain.test(["src"], _pkt("10.0.0.1"), return_nomatch=True)  # no nomatch feature: ignored


def test_set_match_through_ipsets():
    sets = parse_ipset_save("create n hash:net\nadd n 10.0.0.0/8\nadd n 10.1.0.0/16 nomatch\n")
    match = rs.SetMatch("n", (rs.SetDir.SRC,))
    assert sets.test(match, _pkt("10.2.0.1")) is True
    assert sets.test(rs.SetMatch("n", (rs.SetDir.SRC,), negated=True), _pkt("10.2.0.1")) is False
    assert sets.test(rs.SetMatch("n", (rs.SetDir.SRC,), return_nomatch=True), _pkt("10.1.0.1")) is True
    counted = rs.SetMatch("n", (rs.SetDir.SRC,), packets=rs.SetCounter("gt", 1))
    assert sets.test(counted, _pkt("10.2.0.1")) is None and sets.test(counted, _pkt("11.0.0.1")) is False
    assert sets.test(rs.SetMatch("missing", (rs.SetDir.SRC,)), _pkt()) is None


def test_ranges_and_cidrs_in_adds():
    sets = parse_ipset_save("create h hash:ip\nadd h 10.0.0.0/30\nadd h 10.0.1.5-10.0.1.7\n"
                           "create n hash:net\nadd n 10.0.0.1-10.0.0.6\n"
                           "create m hash:ip netmask 24\nadd m 10.9.9.9\n")
    h = sets.get("h")
    assert h.test(["src"], _pkt("10.0.0.3")) and not h.test(["src"], _pkt("10.0.0.4"))
    assert h.test(["src"], _pkt("10.0.1.6")) and not h.test(["src"], _pkt("10.0.1.8"))
    n = sets.get("n")  # the CIDRs ipset adds for a range
    assert [e.values[0] for e in n.entries] == [net("10.0.0.1/32"), net("10.0.0.2/31"), net("10.0.0.4/31"),
                                               net("10.0.0.6/32")]
    m = sets.get("m")
    assert m.entries[0].values == (AddressRange(ip("10.9.9.0"), ip("10.9.9.0")),)
    assert m.test(["dst"], _pkt(dst="10.9.9.200")) and not m.test(["dst"], _pkt(dst="10.9.8.1"))


def test_ports_of_other_protocols():
    sets = parse_ipset_save("create p hash:net,port\nadd p 10.0.0.0/8,tcp:80-90\nadd p 10.0.0.0/8,icmp:8/0\n"
                           "add p 10.0.0.0/8,icmp:port-unreachable\nadd p 10.0.0.0/8,gre:0\nadd p 10.0.0.0/8,8080\n")
    p = sets.get("p")
    assert p.entries[0].values[1] == SetPort(6, 80, 90) and p.entries[4].values[1] == SetPort(6, 8080, 8080)
    assert p.test(["src", "dst"], _pkt("10.0.0.1", dport=85))
    assert p.test(["src", "dst"], _pkt("10.0.0.1", proto=1, icmp_type=8, icmp_code=0))
    assert p.test(["src", "src"], _pkt("10.0.0.1", proto=1, icmp_type=3, icmp_code=3))
    assert not p.test(["src", "dst"], _pkt("10.0.0.1", proto=1, icmp_type=0, icmp_code=0))
    assert p.test(["src", "dst"], _pkt("10.0.0.1", proto=47))


def test_interfaces():
    sets = parse_ipset_save("create i hash:net,iface\nadd i 10.0.0.0/8,eth0\nadd i 10.0.0.0/8,physdev:veth1\n")
    i = sets.get("i")
    assert i.entries[1].values[1] == SetIface("veth1", physdev=True)
    assert i.test(["src", "src"], _pkt("10.0.0.1", in_iface="eth0"))  # src: the input interface
    assert not i.test(["src", "dst"], _pkt("10.0.0.1", in_iface="eth0", out_iface="eth1"))
    assert i.test(["src", "dst"], _pkt("10.0.0.1", out_iface="eth0"))
    assert not i.test(["src", "src"], _pkt("10.0.0.1", in_iface="veth1"))  # bridge ports: never from -m set
    assert not i.test(["src", "src"], _pkt("10.0.0.1"))  # no input interface (OUTPUT)


def test_bitmap_ip():
    b = parse_ipset_save("create b bitmap:ip range 192.168.0.0/16 netmask 24\nadd b 192.168.1.0/24\n").get("b")
    assert b.range == (int(ip("192.168.0.0")), int(ip("192.168.255.255")))
    assert b.test(["dst"], _pkt(dst="192.168.1.77")) and not b.test(["dst"], _pkt(dst="192.168.2.1"))
    assert not b.test(["dst"], _pkt(dst="10.0.0.1"))


def test_list_sets_in_order_and_created_before_their_members():
    sets = parse_ipset_save("create l list:set size 8\nadd l a\nadd l b\ncreate a hash:ip\nadd a 10.0.0.1\n"
                           "create b hash:ip,port\nadd b 10.0.0.2,tcp:80\ncreate c hash:mac\nadd c 00:11:22:33:44:55\n"
                           "create l2 list:set\nadd l2 c\nadd l2 a\n")
    listed = sets.get("l")
    assert [m.name for m in listed.members] == ["a", "b"] and listed.family is None
    assert listed.test(["src"], _pkt("10.0.0.1")) and not listed.test(["src"], _pkt("10.0.0.2"))
    assert listed.test(["dst", "dst"], _pkt(dst="10.0.0.2", dport=80))  # b reads two flags
    with_opaque = sets.get("l2")
    assert with_opaque.test(["src"], _pkt("10.0.0.1")) is True  # a matches: c cannot change that
    assert with_opaque.test(["src"], _pkt("10.0.0.9")) is None  # c might


def test_opaque_set_types():
    sets = parse_ipset_save("create m hash:mac\nadd m 00:11:22:33:44:55\n")
    assert sets.get("m").entries == (SetEntry(("00:11:22:33:44:55",)),) and sets.get("m").test(["src"], _pkt()) \
        is None
    assert _error("create m hash:mac\n", strict=True) == "s.ipset:1:10: error: unsupported set type 'hash:mac'"


def test_equal_files_compare_equal_and_readding_replaces():
    one = parse_ipset_save("create n hash:net timeout 60\nadd n 10.0.0.0/8 timeout 30\n")
    assert one == parse_ipset_save("create n hash:net timeout 60\nadd n 10.0.0.0/8 timeout 10\n")
    readded = parse_ipset_save("create n hash:net\nadd n 10.0.0.0/8\nadd n 10.0.0.0/8 nomatch\n").get("n")
    assert readded.entries == (SetEntry((net("10.0.0.0/8"),), nomatch=True),)


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("text, message", [
    ("flush\n", "1:1: error: unsupported ipset command 'flush' (ipset save writes create and add)"),
    ("add x 1.2.3.4\n", "1:5: error: set 'x' is not created before this line"),
    ("create a hash:ip\ncreate a hash:ip\n", "2:8: error: set 'a' is created twice"),
    ("create a hash:ip family ipx\n", "1:25: error: invalid family 'ipx' for hash:ip (inet or inet6)"),
    ("create a hash:ip hashsize\n", "1:18: error: 'hashsize' needs a value"),
    ("create a hash:ip bogus 1\n", "1:18: error: unknown create option 'bogus'"),
    ("create a hash:net netmask 24\n", "1:19: error: hash:net takes no netmask"),
    ("create a hash:ip netmask 40\n", "1:26: error: netmask 40 is too long for the set's family"),
    ("create b bitmap:port\n", "1:10: error: bitmap:port needs 'range'"),
    ("create b bitmap:port range 0-100\nadd b 200\n", "2:7: error: '200' is outside the set's range"),
    ("create a hash:ip\nadd a 1.2.3.400\n", "2:7: error: invalid address '1.2.3.400' (host names are not supported)"),
    ("create a hash:ip\nadd a fd00::1\n", "2:7: error: IPv6 address 'fd00::1' in an IPv4 set"),
    ("create a hash:net family inet6\nadd a 10.0.0.0/8\n", "2:7: error: IPv4 network '10.0.0.0/8' in an IPv6 set"),
    ("create a hash:ip\nadd a 10.0.0.1,tcp:80\n",
     "2:7: error: '10.0.0.1,tcp:80' is not a hash:ip element (1 part separated by commas)"),
    ("create a hash:ip,port\nadd a 10.0.0.1,tcp:http\n", "2:7: error: invalid port 'http' (0-65535)"),
    ("create a hash:ip,port\nadd a 10.0.0.1,gre:5\n", "2:7: error: protocol 'gre' has no ports: write 'gre:0'"),
    ("create a hash:ip,port\nadd a 10.0.0.1,icmp:bogus\n",
     "2:7: error: invalid ICMP element 'bogus' (type/code or a name such as echo-request)"),
    ("create a hash:ip\nadd a 10.0.0.1 nomatch\n", "2:16: error: nomatch is only for sets with a net dimension, "
                                                   "not hash:ip"),
    ("create a hash:net\nadd a 10.0.0.0/8 foo\n", "2:18: error: unknown add option 'foo'"),
    ("create a hash:net,iface\nadd a 10.0.0.0/8,abcdefghijklmnopq\n",
     "2:7: error: invalid interface name 'abcdefghijklmnopq'"),
    ("create l list:set\nadd l nope\n", "2:7: error: list member 'nope' is not a set"),
    ("create l list:set\ncreate m list:set\nadd l m\n",
     "3:7: error: list member 'm' is not a set (a list:set cannot hold a list:set)"),
])
def test_positioned_errors(text: str, message: str):
    assert _error(text) == f"s.ipset:{message}"


def test_errors_are_collected():
    lines = _error("create a hash:ip\nadd a 1.2.3.400\nadd b 1.2.3.4\nadd a 1.2.3.4 bogus\n").splitlines()
    assert [line.split(": error")[0] for line in lines] == ["s.ipset:2:7", "s.ipset:3:5", "s.ipset:4:15"]


def test_blank_and_comment_lines():
    assert parse_ipset_save("# saved\n\ncreate a hash:ip\n  \nadd a 10.0.0.1\n").get("a").entries
