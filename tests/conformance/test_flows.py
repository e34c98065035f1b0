"""kube-proxy's packet-flow expectations (``flows.json``, 246 flows in 43 cases) through both tracers.

* ``unit_test_trace`` (spec §11) must reproduce every flow exactly: that is how kube-proxy's own tests judge
  the ruleset, so it checks the compiler's output (and, for TestTracePacket, the tracer itself).
* The full hook-order tracer must agree with it on every corpus flow when its outcomes are read in the unit
  tracer's vocabulary (``as_unit_test_output``); where the models differ in general is documented in
  docs/tracer-vs-unit-tracer.md (none of those differences is exercised by the corpus).

The traced state is kube-proxy's built-in jump rules plus the compiled restore input (TestTracePacket: its
static rules.iptables, which already holds the jump rules).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kspec.rules.iptables import ruleset as rs
from kspec.rules.iptables.iptables_save import parse_iptables_save_file
from kspec.verifier.engines.tracer import Packet, as_unit_test_output, kube_proxy_state, trace, unit_test_trace
from tests.conftest import CORPUS, corpus_cases, require_corpus

CASES = corpus_cases("flows.json")


def _state(case: Path) -> rs.Ruleset:
    static = case / "rules.iptables"
    if static.exists():
        return parse_iptables_save_file(static)
    from kspec.compiler import compile_node  # the compiler under test (spec §1-§9)
    from kspec.ingest.conformance import load_case

    cluster, node, family, sync = load_case(case)
    return kube_proxy_state(compile_node(cluster, node, family, sync=sync), f"{case.name}/compiled")


def _flows(case: Path) -> tuple[list[str], list[dict]]:
    data = json.loads((case / "flows.json").read_text())
    return data["tracerLocalIPs"], data["flows"]


def _packet(flow: dict, local_ips: list[str]) -> Packet:
    # A source that is one of the node's addresses is a process on the node (nat OUTPUT path).
    local = flow["sourceIP"] in local_ips
    return Packet.of(flow["sourceIP"], flow["destIP"], flow["protocol"], flow["destPort"],
                     in_interface=None if local else "eth0")


def test_corpus_flow_count():
    require_corpus()
    index = json.loads((CORPUS / "index.json").read_text())
    assert len(CASES) == 43
    assert sum(entry.get("numFlows", 0) for entry in index) == 246


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_unit_tracer_flows(case: Path):
    state = _state(case)
    local_ips, flows = _flows(case)
    failures = []
    for flow in flows:
        got = unit_test_trace(state, flow["sourceIP"], flow["protocol"], flow["destIP"], flow["destPort"],
                              local_ips)
        if got != (flow["output"], flow["masq"]):
            failures.append(f"{flow['name']}: got {got}, want {(flow['output'], flow['masq'])}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_full_tracer_agrees(case: Path):
    state = _state(case)
    local_ips, flows = _flows(case)
    failures = []
    for flow in flows:
        outcomes = trace(state, _packet(flow, local_ips), local_ips)
        got = as_unit_test_output(outcomes)
        if got != (flow["output"], flow["masq"]):
            detail = "; ".join(o.summary() for o in outcomes)
            failures.append(f"{flow['name']}: full tracer says {got} ({detail}), unit tracer {flow['output']!r}")
    assert not failures, "\n".join(failures)
