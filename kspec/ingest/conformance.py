"""kube-proxy's unit-test corpus (``shared/conformance/kube-proxy``, schema kspec.kube-proxy-conformance/v1)
-> IR.

A case describes one kube-proxy on one node (``proxier.nodeName``); the IR describes a cluster. The case
becomes a cluster with that node, whose addresses are the proxier's interface addresses, plus a partial-sync
state when the case is one step of a sequence of syncs.
"""
from __future__ import annotations

import json
from pathlib import Path

from kspec import ir, releases
from kspec.ingest.addresses import parse_cidr_lenient, parse_ip_lenient

_COUNTERS = ("ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts")
_DETECT = {mode.value: mode for mode in ir.LocalDetectMode}


def load_case(case_dir: str | Path) -> tuple[ir.Cluster, str, ir.IPFamily, ir.SyncState]:
    """(cluster, node name, IP family, sync state) of one corpus case."""
    data = json.loads((Path(case_dir) / "input.json").read_text())
    proxier = data["proxier"]
    family = ir.IPFamily(proxier["ipFamily"])
    node = _node(proxier, family)
    cluster = ir.Cluster(
        name=Path(case_dir).name,
        nodes=(node,),
        proxy=_proxy(proxier, family),
        services=tuple(_service(svc, data["endpointSlices"]) for svc in data["services"]),
    )
    changed = data.get("changedServices")
    existing = proxier.get("existingNatChains")
    sync = ir.SyncState(
        changed=None if proxier.get("fullSync", True) else frozenset(changed or ()),
        existing_chains=None if existing is None else frozenset(existing),
    )
    return cluster, node.name, family, sync


def _node(proxier: dict, family: ir.IPFamily) -> ir.Node:
    # The node's addresses are its interfaces' (kube-proxy's GetNodeIPs, for nodePortAddresses); the
    # proxier's nodeIP is kept apart: only the source-range hairpin check reads it (§5.9), and the fake
    # proxier's need not be an interface address, nor of the proxier's family.
    ips: list[ir.IPAddress] = []
    for entry in proxier.get("interfaceAddresses", []):
        ip = parse_cidr_lenient(entry["cidr"])
        addr = parse_ip_lenient(entry["cidr"].split("/")[0])
        if ip is not None and addr is not None and not addr.is_loopback and addr not in ips:
            ips.append(addr)
    node_ip = parse_ip_lenient(proxier["nodeIP"])
    detector = proxier.get("localDetector") or {}
    # The NodeCIDR local detector's CIDR is this node's pod CIDR (not a cluster CIDR).
    pod_cidrs = (_cidr(detector["cidr"]),) if detector.get("mode") == "NodeCIDR" else ()
    return ir.Node(name=proxier["nodeName"], ips=tuple(ips), pod_cidrs=pod_cidrs,
                   proxy_ip=None if node_ip == ir.Node("", tuple(ips)).primary_ip(family) else node_ip)


def _cidr(text: str) -> ir.IPNetwork:
    """A CIDR of the corpus, which holds only valid ones (kube-proxy's tests parse them the same way)."""
    cidr = parse_cidr_lenient(text)
    if cidr is None:
        raise ValueError(f"corpus CIDR {text!r} does not parse")
    return cidr


def _proxy(proxier: dict, family: ir.IPFamily) -> ir.ProxyConfig:
    detector = proxier.get("localDetector") or {"mode": "None"}
    mode = _DETECT[detector["mode"]]
    cidrs: tuple[ir.IPNetwork, ...] = ()
    if mode is ir.LocalDetectMode.CLUSTER_CIDR:
        cidrs = (_cidr(detector["cidr"]),)
    counters = proxier.get("nfacctCounters") or {}
    node_port_addresses = proxier.get("nodePortAddresses")
    return ir.ProxyConfig(
        cluster_cidrs=cidrs,
        detect_local=ir.LocalDetect(mode, detector.get("interface") or detector.get("prefix")),
        masquerade_all=proxier["masqueradeAll"],
        masquerade_bit=proxier["masqueradeBit"],
        localhost_node_ports=proxier["localhostNodePorts"],
        node_port_addresses=None if node_port_addresses is None else tuple(
            _cidr(c) for c in node_port_addresses),
        large_cluster_threshold=proxier.get("largeClusterEndpointsThreshold", 1000),
        random_fully=proxier["iptablesHasRandomFully"],
        nfacct=any(counters.values()),
        nfacct_unavailable=tuple(sorted(name for name in _COUNTERS if not counters.get(name))),
        tcp_liberal=proxier["conntrackTCPLiberal"],
        lb_ip_mode_gate=(proxier.get("featureGates") or {}).get("LoadBalancerIPMode"),
        kube_proxy_version=releases.CORPUS,
        mark_literal=proxier.get("masqueradeMark"),
    )


def _service(svc: dict, slices: list[dict]) -> ir.Service:
    cluster_ips = svc.get("clusterIPs") or [svc.get("clusterIP") or ""]
    affinity = None
    if svc.get("sessionAffinity") == "ClientIP":
        affinity = ir.SessionAffinity(svc.get("sessionAffinityTimeoutSeconds") or 10800)
    return ir.Service(
        namespace=svc["namespace"],
        name=svc["name"],
        type=ir.ServiceType(svc.get("type") or "ClusterIP"),
        cluster_ips=_ips(cluster_ips),
        ports=tuple(
            ir.ServicePort(p.get("name") or "", ir.Protocol(p["protocol"]), p["port"], p.get("targetPort"),
                           p.get("nodePort") or 0)
            for p in svc["ports"]
        ),
        endpoints=tuple(ep for s in slices if (s["namespace"], s["serviceName"]) == (svc["namespace"], svc["name"])
                        for ep in _slice_endpoints(s)),
        external_ips=_ips(svc.get("externalIPs") or []),
        load_balancer_ingress=tuple(
            ir.LoadBalancerIngress(ip, ir.IngressMode(ing["ipMode"]) if ing.get("ipMode") else None)
            for ing in svc.get("loadBalancerIngress") or []
            if (ip := parse_ip_lenient(ing.get("ip") or "")) is not None
        ),
        load_balancer_source_ranges=tuple(
            cidr for text in svc.get("loadBalancerSourceRanges") or []
            if (cidr := parse_cidr_lenient(text.strip())) is not None
        ),
        external_traffic_policy=ir.TrafficPolicy(svc.get("externalTrafficPolicy") or "Cluster"),
        internal_traffic_policy=ir.TrafficPolicy(svc.get("internalTrafficPolicy") or "Cluster"),
        health_check_node_port=svc.get("healthCheckNodePort") or 0,
        session_affinity=affinity,
    )


def _ips(texts: list[str]) -> tuple[ir.IPAddress, ...]:
    # kube-proxy silently drops what it cannot parse (TestBadIPs).
    return tuple(ip for text in texts if (ip := parse_ip_lenient(text)) is not None)


def _slice_endpoints(slice_: dict) -> list[ir.Endpoint]:
    ports = tuple(
        ir.EndpointPort(p.get("name") or "", ir.Protocol(p.get("protocol") or "TCP"), p["port"])
        for p in slice_["ports"] if p.get("port") and p.get("name") is not None
    )
    endpoints = []
    for ep in slice_["endpoints"]:
        ip = parse_ip_lenient(ep["addresses"][0])
        if ip is None:
            continue
        cond = ep.get("conditions") or {}
        endpoints.append(ir.Endpoint(
            ip=ip,
            ports=ports,
            node=ep.get("nodeName"),
            ready=cond.get("ready") is not False,
            serving=cond.get("serving") is not False,
            terminating=cond.get("terminating") is True,
        ))
    return endpoints
