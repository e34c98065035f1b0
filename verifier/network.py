"""The cluster network around the nodes' netfilter: where a packet enters, how nodes route it, where it ends.

The per-node engine (``encode.NodeModel``) walks one hook; this module strings hooks and nodes together in
the kernel's order:

* a packet from outside (external host, load balancer, another node, a pod's veth) enters nat PREROUTING,
  then is routed: to a local address -> filter INPUT (a host socket: nothing listens on a NodePort);
  to a pod on this node -> filter FORWARD, nat POSTROUTING, the pod; to a pod of another node -> FORWARD,
  POSTROUTING, out to that node, where the same happens again; anywhere else -> it leaves the cluster.
* a packet from a process on the node starts in nat OUTPUT, then filter OUTPUT and nat POSTROUTING.

MASQUERADE takes the address of the outgoing interface: the node's IP towards other nodes, the node's pod
gateway (first address of its pod CIDR, as cni0/cbr0 has) towards its own pods.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace

import z3

from kspec import ir
from kspec.verifier.encode import ACCEPT, DROP, REJECT, NodeModel, Step, SymPacket, masquerade_pending

MAX_HOPS = 4  # a packet crosses at most entry node -> endpoint node; more means a routing loop


class Disposition(enum.Enum):
    DELIVERED = "delivered"  # to a pod
    HOST = "host"  # to a socket on a node (nothing listens on a service port there)
    DROPPED = "dropped"
    REJECTED = "rejected"
    NO_ROUTE = "no route"  # left the cluster or went to an address nobody has
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Hop:
    node: str
    steps: tuple[Step, ...]
    route: str


@dataclass(frozen=True, slots=True)
class Fate:
    """One feasible class of packets and what became of it."""

    disposition: Disposition
    hops: tuple[Hop, ...]
    packet: SymPacket  # the final packet (its cond is the path condition)
    pod: ir.Pod | None = None
    node: str | None = None  # where it was delivered (pod's node or the host)
    reason: str = ""

    @property
    def cond(self) -> z3.BoolRef:
        return self.packet.cond

    @property
    def source_seen(self) -> z3.BitVecRef:
        """The source address the receiver sees."""
        return self.packet.src


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


def pod_gateway(node: ir.Node, family: ir.IPFamily) -> ir.IPAddress | None:
    cidr = next((c for c in node.pod_cidrs if ir.IPFamily.of(c) is family), None)
    return None if cidr is None else cidr.network_address + 1


class ClusterNetwork:
    def __init__(self, cluster: ir.Cluster, models: dict[str, NodeModel], family: ir.IPFamily):
        self.cluster = cluster
        self.models = models
        self.family = family
        self.pods_by_ip = {pod.ip: pod for pod in cluster.pods}
        for pod in _endpoint_pods(cluster):
            self.pods_by_ip.setdefault(pod.ip, pod)
        # Interface numbering: the spec's pods in order, then pods known only from endpoints.
        self._pod_number = {ip: i for i, ip in enumerate(self.pods_by_ip)}
        self._owner: dict = {}

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
        detect = self.cluster.proxy.detect_local
        if detect.mode is ir.LocalDetectMode.BRIDGE_INTERFACE and detect.interface:
            return detect.interface
        prefix = detect.interface if detect.mode is ir.LocalDetectMode.INTERFACE_NAME_PREFIX and detect.interface \
            else "veth"
        return f"{prefix}{self._pod_number[pod.ip]}"

    # --------------------------------------------------------------------------------- journeys

    def arrive(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...] = ()) -> list[Fate]:
        """A packet arriving at ``node`` from the wire (or a pod's veth)."""
        if len(hops) >= MAX_HOPS:
            return [Fate(Disposition.UNKNOWN, hops, pkt, reason="routing loop")]
        model = self.models[node]
        fates = []
        start = pkt.evolve(steps=())
        for path, verdict in model.walk_hook("nat", "PREROUTING", start):
            if verdict != ACCEPT:
                fates.append(self._stopped(node, path, verdict, hops, "nat PREROUTING"))
                continue
            fates += self._route(node, path, hops)
        return fates

    def originate(self, node: str, pkt: SymPacket) -> list[Fate]:
        """A packet sent by a process on ``node``."""
        model = self.models[node]
        fates = []
        for path, verdict in model.walk_hook("nat", "OUTPUT", pkt):
            if verdict != ACCEPT:
                fates.append(self._stopped(node, path, verdict, (), "nat OUTPUT"))
                continue
            for fpath, fverdict in model.walk_hook("filter", "OUTPUT", path):
                if fverdict != ACCEPT:
                    fates.append(self._stopped(node, fpath, fverdict, (), "filter OUTPUT"))
                    continue
                fates += self._leave(node, fpath, (), local_origin=True)
        return fates

    def _route(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...]) -> list[Fate]:
        model = self.models[node]
        if pkt.dst in model.local_ips:
            fates = []
            for path, verdict in model.walk_hook("filter", "INPUT", pkt):
                hop = Hop(node, path.steps, f"{pkt.dst} is local to {node}")
                if verdict == ACCEPT:
                    fates.append(Fate(Disposition.HOST, hops + (hop,), path, node=node,
                                      reason=f"reached a socket on {node}, not a pod"))
                else:
                    fates.append(self._stopped(node, path, verdict, hops, "filter INPUT"))
            return fates
        fates = []
        for path, verdict in model.walk_hook("filter", "FORWARD", pkt):
            if verdict != ACCEPT:
                fates.append(self._stopped(node, path, verdict, hops, "filter FORWARD"))
                continue
            fates += self._leave(node, path, hops, local_origin=False)
        return fates

    def _leave(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...], local_origin: bool) -> list[Fate]:
        """nat POSTROUTING, then hand the packet to the pod, the next node, or the outside."""
        owner = self.node_of(pkt.dst)
        to_own_pod = owner == (node, "pods")
        out_iface = self.pod_iface(self.pods_by_ip[pkt.dst]) if to_own_pod and pkt.dst in self.pods_by_ip \
            else "eth0"
        pkt = pkt.evolve(out_iface=out_iface)
        model = self.models[node]
        fates = []
        for path, verdict in model.walk_hook("nat", "POSTROUTING", pkt):
            if verdict != ACCEPT:
                fates.append(self._stopped(node, path, verdict, hops, "nat POSTROUTING"))
                continue
            path = self._masquerade(node, path, to_own_pod)
            fates += self._deliver(node, path, hops, owner)
        return fates

    def _masquerade(self, node: str, pkt: SymPacket, to_own_pod: bool) -> SymPacket:
        if not masquerade_pending(pkt.masq_src):
            return pkt
        node_ir = self.cluster.node(node)
        new_src = pod_gateway(node_ir, self.family) if to_own_pod else node_ir.primary_ip(self.family)
        if new_src is None:
            return pkt.evolve(unknown=f"{node} has no address to masquerade with", masq_src=None)
        note = f"src: {pkt.src_value or 'client'} -> {new_src}"
        last = pkt.steps[-1] if pkt.steps else Step("nat", "POSTROUTING", None)
        return pkt.evolve(src=z3.BitVecVal(int(new_src), pkt.src.size()), src_value=new_src, masq_src=new_src,
                       steps=pkt.steps[:-1] + (replace(last, note=note),))

    def _deliver(self, node: str, pkt: SymPacket, hops: tuple[Hop, ...], owner) -> list[Fate]:
        if pkt.unknown:
            return [Fate(Disposition.UNKNOWN, hops + (Hop(node, pkt.steps, ""),), pkt, reason=pkt.unknown)]
        if owner is None:
            hop = Hop(node, pkt.steps, f"{pkt.dst} is outside the cluster")
            return [Fate(Disposition.NO_ROUTE, hops + (hop,), pkt, reason=f"{pkt.dst} leaves the cluster")]
        owner_node, kind = owner
        if owner_node == node and kind == "local":
            # A process on this node talking to itself: the packet loops back through lo into filter INPUT.
            fates = []
            for path, verdict in self.models[node].walk_hook("filter", "INPUT", pkt.evolve(in_iface="lo")):
                if verdict == ACCEPT:
                    hop = Hop(node, path.steps, f"{pkt.dst} is local to {node}")
                    fates.append(Fate(Disposition.HOST, hops + (hop,), path, node=node,
                                      reason=f"reached a socket on {node}"))
                else:
                    fates.append(self._stopped(node, path, verdict, hops, "filter INPUT"))
            return fates
        if owner_node == node and kind == "pods":
            pod = self.pods_by_ip.get(pkt.dst)
            hop = Hop(node, pkt.steps, f"{pkt.dst} is a pod on {node}")
            if pod is None:
                return [Fate(Disposition.NO_ROUTE, hops + (hop,), pkt, reason=f"no pod has {pkt.dst}")]
            return [Fate(Disposition.DELIVERED, hops + (hop,), pkt, pod=pod, node=node)]
        hop = Hop(node, pkt.steps, f"{pkt.dst} via {owner_node}")
        # A new node means a new conntrack entry: the packet is NEW there, with no DNAT state or mark.
        onward = pkt.evolve(in_iface="eth0", out_iface=None, dnat=False, mark=0, masq_src=None)
        return self.arrive(owner_node, onward, hops + (hop,))

    def _stopped(self, node: str, pkt: SymPacket, verdict: str, hops: tuple[Hop, ...], where: str) -> Fate:
        disposition = {DROP: Disposition.DROPPED, REJECT: Disposition.REJECTED}.get(verdict, Disposition.UNKNOWN)
        return Fate(disposition, hops + (Hop(node, pkt.steps, where),), pkt,
                    reason=pkt.unknown or f"{verdict} in {where} on {node}")

