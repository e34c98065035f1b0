"""The per-node facts every rule module needs: which node, which family, which proxy settings."""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from kspec import ir, releases
from kspec.compiler.nodeportaddresses import NodePortAddresses
from kspec.compiler.nodeview import LOOPBACK


@dataclass(frozen=True, slots=True)
class NodeContext:
    node: ir.Node
    family: ir.IPFamily
    proxy: ir.ProxyConfig
    large_cluster: bool  # endpoint comments are left out above the threshold (spec §8)
    # Rule lines that do not depend on the node (endpoint chains, dispatch cascades), rendered once per
    # cluster and reused on every node.
    shared: dict = field(default_factory=dict, compare=False, repr=False)

    def shared_lines(self, key, render: Callable[[], list[str]]) -> list[str]:
        found = self.shared.get(key)
        if found is None:
            found = self.shared[key] = render()
        return found

    @property
    def mark(self) -> str:
        return self.proxy.mark

    def has_counter(self, name: str) -> bool:
        """An nfacct counter kube-proxy counts with (from 1.31, where the node has it)."""
        return self.proxy.has_counter(name) and releases.at_least(self.proxy, releases.NFACCT_COUNTERS)

    @property
    def node_port_addresses(self) -> NodePortAddresses:
        configured = self.proxy.node_port_addresses
        if self.proxy.node_port_primary:  # ["primary"]: this node's primary IP of each family, as a host CIDR
            primaries = (self.node.primary_ip(f) for f in ir.IPFamily)
            configured = tuple(ipaddress.ip_network(ip) for ip in primaries if ip is not None and not ip.is_loopback)
        return NodePortAddresses.of(self.family, configured)

    @property
    def localhost_node_ports(self) -> bool:
        """NodePorts on 127.0.0.1: IPv4 only, and forced off when nodePortAddresses do not cover IPv4 loopback
        (as kube-proxy's NewProxier does)."""
        return self.proxy.localhost_node_ports and self.node_port_addresses.contains_ipv4_loopback

    @property
    def primary_ip(self) -> ir.IPAddress | None:
        """kube-proxy's nodeIP (the source-range hairpin check compares it, across families never matching)."""
        return self.node.proxy_ip or self.node.primary_ip(self.family)

    def local_ips(self) -> tuple[ir.IPAddress, ...]:
        """The node's addresses of this family, loopback included (what `--dst-type LOCAL` matches)."""
        own = tuple(ip for ip in self.node.ips if ir.IPFamily.of(ip) is self.family)
        return (LOOPBACK[self.family],) + own
