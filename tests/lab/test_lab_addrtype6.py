"""IPv6 ``-m addrtype`` as the kernel decides it, on a lab node: each address type, with and without
``--limit-iface-in``, for packets a pod sends to addresses of every kind (the node's own, the pod gateway,
other pods, the other node, the outside, an unassigned address of the node's pod CIDR, the link-local
subnet-router anycast, multicast). Counting rules in the node's raw PREROUTING say which types the kernel
gave; ``verifier.matches.addrtype``, on the node's ``network.DeviceRoutes``, must say the same for each."""
from __future__ import annotations

import re
import socket

import pytest

from kspec import ir
from kspec.grammar import parse_text
from kspec.lab.netns import call_in_ns, in_ns
from kspec.lab.topology import Lab
from kspec.rules.iptables import ruleset as rs
from kspec.rules.iptables.iptables_save import parse_iptables_save
from kspec.verifier.model import matches
from kspec.verifier.model.network import device_routes

pytestmark = pytest.mark.netns

SPEC = """cluster c {
  node node0 { ip fd00:240::10  pod_cidr fd00:244::/64 %s}
  node node1 { ip fd00:240::11  pod_cidr fd00:244:1::/64 }
  pod web on node0 { ip fd00:244::10 }
  pod sender on node0 { ip fd00:244::20 }
  pod far on node1 { ip fd00:244:1::10 }
}
"""
TYPES = ("UNSPEC", "UNICAST", "LOCAL", "ANYCAST", "MULTICAST", "UNREACHABLE", "UNICAST,MULTICAST",
         "LOCAL,UNREACHABLE", "UNICAST,LOCAL", "! LOCAL")
PORT = 9


def _targets(gateway: str | None) -> dict[str, str]:
    """What each destination is, by address (link-local and multicast ones go out of the pod's eth0)."""
    found = {"fd00:240::10": "node0's own", "fd00:244::10": "a pod on another veth",
             "fd00:240::11": "the other node", "fd00:244:1::10": "a pod on the other node",
             "2001:db8::5": "outside", "fd00:244::99": "no pod there (reject route)",
             "fe80::": "link-local subnet-router anycast", "ff05::1": "site-local multicast"}
    if gateway:
        found[gateway] = "the pod gateway"
    return found


def _rules(sender: str, targets: dict[str, str]) -> str:
    lines = ["*raw", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    for dst in targets:
        base = f"-A PREROUTING -s {sender}/128 -d {dst}/128 -p udp -m udp --dport {PORT}"
        lines.append(base)  # arrived at all
        for kind in TYPES:
            written = f"! --dst-type {kind[2:]}" if kind.startswith("! ") else f"--dst-type {kind}"
            for limit in ("", " --limit-iface-in"):
                lines.append(f"{base} -m addrtype {written}{limit}")
    return "\n".join(lines + ["COMMIT", ""])


def _send(source: str, targets: list[str]) -> None:
    index = socket.if_nametoindex("eth0")
    for dst in targets:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind((source, 0))  # else a link-local destination gets the pod's link-local source
            try:
                sock.sendto(b"addrtype", (dst, PORT, 0, index if dst.startswith(("fe80", "ff")) else 0))
            except OSError:
                pass  # not sent: the counters say so


def _counts(lab: Lab, ns: str) -> list[int]:
    saved = in_ns(ns, [lab.iptables("iptables-save"), "-c", "-t", "raw"]).stdout
    return [int(hit.group(1)) for hit in re.finditer(r"^\[(\d+):\d+\] -A PREROUTING", saved, re.M)]


@pytest.mark.parametrize("wiring", ["", "pod_wiring unnumbered "], ids=["gateway", "unnumbered"])
def test_ipv6_addrtype_is_the_kernels(wiring: str):
    cluster, _ = parse_text(SPEC % wiring)
    node = cluster.node("node0")
    sender = next(p for p in cluster.pods if p.name == "sender")
    lab = Lab(cluster, ir.IPFamily.V6)
    try:
        lab.build()
        gateway = lab.gateway(node)
        targets = _targets(str(gateway) if gateway else None)
        text = _rules(str(sender.ip), targets)
        in_ns(lab.nodes["node0"], [lab.iptables("iptables-restore")], stdin=text)
        veth = lab.pod_iface(list(cluster.pods).index(sender))
        # The node answers neighbour discovery for an anycast address after a random delay of up to a
        # second: the pod is told the node's MAC for it instead of waiting.
        mac = re.search(r"link/ether (\S+)", in_ns(lab.nodes["node0"], ["ip", "link", "show", veth]).stdout)
        in_ns(lab.pods[sender.key], ["ip", "-6", "neigh", "replace", "fe80::", "lladdr", mac.group(1), "dev", "eth0"])
        call_in_ns(lab.pods[sender.key], lambda: _send(str(sender.ip), list(targets)))
        counts = _counts(lab, lab.nodes["node0"])
    finally:
        lab.teardown()
    rules = [rule for rule in parse_iptables_save(text, "raw.rules").table("raw").chain("PREROUTING").rules]
    assert len(counts) == len(rules)
    routes = device_routes(cluster, node)
    arrived, wrong, compared = set(), [], 0
    for rule, count in zip(rules, counts):
        dst = next(m for m in rule.matches if isinstance(m, rs.Destination)).network.network_address
        kinds = [m for m in rule.matches if isinstance(m, rs.AddrType)]
        if not kinds:
            if count:
                arrived.add(str(dst))
            continue
        if str(dst) not in arrived:
            continue
        view = matches.PacketView(sender.ip, 40000, dst, PORT, "udp", "PREROUTING", False, None, frozenset(),
                                  False, width=128, in_iface=veth, device_routes=routes)
        said = matches.addrtype(kinds[0], view)
        assert said is not None, f"{rule.text}: unknown"
        compared += 1
        if said != bool(count):
            wrong.append(f"{targets[str(dst)]}: {rule.text[rule.text.index('-m addrtype'):]}: kernel "
                         f"{bool(count)}, kspec {said}")
    assert not wrong, "\n".join(wrong)
    # Every kind of destination got there.
    assert arrived == set(targets), set(targets) - arrived
    assert compared == len(targets) * len(TYPES) * 2
