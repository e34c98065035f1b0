"""The Kubernetes-object front end against kube-proxy's own full-sync expectations.

Each full-sync full-dump case of the corpus is written by hand, under ``tests/data/k8s/<Case>/objects.yaml``,
as the real objects ``kubectl get -o yaml`` prints (Services, EndpointSlices, the Node) plus a
KubeProxyConfiguration and a NodeFacts document standing for the test's fake proxier. Loading them with
``load_k8s`` and compiling must give kube-proxy's expected ruleset byte for byte, and the same IR the
corpus's own ``input.json`` gives (a second, independent translation of the same Go test setup).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from kspec import ir, releases
from kspec.diagnostics import Severity
from kspec.ingest.k8s import load_k8s_with_diagnostics
from tests.conftest import CORPUS, require_corpus

DATA = Path(__file__).resolve().parent.parent / "data" / "k8s"
FULL_SYNC_CASES = [
    "TestOverallIPTablesRules",
    "TestBadIPs",
    "TestSyncProxyRulesRepeated__01_initial_full_sync",
    "TestSyncProxyRulesRepeated__10_full_resync_after_failed_partial",
]
# Slices whose Service the test deleted: kube-proxy ignores them, the loader says so.
ORPHAN_SLICES = {
    "TestSyncProxyRulesRepeated__10_full_resync_after_failed_partial": ["ns2/svc2-1", "ns4/svc4-1"],
}
# kube-proxy's test gives node ports the apiserver would not allocate; kspec warns (kspec.consistency).
NODE_PORT_WARNINGS = {
    "TestBadIPs": ["Service port: node_port 3001 is outside the node port range 30000-32767"],
    "TestOverallIPTablesRules": [
        "Service port: node_port 3001 is outside the node port range 30000-32767",
        "Service port: node_port 3003 is outside the node port range 30000-32767",
        "Service: health_check_node_port 30000/tcp is already used",
        "Service port: node_port 3002 is outside the node port range 30000-32767"],
}


def _load(case: str) -> tuple[ir.Cluster, list]:
    """The case's objects, as the corpus's kube-proxy release programs them."""
    cluster, diagnostics = load_k8s_with_diagnostics([str(DATA / case / "objects.yaml")])
    return replace(cluster, proxy=replace(cluster.proxy, kube_proxy_version=releases.CORPUS)), diagnostics


def _kernel_chains(case: str):
    """The chains already in the kernel before the sync: node state the objects cannot hold."""
    # Imported here so a compiler that fails to import fails the test rather than skipping it.
    from kspec.compiler import SyncState

    proxier = json.loads((CORPUS / "cases" / case / "input.json").read_text())["proxier"]
    assert proxier["fullSync"] is True
    return SyncState(existing_chains=frozenset(proxier["existingNatChains"]))


@pytest.mark.parametrize("case", FULL_SYNC_CASES)
def test_objects_compile_to_kube_proxys_ruleset(case: str):
    require_corpus()
    from kspec.compiler import compile_node

    cluster, _ = _load(case)
    expected = (CORPUS / "cases" / case / "expected.iptables").read_text()
    assert compile_node(cluster, "test-node", sync=_kernel_chains(case)) == expected


@pytest.mark.parametrize("case", FULL_SYNC_CASES)
def test_objects_give_the_same_ir_as_the_corpus_input(case: str):
    require_corpus()
    from kspec.ingest.conformance import load_case

    cluster, _ = _load(case)
    reference, node, family, _ = load_case(CORPUS / "cases" / case)
    assert (node, family) == ("test-node", ir.IPFamily.V4)
    # targetPort is informational, and the corpus records it as unset where kubectl prints the default.
    assert _without_target_ports(cluster.services) == _without_target_ports(reference.services)
    assert cluster.proxy == reference.proxy
    assert cluster.node("test-node").ips == reference.node("test-node").ips


@pytest.mark.parametrize("case", FULL_SYNC_CASES)
def test_objects_load_with_only_the_expected_warnings(case: str):
    _, diagnostics = _load(case)
    assert all(d.severity is Severity.WARNING for d in diagnostics)
    expected = [f"EndpointSlice {key}: no Service {key.split('/')[0]}/{key.split('/')[1].rsplit('-', 1)[0]} "
                "was given; ignored" for key in ORPHAN_SLICES.get(case, [])] + NODE_PORT_WARNINGS.get(case, [])
    assert [d.message for d in diagnostics] == expected


def _without_target_ports(services: tuple[ir.Service, ...]) -> tuple[ir.Service, ...]:
    return tuple(replace(svc, ports=tuple(replace(p, target_port=None) for p in svc.ports)) for svc in services)
