"""KUBE-MARK-MASQ, KUBE-POSTROUTING, and the local-traffic detector that decides which traffic to a cluster
IP is masqueraded (spec §4.2, §5.7, §8)."""
from __future__ import annotations

from kspec import ir
from kspec.compiler.context import NodeContext
from kspec.compiler.iptables.words import comment, dest_port
from kspec.compiler.iptables.writer import Restore
from kspec.compiler.nodeview import PortView


def fixed_rules(out: Restore, ctx: NodeContext) -> None:
    mark = ctx.mark
    out.nat.add("KUBE-POSTROUTING", "-m", "mark", "!", "--mark", f"{mark}/{mark}", "-j", "RETURN")
    out.nat.add("KUBE-POSTROUTING", "-j", "MARK", "--xor-mark", mark)
    masquerade = ("-j", "MASQUERADE") + (("--random-fully",) if ctx.proxy.random_fully else ())
    out.nat.add("KUBE-POSTROUTING", *comment("kubernetes service traffic requiring SNAT"), *masquerade)
    out.nat.add("KUBE-MARK-MASQ", "-j", "MARK", "--or-mark", mark)


def local_match(ctx: NodeContext, local: bool) -> tuple[str, ...] | None:
    """Words matching pod traffic (``local``) or everything else; None without a detector."""
    detect = ctx.proxy.detect_local
    neg = () if local else ("!",)
    if detect.mode is ir.LocalDetectMode.CLUSTER_CIDR:
        cidr = next((c for c in ctx.proxy.cluster_cidrs if ir.IPFamily.of(c) is ctx.family), None)
        return None if cidr is None else neg + ("-s", str(cidr))
    if detect.mode is ir.LocalDetectMode.NODE_CIDR:
        cidr = next((c for c in ctx.node.pod_cidrs if ir.IPFamily.of(c) is ctx.family), None)
        return None if cidr is None else neg + ("-s", str(cidr))
    if detect.mode is ir.LocalDetectMode.BRIDGE_INTERFACE:
        return neg + ("-i", detect.interface)
    if detect.mode is ir.LocalDetectMode.INTERFACE_NAME_PREFIX:
        return neg + ("-i", f"{detect.interface}+")
    return None


def internal_rule(out: Restore, ctx: NodeContext, view: PortView) -> None:
    """First rule of the internal chain: masquerade cluster-IP traffic that does not come from a pod."""
    info = view.info
    if not view.has_internal:
        return
    common = comment(f"{info.name} cluster IP") + dest_port(info, info.cluster_ip, info.port.port)
    if ctx.proxy.masquerade_all:
        out.nat.add(view.internal_chain, *common, "-j", "KUBE-MARK-MASQ")
        return
    not_local = local_match(ctx, local=False)
    if not_local is not None:
        out.nat.add(view.internal_chain, *common, *not_local, "-j", "KUBE-MARK-MASQ")
