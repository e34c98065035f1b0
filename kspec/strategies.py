"""Hypothesis strategies for kspec's IR: addresses, nodes, pods, Services, whole clusters, client packets
and ``.k`` spec text.

    from hypothesis import given
    from kspec import strategies as ks

    @given(ks.clusters(max_nodes=3, max_services=2))
    def test_something(cluster):
        ...

Everything drawn is a cluster as the ``.k`` front end would produce it, so ``parse_text(format_cluster(c))
== c`` (``specs()`` draws that text directly). Shrinking is designed for reading: node counts, pod counts and
service counts shrink to their minimum, names are ``node1``, ``pod-1``, ``svc-1``, addresses shrink towards
the start of their range, and every choice shrinks towards the plainest Kubernetes default (ClusterIP,
policy Cluster, ready pods, TCP, port 80). A failing example ends as a small cluster that ``format_cluster``
prints as a spec you can save.

The address plan (fixed, so shrunk examples read the same every time): nodes in ``10.240.0.0/24``, node
``i``'s pods in ``10.244.i.0/24`` (cluster CIDR ``10.244.0.0/16``; ``.1`` is the node's bridge), cluster IPs
in ``10.96.0.0/16``, load balancer VIPs in ``203.0.113.0/24``, external IPs in ``198.51.100.0/24``, external
clients in ``192.0.2.0/24``.

``st.from_type(kspec.ir.Cluster)`` (and Node, Pod, Service) work once kspec is installed: the strategies are
registered through Hypothesis's ``hypothesis`` entry point.

IPv6 (``as_ipv6`` and ``as_dual_stack`` are ``kspec.families``', re-exported here):
``clusters(...).map(as_ipv6)`` draws the same clusters with every address moved under ``fd00::/96``
(``10.244.1.5`` becomes ``fd00::af4:105``, a ``/24`` a ``/120``); ``packets`` follows the cluster's family.
Dual stack: ``clusters(...).map(as_dual_stack)`` draws each cluster side by side with its IPv6 twin: nodes
and Services get both addresses, every pod and addressed client an IPv6 twin named ``NAME-v6``.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from hypothesis import strategies as st

from kspec import ir
from kspec.families import as_dual_stack, as_ipv6, embedded
from kspec.grammar import format_cluster

__all__ = [
    "NODE_CIDR", "CLUSTER_CIDR", "SERVICE_CIDR", "LB_CIDR", "EXTERNAL_IP_CIDR", "CLIENT_CIDR",
    "ServiceShape", "ClientPacket", "Readiness",
    "addresses", "networks", "readiness", "nodes", "pods", "service_shapes", "services",
    "proxy_configs", "props", "checks", "clusters", "packets", "specs", "as_ipv6", "as_dual_stack",
]

NODE_CIDR = ipaddress.ip_network("10.240.0.0/24")
CLUSTER_CIDR = ipaddress.ip_network("10.244.0.0/16")
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
LB_CIDR = ipaddress.ip_network("203.0.113.0/24")
EXTERNAL_IP_CIDR = ipaddress.ip_network("198.51.100.0/24")
CLIENT_CIDR = ipaddress.ip_network("192.0.2.0/24")

LABEL_VALUES = ("a", "b")  # pod labels app=a / app=b; selectors may also ask for app=c (matches no pod)


# ------------------------------------------------------------------------------------------ addresses


def _net(cidr: str | ir.IPNetwork) -> ir.IPNetwork:
    return cidr if isinstance(cidr, (ipaddress.IPv4Network, ipaddress.IPv6Network)) else ipaddress.ip_network(cidr)


def addresses(*cidrs: str | ir.IPNetwork, skip_first: int = 1, exclude: Iterable[ir.IPAddress] = ()
              ) -> st.SearchStrategy[ir.IPAddress]:
    """Host addresses inside ``cidrs`` (the first of them is preferred when shrinking).

    ``skip_first`` leaves out the first addresses of each network (1: the network address; 2: also a
    bridge/gateway at ``.1``); the broadcast address of an IPv4 network is never drawn.
    """
    if not cidrs:
        raise ValueError("addresses() needs at least one CIDR")
    excluded = frozenset(exclude)

    def inside(net: ir.IPNetwork) -> st.SearchStrategy[ir.IPAddress]:
        last = net.num_addresses - (2 if net.version == 4 and net.prefixlen < 31 else 1)
        first = min(skip_first, last)
        return st.integers(first, max(first, last)).map(lambda i: net.network_address + i)

    strategy = st.one_of([inside(_net(c)) for c in cidrs])
    return strategy.filter(lambda ip: ip not in excluded) if excluded else strategy


def networks(within: str | ir.IPNetwork, min_prefix: int | None = None, max_prefix: int | None = None
             ) -> st.SearchStrategy[ir.IPNetwork]:
    """Subnets of ``within`` (e.g. loadBalancerSourceRanges)."""
    outer = _net(within)
    bits = outer.max_prefixlen
    low = outer.prefixlen if min_prefix is None else max(min_prefix, outer.prefixlen)
    high = bits if max_prefix is None else min(max_prefix, bits)

    @st.composite
    def draw(data):
        prefix = data(st.integers(low, high), label="prefix")
        index = data(st.integers(0, (1 << (prefix - outer.prefixlen)) - 1), label="subnet")
        return ipaddress.ip_network((int(outer.network_address) + (index << (bits - prefix)), prefix))

    return draw()


# -------------------------------------------------------------------------------------- nodes, pods


@dataclass(frozen=True, slots=True)
class Readiness:
    """An endpoint's conditions as the EndpointSlice controller sets them."""

    ready: bool = True
    serving: bool = True
    terminating: bool = False


# Shrinks towards the first: a ready pod.
READINESS_STATES = (
    Readiness(True, True, False),
    Readiness(False, False, False),  # not ready (failing its readiness probe)
    Readiness(False, True, True),  # terminating, still serving
    Readiness(False, False, True),  # terminating, no longer serving
)


def readiness() -> st.SearchStrategy[Readiness]:
    """Ready, not ready, terminating-and-serving, terminating (shrinks to ready; ready half of the time, so
    most Services have endpoints to choose from)."""
    return st.sampled_from(READINESS_STATES[:1] * 3 + READINESS_STATES)


def _node(index: int) -> ir.Node:
    return ir.Node(f"node{index}", (NODE_CIDR.network_address + 10 + index,),
                   (ipaddress.ip_network(f"10.244.{index}.0/24"),))


def nodes(min_size: int = 1, max_size: int = 3) -> st.SearchStrategy[tuple[ir.Node, ...]]:
    """``node1`` .. ``nodeN``: node ``i`` has IP ``10.240.0.(10+i)`` and pod CIDR ``10.244.i.0/24``."""
    if not 1 <= min_size <= max_size <= 250:
        raise ValueError("need 1 <= min_size <= max_size <= 250")
    return st.integers(min_size, max_size).map(lambda n: tuple(_node(i) for i in range(1, n + 1)))


@st.composite
def pods(draw, nodes: Sequence[ir.Node], max_per_node: int = 2, min_total: int = 0,
         states: st.SearchStrategy[Readiness] | None = None, namespace: str = "default"
         ) -> tuple[ir.Pod, ...]:
    """Pods placed on ``nodes`` (0..max_per_node each), labelled ``app=a`` or ``app=b``, each with a
    readiness state; IPs are unique inside the node's pod CIDR (``.1`` is the node's bridge)."""
    states = states if states is not None else readiness()
    result: list[ir.Pod] = []
    counter = 0
    for position, node in enumerate(nodes):
        # The first node carries at least min_total pods so "at least one pod" shrinks onto node1.
        low = min(min_total, max_per_node) if position == 0 else 0
        count = draw(st.integers(low, max_per_node), label=f"pods on {node.name}")
        cidr = next(c for c in node.pod_cidrs if c.version == 4)
        hosts = draw(st.lists(st.integers(2, min(cidr.num_addresses - 2, 250)), min_size=count, max_size=count,
                              unique=True), label=f"pod addresses on {node.name}")
        for host in hosts:
            counter += 1
            state = draw(states, label=f"pod-{counter} state")
            app = draw(st.sampled_from(LABEL_VALUES), label=f"pod-{counter} app")
            result.append(ir.Pod(namespace, f"pod-{counter}", node.name, cidr.network_address + host,
                                 labels=(("app", app),), ready=state.ready, serving=state.serving,
                                 terminating=state.terminating))
    return tuple(result)


# ------------------------------------------------------------------------------------------ services


@dataclass(frozen=True, slots=True)
class ServiceShape:
    """What kind of Service to draw: type and traffic policies (the rest is drawn)."""

    type: ir.ServiceType = ir.ServiceType.CLUSTER_IP
    external_traffic_policy: ir.TrafficPolicy = ir.TrafficPolicy.CLUSTER
    internal_traffic_policy: ir.TrafficPolicy = ir.TrafficPolicy.CLUSTER

    def __post_init__(self) -> None:
        if self.external_traffic_policy is ir.TrafficPolicy.LOCAL and self.type not in (
                ir.ServiceType.NODE_PORT, ir.ServiceType.LOAD_BALANCER):
            raise ValueError("externalTrafficPolicy Local needs type NodePort or LoadBalancer")


_SERVING_TYPES = (ir.ServiceType.CLUSTER_IP, ir.ServiceType.NODE_PORT, ir.ServiceType.LOAD_BALANCER)
ALL_TYPES = _SERVING_TYPES + (ir.ServiceType.EXTERNAL_NAME,)


@st.composite
def service_shapes(draw, types: Sequence[ir.ServiceType] = ALL_TYPES,
                   external_policies: Sequence[ir.TrafficPolicy] = tuple(ir.TrafficPolicy),
                   internal_policies: Sequence[ir.TrafficPolicy] = tuple(ir.TrafficPolicy)) -> ServiceShape:
    """Every valid (type, externalTrafficPolicy, internalTrafficPolicy); shrinks to ClusterIP/Cluster/Cluster."""
    # ExternalName (no rules at all) is drawn less often than the types kube-proxy programs.
    serving = [t for t in types if t is not ir.ServiceType.EXTERNAL_NAME]
    kind = draw(st.sampled_from(tuple(serving * 3 + [t for t in types if t not in serving]) or tuple(types)),
                label="type")
    external = ir.TrafficPolicy.CLUSTER
    if kind in (ir.ServiceType.NODE_PORT, ir.ServiceType.LOAD_BALANCER):
        external = draw(st.sampled_from(tuple(external_policies)), label="externalTrafficPolicy")
    internal = ir.TrafficPolicy.CLUSTER
    if kind is not ir.ServiceType.EXTERNAL_NAME:
        internal = draw(st.sampled_from(tuple(internal_policies)), label="internalTrafficPolicy")
    return ServiceShape(kind, external, internal)


def _as_shape(value) -> ServiceShape:
    if isinstance(value, ServiceShape):
        return value
    if isinstance(value, ir.ServiceType):
        return ServiceShape(value)
    if isinstance(value, ir.TrafficPolicy):  # a policy alone: a NodePort Service with it
        return ServiceShape(ir.ServiceType.NODE_PORT, value)
    if isinstance(value, tuple):
        return ServiceShape(*value)
    raise TypeError(f"services= must draw ServiceShape, ServiceType, TrafficPolicy or (type, etp[, itp]), "
                    f"not {value!r}")


class _Allocator:
    """Unique cluster IPs, node ports, VIPs and external IPs across one cluster's Services."""

    def __init__(self, node_port_range: tuple[int, int] = (30000, 32767)):
        self.used: set = set()
        self.node_port_range = node_port_range

    def take(self, draw, strategy, label: str):
        value = draw(strategy.filter(lambda v: v not in self.used), label=label)
        self.used.add(value)
        return value


def endpoints_for(service: ir.Service, pods: Sequence[ir.Pod]) -> tuple[ir.Endpoint, ...]:
    """The endpoints the EndpointSlice controller derives from ``service``'s selector (in kspec's order)."""
    if service.selector is None:
        return service.endpoints
    wanted = set(service.selector)
    chosen = [p for p in pods if p.namespace == service.namespace and wanted <= set(p.labels)]
    result = []
    for pod in chosen:
        ports = tuple(ir.EndpointPort(sp.name, sp.protocol, sp.target_port or sp.port) for sp in service.ports
                      if not isinstance(sp.target_port, str))
        result.append(ir.Endpoint(pod.ip, ports, node=pod.node, ready=pod.ready, serving=pod.serving,
                                  terminating=pod.terminating, pod=pod.key))
    return tuple(sorted(result, key=lambda e: (e.ip.version, int(e.ip))))


def _with_protocol(protocol: ir.Protocol) -> Callable[[int], tuple[int, ir.Protocol]]:
    return lambda port: (port, protocol)


@st.composite
def services(draw, name: str = "svc-1", pods: Sequence[ir.Pod] = (),
             shapes: st.SearchStrategy | None = None, max_ports: int = 2,
             protocols: Sequence[ir.Protocol] = (ir.Protocol.TCP, ir.Protocol.UDP),
             _alloc: _Allocator | None = None, namespace: str = "default") -> ir.Service:
    """A valid Service of a drawn shape, selecting ``pods`` by ``app=`` label (endpoints derived from them).

    NodePort and LoadBalancer Services get a nodePort on every port; LoadBalancer with policy Local gets a
    healthCheckNodePort; LoadBalancers get one or two ingress VIPs and maybe source ranges; any type may get
    session affinity and external IPs.
    """
    alloc = _alloc or _Allocator()
    shape = _as_shape(draw(shapes if shapes is not None else service_shapes(), label="shape"))
    if shape.type is ir.ServiceType.EXTERNAL_NAME:
        return ir.Service(namespace, name, ir.ServiceType.EXTERNAL_NAME, external_name="db.example.com")
    low, high = alloc.node_port_range
    node_port = st.integers(low, high)
    cluster_ip = alloc.take(draw, addresses(SERVICE_CIDR, skip_first=1), "cluster IP")
    count = draw(st.integers(1, max_ports), label="number of ports")
    numbers = draw(st.lists(st.sampled_from((80, 443, 53, 8080)) | st.integers(1, 65535), min_size=count,
                            max_size=count, unique=True), label="ports")
    with_node_ports = shape.type is not ir.ServiceType.CLUSTER_IP
    ports = []
    for index, number in enumerate(numbers):
        protocol = draw(st.sampled_from(tuple(protocols)), label="protocol")
        target = draw(st.none() | st.sampled_from((8080, 9376)) | st.integers(1, 65535), label="targetPort")
        np = 0
        if with_node_ports:
            np = alloc.take(draw, node_port.map(_with_protocol(protocol)), "nodePort")[0]
        ports.append(ir.ServicePort(f"p{index + 1}" if count > 1 else "", protocol, number, target, np))
    # app=c selects no pod (a Service without endpoints), one time in five.
    selector = (("app", draw(st.sampled_from(LABEL_VALUES * 2 + ("c",)), label="selector")),)
    ingress: tuple[ir.LoadBalancerIngress, ...] = ()
    ranges: tuple[ir.IPNetwork, ...] = ()
    hc = 0
    if shape.type is ir.ServiceType.LOAD_BALANCER:
        vips = draw(st.integers(1, 2), label="number of VIPs")
        ingress = tuple(ir.LoadBalancerIngress(alloc.take(draw, addresses(LB_CIDR), "VIP"),
                                               draw(st.sampled_from((None, ir.IngressMode.VIP, ir.IngressMode.PROXY)),
                                                    label="ipMode"))
                        for _ in range(vips))
        if draw(st.booleans(), label="source ranges"):
            ranges = (draw(networks(CLIENT_CIDR, 24, 28), label="source range"),)
        if shape.external_traffic_policy is ir.TrafficPolicy.LOCAL:
            hc = alloc.take(draw, node_port.map(lambda p: (p, ir.Protocol.TCP)), "healthCheckNodePort")[0]
    external_ips: tuple[ir.IPAddress, ...] = ()
    if draw(st.booleans(), label="external IPs"):
        external_ips = (alloc.take(draw, addresses(EXTERNAL_IP_CIDR), "external IP"),)
    affinity = None
    if draw(st.booleans(), label="session affinity"):
        affinity = ir.SessionAffinity(draw(st.sampled_from((10800, 600)) | st.integers(1, 86400), label="timeout"))
    svc = ir.Service(namespace, name, shape.type, (cluster_ip,), tuple(ports), selector, (), external_ips,
                     ingress, ranges, shape.external_traffic_policy, shape.internal_traffic_policy, hc, affinity)
    return replace(svc, endpoints=endpoints_for(svc, pods))


# ----------------------------------------------------------------------------------- proxy, checks


@st.composite
def proxy_configs(draw, vary: bool = True) -> ir.ProxyConfig:
    """kube-proxy settings; shrinks to the defaults (cluster CIDR 10.244.0.0/16, detect-local ClusterCIDR)."""
    base = ir.ProxyConfig(cluster_cidrs=(CLUSTER_CIDR,))
    if not vary:
        return base
    return replace(
        base,
        masquerade_all=draw(st.booleans(), label="masqueradeAll"),
        masquerade_bit=draw(st.sampled_from((14, 15)), label="masqueradeBit"),
        detect_local=draw(st.sampled_from((ir.LocalDetect(), ir.LocalDetect(ir.LocalDetectMode.NODE_CIDR))),
                          label="detectLocal"),
        localhost_node_ports=not draw(st.booleans(), label="no localhost nodeports"),
        random_fully=not draw(st.booleans(), label="no random-fully"),
    )


_ATOMS = (ir.Delivered(), ir.SourceIsClient(), ir.Dropped(), ir.Rejected(), ir.SourceInNodes(), ir.StaysOnNode(),
          ir.Answered())


def props(max_leaves: int = 6) -> st.SearchStrategy[ir.Prop]:
    """Check properties (shrinks to ``delivered``)."""
    return st.recursive(
        st.sampled_from(_ATOMS),
        lambda inner: st.one_of(st.builds(ir.Implies, inner, inner), st.builds(ir.And, inner, inner),
                                st.builds(ir.Or, inner, inner), st.builds(ir.Not, inner)),
        max_leaves=max_leaves,
    )


@st.composite
def checks(draw, cluster: ir.Cluster, max_checks: int = 2) -> tuple[ir.Check, ...]:
    """User checks about ``cluster``'s Services from its clients (empty when it has no usable Service)."""
    usable = [s for s in cluster.services if s.cluster_ips and s.ports]
    if not usable:
        return ()
    count = draw(st.integers(0, max_checks), label="number of checks")
    result = []
    for index in range(count):
        svc = draw(st.sampled_from(usable), label="check service")
        vias = [ir.Via.CLUSTER_IP]
        if any(p.node_port for p in svc.ports):
            vias.append(ir.Via.NODE_PORT)
        if svc.load_balancer_ingress:
            vias.append(ir.Via.LOAD_BALANCER)
        if svc.external_ips:
            vias.append(ir.Via.EXTERNAL_IP)
        via = draw(st.sampled_from(vias), label="via")
        node = None
        if via is ir.Via.NODE_PORT:
            node = draw(st.none() | st.sampled_from([n.name for n in cluster.nodes]), label="node")
        clients: tuple[str, ...] = ()
        if cluster.clients and draw(st.booleans(), label="some clients"):
            clients = (draw(st.sampled_from([c.name for c in cluster.clients]), label="client"),)
        prop = draw(props(), label="prop")
        expect = draw(st.sampled_from(tuple(ir.Expectation)), label="expect")
        result.append(ir.Check(f"check {index + 1}", clients, ir.Destination(svc.key, via, None, node), prop, expect))
    return tuple(result)


# -------------------------------------------------------------------------------------------- clusters


@st.composite
def clusters(draw, *, min_nodes: int = 1, max_nodes: int = 3, max_pods_per_node: int = 2, min_pods: int = 0,
             min_services: int = 1, max_services: int = 2, services: st.SearchStrategy | None = None,
             types: Sequence[ir.ServiceType] = ALL_TYPES,
             external_policies: Sequence[ir.TrafficPolicy] = tuple(ir.TrafficPolicy),
             internal_policies: Sequence[ir.TrafficPolicy] = tuple(ir.TrafficPolicy),
             states: st.SearchStrategy[Readiness] | None = None,
             proxy: st.SearchStrategy[ir.ProxyConfig] | None = None, clients: bool = True,
             load_balancer: bool = True, with_checks: bool = False, max_checks: int = 2,
             name: str = "generated") -> ir.Cluster:
    """A whole, valid cluster: nodes, pods on them, Services selecting the pods, clients, optionally checks.

    ``services`` is a strategy drawing each Service's shape: a ``ServiceShape``, an ``ir.ServiceType``, an
    ``ir.TrafficPolicy`` (a NodePort Service with that externalTrafficPolicy) or a ``(type, etp[, itp])``
    tuple; by default every valid combination of ``types`` x policies. ``proxy`` draws the kube-proxy
    settings (default: kube-proxy's defaults with cluster CIDR 10.244.0.0/16). ``clients`` adds an external
    client ``internet``, a process on every node and every pod as a client. ``load_balancer`` may add a
    cloud load balancer (style and health checking drawn) when some Service is a LoadBalancer.
    """
    config = draw(proxy, label="proxy") if proxy is not None else ir.ProxyConfig(cluster_cidrs=(CLUSTER_CIDR,))
    node_list = draw(nodes(min_nodes, max_nodes), label="nodes")
    pod_list = draw(pods(node_list, max_pods_per_node, min_pods, states), label="pods")
    shapes = services if services is not None else service_shapes(types, external_policies, internal_policies)
    alloc = _Allocator(config.node_port_range)
    count = draw(st.integers(min_services, max_services), label="number of services")
    svc_list = tuple(draw(_services_strategy(f"svc-{i}", pod_list, shapes, alloc), label=f"svc-{i}")
                     for i in range(1, count + 1))
    client_list: tuple[ir.Client, ...] = ()
    if clients:
        client_list = ((ir.Client("internet", ir.ClientKind.EXTERNAL,
                                  draw(addresses(CLIENT_CIDR, skip_first=100), label="internet address")),)
                       + tuple(ir.Client(f"{n.name}-process", ir.ClientKind.NODE, node=n.name) for n in node_list)
                       + tuple(ir.Client(p.name, ir.ClientKind.POD, p.ip, p.node) for p in pod_list))
    lbs: tuple[ir.LoadBalancer, ...] = ()
    if load_balancer and any(s.type is ir.ServiceType.LOAD_BALANCER for s in svc_list):
        if draw(st.booleans(), label="explicit load balancer"):
            style = draw(st.sampled_from(tuple(ir.LoadBalancerStyle)), label="LB style")
            lbs = (ir.LoadBalancer("cloud", style, draw(st.booleans(), label="LB health checks")),)
    cluster = ir.Cluster(name, node_list, config, pod_list, svc_list, client_list, lbs)
    if with_checks:
        cluster = replace(cluster, checks=draw(checks(cluster, max_checks), label="checks"))
    return cluster


def _services_strategy(name, pod_list, shapes, alloc):
    # A fresh composite per Service so every draw shares the cluster's allocator.
    return services(name, pod_list, shapes, _alloc=alloc)


# ---------------------------------------------------------------------------------------------- packets


@dataclass(frozen=True, slots=True)
class ClientPacket:
    """A packet a client sends to one of the cluster's service addresses."""

    client: ir.Client
    src: ir.IPAddress
    sport: int
    dst: ir.IPAddress
    dport: int
    protocol: ir.Protocol
    via: ir.Via
    service: str  # "ns/name"
    port: str  # the service port's name ("" for a single unnamed port)
    entry_node: str | None  # where the packet enters the cluster (external clients; NodePort's node)

    def destination(self) -> ir.Destination:
        """The check destination this packet is an instance of."""
        node = self.entry_node if self.via is ir.Via.NODE_PORT else None
        return ir.Destination(self.service, self.via, self.port or None, node)


@st.composite
def packets(draw, cluster: ir.Cluster, vias: Sequence[ir.Via] = tuple(ir.Via)) -> ClientPacket:
    """A client packet aimed at a cluster IP, a node port, an external IP or a load balancer VIP of one of
    ``cluster``'s Services (the cluster needs at least one client and one Service with a port)."""
    targets: list[tuple[ir.Service, ir.ServicePort, ir.Via, ir.IPAddress | None, int, str | None]] = []
    for svc in cluster.services:
        if not svc.cluster_ips or not svc.ports:
            continue
        for port in svc.ports:
            if ir.Via.CLUSTER_IP in vias:
                targets += [(svc, port, ir.Via.CLUSTER_IP, ip, port.port, None) for ip in svc.cluster_ips]
            if ir.Via.NODE_PORT in vias and port.node_port:  # on a node address of each of the Service's families
                families = {ir.IPFamily.of(ip) for ip in svc.cluster_ips}
                targets += [(svc, port, ir.Via.NODE_PORT, n.primary_ip(f), port.node_port, n.name)
                            for n in cluster.nodes for f in sorted(families, key=lambda f: f.value)
                            if n.primary_ip(f) is not None]
            if ir.Via.EXTERNAL_IP in vias:
                targets += [(svc, port, ir.Via.EXTERNAL_IP, ip, port.port, n.name)
                            for ip in svc.external_ips for n in cluster.nodes]
            if ir.Via.LOAD_BALANCER in vias:
                targets += [(svc, port, ir.Via.LOAD_BALANCER, ing.ip, port.port, n.name)
                            for ing in svc.load_balancer_ingress for n in cluster.nodes]
    if not targets or not cluster.clients:
        raise ValueError("packets(cluster) needs a client and a Service with a port")
    svc, port, via, dst, dport, entry = draw(st.sampled_from(targets), label="target")
    family = ir.IPFamily.of(dst)
    senders = [c for c in cluster.clients if cluster.speaks(c, family)]
    if not senders:
        raise ValueError(f"packets(cluster): no client has an {family.value} address")
    client = draw(st.sampled_from(senders), label="client")
    src = cluster.client_address(client, family)
    if src is None:
        src = draw(addresses(CLIENT_CIDR if family is ir.IPFamily.V4 else embedded(CLIENT_CIDR)), label="source")
    if client.kind is not ir.ClientKind.EXTERNAL:
        entry = client.node if via is not ir.Via.NODE_PORT else entry
    sport = draw(st.integers(1024, 65535), label="source port")
    return ClientPacket(client, src, sport, dst, dport, port.protocol, via, svc.key, port.name, entry)


# ------------------------------------------------------------------------------------------------ specs


def specs(**cluster_options) -> st.SearchStrategy[str]:
    """``.k`` spec text of a drawn cluster (``clusters(**cluster_options)``); parses back to that cluster."""

    return clusters(**cluster_options).map(format_cluster)
