"""kube-proxy's health-check node port: what ``/healthz`` on ``healthCheckNodePort`` answers on each node.

A cloud load balancer in front of an ``externalTrafficPolicy: Local`` Service sends traffic only to nodes
whose health check passes, i.e. nodes with at least one local, ready endpoint. The lab serves these answers
and the verifier's load-balancer model steers by them.
"""
from __future__ import annotations

import json

from kspec import ir
from kspec.compiler.nodeview import node_endpoints, port_infos


def local_endpoint_counts(cluster: ir.Cluster, node: str, family: ir.IPFamily = ir.IPFamily.V4) -> dict[str, int]:
    """For every Service with a health-check node port: how many local ready endpoints ``node`` has."""
    return {svc.key: count for svc in cluster.services
            if (count := local_ready_endpoints(svc, node, cluster.proxy, family)) is not None}


def local_ready_endpoints(service: ir.Service, node: str, proxy: ir.ProxyConfig,
                          family: ir.IPFamily = ir.IPFamily.V4) -> int | None:
    """How many local, ready endpoints /healthz reports for ``service`` on ``node`` (None: no health check).

    kube-proxy counts distinct endpoint *IPs* over all ports of the Service (10.0.0.1:80 and 10.0.0.1:443 are
    one endpoint), ready ones only: a node whose local endpoints are all terminating fails the check on
    purpose, so load balancers drain it while it still serves.
    """
    infos = port_infos(service, family, proxy)
    if not any(info.health_check_node_port for info in infos):
        return None
    return len({ep.address for info in infos for ep in node_endpoints(info, node) if ep.node == node and ep.ready})


def healthz(service: ir.Service, local_endpoints: int, proxy_healthy: bool = True) -> tuple[int, str]:
    """(HTTP status, body) as kube-proxy's service health server answers (Content-Type application/json):
    200 with at least one local endpoint while kube-proxy itself is healthy, else 503; the body is kube-proxy's
    tab-indented JSON, byte for byte."""
    body = "\n".join([
        "{",
        '\t"service": {',
        f'\t\t"namespace": {json.dumps(service.namespace)},',
        f'\t\t"name": {json.dumps(service.name)}',
        "\t},",
        f'\t"localEndpoints": {local_endpoints},',
        f'\t"serviceProxyHealthy": {"true" if proxy_healthy else "false"}',
        "}",
    ])
    return (200 if local_endpoints > 0 and proxy_healthy else 503), body


def healthy_nodes(cluster: ir.Cluster, service: ir.Service, family: ir.IPFamily = ir.IPFamily.V4) -> tuple[str, ...]:
    """The nodes a health-checking load balancer sends ``service``'s traffic to."""
    return tuple(node.name for node in cluster.nodes
                 if (local_ready_endpoints(service, node.name, cluster.proxy, family) or 0) > 0)
