"""Filter-table plumbing: KUBE-FIREWALL (no NodePorts from outside on localhost), KUBE-FORWARD, and the
KUBE-FW chain that admits only loadBalancerSourceRanges (spec §4.1, §5.9)."""
from __future__ import annotations

from kspec import releases
from kspec.compiler.context import NodeContext
from kspec.compiler.iptables.words import comment
from kspec.compiler.iptables.writer import Restore
from kspec.compiler.nodeview import PortView

INVALID_COUNTER = "ct_state_invalid_dropped_pkts"


def localnet_rule(out: Restore, ctx: NodeContext) -> None:
    if ctx.localhost_node_ports:
        out.filter.add("KUBE-FIREWALL", *comment("block incoming localnet connections"), "-d", "127.0.0.0/8",
                       "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT",
                       "-j", "DROP")


def forward_rules(out: Restore, ctx: NodeContext) -> None:
    if not ctx.proxy.tcp_liberal or not releases.at_least(ctx.proxy, releases.TCP_LIBERAL_SKIPS_INVALID_DROP):
        counter = ("-m", "nfacct", "--nfacct-name", INVALID_COUNTER) if ctx.has_counter(INVALID_COUNTER) else ()
        out.filter.add("KUBE-FORWARD", "-m", "conntrack", "--ctstate", "INVALID", *counter, "-j", "DROP")
    out.filter.add("KUBE-FORWARD", *comment("kubernetes forwarding rules"), "-m", "mark", "--mark",
                   f"{ctx.mark}/{ctx.mark}", "-j", "ACCEPT")
    out.filter.add("KUBE-FORWARD", *comment("kubernetes forwarding conntrack rule"), "-m", "conntrack",
                   "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")


def fw_chain(out: Restore, ctx: NodeContext, view: PortView) -> None:
    if not view.uses_fw_chain:
        return
    info = view.info
    chain = info.chain("KUBE-FW-")
    ext = info.chain("KUBE-EXT-")
    out.nat.declare(chain)
    prefix = comment(f"{info.name} loadbalancer IP")
    for cidr in info.source_ranges:
        out.nat.add(chain, *prefix, "-s", str(cidr), "-j", ext)
    node_ip = ctx.primary_ip
    if node_ip is not None and any(node_ip in cidr for cidr in info.source_ranges if cidr.version == node_ip.version):
        # The node itself may send to the VIP (hairpin through the cloud LB): admit the VIP as a source.
        for ip in info.lb_ips:
            out.nat.add(chain, *prefix, "-s", str(ip), "-j", ext)
    # A counter-only rule: the DROP itself lives in filter KUBE-PROXY-FIREWALL, for packets not DNATed.
    out.nat.add(chain, *comment(f"other traffic to {info.name} will be dropped by KUBE-PROXY-FIREWALL"))
