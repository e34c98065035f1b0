"""NodePorts and external traffic: KUBE-NODEPORTS, the KUBE-EXT chain that applies externalTrafficPolicy,
the health-check node port, and the entry rule at the end of KUBE-SERVICES (spec §5.4, §5.5, §5.8, §5.13)."""
from __future__ import annotations

from kspec import ir
from kspec.compiler.context import NodeContext
from kspec.compiler.iptables.masquerade import local_match
from kspec.compiler.iptables.services import filter_target
from kspec.compiler.iptables.words import comment, proto
from kspec.compiler.iptables.writer import Restore
from kspec.compiler.nodeview import PortView

LOCALHOST_COUNTER = "localhost_nps_accepted_pkts"
ENTRY_COMMENT = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"


def node_port_rules(out: Restore, ctx: NodeContext, view: PortView) -> None:
    info = view.info
    node_port = info.port.node_port
    if not node_port:
        return
    if view.has_endpoints:
        ext = info.chain("KUBE-EXT-")
        if ctx.localhost_node_ports and ctx.has_counter(LOCALHOST_COUNTER):
            # An accounting duplicate of the rule below, counting NodePort traffic to localhost.
            out.nat.add("KUBE-NODEPORTS", *comment(info.name), *proto(info), "-d", "127.0.0.0/8",
                        "--dport", str(node_port), "-m", "nfacct", "--nfacct-name", LOCALHOST_COUNTER,
                        "-j", ext)
        out.nat.add("KUBE-NODEPORTS", *comment(info.name), *proto(info), "--dport", str(node_port), "-j", ext)
    if not view.has_external:
        words, target = filter_target(view)
        out.filter.add("KUBE-EXTERNAL-SERVICES", *words, "-m", "addrtype", "--dst-type", "LOCAL", *proto(info),
                       "--dport", str(node_port), "-j", target)


def health_check_rule(out: Restore, view: PortView) -> None:
    info = view.info
    if info.health_check_node_port:
        out.filter.add("KUBE-NODEPORTS", *comment(f"{info.name} health check node port"),
                       "-m", "tcp", "-p", "tcp", "--dport", str(info.health_check_node_port), "-j", "ACCEPT")


def ext_chain(out: Restore, ctx: NodeContext, view: PortView) -> None:
    """KUBE-EXT-H: masquerade (Cluster) or keep the client IP and pick a local endpoint (Local)."""
    if not view.uses_ext_chain:
        return
    info = view.info
    chain = info.chain("KUBE-EXT-")
    out.nat.declare(chain)
    if not info.external_policy_local:
        out.nat.add(chain, *comment(f"masquerade traffic for {info.name} external destinations"),
                    "-j", "KUBE-MARK-MASQ")
    else:
        svc = info.chain("KUBE-SVC-")
        from_pod = local_match(ctx, local=True)
        if from_pod is not None:
            # Pods reaching the service's external address behave as if they had used the cluster IP.
            out.nat.add(chain, *comment(f"pod traffic for {info.name} external destinations"), *from_pod,
                        "-j", svc)
        local_src = ("-m", "addrtype", "--src-type", "LOCAL")
        out.nat.add(chain, *comment(f"masquerade LOCAL traffic for {info.name} external destinations"),
                    *local_src, "-j", "KUBE-MARK-MASQ")
        out.nat.add(chain, *comment(f"route LOCAL traffic for {info.name} external destinations"),
                    *local_src, "-j", svc)
    if view.has_external:
        out.nat.add(chain, "-j", view.external_policy_chain)


def entry_rules(out: Restore, ctx: NodeContext) -> None:
    """The jump from KUBE-SERVICES to KUBE-NODEPORTS for traffic to this node's NodePort addresses."""
    addresses = ctx.node_port_addresses
    if addresses.match_all:
        extra: tuple[str, ...] = ()
        if ctx.family is ir.IPFamily.V6:
            extra = ("!", "-d", "::1/128")
        elif not ctx.localhost_node_ports:
            extra = ("!", "-d", "127.0.0.0/8")
        out.nat.add("KUBE-SERVICES", *comment(ENTRY_COMMENT), "-m", "addrtype", "--dst-type", "LOCAL", *extra,
                    "-j", "KUBE-NODEPORTS")
        return
    for ip in addresses.node_ips(ctx.local_ips()):
        if not ip.is_loopback or ctx.localhost_node_ports:
            out.nat.add("KUBE-SERVICES", *comment(ENTRY_COMMENT), "-d", str(ip), "-j", "KUBE-NODEPORTS")
