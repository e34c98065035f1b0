"""kube-proxy's nodePortAddresses for one IP family (``pkg/proxy/util/nodeport_addresses.go``): which of the
node's addresses NodePorts answer on. Tested against kube-proxy's own table tests
(``tests/data/kube-proxy-helpers/nodeport-addresses.json``)."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from kspec import ir

_ZERO = {ir.IPFamily.V4: ipaddress.ip_network("0.0.0.0/0"), ir.IPFamily.V6: ipaddress.ip_network("::/0")}
_LOOPBACK4 = ipaddress.ip_address("127.0.0.1")


@dataclass(frozen=True, slots=True)
class NodePortAddresses:
    family: ir.IPFamily
    cidrs: tuple[ir.IPNetwork, ...]  # the configured CIDRs of the family, or the zero CIDR when none is

    @staticmethod
    def of(family: ir.IPFamily, configured: Iterable[ir.IPNetwork] | None) -> NodePortAddresses:
        """The other family's CIDRs are ignored; with none left (none given, or only the other family's)
        every address matches, as with the zero CIDR."""
        mine = tuple(c for c in configured or () if ir.IPFamily.of(c) is family)
        return NodePortAddresses(family, mine or (_ZERO[family],))

    @property
    def match_all(self) -> bool:
        return any(c.prefixlen == 0 for c in self.cidrs)

    @property
    def contains_ipv4_loopback(self) -> bool:
        """Whether 127.0.0.1 is covered (NewProxier turns localhostNodePorts off otherwise)."""
        return self.family is ir.IPFamily.V4 and any(
            c.network_address.is_loopback or _LOOPBACK4 in c for c in self.cidrs)

    def node_ips(self, addresses: Iterable[ir.IPAddress]) -> tuple[ir.IPAddress, ...]:
        """The node's ``addresses`` (every interface's, loopback included) NodePorts answer on (GetNodeIPs)."""
        return tuple(ip for ip in addresses
                     if ir.IPFamily.of(ip) is self.family and any(ip in c for c in self.cidrs))
