"""IR -> Kubernetes objects (a YAML stream ``kspec.ingest.k8s.load_k8s`` reads back).

Nodes, Pods, Services with their EndpointSlices (one slice per Service and family), the
KubeProxyConfiguration and kspec's NodeFacts. Selectors are not written (the ingest side never reads them:
endpoints come from the slices), so what the compiler sees is the same cluster.
"""
from __future__ import annotations

from typing import Any

import yaml

from kspec import ir


def _proxy(proxy: ir.ProxyConfig) -> list[dict]:
    config: dict = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration", "mode": "iptables",
        "clusterCIDR": ",".join(str(c) for c in proxy.cluster_cidrs),
        "detectLocalMode": proxy.detect_local.mode.value,
        "iptables": {"masqueradeAll": proxy.masquerade_all, "masqueradeBit": proxy.masquerade_bit,
                     "localhostNodePorts": proxy.localhost_node_ports},
        "portRange": "{}-{}".format(*proxy.node_port_range),
        **({"featureGates": {"LoadBalancerIPMode": proxy.lb_ip_mode_gate}} if proxy.lb_ip_mode_gate is not None
           else {}),
        "conntrack": {"tcpBeLiberal": proxy.tcp_liberal},
    }
    if proxy.detect_local.interface is not None:
        key = ("bridgeInterface" if proxy.detect_local.mode is ir.LocalDetectMode.BRIDGE_INTERFACE
               else "interfaceNamePrefix")
        config["detectLocal"] = {key: proxy.detect_local.interface}
    if proxy.node_port_addresses is not None:
        config["nodePortAddresses"] = [str(c) for c in proxy.node_port_addresses]
    if proxy.node_port_primary:
        config["nodePortAddresses"] = ["primary"]
    facts = {"apiVersion": "kspec.dev/v1alpha1", "kind": "NodeFacts", "randomFully": proxy.random_fully,
             "nfacct": proxy.nfacct, "nfacctUnavailable": list(proxy.nfacct_unavailable),
             "tcpLiberal": proxy.tcp_liberal}
    if proxy.mark_literal is not None:
        facts["markLiteral"] = proxy.mark_literal
    return [config, facts]


def _node(node: ir.Node) -> dict:
    meta: dict = {"name": node.name}
    if node.zone is not None:
        meta["labels"] = {"topology.kubernetes.io/zone": node.zone}
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta,
            "spec": {"podCIDRs": [str(c) for c in node.pod_cidrs]},
            "status": {"addresses": [{"type": "InternalIP", "address": str(ip)} for ip in node.ips]}}


def _pod(pod: ir.Pod) -> dict:
    meta: dict = {"name": pod.name, "namespace": pod.namespace, "labels": dict(pod.labels)}
    if pod.terminating:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    ports = [{"containerPort": p.port, "protocol": p.protocol.value, **({"name": p.name} if p.name else {})}
             for p in pod.ports]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": pod.node, "containers": [{"name": "main", "ports": ports}]},
            "status": {"podIP": str(pod.ip),
                       "conditions": [{"type": "Ready", "status": "True" if pod.serving else "False"}]}}


def _service(svc: ir.Service) -> list[dict]:
    meta = {"name": svc.name, "namespace": svc.namespace}
    ports = []
    for p in svc.ports:
        entry: dict = {"protocol": p.protocol.value, "port": p.port}
        if p.name:
            entry["name"] = p.name
        if p.target_port is not None:
            entry["targetPort"] = p.target_port
        if p.node_port:
            entry["nodePort"] = p.node_port
        ports.append(entry)
    spec: dict = {"type": svc.type.value, "ports": ports}
    if svc.type is ir.ServiceType.EXTERNAL_NAME:
        spec["externalName"] = svc.external_name
        return [{"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}]
    spec["clusterIPs"] = [str(ip) for ip in svc.cluster_ips] or ["None"]
    if svc.external_ips:
        spec["externalIPs"] = [str(ip) for ip in svc.external_ips]
    if svc.load_balancer_source_ranges:
        spec["loadBalancerSourceRanges"] = [str(c) for c in svc.load_balancer_source_ranges]
    spec["externalTrafficPolicy"] = svc.external_traffic_policy.value
    spec["internalTrafficPolicy"] = svc.internal_traffic_policy.value
    if svc.traffic_distribution is not None:
        spec["trafficDistribution"] = svc.traffic_distribution
    if svc.health_check_node_port:
        spec["healthCheckNodePort"] = svc.health_check_node_port
    if svc.session_affinity is not None:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": svc.session_affinity.timeout_seconds}}
    status = {"loadBalancer": {"ingress": [{"ip": str(i.ip), **({"ipMode": i.mode.value} if i.mode else {})}
                                           for i in svc.load_balancer_ingress]}}
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec, "status": status}]
    for version, family in ((4, "IPv4"), (6, "IPv6")):
        eps = [e for e in svc.endpoints if e.ip.version == version]
        if not eps:
            continue
        # One slice per (family, port set): a slice states its ports once for all its endpoints.
        by_ports: dict[tuple, list[ir.Endpoint]] = {}
        for e in eps:
            by_ports.setdefault(tuple((p.name, p.protocol, p.port) for p in e.ports), []).append(e)
        for index, (port_key, group) in enumerate(by_ports.items()):
            endpoints: list[dict[str, Any]] = []
            for e in group:
                entry = {"addresses": [str(e.ip)],
                         "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating}}
                if e.node is not None:
                    entry["nodeName"] = e.node
                if e.zone_hints or e.node_hints:
                    entry["hints"] = {key: [{"name": name} for name in names] for key, names in
                                      (("forZones", e.zone_hints), ("forNodes", e.node_hints)) if names}
                if e.pod is not None:
                    namespace, _, name = e.pod.partition("/")
                    entry["targetRef"] = {"kind": "Pod", "namespace": namespace, "name": name}
                endpoints.append(entry)
            objects.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": family,
                "metadata": {"name": f"{svc.name}-{family.lower()}-{index}", "namespace": svc.namespace,
                             "labels": {"kubernetes.io/service-name": svc.name}},
                "ports": [{"name": n, "protocol": proto.value, "port": port} for n, proto, port in port_key],
                "endpoints": endpoints,
            })
    return objects


def to_objects(cluster: ir.Cluster) -> list[dict]:
    """Every object of ``cluster``: proxy configuration and node facts, Nodes, Pods, Services and slices."""
    objects = _proxy(cluster.proxy) + [_node(n) for n in cluster.nodes] + [_pod(p) for p in cluster.pods]
    for svc in cluster.services:
        objects += _service(svc)
    return objects


def to_yaml(cluster: ir.Cluster) -> str:
    """The objects as one ``---``-separated YAML stream."""

    return "".join("---\n" + yaml.safe_dump(obj, sort_keys=False) for obj in to_objects(cluster))
