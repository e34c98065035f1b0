"""The cluster network around the nodes' netfilter: who owns an address, how each node routes, which address
source NAT picks, how pods are wired, and where an answer counts as answered.

``walk.Walk`` strings the nodes' hooks together by these facts, for both engines (the Z3 model and the concrete
tracer); the lab builds its namespaces, routes and addresses by the same ones (``route``, ``pod_iface``,
``pod_gateway``, ``listening_ports``). So the engines and the lab agree on addresses by construction:

* ``route(node, dst)``: to one of the node's own addresses -> local; to a pod on this node -> its veth (or the
  bridge); to another node's address or pod CIDR -> that node; anything else leaves the cluster.
* ``nat_source(node, out_iface)``: MASQUERADE's address, an address of the outgoing interface (the pod
  gateway, towards the node's pods, when the wiring gives it one), else the node's primary address.
"""
from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from kspec import ir
from kspec.verifier.engines.encode import NodeModel
from kspec.verifier.model.netfilter import Connection

# The walk's vocabulary, imported from here by most of kspec: the network and what happens on it.
from kspec.verifier.model.walk import Disposition, Fate, Hop, Route, RouteKind  # noqa: F401

# The next hop an unnumbered node's IPv6 pods use: link-local only, as Calico's (the lab configures it).
UNNUMBERED_V6_HOP = ipaddress.ip_address("fe80::1")


def _endpoint_pods(cluster: ir.Cluster) -> list[ir.Pod]:
    """Pods implied by endpoints: clusters read from Kubernetes objects often carry no Pod objects, yet an
    endpoint in a node's pod CIDR is a pod that answers."""
    pods = []
    for svc in cluster.services:
        for ep in svc.endpoints:
            if ep.node is None:
                continue
            namespace, _, name = (ep.pod or f"{svc.namespace}/endpoint-{ep.ip}").rpartition("/")
            pods.append(ir.Pod(namespace or svc.namespace, name, ep.node, ep.ip, ready=ep.ready,
                               serving=ep.serving, terminating=ep.terminating))
    return pods


def with_endpoint_pods(cluster: ir.Cluster) -> ir.Cluster:
    """``cluster`` with a pod for each endpoint address no pod has (objects often come without Pod objects):
    what ``ClusterNetwork`` delivers to, for the lab to build."""
    known = {pod.ip for pod in cluster.pods}
    implied = {}
    for pod in _endpoint_pods(cluster):
        if pod.ip not in known:
            implied.setdefault(pod.ip, pod)
    return dataclasses.replace(cluster, pods=cluster.pods + tuple(implied.values())) if implied else cluster


def listening_ports(cluster: ir.Cluster, family: ir.IPFamily) -> dict[str, dict[str, set[int]]]:
    """For each pod of ``family`` (and each endpoint address no pod has): the TCP and UDP ports something
    listens on (its container ports, and the ports of every endpoint with its address). The lab starts its
    echo servers on exactly these."""
    own = [pod for pod in with_endpoint_pods(cluster).pods if ir.IPFamily.of(pod.ip) is family]
    ports: dict[str, dict[str, set[int]]] = {pod.key: {"tcp": set(), "udp": set()} for pod in own}
    by_ip = {pod.ip: pod.key for pod in own}
    for pod in own:
        for cport in pod.ports:
            if cport.protocol in (ir.Protocol.TCP, ir.Protocol.UDP):
                ports[pod.key][cport.protocol.lower].add(cport.port)
    for svc in cluster.services:
        for ep in svc.endpoints:
            key = by_ip.get(ep.ip)
            for eport in ep.ports if key is not None else ():
                if eport.protocol in (ir.Protocol.TCP, ir.Protocol.UDP):
                    ports[key][eport.protocol.lower].add(eport.port)
    return ports


def pod_gateway(node: ir.Node, family: ir.IPFamily) -> ir.IPAddress | None:
    """The address the node holds on the host side of its pods' network, if its wiring gives it one."""
    if node.pod_wiring is ir.PodWiring.UNNUMBERED:
        return None
    cidr = next((c for c in node.pod_cidrs if ir.IPFamily.of(c) is family), None)
    return None if cidr is None else cidr.network_address + 1


def pod_veth(cluster: ir.Cluster, number: int) -> str:
    """The node-side name of the veth of pod ``number`` (the cluster's pods in order): ``veth<n>``, or the
    prefix kube-proxy's interfaceNamePrefix local detection names. (A bridge, when detection names one,
    holds the veths; see ``pod_iface``.)"""
    detect = cluster.proxy.detect_local
    prefix = detect.interface if detect.mode is ir.LocalDetectMode.INTERFACE_NAME_PREFIX and detect.interface \
        else "veth"
    return f"{prefix}{number}"


def _bridge(cluster: ir.Cluster) -> str | None:
    detect = cluster.proxy.detect_local
    return detect.interface if detect.mode is ir.LocalDetectMode.BRIDGE_INTERFACE and detect.interface else None


def local_routes(cluster: ir.Cluster, node: ir.Node, family: ir.IPFamily) -> dict[ir.IPAddress, str | None]:
    """The node's own addresses (loopback aside), each with the device its local-table route names, as the
    lab puts them there: the node's addresses on eth0; the pod gateway on the bridge, or on every veth of the
    node's pods (none without pods). An address on several veths has one route per veth, and the kernel's
    lookups find the one added first: the order the pods came, not a fact of the model, so None (see
    ``matches.addrtype``'s ``--limit-iface``)."""
    routes: dict[ir.IPAddress, str | None] = {ip: "eth0" for ip in node.ips if ir.IPFamily.of(ip) is family}
    gateway = pod_gateway(node, family)
    if gateway is None:
        return routes
    bridge = _bridge(cluster)
    if bridge:
        routes[gateway] = bridge
        return routes
    veths = [pod_veth(cluster, i) for i, pod in enumerate(cluster.pods)
             if pod.node == node.name and ir.IPFamily.of(pod.ip) is family]
    if veths:
        routes[gateway] = veths[0] if len(veths) == 1 else None
    return routes


@dataclass(frozen=True)
class DeviceRoutes:
    """A node's IPv6 routes as ``-m addrtype``'s route lookup meets them (the lab builds exactly these):
    ``held``, per device, the own addresses configured on it (``lo`` holds ``::1``); ``hosts``, per device,
    the addresses with a host route through it (the node's pods, and the device's own addresses); ``uplink``
    carries the default route and the routes to the other nodes; ``unreachable``, the reject routes (the
    node's own pod CIDRs: an address no pod has there gets "no route"). Every device other than ``lo`` also
    has ``fe80::/64``, the anycast ``fe80::`` and the multicast ``ff00::/8``, and a link-local address of
    its own that no spec states."""

    held: Mapping[str, frozenset[ir.IPAddress]]
    hosts: Mapping[str, frozenset[ir.IPAddress]]
    unreachable: tuple[ir.IPNetwork, ...]
    uplink: str = "eth0"

    @functools.cached_property
    def own(self) -> frozenset[ir.IPAddress]:
        """Every address the node holds (a local route each)."""
        return frozenset().union(*self.held.values())

    @functools.cached_property
    def wired(self) -> frozenset[ir.IPAddress]:
        """Every address with a host route."""
        return frozenset().union(*self.hosts.values())


def device_routes(cluster: ir.Cluster, node: ir.Node) -> DeviceRoutes:
    """``DeviceRoutes`` of ``node``'s IPv6 side, from the same wiring as ``local_routes``."""
    v6 = ir.IPFamily.V6
    held: dict[str, set[ir.IPAddress]] = {"lo": {ipaddress.ip_address("::1")},
                                          "eth0": {ip for ip in node.ips if ip.version == 6}}
    hosts: dict[str, set[ir.IPAddress]] = {}
    bridge = _bridge(cluster)
    gateway = pod_gateway(node, v6)
    for number, pod in enumerate(cluster.pods):
        if pod.node != node.name or pod.ip.version != 6:
            continue
        device = bridge or pod_veth(cluster, number)
        hosts.setdefault(device, set()).add(pod.ip)
        if gateway is not None:
            held.setdefault(device, set()).add(gateway)
        elif not bridge:  # unnumbered: the link-local next hop the lab gives the pod (topology.py)
            held.setdefault(device, set()).add(UNNUMBERED_V6_HOP)
    if bridge and gateway is not None:
        held.setdefault(bridge, set()).add(gateway)
    for device, own in held.items():
        hosts.setdefault(device, set()).update(own)
    return DeviceRoutes({d: frozenset(a) for d, a in held.items()}, {d: frozenset(a) for d, a in hosts.items()},
                        tuple(c for c in node.pod_cidrs if c.version == 6))


class ClusterNetwork:
    def __init__(self, cluster: ir.Cluster, models: dict[str, NodeModel], family: ir.IPFamily):
        self.cluster = cluster
        self.models = models
        self.family = family
        self.pods_by_ip = {pod.ip: pod for pod in with_endpoint_pods(cluster).pods}
        # Interface numbering: the spec's pods in order, then pods known only from endpoints.
        self._pod_number = {ip: i for i, ip in enumerate(self.pods_by_ip)}
        self._owner: dict = {}
        self._routes: dict = {}
        self._listening: dict | None = None

    # ------------------------------------------------------------------------------- addressing

    def node_of(self, ip: ir.IPAddress) -> tuple[str, str] | None:
        """(node, "local"|"pods") owning ``ip`` as an own address or inside its pod CIDR."""
        if ip not in self._owner:
            self._owner[ip] = self._find_owner(ip)
        return self._owner[ip]

    def _find_owner(self, ip: ir.IPAddress) -> tuple[str, str] | None:
        for node in self.cluster.nodes:
            if ip in self.models[node.name].local_ips:
                return node.name, "local"
        for node in self.cluster.nodes:
            if any(ip in cidr for cidr in node.pod_cidrs if cidr.version == ip.version):
                return node.name, "pods"
        return None

    def pod_iface(self, pod: ir.Pod) -> str:
        """The interface the node reaches ``pod`` through: the bridge, when there is one, else its veth."""
        return _bridge(self.cluster) or pod_veth(self.cluster, self._pod_number[pod.ip])

    def route(self, node: str, dst: ir.IPAddress | None) -> Route:
        """The routing decision on ``node`` for ``dst`` (the lab's routes are built to match); None is the
        answer to "any external host", outside every cluster range by its constraint."""
        if dst is None:
            return Route(RouteKind.OUTSIDE, "eth0")
        key = (node, dst)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = self._route_of(node, dst)
        return found

    def _route_of(self, node: str, dst: ir.IPAddress) -> Route:
        owner = self.node_of(dst)
        if owner is None:
            return Route(RouteKind.OUTSIDE, "eth0")
        owner_node, kind = owner
        if owner_node != node:
            return Route(RouteKind.NODE, "eth0", owner_node)
        if kind == "local":
            return Route(RouteKind.LOCAL, "lo")
        pod = self.pods_by_ip.get(dst)
        return Route(RouteKind.POD, self.pod_iface(pod)) if pod is not None else Route(RouteKind.UNREACHABLE, None)

    def nat_source(self, node: str, out_iface: str | None) -> ir.IPAddress | None:
        """The address MASQUERADE picks on ``node`` for a packet leaving through ``out_iface``: one of that
        interface's own (the pod gateway, towards the node's pods), else, as the kernel falls back to the
        other interfaces when it has none, the node's primary address."""
        node_ir = self.cluster.node(node)
        if out_iface not in (None, "eth0", "lo"):
            gateway = pod_gateway(node_ir, self.family)
            if gateway is not None:
                return gateway
        return node_ir.primary_ip(self.family)

    # ---------------------------------------------------------------------------------- replies

    def silent_pod(self, pod: ir.Pod | None, proto: str, port: int | None) -> str:
        """Why a pod cannot answer a packet to ``port`` ('' when something listens there): it resets the
        connection (or, for UDP, answers port unreachable), and that answer's way back is not modelled."""
        if pod is None or port is None or proto not in ("tcp", "udp"):
            return ""
        if self._listening is None:
            self._listening = listening_ports(self.cluster, self.family)
        if port in self._listening.get(pod.key, {}).get(proto, ()):
            return ""
        return f"nothing listens on {pod.key}'s {proto} port {port}: it refuses the connection (not modelled)"

    def unanswerable_outside(self, node: str, src: ir.IPAddress | None, dst: ir.IPAddress | None,
                             client_src: ir.IPAddress | None = None) -> bool:
        """Whether the client hears nothing of what the outside answers to a packet ``node`` sent out of the
        cluster from ``src``: the answer (an ICMP error) goes to ``src``. From a pod address it is lost (the
        outside has no route to the nodes' pod CIDRs; the lab's router has none either); from another node's
        address it reaches that node, which never saw the connection; from an outside address other than the
        client's (``client_src``), it goes there. Only the sending node's own address (whose conntrack undoes
        the SNAT) or the client's own brings it back. Both engines ask this of what left the cluster."""
        if dst is None or src is None or self.route(node, dst).kind is not RouteKind.OUTSIDE:
            return False
        owner = self.node_of(src)
        if owner is not None:
            return owner != (node, "local")
        return client_src is not None and src != client_src

    @staticmethod
    def quotes_original(crossed: set[str], conns: dict[str, Connection]) -> bool:
        """Whether an ICMP error that crossed ``crossed`` quotes the packet the client sent: each node that
        DNATed it undoes that in the quoted header too, so it must be on the way back."""
        return all(node in crossed for node, conn in conns.items() if conn.undo_dnat is not None)

    def answer_end(self, node: str, route: Route, dst: ir.IPAddress | None, src: ir.IPAddress, sport: int,
                   client: ir.Client, expect: tuple[ir.IPAddress, int],
                   quoted: bool | None = None) -> tuple[Disposition, str]:
        """Where an answer stopped (``route``, on ``node``): at the client, ANSWERED when it comes from the
        address and port the client sent to (else its socket ignores it); anywhere else, lost. An ICMP error
        is matched by the packet it quotes instead: ``quoted`` says whether that is the client's own (see
        ``quotes_original``). Both engines end their answers here."""
        kind = {RouteKind.LOCAL: ir.ClientKind.NODE, RouteKind.POD: ir.ClientKind.POD,
                RouteKind.OUTSIDE: ir.ClientKind.EXTERNAL}.get(route.kind)
        at_client = client.kind is kind and (kind is not ir.ClientKind.NODE or client.node == node)
        if kind is ir.ClientKind.POD:
            at_client = at_client and dst == self.cluster.client_address(client, self.family)
        if at_client and (quoted if quoted is not None else (src, sport) == tuple(expect)):
            return Disposition.ANSWERED, ""
        where = f"{dst} ({route})" if dst is not None else "the client"
        return Disposition.NO_ROUTE, f"the answer reaches {where} from {src}:{sport}, not from {expect[0]}:{expect[1]}"


