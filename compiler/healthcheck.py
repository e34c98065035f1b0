"""kube-proxy's health-check node port: what ``/healthz`` on ``healthCheckNodePort`` answers on each node.

A cloud load balancer in front of an ``externalTrafficPolicy: Local`` Service sends traffic only to nodes
whose health check passes, i.e. nodes with at least one local, ready endpoint. The lab serves these answers
and the verifier's load-balancer model steers by them.
"""
from __future__ import annotations

import json

from kspec import ir
from kspec.compiler.nodeview import service_ports


def local_endpoint_counts(cluster: ir.Cluster, node: str, family: ir.IPFamily = ir.IPFamily.V4) -> dict[str, int]:
    """For every Service with a health-check node port: how many local ready endpoints ``node`` has.

    kube-proxy counts distinct ``ip:port`` endpoints over all ports of the Service.
    """
    seen: dict[str, set[str]] = {}
    for info in service_ports(cluster, family):
        if not info.health_check_node_port:
            continue
        local = seen.setdefault(info.service.key, set())
        local.update(ep.text for ep in info.endpoints if ep.node == node and ep.ready)
    return {key: len(eps) for key, eps in seen.items()}


def healthz(service: ir.Service, local_endpoints: int) -> tuple[int, str]:
    """(HTTP status, body) as kube-proxy's service health server answers."""
    body = json.dumps({
        "service": {"namespace": service.namespace, "name": service.name},
        "localEndpoints": local_endpoints,
        "serviceProxyHealthy": True,
    })
    return (200 if local_endpoints > 0 else 503), body


def healthy_nodes(cluster: ir.Cluster, service: ir.Service, family: ir.IPFamily = ir.IPFamily.V4) -> tuple[str, ...]:
    """The nodes a health-checking load balancer sends ``service``'s traffic to."""
    return tuple(node.name for node in cluster.nodes
                 if local_endpoint_counts(cluster, node.name, family).get(service.key, 0) > 0)
