"""The iptables backend: IR -> the iptables-restore input kube-proxy (iptables mode) programs on one node.

Start at ``compile_node``: it categorises every service port for the node (``nodeview``), lets each rule
module append its rules in kube-proxy's emission order, and serialises in the order kube-proxy's own tests
normalise to (``writer``). Everything is a pure function of the IR.
"""
from __future__ import annotations

from kspec import ir
from kspec.compiler.context import NodeContext
from kspec.compiler.iptables import endpoints, firewall, masquerade, nodeports, services
from kspec.compiler.iptables.writer import Restore
from kspec.compiler.names import FILTER_FIXED, NAT_FIXED, PER_SERVICE_PREFIXES
from kspec.compiler.nodeview import PortView, ServicePortInfo, categorise, service_ports
from kspec.heap import collector_paused

__all__ = ["SyncState", "compile_node", "compile_cluster", "service_ports"]

SyncState = ir.SyncState  # the compiler's input beside the cluster; plain data, so it lives in the IR
FULL_SYNC = SyncState()


def compile_node(cluster: ir.Cluster, node: str, family: ir.IPFamily = ir.IPFamily.V4, *,
                 sync: SyncState | None = None) -> str:
    """The restore input for ``node``, normalised as kube-proxy's unit tests normalise it."""
    with collector_paused():
        return _compile(cluster, service_ports(cluster, family), cluster.node(node), family, sync or FULL_SYNC, {})


def compile_cluster(cluster: ir.Cluster, family: ir.IPFamily = ir.IPFamily.V4) -> dict[str, str]:
    """Every node's restore input; the service analysis and the node-independent chains are shared."""
    with collector_paused():
        infos = service_ports(cluster, family)
        shared: dict = {}
        return {node.name: _compile(cluster, infos, node, family, FULL_SYNC, shared) for node in cluster.nodes}


def _compile(cluster: ir.Cluster, infos: list[ServicePortInfo], node: ir.Node, family: ir.IPFamily,
             sync: SyncState, shared: dict) -> str:
    total_endpoints = sum(len(info.endpoints) for info in infos)
    ctx = NodeContext(node, family, cluster.proxy, total_endpoints > cluster.proxy.large_cluster_threshold, shared)
    stale_possible = bool(sync.existing_chains)
    out = Restore()
    for chain in FILTER_FIXED:
        out.filter.declare(chain)
    if ctx.localhost_node_ports:
        out.filter.declare("KUBE-FIREWALL")
    for chain in NAT_FIXED:
        out.nat.declare(chain)
    firewall.localnet_rule(out, ctx)
    masquerade.fixed_rules(out, ctx)

    active: set[str] = set()
    for info in infos:
        view = categorise(info, node.name, node.zone)
        if stale_possible:  # only then does it matter which chains stay alive
            active |= view.active_chains()
        out.extend(_port_rules(ctx, view, sync.full or info.service.key in sync.changed))

    firewall.forward_rules(out, ctx)
    for chain in sorted((sync.existing_chains or frozenset()) - active):
        if chain.startswith(PER_SERVICE_PREFIXES):
            out.nat.delete(chain)
    nodeports.entry_rules(out, ctx)
    return out.render()


def _port_rules(ctx: NodeContext, view: PortView, with_chains: bool) -> Restore:
    """All rules of one service port, in a buffer of their own. They depend on the node only through the
    port's view (which endpoints are local) and a few node facts, so nodes that see the port alike share them:
    compile_cluster renders most ports once, not once per node."""
    key = ("port", view.info.name, view.info.protocol, with_chains, view.has_endpoints,
           tuple(ep.sep for ep in view.cluster), tuple(ep.sep for ep in view.local),
           tuple(ep.sep for ep in view.reachable), _node_facts(ctx, view))
    found = ctx.shared.get(key)
    if found is None:
        found = ctx.shared[key] = Restore()
        _entry_rules(found, ctx, view)
        if with_chains:
            _service_chains(found, ctx, view)
    return found


def _node_facts(ctx: NodeContext, view: PortView) -> tuple:
    """What of the node itself a port's rules read: its pod CIDR (NodeCIDR detection) and its IP (the
    source-range hairpin rule)."""
    pod_cidrs = ctx.node.pod_cidrs if ctx.proxy.detect_local.mode is ir.LocalDetectMode.NODE_CIDR else ()
    return pod_cidrs, ctx.primary_ip if view.uses_fw_chain else None


def _entry_rules(out: Restore, ctx: NodeContext, view: PortView) -> None:
    """Rules written on every sync: how traffic reaches the service's chains, or is refused."""
    services.cluster_ip_rules(out, view)
    services.external_ip_rules(out, view)
    services.load_balancer_rules(out, view)
    nodeports.node_port_rules(out, ctx, view)
    nodeports.health_check_rule(out, view)


def _service_chains(out: Restore, ctx: NodeContext, view: PortView) -> None:
    """The service port's own chains, written on full syncs and when the service changed."""
    masquerade.internal_rule(out, ctx, view)
    nodeports.ext_chain(out, ctx, view)
    firewall.fw_chain(out, ctx, view)
    if view.uses_cluster_chain:
        endpoints.dispatch_chain(out, ctx, view, view.info.chain("KUBE-SVC-"), view.cluster)
    if view.uses_local_chain:
        endpoints.dispatch_chain(out, ctx, view, view.info.chain("KUBE-SVL-"), view.local)
    endpoints.sep_chains(out, ctx, view)
