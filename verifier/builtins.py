"""Properties every spec gets without writing them: what the Kubernetes documentation promises about
source IPs, per Service.

Each built-in is an ordinary ``ir.Check`` over synthetic clients (every pod, a process on every node, and
"any external host" with a symbolic address), so it runs through the same Z3 queries as a user's check.
"""
from __future__ import annotations

from dataclasses import replace

from kspec import ir
from kspec.compiler.healthcheck import healthy_nodes
from kspec.verifier.properties import SourceInRanges

ANY_EXTERNAL = "kspec:any-external-host"


def node_client(node: ir.Node) -> str:
    return f"kspec:node:{node.name}"


def pod_client(pod: ir.Pod) -> str:
    return f"kspec:pod:{pod.key}"


def with_builtin_clients(cluster: ir.Cluster) -> ir.Cluster:
    clients = (
        (ir.Client(ANY_EXTERNAL, ir.ClientKind.EXTERNAL),)
        + tuple(ir.Client(node_client(n), ir.ClientKind.NODE, node=n.name) for n in cluster.nodes)
        + tuple(ir.Client(pod_client(p), ir.ClientKind.POD, p.ip, p.node) for p in cluster.pods)
    )
    return replace(cluster, clients=cluster.clients + clients)


def builtin_checks(cluster: ir.Cluster, family: ir.IPFamily = ir.IPFamily.V4) -> tuple[ir.Check, ...]:
    checks: list[ir.Check] = []
    for svc in cluster.services:
        if svc.type is ir.ServiceType.EXTERNAL_NAME or not svc.ports or \
                not any(ir.IPFamily.of(ip) is family for ip in svc.cluster_ips):
            continue  # not proxied in this family (kube-proxy follows the Service's ipFamilies)
        checks += _cluster_ip_checks(cluster, svc, family)
        if svc.external_traffic_policy is ir.TrafficPolicy.LOCAL and svc.type in (
                ir.ServiceType.NODE_PORT, ir.ServiceType.LOAD_BALANCER):
            checks += _local_policy_checks(cluster, svc, family)
        if svc.load_balancer_source_ranges and svc.load_balancer_ingress:
            checks.append(_check(f"loadBalancerSourceRanges admit only the listed sources: {svc.key}",
                                 (ANY_EXTERNAL,), ir.Destination(svc.key, ir.Via.LOAD_BALANCER),
                                 ir.Implies(ir.Delivered(), SourceInRanges(svc.load_balancer_source_ranges)),
                                 svc))
    return tuple(checks)


def _check(name: str, clients: tuple[str, ...], dest: ir.Destination, prop, svc: ir.Service) -> ir.Check:
    return ir.Check(f"builtin: {name}", clients, dest, prop, ir.Expectation.HOLDS, span=svc.span)


def _cluster_ip_checks(cluster: ir.Cluster, svc: ir.Service, family: ir.IPFamily) -> list[ir.Check]:
    checks = []
    endpoints = [ep for ep in svc.endpoints if ir.IPFamily.of(ep.ip) is family]
    ready = any(ep.ready or (ep.serving and ep.terminating) for ep in endpoints)
    dest = ir.Destination(svc.key, ir.Via.CLUSTER_IP)
    for pod in (p for p in cluster.pods if ir.IPFamily.of(p.ip) is family):
        # kube-proxy masquerades on purpose when a pod reaches itself through its own Service (hairpin).
        keeps = ir.Implies(ir.Delivered(), ir.Or(ir.SourceIsClient(), ir.EndpointIn((pod.key,))))
        checks.append(_check(f"ClusterIP traffic from {pod.key} is not SNATed: {svc.key}",
                             (pod_client(pod),), dest, keeps, svc))
    if svc.internal_traffic_policy is ir.TrafficPolicy.LOCAL:
        return checks  # reachability then depends on the sender's node
    nodes = tuple(node_client(n) for n in cluster.nodes)
    if ready:
        checks.append(_check(f"every node reaches the Service: {svc.key}", nodes, dest, ir.Delivered(), svc))
    elif not endpoints:
        checks.append(_check(f"a Service without endpoints rejects: {svc.key}", nodes, dest, ir.Rejected(), svc))
    return checks


def _draining(svc: ir.Service, node: str, family: ir.IPFamily) -> bool:
    local = [ep for ep in svc.endpoints if ep.node == node and ir.IPFamily.of(ep.ip) is family]
    return bool(local) and not any(ep.ready for ep in local) and any(ep.serving and ep.terminating for ep in local)


def _local_policy_checks(cluster: ir.Cluster, svc: ir.Service, family: ir.IPFamily) -> list[ir.Check]:
    checks = []
    if any(p.node_port for p in svc.ports):
        # Delivered only on the node it arrived at (so only nodes with a local endpoint deliver), client IP kept.
        checks.append(_check(f"externalTrafficPolicy Local keeps the client IP: {svc.key}", (ANY_EXTERNAL,),
                             ir.Destination(svc.key, ir.Via.NODE_PORT),
                             ir.Implies(ir.Delivered(), ir.And(ir.SourceIsClient(), ir.StaysOnNode())), svc))
    if svc.type is ir.ServiceType.LOAD_BALANCER and svc.health_check_node_port and any(p.node_port for p in svc.ports):
        healthy = set(healthy_nodes(cluster, svc, family))
        for node in cluster.nodes:
            dest = ir.Destination(svc.key, ir.Via.NODE_PORT, node=node.name)
            if node.name in healthy:
                checks.append(_check(f"{node.name} passes its health check and delivers: {svc.key}",
                                     (ANY_EXTERNAL,), dest, ir.Delivered(), svc))
            elif _draining(svc, node.name, family):
                # kube-proxy's /healthz counts ready endpoints only, so a node whose local endpoints are all
                # terminating fails the check (the LB drains it) while its rules still deliver to them.
                checks.append(replace(_check(
                    f"{node.name} fails its health check yet still delivers (terminating endpoints): {svc.key}",
                    (ANY_EXTERNAL,), dest, ir.Not(ir.Delivered()), svc), expect=ir.Expectation.VIOLATED))
            else:
                checks.append(_check(f"{node.name} fails its health check and does not deliver: {svc.key}",
                                     (ANY_EXTERNAL,), dest, ir.Not(ir.Delivered()), svc))
    return checks
