"""One reader per kind of Kubernetes object kspec understands (Service, EndpointSlice, Node, Pod,
KubeProxyConfiguration, kspec's NodeFacts): a positioned document in, IR (or the settings it carries) out.
``kspec.ingest.k8s`` dispatches to them and joins what they read into one cluster."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kspec import ir
from kspec.ingest.addresses import parse_cidr_lenient, parse_ip_lenient
from kspec.ingest.fields import Fields, Invalid, describe_value, items
from kspec.ingest.yamlpos import PosMap

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # the API server's default for sessionAffinityConfig.clientIP.timeoutSeconds
NFACCT_COUNTERS = ("ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts")


@dataclass
class SliceRead:
    """An EndpointSlice as read, before it is joined to its Service."""

    namespace: str
    name: str
    service: str
    endpoints: list[ir.Endpoint]
    span: ir.Span


def metadata(obj: Fields, doc: PosMap, namespaced: bool = True) -> tuple[str, str, PosMap]:
    meta = obj.map(doc, "metadata", "metadata", required=True)
    name = obj.get(meta, "name", str, "metadata.name", required=True)
    if not name:
        raise Invalid
    # kubectl always prints the namespace; a hand-written manifest without one lands in "default".
    namespace = obj.get(meta, "namespace", str, "metadata.namespace", default="default") if namespaced else ""
    return namespace, name, meta


# ------------------------------------------------------------------------------------------ Service


def read_service(obj: Fields, doc: PosMap) -> ir.Service:
    namespace, name, _ = metadata(obj, doc)
    spec = obj.map(doc, "spec", "spec", required=True)
    svc_type = obj.enum(spec, "type", "spec.type", ir.ServiceType, ir.ServiceType.CLUSTER_IP)
    ports = tuple(_service_port(obj, i, port) for i, port in items(obj, obj.list(spec, "ports", "spec.ports"),
                                                                      "spec.ports"))
    if svc_type is ir.ServiceType.EXTERNAL_NAME:
        # kube-proxy writes no rules for these; keep them so the verifier can say so.
        external_name = obj.get(spec, "externalName", str, "spec.externalName")
        return ir.Service(namespace, name, svc_type, ports=ports, external_name=external_name, span=doc.span)
    status = obj.map(doc, "status", "status")
    return ir.Service(
        namespace=namespace,
        name=name,
        type=svc_type,
        cluster_ips=_cluster_ips(obj, spec),
        ports=ports,
        external_ips=_external_ips(obj, spec),
        load_balancer_ingress=_ingress(obj, obj.map(status, "loadBalancer", "status.loadBalancer")),
        load_balancer_source_ranges=_source_ranges(obj, spec),
        external_traffic_policy=obj.enum(spec, "externalTrafficPolicy", "spec.externalTrafficPolicy",
                                         ir.TrafficPolicy, ir.TrafficPolicy.CLUSTER),
        internal_traffic_policy=obj.enum(spec, "internalTrafficPolicy", "spec.internalTrafficPolicy",
                                         ir.TrafficPolicy, ir.TrafficPolicy.CLUSTER),
        # The slices carry the hints the controller wrote for it (kspec.topology writes them only for .k).
        traffic_distribution=obj.get(spec, "trafficDistribution", str, "spec.trafficDistribution") or None,
        health_check_node_port=_port_number(obj, spec, "healthCheckNodePort", "spec.healthCheckNodePort"),
        session_affinity=_session_affinity(obj, spec),
        span=doc.span,
    )


def _cluster_ips(obj: Fields, spec: PosMap) -> tuple[ir.IPAddress, ...]:
    """``clusterIPs`` (or the older ``clusterIP``); "None" (headless) and "" (unallocated) give ()."""
    values: list[Any]
    if spec.get("clusterIPs") is not None:
        values = obj.list(spec, "clusterIPs", "spec.clusterIPs")
        spans, path = values.spans, "spec.clusterIPs"
    else:
        single = obj.get(spec, "clusterIP", str, "spec.clusterIP")
        values, spans, path = ([single] if single else []), [spec.span_of("clusterIP")], "spec.clusterIP"
    ips = []
    for i, value in enumerate(values):
        where = path if path == "spec.clusterIP" else f"{path}[{i}]"
        if value in ("None", ""):
            return ()
        ip = parse_ip_lenient(value)
        if ip is None:
            obj.error(spans[i], f'{where}: "{value}" is not an IP address')
            continue
        ips.append(ip)
    return tuple(ips)


def _service_port(obj: Fields, index: int, port: PosMap) -> ir.ServicePort:
    path = f"spec.ports[{index}]"
    target = obj.get(port, "targetPort", (int, str), f"{path}.targetPort")
    return ir.ServicePort(
        name=obj.get(port, "name", str, f"{path}.name", default=""),
        protocol=obj.enum(port, "protocol", f"{path}.protocol", ir.Protocol, ir.Protocol.TCP),
        port=_port_number(obj, port, "port", f"{path}.port", required=True),
        target_port=target,
        node_port=_port_number(obj, port, "nodePort", f"{path}.nodePort"),
        span=port.span,
    )


def _port_number(obj: Fields, m: PosMap, key: str, path: str, required: bool = False) -> int:
    value = obj.get(m, key, int, path, required=required)
    if value is None:
        return 0  # absent (already reported if required)
    if not 0 <= value <= 65535 or (required and value == 0):
        obj.error(m.span_of(key), f"{path}: {value} is not a valid port number")
        return 0
    return value


def _external_ips(obj: Fields, spec: PosMap) -> tuple[ir.IPAddress, ...]:
    # kube-proxy skips (and logs) externalIPs it cannot parse; the empty string silently.
    result = []
    values = obj.list(spec, "externalIPs", "spec.externalIPs")
    for i, value in enumerate(values):
        ip = parse_ip_lenient(value) if isinstance(value, str) else None
        if ip is not None:
            result.append(ip)
        elif not (isinstance(value, str) and value.strip() == ""):
            obj.warn(values.span_at(i), f'spec.externalIPs[{i}]: "{value}" is not an IP address; '
                                        "kube-proxy ignores it")
    return tuple(result)


def _source_ranges(obj: Fields, spec: PosMap) -> tuple[ir.IPNetwork, ...]:
    # API validation lets whitespace padding through, so kube-proxy trims; what still fails to parse it skips.
    result = []
    values = obj.list(spec, "loadBalancerSourceRanges", "spec.loadBalancerSourceRanges")
    for i, value in enumerate(values):
        cidr = parse_cidr_lenient(value.strip()) if isinstance(value, str) else None
        if cidr is not None:
            result.append(cidr)
        else:
            obj.warn(values.span_at(i), f'spec.loadBalancerSourceRanges[{i}]: "{value}" is not a CIDR; '
                                        "kube-proxy ignores it")
    return tuple(result)


def _ingress(obj: Fields, lb_status: PosMap) -> tuple[ir.LoadBalancerIngress, ...]:
    result = []
    entries = obj.list(lb_status, "ingress", "status.loadBalancer.ingress")
    for i, entry in items(obj, entries, "status.loadBalancer.ingress"):
        path = f"status.loadBalancer.ingress[{i}]"
        text = obj.get(entry, "ip", str, f"{path}.ip", default="")
        if text == "":
            continue  # hostname-only entries: kube-proxy writes no rules for them
        ip = parse_ip_lenient(text)
        if ip is None:
            obj.error(entry.span_of("ip"), f'{path}.ip: "{text}" is not an IP address')
            continue
        mode = obj.enum(entry, "ipMode", f"{path}.ipMode", ir.IngressMode, None)
        result.append(ir.LoadBalancerIngress(ip, mode, span=entry.span))
    return tuple(result)


def _session_affinity(obj: Fields, spec: PosMap) -> ir.SessionAffinity | None:
    affinity = obj.get(spec, "sessionAffinity", str, "spec.sessionAffinity", default="None")
    if affinity in ("None", ""):
        return None
    if affinity != "ClientIP":
        obj.error(spec.span_of("sessionAffinity"),
                  f'spec.sessionAffinity: unsupported value "{affinity}" (expected one of None, ClientIP)')
        return None
    config = obj.map(obj.map(spec, "sessionAffinityConfig", "spec.sessionAffinityConfig"), "clientIP",
                     "spec.sessionAffinityConfig.clientIP")
    path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
    timeout = obj.get(config, "timeoutSeconds", int, path, default=DEFAULT_AFFINITY_TIMEOUT)
    if not 0 < timeout <= 86400:  # the API server's bounds
        obj.error(config.span_of("timeoutSeconds"), f"{path}: {timeout} is not between 1 and 86400")
    return ir.SessionAffinity(timeout, span=spec.span_of("sessionAffinity"))


# ------------------------------------------------------------------------------------ EndpointSlice


def read_endpoint_slice(obj: Fields, doc: PosMap) -> SliceRead | None:
    namespace, name, meta = metadata(obj, doc)
    labels = obj.map(meta, "labels", "metadata.labels")
    service = labels.get(SERVICE_NAME_LABEL)
    address_type = obj.get(doc, "addressType", str, "addressType", required=True)
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        if address_type is not None:
            obj.error(doc.span_of("addressType"),
                      f'addressType: unsupported value "{address_type}" (expected one of IPv4, IPv6, FQDN)')
        raise Invalid
    if address_type == "FQDN":
        return None  # kube-proxy only handles IP slices
    ports = _slice_ports(obj, doc)
    endpoints = [_endpoint(obj, i, ep, ports, namespace)
                 for i, ep in items(obj, obj.list(doc, "endpoints", "endpoints"), "endpoints")]
    if not isinstance(service, str) or service == "":
        # kube-proxy cannot tell which Service the slice belongs to and ignores it.
        obj.warn(meta.span, f"no {SERVICE_NAME_LABEL} label; kube-proxy ignores this EndpointSlice")
        return None
    return SliceRead(namespace, name, service, [ep for ep in endpoints if ep is not None], doc.span)


def _slice_ports(obj: Fields, doc: PosMap) -> tuple[ir.EndpointPort, ...]:
    result = []
    for i, port in items(obj, obj.list(doc, "ports", "ports"), "ports"):
        number = obj.get(port, "port", int, f"ports[{i}].port", default=0)
        if number == 0:
            continue  # kube-proxy ignores ports without a number
        result.append(ir.EndpointPort(
            # The API server defaults a missing name to "" and protocol to TCP.
            name=obj.get(port, "name", str, f"ports[{i}].name", default=""),
            protocol=obj.enum(port, "protocol", f"ports[{i}].protocol", ir.Protocol, ir.Protocol.TCP),
            port=number,
            span=port.span,
        ))
    return tuple(result)


def _endpoint(obj: Fields, index: int, ep: PosMap, ports: tuple[ir.EndpointPort, ...],
              namespace: str) -> ir.Endpoint | None:
    path = f"endpoints[{index}]"
    addresses = obj.list(ep, "addresses", f"{path}.addresses")
    if not addresses:
        obj.error(ep.span, f"{path}.addresses must hold at least one address")
        return None
    text = addresses[0]  # kube-proxy only looks at the first address
    ip = parse_ip_lenient(text) if isinstance(text, str) else None
    if ip is None:
        obj.error(addresses.span_at(0), f'{path}.addresses[0]: "{text}" is not an IP address')
        return None
    conditions = obj.map(ep, "conditions", f"{path}.conditions")
    return ir.Endpoint(
        ip=ip,
        ports=ports,
        node=obj.get(ep, "nodeName", str, f"{path}.nodeName"),
        # Unset conditions: ready and serving (older controllers never set them), not terminating.
        ready=obj.get(conditions, "ready", bool, f"{path}.conditions.ready", default=True),
        serving=obj.get(conditions, "serving", bool, f"{path}.conditions.serving", default=True),
        terminating=obj.get(conditions, "terminating", bool, f"{path}.conditions.terminating", default=False),
        pod=_target_pod(obj, ep, path, namespace),
        zone_hints=_hints(obj, ep, path, "forZones"),
        node_hints=_hints(obj, ep, path, "forNodes"),
        span=ep.span,
    )


def _hints(obj: Fields, ep: PosMap, path: str, kind: str) -> tuple[str, ...]:
    """``hints.forZones`` / ``hints.forNodes``: the names the EndpointSlice controller hinted the endpoint for."""
    hints = obj.map(ep, "hints", f"{path}.hints")
    names = []
    for i, entry in items(obj, obj.list(hints, kind, f"{path}.hints.{kind}"), f"{path}.hints.{kind}"):
        name = obj.get(entry, "name", str, f"{path}.hints.{kind}[{i}].name", required=True)
        if name is not None:
            names.append(name)
    return tuple(names)


def _target_pod(obj: Fields, ep: PosMap, path: str, namespace: str) -> str | None:
    ref = obj.map(ep, "targetRef", f"{path}.targetRef")
    if ref.get("kind") != "Pod" or not isinstance(ref.get("name"), str):
        return None
    ref_namespace = obj.get(ref, "namespace", str, f"{path}.targetRef.namespace", default=namespace)
    return f"{ref_namespace}/{ref['name']}"


# --------------------------------------------------------------------------------------- Node, Pod


def read_node(obj: Fields, doc: PosMap) -> ir.Node:
    _, name, _ = metadata(obj, doc, namespaced=False)
    status = obj.map(doc, "status", "status")
    addresses = items(obj, obj.list(status, "addresses", "status.addresses"), "status.addresses")
    ips = []
    # The first InternalIP of a family is the node's primary IP (as kube-proxy picks it), then ExternalIPs.
    for wanted in ("InternalIP", "ExternalIP"):
        for i, entry in addresses:
            if entry.get("type") != wanted:
                continue
            text = obj.get(entry, "address", str, f"status.addresses[{i}].address", required=True)
            ip = parse_ip_lenient(text) if text is not None else None
            if ip is None and text is not None:
                obj.error(entry.span_of("address"), f'status.addresses[{i}].address: "{text}" is not an IP address')
            elif ip is not None and ip not in ips:
                ips.append(ip)
    spec = obj.map(doc, "spec", "spec")
    labels = obj.map(obj.map(doc, "metadata", "metadata"), "labels", "metadata.labels")
    zone = labels.get("topology.kubernetes.io/zone")
    return ir.Node(name, tuple(ips), _pod_cidrs(obj, spec), zone=str(zone) if zone is not None else None,
                   span=doc.span)


def _pod_cidrs(obj: Fields, spec: PosMap) -> tuple[ir.IPNetwork, ...]:
    if spec.get("podCIDRs") is not None:
        values, path = obj.list(spec, "podCIDRs", "spec.podCIDRs"), "spec.podCIDRs"
        entries = [(f"{path}[{i}]", v, values.span_at(i)) for i, v in enumerate(values)]
    else:
        single = obj.get(spec, "podCIDR", str, "spec.podCIDR")
        entries = [("spec.podCIDR", single, spec.span_of("podCIDR"))] if single else []
    result = []
    for where, value, span in entries:
        cidr = parse_cidr_lenient(value) if isinstance(value, str) else None
        if cidr is None:
            obj.error(span, f'{where}: "{value}" is not a CIDR')
        else:
            result.append(cidr)
    return tuple(result)


def read_pod(obj: Fields, doc: PosMap) -> ir.Pod | None:
    namespace, name, meta = metadata(obj, doc)
    spec = obj.map(doc, "spec", "spec")
    status = obj.map(doc, "status", "status")
    node = obj.get(spec, "nodeName", str, "spec.nodeName")
    ip_text = obj.get(status, "podIP", str, "status.podIP")
    if not node or not ip_text:
        return None  # not scheduled or not started: it cannot back a Service yet
    ip = parse_ip_lenient(ip_text)
    if ip is None:
        obj.error(status.span_of("podIP"), f'status.podIP: "{ip_text}" is not an IP address')
        return None
    labels = obj.map(meta, "labels", "metadata.labels")
    # The EndpointSlice controller's rule: serving = the Ready condition, ready = serving and not terminating.
    serving = any(isinstance(c, PosMap) and c.get("type") == "Ready" and c.get("status") == "True"
                  for c in obj.list(status, "conditions", "status.conditions"))
    terminating = meta.get("deletionTimestamp") is not None
    return ir.Pod(
        namespace=namespace, name=name, node=node, ip=ip,
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        ports=_container_ports(obj, spec),
        ready=serving and not terminating, serving=serving, terminating=terminating,
        span=doc.span,
    )


def _container_ports(obj: Fields, spec: PosMap) -> tuple[ir.ContainerPort, ...]:
    result = []
    for c, container in items(obj, obj.list(spec, "containers", "spec.containers"), "spec.containers"):
        path = f"spec.containers[{c}].ports"
        for p, port in items(obj, obj.list(container, "ports", path), path):
            result.append(ir.ContainerPort(
                name=obj.get(port, "name", str, f"{path}[{p}].name", default=""),
                port=_port_number(obj, port, "containerPort", f"{path}[{p}].containerPort", required=True),
                protocol=obj.enum(port, "protocol", f"{path}[{p}].protocol", ir.Protocol, ir.Protocol.TCP),
                span=port.span,
            ))
    return tuple(result)


# -------------------------------------------------------------------------- KubeProxyConfiguration


@dataclass(frozen=True)
class ProxySettings:
    """What the KubeProxyConfiguration says (node facts are merged in later)."""

    cluster_cidrs: tuple[ir.IPNetwork, ...] = ()
    detect_local: ir.LocalDetect = ir.LocalDetect()
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_node_ports: bool = True
    node_port_addresses: tuple[ir.IPNetwork, ...] | None = None
    node_port_primary: bool = False
    port_range: tuple[int, int] = (30000, 32767)
    lb_ip_mode_gate: bool | None = None
    tcp_be_liberal: bool = False


_DETECT_LOCAL_MODES = {
    # kube-proxy's default when detectLocalMode is unset.
    "": ir.LocalDetectMode.CLUSTER_CIDR,
    "ClusterCIDR": ir.LocalDetectMode.CLUSTER_CIDR,
    "NodeCIDR": ir.LocalDetectMode.NODE_CIDR,
    "BridgeInterface": ir.LocalDetectMode.BRIDGE_INTERFACE,
    "InterfaceNamePrefix": ir.LocalDetectMode.INTERFACE_NAME_PREFIX,
}


def read_proxy_settings(obj: Fields, doc: PosMap) -> ProxySettings:
    mode = obj.get(doc, "mode", str, "mode", default="")
    if mode not in ("", "iptables"):
        obj.error(doc.span_of("mode"), f'mode: kspec models the iptables mode, not "{mode}"')
    iptables = obj.map(doc, "iptables", "iptables")
    bit = obj.get(iptables, "masqueradeBit", int, "iptables.masqueradeBit", default=14)
    if not 0 <= bit <= 31:
        obj.error(iptables.span_of("masqueradeBit"), f"iptables.masqueradeBit: {bit} is not between 0 and 31")
        bit = 14
    gates = obj.map(doc, "featureGates", "featureGates")
    conntrack = obj.map(doc, "conntrack", "conntrack")
    return ProxySettings(
        cluster_cidrs=_cluster_cidrs(obj, doc),
        detect_local=_detect_local(obj, doc),
        masquerade_all=obj.get(iptables, "masqueradeAll", bool, "iptables.masqueradeAll", default=False),
        masquerade_bit=bit,
        localhost_node_ports=obj.get(iptables, "localhostNodePorts", bool, "iptables.localhostNodePorts",
                                     default=True),
        node_port_addresses=_node_port_addresses(obj, doc),
        node_port_primary=list(obj.list(doc, "nodePortAddresses", "nodePortAddresses")) == ["primary"],
        port_range=_port_range(obj, doc),
        lb_ip_mode_gate=obj.get(gates, "LoadBalancerIPMode", bool, "featureGates.LoadBalancerIPMode",
                                default=None),
        tcp_be_liberal=obj.get(conntrack, "tcpBeLiberal", bool, "conntrack.tcpBeLiberal", default=False),
    )


def _cluster_cidrs(obj: Fields, doc: PosMap) -> tuple[ir.IPNetwork, ...]:
    # One CIDR per family, comma-separated (dual-stack); kube-proxy parses them with ParseCIDRSloppy.
    text = obj.get(doc, "clusterCIDR", str, "clusterCIDR", default="")
    result = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        cidr = parse_cidr_lenient(part)
        if cidr is None:
            obj.error(doc.span_of("clusterCIDR"), f'clusterCIDR: "{part}" is not a CIDR')
        else:
            result.append(cidr)
    return tuple(result)


def _detect_local(obj: Fields, doc: PosMap) -> ir.LocalDetect:
    text = obj.get(doc, "detectLocalMode", str, "detectLocalMode", default="")
    mode = _DETECT_LOCAL_MODES.get(text)
    if mode is None:
        allowed = ", ".join(m for m in _DETECT_LOCAL_MODES if m)
        obj.error(doc.span_of("detectLocalMode"),
                  f'detectLocalMode: unsupported value "{text}" (expected one of {allowed})')
        return ir.LocalDetect()
    key = {ir.LocalDetectMode.BRIDGE_INTERFACE: "bridgeInterface",
           ir.LocalDetectMode.INTERFACE_NAME_PREFIX: "interfaceNamePrefix"}.get(mode)
    if key is None:
        return ir.LocalDetect(mode)
    detect = obj.map(doc, "detectLocal", "detectLocal")
    interface = obj.get(detect, key, str, f"detectLocal.{key}", default="")
    if interface == "":
        # kube-proxy's validation: the interface (prefix) must be given for these modes.
        span = detect.span if "detectLocal" in doc else doc.span_of("detectLocalMode")
        obj.error(span, f"detectLocal.{key} must be set when detectLocalMode is {text}")
    return ir.LocalDetect(mode, interface or None)


def _node_port_addresses(obj: Fields, doc: PosMap) -> tuple[ir.IPNetwork, ...] | None:
    values = obj.list(doc, "nodePortAddresses", "nodePortAddresses")
    if list(values) == ["primary"]:
        return None  # each node's primary IPs: ProxySettings.node_port_primary
    result = []
    for i, value in enumerate(values):
        where = f"nodePortAddresses[{i}]"
        if value == "primary":
            obj.error(values.span_at(i), f'{where}: "primary" must be the only entry of nodePortAddresses')
            continue
        cidr = parse_cidr_lenient(value) if isinstance(value, str) else None
        if cidr is None:
            obj.error(values.span_at(i), f'{where}: "{value}" is not a CIDR')
        else:
            result.append(cidr)
    return tuple(result) or None  # empty: every local address, like unset


def _port_range(obj: Fields, doc: PosMap) -> tuple[int, int]:
    """``portRange``: "first-last", "first+offset" or a single port; empty: the default NodePort range."""
    text = obj.get(doc, "portRange", str, "portRange", default="").strip()
    if text == "":
        return (30000, 32767)
    try:
        if "-" in text:
            first, last = (int(p) for p in text.split("-", 1))
        elif "+" in text:
            first, offset = (int(p) for p in text.split("+", 1))
            last = first + offset
        else:
            first = last = int(text)
    except ValueError:
        first, last = -1, -1
    if not 0 < first <= last <= 65535:
        obj.error(doc.span_of("portRange"), f'portRange: "{text}" is not a port range (like "30000-32767")')
        return (30000, 32767)
    return (first, last)


def read_facts(obj: Fields, doc: PosMap) -> dict[str, Any]:
    facts = {}
    for key in ("randomFully", "nfacct", "tcpLiberal"):
        value = obj.get(doc, key, bool, key)
        if value is not None:
            facts[key] = value
    mark = doc.get("markLiteral")
    if isinstance(mark, str):
        facts["markLiteral"] = mark
    elif mark is not None:
        # A bare 0x4000 is a YAML integer (16384): the literal must be written as a string.
        obj.error(doc.span_of("markLiteral"),
                  f'markLiteral must be a string, not {describe_value(mark)} (quote it: "0x4000")')
    unavailable = obj.list(doc, "nfacctUnavailable", "nfacctUnavailable")
    for i, name in enumerate(unavailable):
        if name not in NFACCT_COUNTERS:
            obj.error(unavailable.span_at(i), f'nfacctUnavailable[{i}]: unknown counter "{name}" '
                                              f'(expected one of {", ".join(NFACCT_COUNTERS)})')
    if unavailable:
        facts["nfacctUnavailable"] = tuple(sorted({n for n in unavailable if n in NFACCT_COUNTERS}))
    return facts
