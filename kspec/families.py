"""The same cluster in another IP family: ``as_ipv6`` moves every IPv4 address and network under
``fd00::/96``; ``as_dual_stack`` puts a cluster and its IPv6 twin side by side as one dual-stack cluster.

IR transforms, not strategies: Hypothesis maps drawn clusters through them (``clusters().map(as_ipv6)``),
and the tests and benchmarks use them on specs.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kspec import ir

_IPV6_PREFIX = int(ipaddress.IPv6Address("fd00::"))


def embedded(value: Any) -> Any:
    """``value`` (an IPv4 address or network) under ``fd00::/96``."""
    if isinstance(value, ipaddress.IPv4Network):
        return ipaddress.IPv6Network((_IPV6_PREFIX | int(value.network_address), 96 + value.prefixlen))
    return ipaddress.IPv6Address(_IPV6_PREFIX | int(value))


def as_ipv6(cluster: ir.Cluster, suffix: str = "") -> ir.Cluster:
    """The same cluster with every IPv4 address and network moved under ``fd00::/96`` (same host bits, prefix
    lengths + 96): an IPv6-only cluster shaped exactly like a drawn IPv4 one, for ``clusters().map(as_ipv6)``.
    ``suffix``: appended to the names of pods and of clients with an address of their own, everywhere they
    are named (endpoints, checks), so that the result can stand next to the original (``as_dual_stack``)."""
    moved = _moved(cluster)
    if not suffix:
        return moved
    twin = _twin_pod_names(cluster, suffix)
    clients = {c.name: f"{c.name}{suffix}" for c in cluster.clients if c.ip is not None}
    return replace(
        moved,
        pods=tuple(replace(pod, name=f"{pod.name}{suffix}") for pod in moved.pods),
        services=tuple(replace(svc, endpoints=tuple(replace(ep, pod=ep.pod and twin(ep.pod)) for ep in svc.endpoints))
                       for svc in moved.services),
        clients=tuple(replace(c, name=clients.get(c.name, c.name)) for c in moved.clients),
        checks=tuple(replace(check, clients=tuple(clients.get(name, name) for name in check.clients),
                             prop=_endpoint_pods(check.prop, lambda pods: tuple(map(twin, pods))))
                     for check in moved.checks))


def as_dual_stack(cluster: ir.Cluster) -> ir.Cluster:
    """The (IPv4) cluster and ``as_ipv6(cluster, suffix="-v6")`` as one dual-stack cluster: each node,
    cluster CIDR and Service has its addresses of both families, every pod and addressed client is there
    with its IPv6 twin (a kspec pod has one address), and each check asks from both and accepts both twins as
    endpoints. Verified one family at a time it is the two single-stack clusters side by side, as kube-proxy
    programs iptables and ip6tables apart."""
    six = as_ipv6(cluster, suffix="-v6")
    twin = _twin_pod_names(cluster, "-v6")
    nodes = tuple(replace(a, ips=a.ips + b.ips, pod_cidrs=a.pod_cidrs + b.pod_cidrs)
                  for a, b in zip(cluster.nodes, six.nodes))
    p4, p6 = cluster.proxy, six.proxy
    proxy = replace(p4, cluster_cidrs=p4.cluster_cidrs + p6.cluster_cidrs,
                    node_port_addresses=None if p4.node_port_addresses is None
                    else p4.node_port_addresses + (p6.node_port_addresses or ()))
    services = tuple(replace(a, cluster_ips=a.cluster_ips + b.cluster_ips, endpoints=a.endpoints + b.endpoints,
                             external_ips=a.external_ips + b.external_ips,
                             load_balancer_ingress=a.load_balancer_ingress + b.load_balancer_ingress,
                             load_balancer_source_ranges=a.load_balancer_source_ranges
                             + b.load_balancer_source_ranges)
                     for a, b in zip(cluster.services, six.services))
    clients = cluster.clients + tuple(c for c in six.clients if c.name not in {d.name for d in cluster.clients})
    def either(pods: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(pods + tuple(map(twin, pods))))

    checks = tuple(replace(a, clients=tuple(dict.fromkeys(a.clients + b.clients)), prop=_endpoint_pods(a.prop, either))
                   for a, b in zip(cluster.checks, six.checks))
    return replace(cluster, nodes=nodes, proxy=proxy, pods=cluster.pods + six.pods, services=services,
                   clients=clients, checks=checks)


def _twin_pod_names(cluster: ir.Cluster, suffix: str) -> Callable[[str], str]:
    """name -> its twin's name, for a pod's key or name (checks and endpoints use either); others unchanged."""
    known = {pod.key for pod in cluster.pods} | {pod.name for pod in cluster.pods}
    return lambda name: f"{name}{suffix}" if name in known else name


def _endpoint_pods(prop: ir.Prop, change: Callable[[tuple[str, ...]], tuple[str, ...]]) -> ir.Prop:
    """``prop`` with the pods of each ``endpoint in {...}`` replaced by ``change(pods)``."""
    if isinstance(prop, ir.EndpointIn):
        return replace(prop, pods=change(prop.pods))
    parts: dict[str, Any] = {name: _endpoint_pods(getattr(prop, name), change)
                             for name in ("operand", "left", "right") if hasattr(prop, name)}
    return replace(prop, **parts)


def _moved(value: Any) -> Any:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv4Network)):
        return embedded(value)
    if isinstance(value, tuple):
        return tuple(_moved(item) for item in value)
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        changes = {name: _moved(getattr(value, name)) for name, f in value.__dataclass_fields__.items() if f.init}
        return replace(value, **changes)
    return value
