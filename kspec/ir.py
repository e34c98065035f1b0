"""The cluster IR: the only contract between kspec's stages.

Everything is a frozen, slotted dataclass holding tuples, ``ipaddress`` values and enums. Every node
carries a ``span`` (where it was written) that is excluded from equality, so the same cluster read from a
``.k`` file, from Kubernetes objects or drawn by Hypothesis compares equal.

The IR says what the cluster *is* (what the API server and the nodes hold), not what kube-proxy makes of
it: defaults that kube-proxy applies (unset traffic policy = Cluster, unset conditions = ready) are applied
by the front ends, and derived facts (local endpoints, chain names) are computed by the compiler.
"""
from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from typing import Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file; lines and columns are 1-based."""

    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False, kw_only=True)


class Protocol(enum.Enum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"

    @property
    def lower(self) -> str:
        return self.value.lower()


class ServiceType(enum.Enum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"
    EXTERNAL_NAME = "ExternalName"


class TrafficPolicy(enum.Enum):
    CLUSTER = "Cluster"
    LOCAL = "Local"


class IPFamily(enum.Enum):
    V4 = "IPv4"
    V6 = "IPv6"

    @staticmethod
    def of(addr: IPAddress | IPNetwork) -> IPFamily:
        return IPFamily.V4 if addr.version == 4 else IPFamily.V6


class IngressMode(enum.Enum):
    """``status.loadBalancer.ingress[].ipMode``: VIP traffic is delivered to the node with the VIP kept;
    Proxy means the load balancer rewrites the destination, so kube-proxy ignores the IP."""

    VIP = "VIP"
    PROXY = "Proxy"


class LocalDetectMode(enum.Enum):
    """kube-proxy's ``--detect-local-mode``: how it tells pod traffic from other traffic."""

    NONE = "None"
    CLUSTER_CIDR = "ClusterCIDR"
    NODE_CIDR = "NodeCIDR"
    BRIDGE_INTERFACE = "BridgeInterface"
    INTERFACE_NAME_PREFIX = "InterfaceNamePrefix"


class ClientKind(enum.Enum):
    POD = "pod"
    NODE = "node"
    EXTERNAL = "external"


class LoadBalancerStyle(enum.Enum):
    """How a cloud load balancer hands a packet to a node (the two styles of the source-IP tutorial)."""

    VIP_KEPT = "vip"  # destination stays the VIP; kube-proxy's LB-IP rules catch it
    NODE_PORT = "nodeport"  # destination rewritten to node IP:nodePort


class PodWiring(enum.Enum):
    """How a node's pods hang off the host, which decides the address MASQUERADE picks towards its pods.

    The kernel's MASQUERADE takes an address of the outgoing interface; when that interface has none, the
    first suitable address of another interface (the node IP on eth0)."""

    GATEWAY = "gateway"  # the pod gateway (pod CIDR + 1) on the host side: cni0/cbr0, or on every veth
    UNNUMBERED = "unnumbered"  # no address on the host side; a /32 route per pod (Calico's cali* veths)


class Expectation(enum.Enum):
    HOLDS = "holds"
    VIOLATED = "violated"


# --------------------------------------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    ips: tuple[IPAddress, ...]  # the node's own (non-loopback) addresses; ips[0] per family is primary
    pod_cidrs: tuple[IPNetwork, ...] = ()
    pod_wiring: PodWiring = PodWiring.GATEWAY
    zone: str | None = None  # the node's topology.kubernetes.io/zone label
    # kube-proxy's nodeIP where it is not simply the primary address of the proxier's family: the corpus's
    # fake proxier keeps 192.168.0.2 even for IPv6 and need not hold it on an interface.
    proxy_ip: IPAddress | None = None
    span: Span | None = _span()

    def primary_ip(self, family: IPFamily) -> IPAddress | None:
        return next((ip for ip in self.ips if IPFamily.of(ip) is family), None)


@dataclass(frozen=True, slots=True)
class LocalDetect:
    mode: LocalDetectMode = LocalDetectMode.CLUSTER_CIDR
    interface: str | None = None  # BridgeInterface: the bridge; InterfaceNamePrefix: the prefix


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The KubeProxyConfiguration subset that shapes the rules, plus the node facts kube-proxy probes at
    start-up (nfacct, --random-fully, tcp_be_liberal)."""

    cluster_cidrs: tuple[IPNetwork, ...] = ()
    detect_local: LocalDetect = LocalDetect()
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_node_ports: bool = True
    node_port_addresses: tuple[IPNetwork, ...] | None = None  # None: every local address
    # nodePortAddresses ["primary"]: each node's primary address of each family (node_port_addresses None)
    node_port_primary: bool = False
    node_port_range: tuple[int, int] = (30000, 32767)
    large_cluster_threshold: int = 1000
    # Node facts kube-proxy discovers at run time.
    random_fully: bool = True
    nfacct: bool = True  # the kernel has nfacct at all
    nfacct_unavailable: tuple[str, ...] = ()  # counters kube-proxy could not create even so
    tcp_liberal: bool = False
    lb_ip_mode_gate: bool | None = None  # the LoadBalancerIPMode feature gate; None: the release's default
    # The kube-proxy release whose rules to write (kspec.releases; --kube-proxy-version).
    kube_proxy_version: tuple[int, int] = (1, 36)
    # kube-proxy's unit tests inject the literal mark "0x4000"; production prints the bit with %#08x.
    mark_literal: str | None = None
    span: Span | None = _span()

    def has_counter(self, name: str) -> bool:
        return self.nfacct and name not in self.nfacct_unavailable

    @property
    def mark(self) -> str:
        return self.mark_literal or f"{1 << self.masquerade_bit:#010x}"


# ------------------------------------------------------------------------------------------ services


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str  # "" for a single unnamed port
    protocol: Protocol
    port: int
    target_port: int | str | None = None  # informational: the DNAT port comes from the endpoint
    node_port: int = 0  # 0: none
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class EndpointPort:
    """One port of an endpoint as an EndpointSlice states it, joined to a ServicePort by name+protocol."""

    name: str
    protocol: Protocol
    port: int
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: IPAddress
    ports: tuple[EndpointPort, ...]
    node: str | None = None
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    pod: str | None = None  # "namespace/name" of the backing pod, when known
    # EndpointSlice topology hints (hints.forZones / hints.forNodes), set by the EndpointSlice controller
    # for trafficDistribution: kube-proxy keeps a node's Cluster traffic to the endpoints hinted for it.
    zone_hints: tuple[str, ...] = ()
    node_hints: tuple[str, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class LoadBalancerIngress:
    ip: IPAddress
    mode: IngressMode | None = None  # None: unset (counts as VIP)
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class SessionAffinity:
    timeout_seconds: int = 10800
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: ServiceType = ServiceType.CLUSTER_IP
    cluster_ips: tuple[IPAddress, ...] = ()  # empty: headless (kube-proxy ignores it)
    ports: tuple[ServicePort, ...] = ()
    selector: tuple[tuple[str, str], ...] | None = None  # None: endpoints are given explicitly
    endpoints: tuple[Endpoint, ...] = ()
    external_ips: tuple[IPAddress, ...] = ()
    load_balancer_ingress: tuple[LoadBalancerIngress, ...] = ()
    load_balancer_source_ranges: tuple[IPNetwork, ...] = ()
    external_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    internal_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    health_check_node_port: int = 0
    session_affinity: SessionAffinity | None = None
    external_name: str | None = None
    span: Span | None = _span()
    # spec.trafficDistribution (PreferClose, PreferSameZone, PreferSameNode): the EndpointSlice controller's
    # topology hints for a selector's endpoints (kspec.topology); None: unset
    traffic_distribution: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# ----------------------------------------------------------------------------- pods, clients, checks


@dataclass(frozen=True, slots=True)
class ContainerPort:
    name: str
    port: int
    protocol: Protocol = Protocol.TCP
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    node: str
    ip: IPAddress
    labels: tuple[tuple[str, str], ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    span: Span | None = _span()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


MAX_ID = 2**32 - 2  # the largest user or group id ((uid_t)-1 means "none")


@dataclass(frozen=True, slots=True)
class Client:
    """Where a packet starts: a pod, a process on a node, or a host outside the cluster."""

    name: str
    kind: ClientKind
    ip: IPAddress | None = None  # POD: the pod's IP; NODE: the node's IP unless given
    node: str | None = None  # POD and NODE clients
    span: Span | None = _span()
    # NODE: the process's user and group (its sockets' owner, what `-m owner` matches); root's by default.
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    """The cloud load balancer in front of LoadBalancer Services."""

    name: str
    style: LoadBalancerStyle = LoadBalancerStyle.VIP_KEPT
    respects_health_check: bool = True
    span: Span | None = _span()


# Check destinations.
class Via(enum.Enum):
    CLUSTER_IP = "cluster_ip"
    NODE_PORT = "node_port"
    LOAD_BALANCER = "load_balancer"
    EXTERNAL_IP = "external_ip"


@dataclass(frozen=True, slots=True)
class Destination:
    service: str  # "namespace/name" (or "name" in the default namespace)
    via: Via = Via.CLUSTER_IP
    port: str | None = None  # service port name; None: every port
    node: str | None = None  # NODE_PORT: which node; None: any node
    span: Span | None = _span()


# Properties, a closed union.
@dataclass(frozen=True, slots=True)
class Delivered:
    """The connection's first packet reaches a pod (whatever becomes of the pod's answer)."""

    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Answered:
    """The round trip works: the first packet reaches a pod and its answer reaches the client, from the
    address and port the client sent to (replies filtered, misrouted or not un-NATed fail it)."""

    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Dropped:
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Rejected:
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class SourceIsClient:
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class SourceInNodes:
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class EndpointIn:
    pods: tuple[str, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class StaysOnNode:
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Sticky:
    """ClientIP session affinity holds: delivered, and the client's next connection (a new source port,
    within the affinity timeout, the first one's choice remembered by each node's ``recent`` lists) reaches
    the same pod."""

    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Not:
    operand: Prop
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class And:
    left: Prop
    right: Prop
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Or:
    left: Prop
    right: Prop
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Implies:
    left: Prop
    right: Prop
    span: Span | None = _span()


Prop = Union[Delivered, Answered, Dropped, Rejected, SourceIsClient, SourceInNodes, EndpointIn, StaysOnNode, Sticky,
             Not, And, Or, Implies]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    clients: tuple[str, ...]  # client names; empty: every client
    destination: Destination
    prop: Prop
    expect: Expectation = Expectation.HOLDS
    span: Span | None = _span()


# ---------------------------------------------------------------------------------------- cluster


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    nodes: tuple[Node, ...] = ()
    proxy: ProxyConfig = ProxyConfig()
    pods: tuple[Pod, ...] = ()
    services: tuple[Service, ...] = ()
    clients: tuple[Client, ...] = ()
    load_balancers: tuple[LoadBalancer, ...] = ()
    checks: tuple[Check, ...] = ()
    span: Span | None = _span()
    # A spec's `objects "FILE"`, as written: Kubernetes objects whose nodes, pods and Services joined it.
    objects: tuple[str, ...] = ()

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def client_address(self, client: Client, family: IPFamily) -> IPAddress | None:
        """The address ``client`` sends from: its own, else (a process on a node) the node's primary address
        of ``family``; None for an external client without one ("any external host")."""
        if client.ip is not None:
            return client.ip
        if client.kind is ClientKind.NODE and client.node:
            return self.node(client.node).primary_ip(family)
        return None

    def speaks(self, client: Client, family: IPFamily) -> bool:
        """Whether ``client`` can send packets of ``family`` ("any external host" always can)."""
        if client.ip is None and client.kind is not ClientKind.NODE:
            return True
        source = self.client_address(client, family)
        return source is not None and IPFamily.of(source) is family

    def families(self) -> tuple[IPFamily, ...]:
        """The IP families the cluster's nodes and Services have addresses in, IPv4 first (IPv4 when none)."""
        seen = {IPFamily.of(ip) for svc in self.services for ip in svc.cluster_ips}
        seen |= {IPFamily.of(ip) for node in self.nodes for ip in node.ips}
        return tuple(f for f in (IPFamily.V4, IPFamily.V6) if f in seen) or (IPFamily.V4,)


@dataclass(frozen=True, slots=True)
class SyncState:
    """What a kube-proxy sync starts from, the compiler's input beside the cluster: a full sync, or a
    partial one (spec §5.6) where only ``changed`` services get their chains rewritten.

    ``existing_chains`` are kube-proxy's nat chains already in the kernel; those not active after this sync
    are deleted. None means unknown: no deletions are emitted.
    """

    changed: frozenset[str] | None = None  # "ns/name" keys; None: full sync
    existing_chains: frozenset[str] | None = frozenset()

    @property
    def full(self) -> bool:
        return self.changed is None
