"""The checks that need the whole cluster, for every front end (a ``.k`` spec, Kubernetes objects): pod CIDRs
inside the cluster CIDR and not overlapping, pod IPs inside their node's pod CIDR and not shared, nodePorts
(and health-check ports) inside the range and not taken twice. Kubernetes itself refuses such a state, so a
verdict about one would be about a cluster that cannot exist.

Each front end turns a ``Problem`` into a positioned diagnostic: it knows where the object's field was
written (``field`` and ``index`` name it).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kspec import ir


@dataclass(frozen=True, slots=True)
class Problem:
    subject: Any  # the IR object at fault: a Node, Pod, ServicePort or Service
    field: str  # its field: pod_cidr, ip, node_port, health_check_node_port
    index: int | None
    message: str


def problems(cluster: ir.Cluster) -> list[Problem]:
    return [*_pod_cidrs(cluster), *_pod_ips(cluster), *_node_ports(cluster)]


def _pod_cidrs(cluster: ir.Cluster) -> Iterator[Problem]:
    cluster_cidrs = cluster.proxy.cluster_cidrs
    owner: list[tuple[ir.IPNetwork, ir.Node]] = []
    for node in cluster.nodes:
        for index, cidr in enumerate(node.pod_cidrs):
            same_family = [c for c in cluster_cidrs if c.version == cidr.version]
            if same_family and not any(_inside(cidr, c) for c in same_family):
                yield Problem(node, "pod_cidr", index, f"pod CIDR {cidr} of node {node.name} is outside the "
                                                       f"cluster CIDR {', '.join(map(str, same_family))}")
            for other_cidr, other in owner:
                if other_cidr.version == cidr.version and other_cidr.overlaps(cidr):
                    yield Problem(node, "pod_cidr", index, f"pod CIDR {cidr} of node {node.name} overlaps "
                                                           f"{other_cidr} of node {other.name}")
            owner.append((cidr, node))


def _inside(inner: ir.IPNetwork, outer: ir.IPNetwork) -> bool:
    """``inner.subnet_of(outer)`` for networks of one family, in a form the type checker accepts for a union."""
    return inner.network_address in outer and inner.broadcast_address in outer


def _pod_ips(cluster: ir.Cluster) -> Iterator[Problem]:
    nodes = {node.name: node for node in cluster.nodes}
    node_ips = {ip for node in cluster.nodes for ip in node.ips}
    by_ip: dict[ir.IPAddress, ir.Pod] = {}
    for pod in cluster.pods:
        if pod.ip is None or pod.ip in node_ips:  # a host-network pod has its node's address
            continue
        node = nodes.get(pod.node)
        cidrs = [c for c in node.pod_cidrs if c.version == pod.ip.version] if node else []
        if node is not None and cidrs and not any(pod.ip in c for c in cidrs):
            yield Problem(pod, "ip", None, f"pod IP {pod.ip} of {pod.key} is outside the pod CIDR "
                                           f"{', '.join(map(str, cidrs))} of node {node.name}")
        if pod.ip in by_ip:
            yield Problem(pod, "ip", None, f"pod IP {pod.ip} of {pod.key} is already used by {by_ip[pod.ip].key}")
        by_ip.setdefault(pod.ip, pod)


def _node_ports(cluster: ir.Cluster) -> Iterator[Problem]:
    """nodePorts (and health check ports) lie in the proxy's range, and no two services share one."""
    low, high = cluster.proxy.node_port_range
    taken: set[tuple[int, str]] = set()
    for svc in cluster.services:
        uses: list[tuple[int, str, Any, str]] = [(p.node_port, p.protocol.value, p, "node_port")
                                                 for p in svc.ports if p.node_port]
        if svc.health_check_node_port:
            uses.append((svc.health_check_node_port, "TCP", svc, "health_check_node_port"))
        for number, protocol, subject, what in uses:
            if not low <= number <= high:
                yield Problem(subject, what, None, f"{what} {number} is outside the node port range {low}-{high}")
            if (number, protocol) in taken:
                yield Problem(subject, what, None, f"{what} {number}/{protocol.lower()} is already used")
            taken.add((number, protocol))
