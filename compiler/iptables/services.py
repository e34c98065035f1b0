"""How traffic to a service's addresses enters its chains: cluster IP, external IPs and load-balancer IPs in
nat KUBE-SERVICES, and the filter REJECT/DROP rules for ports without (local) endpoints (spec §5.1-5.3)."""
from __future__ import annotations

from kspec.compiler.iptables.words import comment, dest_port
from kspec.compiler.iptables.writer import Restore
from kspec.compiler.nodeview import PortView


def filter_target(view: PortView) -> tuple[tuple[str, ...], str]:
    """The comment and target for traffic this node cannot deliver."""
    if not view.has_endpoints:
        return comment(f"{view.info.name} has no endpoints"), "REJECT"
    return comment(f"{view.info.name} has no local endpoints"), "DROP"


def cluster_ip_rules(out: Restore, view: PortView) -> None:
    info = view.info
    key = dest_port(info, info.cluster_ip, info.port.port)
    if view.has_internal:
        out.nat.add("KUBE-SERVICES", *comment(f"{info.name} cluster IP"), *key, "-j", view.internal_chain)
    else:
        words, target = filter_target(view)
        out.filter.add("KUBE-SERVICES", *words, *key, "-j", target)


def external_ip_rules(out: Restore, view: PortView) -> None:
    info = view.info
    for ip in info.external_ips:
        key = dest_port(info, ip, info.port.port)
        if view.has_endpoints:
            out.nat.add("KUBE-SERVICES", *comment(f"{info.name} external IP"), *key,
                        "-j", info.chain("KUBE-EXT-"))
        if not view.has_external:
            words, target = filter_target(view)
            out.filter.add("KUBE-EXTERNAL-SERVICES", *words, *key, "-j", target)


def load_balancer_rules(out: Restore, view: PortView) -> None:
    info = view.info
    entry = info.chain("KUBE-FW-" if view.uses_fw_chain else "KUBE-EXT-")
    for ip in info.lb_ips:
        key = dest_port(info, ip, info.port.port)
        if view.has_endpoints:
            out.nat.add("KUBE-SERVICES", *comment(f"{info.name} loadbalancer IP"), *key, "-j", entry)
        if view.uses_fw_chain:
            fw = info.chain("KUBE-FW-")
            out.filter.add("KUBE-PROXY-FIREWALL", *comment(f"{info.name} traffic not accepted by {fw}"), *key,
                           "-j", "DROP")
    if not view.has_external:
        words, target = filter_target(view)
        for ip in info.lb_ips:
            out.filter.add("KUBE-EXTERNAL-SERVICES", *words, *dest_port(info, ip, info.port.port), "-j", target)
