"""The Z3 model asked the questions kube-proxy's unit-test packet tracer answers (spec §11), so that the
corpus flows (``shared/conformance/kube-proxy/cases/*/flows.json``) check the model too.

The unit-test tracer walks nat PREROUTING once, then four filter chains on their own, and reports every
DNAT destination a statistic cascade can reach plus any filter verdict, and whether KUBE-MARK-MASQ was hit.
Here the same walks are done symbolically: every *feasible* path (Z3-checked) contributes its DNAT target.
Where the unit-test tracer is knowingly imprecise, this mirrors it so the expectations stay comparable:
the destination port is not rewritten before the filter walks, and an IPv6 DNAT target leaves a
destination that no ``-d`` matches (the tracer cuts ``[fd00::1]:80`` at the first colon).
"""
from __future__ import annotations

import ipaddress
from dataclasses import replace

from kspec.rules.iptables import ruleset as rs
from kspec.verifier.engines.encode import ACCEPT, DROP, REJECT, NodeModel, symbolic_packet

FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL")
_NOWHERE = ipaddress.IPv4Address(0)  # matches no IPv6 -d, as the tracer's "[fd00" does not


def unit_flow(model: NodeModel, mark_bit: int, src: str, proto: str, dst: str, dport: int) -> tuple[str, bool]:
    """(output, masq) in the unit-test tracer's format, decided by the Z3 model."""
    pkt = symbolic_packet(model.width, ipaddress.ip_address(src), dst=ipaddress.ip_address(dst), dport=dport,
                          proto=proto.lower())
    outputs: list[str] = []
    masq = False
    first_dnat = None
    for path, _verdict in model.walk_hook("nat", "PREROUTING", pkt):
        masq = masq or bool(path.mark & mark_bit)
        dnat = next((s.rule.target for s in reversed(path.steps)
                     if s.rule is not None and isinstance(s.rule.target, rs.Dnat)), None)
        if path.dnat and dnat is not None:
            _add(outputs, dnat.text())
            first_dnat = first_dnat or dnat
    filter_dst = pkt.dst
    if first_dnat is not None:
        filter_dst = first_dnat.ip if first_dnat.ip.version == 4 else _NOWHERE
    walked = replace(pkt, dst=filter_dst, mark=0)
    for chain in FILTER_CHAINS:
        verdicts: list[str] = []
        for _, verdict in model.walk_chain("filter", chain, walked, depth=0):
            if verdict in (ACCEPT, DROP, REJECT):
                _add(verdicts, verdict.upper())
        outputs += verdicts
    return ", ".join(outputs), masq


def _add(outputs: list[str], item: str) -> None:
    if item not in outputs:
        outputs.append(item)
