"""What kube-proxy on one node sees: its service ports with their endpoints sorted into the lists each traffic
policy uses (spec §3).

Everything here is node- and family-specific but rule-text-free; the emitting modules turn a ``PortView``
into rules. ``service_ports`` does the node-independent half once per cluster and family, ``categorise``
the node-dependent half.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import NamedTuple

from kspec import ir, releases
from kspec.compiler import names

LOOPBACK = {ir.IPFamily.V4: ipaddress.ip_address("127.0.0.1"), ir.IPFamily.V6: ipaddress.ip_address("::1")}


class EndpointView(NamedTuple):
    """One endpoint of one service port. A NamedTuple rather than a frozen dataclass: a 10k-Service cluster
    makes 100k of them per compile, and tuple construction is several times cheaper."""

    ip: ir.IPAddress
    port: int
    node: str | None
    ready: bool
    serving: bool
    terminating: bool
    text: str = ""  # kube-proxy's endpoint string ``ip:port`` (IPv6 bracketed); filled in by _endpoints
    sep: str = ""  # its KUBE-SEP chain for the service port it belongs to
    address: str = ""  # str(ip), formatted once
    zone_hints: tuple[str, ...] = ()
    node_hints: tuple[str, ...] = ()

    @property
    def serving_terminating(self) -> bool:
        return self.serving and self.terminating


@dataclass(frozen=True, slots=True)
class ServicePortInfo:
    """The node-independent facts of one service port (spec §3.2)."""

    service: ir.Service
    port: ir.ServicePort
    name: str  # ns/name:port (or ns/name for an unnamed port)
    protocol: str  # tcp, udp, sctp
    hash: str
    cluster_ip: ir.IPAddress
    external_ips: tuple[ir.IPAddress, ...]
    lb_ips: tuple[ir.IPAddress, ...]
    source_ranges: tuple[ir.IPNetwork, ...]
    external_policy_local: bool
    internal_policy_local: bool
    health_check_node_port: int
    affinity_timeout: int | None
    endpoints: tuple[EndpointView, ...]  # deduplicated (the first copy of each), sorted by endpoint string
    # Every copy of an endpoint string given more than once (in order), for the node-dependent choice.
    duplicates: tuple[tuple[EndpointView, ...], ...] = ()
    hints: frozenset[str] = frozenset()  # the topology hints this release honours ("zone", "node")

    @property
    def externally_accessible(self) -> bool:
        return bool(self.port.node_port or self.lb_ips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_policy_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (self.external_policy_local and self.externally_accessible)

    def chain(self, prefix: str) -> str:
        return prefix + self.hash

    def sep_chain(self, ep: EndpointView) -> str:
        return ep.sep


@dataclass(frozen=True, slots=True)
class PortView:
    """One service port as kube-proxy on one node categorises it (spec §3.4)."""

    info: ServicePortInfo
    cluster: tuple[EndpointView, ...]
    local: tuple[EndpointView, ...]
    reachable: tuple[EndpointView, ...]
    has_endpoints: bool

    @property
    def uses_cluster_chain(self) -> bool:
        return bool(self.cluster) and self.info.uses_cluster_endpoints

    @property
    def uses_local_chain(self) -> bool:
        return bool(self.local) and self.info.uses_local_endpoints

    @property
    def has_internal(self) -> bool:
        return self.has_endpoints and not (self.info.internal_policy_local and not self.local)

    @property
    def has_external(self) -> bool:
        return self.has_endpoints and not (self.info.external_policy_local and not self.local)

    @property
    def uses_ext_chain(self) -> bool:
        return self.has_endpoints and self.info.externally_accessible

    @property
    def uses_fw_chain(self) -> bool:
        return self.has_endpoints and bool(self.info.lb_ips) and bool(self.info.source_ranges)

    @property
    def internal_chain(self) -> str:
        return self.info.chain("KUBE-SVL-" if self.info.internal_policy_local else "KUBE-SVC-")

    @property
    def external_policy_chain(self) -> str:
        return self.info.chain("KUBE-SVL-" if self.info.external_policy_local else "KUBE-SVC-")

    def active_chains(self) -> set[str]:
        """The nat chains this port keeps alive (spec §5.12), written or not."""
        chains = {self.info.sep_chain(ep) for ep in self.reachable}
        if self.uses_cluster_chain:
            chains.add(self.info.chain("KUBE-SVC-"))
        if self.uses_local_chain:
            chains.add(self.info.chain("KUBE-SVL-"))
        if self.uses_ext_chain:
            chains.add(self.info.chain("KUBE-EXT-"))
        if self.uses_fw_chain:
            chains.add(self.info.chain("KUBE-FW-"))
        return chains


def service_ports(cluster: ir.Cluster, family: ir.IPFamily) -> list[ServicePortInfo]:
    """Every service port kube-proxy programs for ``family``, in kspec's deterministic order."""
    infos = [
        info
        for svc in cluster.services
        for info in port_infos(svc, family, cluster.proxy)
    ]
    infos.sort(key=lambda info: (info.name, info.protocol))
    return infos


def port_infos(svc: ir.Service, family: ir.IPFamily, proxy: ir.ProxyConfig) -> list[ServicePortInfo]:
    if svc.type is ir.ServiceType.EXTERNAL_NAME:
        return []
    cluster_ip = next((ip for ip in svc.cluster_ips if ir.IPFamily.of(ip) is family), None)
    if cluster_ip is None:  # headless, or single-stack in the other family
        return []
    # ExternallyAccessible: a NodePort or LoadBalancer, or a ClusterIP Service with external IPs; only
    # such a Service's externalTrafficPolicy counts (ExternalPolicyLocal).
    externally_accessible = svc.type in (ir.ServiceType.NODE_PORT, ir.ServiceType.LOAD_BALANCER) or \
        (svc.type is ir.ServiceType.CLUSTER_IP and bool(svc.external_ips)
         and releases.at_least(proxy, releases.EXTERNALLY_ACCESSIBLE_CLUSTER_IP))
    external_local = externally_accessible and svc.external_traffic_policy is ir.TrafficPolicy.LOCAL
    in_family = lambda addrs: tuple(a for a in addrs if ir.IPFamily.of(a) is family)  # noqa: E731
    lb_ips = tuple(
        ing.ip for ing in svc.load_balancer_ingress
        if ir.IPFamily.of(ing.ip) is family
        and (ing.mode is not ir.IngressMode.PROXY or not releases.lb_ip_mode(proxy))
    )
    infos = []
    for port in svc.ports:
        name = f"{svc.key}:{port.name}" if port.name else svc.key
        protocol = port.protocol.lower
        infos.append(ServicePortInfo(
            service=svc,
            port=port,
            name=name,
            protocol=protocol,
            hash=names.port_hash(name, protocol),
            cluster_ip=cluster_ip,
            external_ips=in_family(svc.external_ips),
            lb_ips=lb_ips,
            source_ranges=_source_ranges(in_family(svc.load_balancer_source_ranges), proxy),
            external_policy_local=external_local,
            internal_policy_local=svc.internal_traffic_policy is ir.TrafficPolicy.LOCAL,
            health_check_node_port=(
                svc.health_check_node_port
                if svc.type is ir.ServiceType.LOAD_BALANCER and external_local else 0
            ),
            affinity_timeout=svc.session_affinity.timeout_seconds if svc.session_affinity else None,
            **_endpoints(svc, port, family, name, protocol,
                         releases.at_least(proxy, releases.NON_TERMINATING_DUPLICATE_WINS)),
            hints=releases.topology_hints(proxy),
        ))
    return infos


def _source_ranges(ranges: tuple[ir.IPNetwork, ...], proxy: ir.ProxyConfig) -> tuple[ir.IPNetwork, ...]:
    """The family's loadBalancerSourceRanges as the release reads them: from 1.34 a zero-prefix CIDR among
    them means "allow any", as no list at all (releases row 3)."""
    if releases.at_least(proxy, releases.ZERO_SOURCE_RANGE_OPENS) and any(c.prefixlen == 0 for c in ranges):
        return ()
    return ranges


def _endpoints(svc: ir.Service, port: ir.ServicePort, family: ir.IPFamily, name: str, protocol: str,
               non_terminating_wins: bool) -> dict:
    """The service port's endpoints: joined by port name and protocol, one per ip:port, sorted as strings.
    An endpoint given twice: from 1.36 a later copy that is not terminating replaces the kept one (on every
    node alike); before, the first copy is kept, and every copy is remembered, since which one a node keeps
    depends on the node (``node_endpoints``)."""
    by_text: dict[str, EndpointView] = {}
    copies: dict[str, list[EndpointView]] = {}
    family_version = 4 if family is ir.IPFamily.V4 else 6
    for ep in svc.endpoints:
        if ep.ip.version != family_version:
            continue
        address = None
        for ep_port in ep.ports:
            if ep_port.name != port.name or ep_port.protocol is not port.protocol or not ep_port.port:
                continue
            address = address or _address_text(ep.ip)
            text = f"[{address}]:{ep_port.port}" if ep.ip.version == 6 else f"{address}:{ep_port.port}"
            view = EndpointView(ep.ip, ep_port.port, ep.node, ep.ready, ep.serving, ep.terminating, text,
                                names.sep_chain(name, protocol, text), address, ep.zone_hints, ep.node_hints)
            previous = by_text.get(view.text)
            if previous is None or (non_terminating_wins and not view.terminating):
                by_text[view.text] = view
            elif not non_terminating_wins:
                copies.setdefault(view.text, [previous]).append(view)
    return {"endpoints": tuple(by_text[text] for text in sorted(by_text)),
            "duplicates": tuple(tuple(found) for found in copies.values())}


def node_endpoints(info: ServicePortInfo, node: str) -> tuple[EndpointView, ...]:
    """The endpoints as kube-proxy on ``node`` keeps them when one is given twice (addEndpoints): a copy on
    this node replaces the one kept so far (the last such copy wins), else the first copy stays."""
    eps = info.endpoints
    if not info.duplicates:
        return eps
    chosen = {copies[0].text: next((ep for ep in reversed(copies) if ep.node == node), copies[0])
              for copies in info.duplicates}
    return tuple(chosen.get(ep.text, ep) for ep in eps)


def topology_mode(eps: tuple[EndpointView, ...], hints: frozenset[str], node: str, zone: str | None) -> str:
    """kube-proxy's topologyModeFromHints: "node" when every ready endpoint has node hints and one names this
    node, else "zone" likewise for zone hints and this node's zone, else "" (no topology)."""
    ready = [ep for ep in eps if ep.ready]
    if "node" in hints and all(ep.node_hints for ep in ready) and any(node in ep.node_hints for ep in ready):
        return "node"
    if "zone" in hints and zone and all(ep.zone_hints for ep in ready) and \
            any(zone in ep.zone_hints for ep in ready):
        return "zone"
    return ""


def _for_topology(ep: EndpointView, mode: str, node: str, zone: str | None) -> bool:
    return mode == "" or (node in ep.node_hints if mode == "node" else zone in ep.zone_hints)


def categorise(info: ServicePortInfo, node: str, zone: str | None = None) -> PortView:
    """Split a port's endpoints into the Cluster and Local lists as kube-proxy does on ``node`` (in ``zone``)."""
    eps = node_endpoints(info, node)
    is_local = lambda ep: ep.node == node  # noqa: E731
    cluster: tuple[EndpointView, ...] = ()
    has_endpoints = False
    if info.uses_cluster_endpoints:
        # Ready endpoints for this node's topology (the hints), if none, ones still serving while terminating
        # anywhere (topology would have been dropped had there been ready endpoints elsewhere only).
        mode = topology_mode(eps, info.hints, node, zone) if info.hints else ""
        cluster = tuple(ep for ep in eps if ep.ready and _for_topology(ep, mode, node, zone)) or \
            tuple(ep for ep in eps if ep.serving_terminating)
        has_endpoints = bool(cluster)
    if not info.uses_local_endpoints:
        return PortView(info, cluster, (), cluster, has_endpoints)

    has_endpoints = has_endpoints or any(ep.ready or ep.serving_terminating for ep in eps)
    local = tuple(ep for ep in eps if is_local(ep) and ep.ready)
    if not local:
        local = tuple(ep for ep in eps if is_local(ep) and not ep.ready and ep.serving_terminating)
    if not info.uses_cluster_endpoints:
        return PortView(info, cluster, local, local, has_endpoints)
    in_cluster = {ep.text for ep in cluster}
    if all(ep.text in in_cluster for ep in local):
        # The usual case: local holds ready endpoints, all in cluster (topology can leave some out, and the
        # terminating fallback brings others in: then both lists are reachable).
        return PortView(info, cluster, local, cluster, has_endpoints)
    union = {ep.text: ep for ep in cluster + local}
    return PortView(info, cluster, local, tuple(union[text] for text in sorted(union)), has_endpoints)


def _address_text(ip: ir.IPAddress) -> str:
    """str(ip), faster for IPv4 (a 10k-Service cluster formats 100k endpoint addresses per compile)."""
    if ip.version == 4:
        n = int(ip)
        return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
    return str(ip)
