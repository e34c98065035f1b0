"""The jumps from the built-in chains into kube-proxy's chains (spec §4.3).

kube-proxy does not put these in its restore input: it inserts them with ``iptables -I`` when missing. On a
fresh node they end up in the order below. The verifier and the lab need them to see the whole node.
"""
from __future__ import annotations

from kspec.compiler.iptables.words import comment

# (table, built-in chain, extra matches, comment, target), in the order they end up on a fresh node.
_JUMPS = (
    ("filter", "INPUT", (), None, "KUBE-FIREWALL"),
    ("filter", "INPUT", ("-m", "conntrack", "--ctstate", "NEW"), "kubernetes load balancer firewall",
     "KUBE-PROXY-FIREWALL"),
    ("filter", "INPUT", (), "kubernetes health check service ports", "KUBE-NODEPORTS"),
    ("filter", "INPUT", ("-m", "conntrack", "--ctstate", "NEW"), "kubernetes externally-visible service portals",
     "KUBE-EXTERNAL-SERVICES"),
    ("filter", "FORWARD", ("-m", "conntrack", "--ctstate", "NEW"), "kubernetes load balancer firewall",
     "KUBE-PROXY-FIREWALL"),
    ("filter", "FORWARD", (), "kubernetes forwarding rules", "KUBE-FORWARD"),
    ("filter", "FORWARD", ("-m", "conntrack", "--ctstate", "NEW"), "kubernetes service portals", "KUBE-SERVICES"),
    ("filter", "FORWARD", ("-m", "conntrack", "--ctstate", "NEW"), "kubernetes externally-visible service portals",
     "KUBE-EXTERNAL-SERVICES"),
    ("filter", "OUTPUT", (), None, "KUBE-FIREWALL"),
    ("filter", "OUTPUT", ("-m", "conntrack", "--ctstate", "NEW"), "kubernetes load balancer firewall",
     "KUBE-PROXY-FIREWALL"),
    ("filter", "OUTPUT", ("-m", "conntrack", "--ctstate", "NEW"), "kubernetes service portals", "KUBE-SERVICES"),
    ("nat", "PREROUTING", (), "kubernetes service portals", "KUBE-SERVICES"),
    ("nat", "OUTPUT", (), "kubernetes service portals", "KUBE-SERVICES"),
    ("nat", "POSTROUTING", (), "kubernetes postrouting rules", "KUBE-POSTROUTING"),
)
_BUILTINS = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}


def base_rules(has_kube_firewall: bool = True, declare_targets: bool = False) -> str:
    """Restore text (``--noflush``) that declares the built-in chains with kube-proxy's jumps in them.

    ``has_kube_firewall``: KUBE-FIREWALL exists (IPv4 with localhost NodePorts); otherwise its jumps are left
    out, as a jump to a missing chain would not load. ``declare_targets``: also declare (empty) the chains
    jumped to, as kube-proxy and kubelet create them before the first restore; only for use *before* the
    restore input, since a declaration flushes a chain.
    """
    lines = []
    for table, chains in _BUILTINS.items():
        lines.append(f"*{table}")
        lines += [f":{chain} ACCEPT [0:0]" for chain in chains]
        if declare_targets:
            targets = dict.fromkeys(target for tbl, _, _, _, target in _JUMPS if tbl == table
                                    and (target != "KUBE-FIREWALL" or has_kube_firewall))
            lines += [f":{target} - [0:0]" for target in targets]
        for tbl, chain, extra, note, target in _JUMPS:
            if tbl != table or (target == "KUBE-FIREWALL" and not has_kube_firewall):
                continue
            words = ("-A", chain) + extra + (comment(note) if note else ()) + ("-j", target)
            lines.append(" ".join(words))
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"
