"""The per-node facts every rule module needs: which node, which family, which proxy settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from kspec import ir
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

    @property
    def localhost_node_ports(self) -> bool:
        return self.proxy.localhost_node_ports and self.family is ir.IPFamily.V4

    @property
    def primary_ip(self) -> ir.IPAddress | None:
        # kube-proxy's node IP; its unit tests keep an IPv4 node IP even for the IPv6 proxier.
        return self.node.primary_ip(self.family) or next(iter(self.node.ips), None)

    def local_ips(self) -> tuple[ir.IPAddress, ...]:
        """The node's addresses of this family, loopback included (what `--dst-type LOCAL` matches)."""
        own = tuple(ip for ip in self.node.ips if ir.IPFamily.of(ip) is self.family)
        return (LOOPBACK[self.family],) + own
