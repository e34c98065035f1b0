"""Every corpus packet flow, decided by the Z3 model over the rules kspec compiles for the case."""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from kspec.compiler import compile_node
from kspec.ingest.conformance import load_case
from kspec.rules.iptables.iptables_save import parse_iptables_save
from kspec.verifier.engines.encode import NodeModel
from kspec.verifier.engines.tracer import kube_proxy_state
from kspec.verifier.unit_flows import unit_flow
from tests.conftest import corpus_cases

CASES = corpus_cases("flows.json")


def _model(case: Path) -> tuple[NodeModel, int, list[dict]]:
    """The node as the case's test traced it: kube-proxy's jumps plus its restore input (or, for
    TestTracePacket, the case's static rules)."""
    flows = json.loads((case / "flows.json").read_text())
    local = frozenset(ipaddress.ip_address(ip) for ip in flows["tracerLocalIPs"])
    if not (case / "input.json").exists():
        rules = parse_iptables_save((case / "rules.iptables").read_text(), f"{case.name}/rules.iptables",
                                    require_declared_jumps=False, warnings=[])
        return NodeModel(case.name, rules, local, 32), 0x4000, flows["flows"]
    cluster, node, family, sync = load_case(case)
    rules = kube_proxy_state(compile_node(cluster, node, family, sync=sync), f"{case.name}.rules")
    width = 32 if family.value == "IPv4" else 128
    return NodeModel(node, rules, local, width), 1 << cluster.proxy.masquerade_bit, flows["flows"]


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_flows_in_z3_model(case: Path):
    model, mark, flows = _model(case)
    got = [(f["name"], *unit_flow(model, mark, f["sourceIP"], f.get("protocol") or "TCP", f["destIP"],
                                  f["destPort"])) for f in flows]
    want = [(f["name"], f["output"], f["masq"]) for f in flows]
    assert got == want


def test_flow_count():
    if not CASES:
        pytest.skip("corpus absent")
    total = sum(len(json.loads((c / "flows.json").read_text())["flows"]) for c in CASES)
    assert (len(CASES), total) == (43, 246)  # the README's count: all of them run
