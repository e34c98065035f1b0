"""Every spec in specs/ through the lab: every probe's observed outcome is what the verifier predicts, and the
source-IP tutorial's observations hold on a real kernel."""
from __future__ import annotations

from pathlib import Path

import pytest

from kspec.grammar import load
from kspec.lab import run_lab
from kspec.verifier.network import Disposition
from tests.lab.conftest import assert_agrees

pytestmark = pytest.mark.netns

SPECS = sorted((Path(__file__).resolve().parents[2] / "specs").glob("*.k"))
_reports = {}


def lab(name: str):
    """The lab report of specs/NAME.k (run once per session)."""
    if name not in _reports:
        cluster, _ = load(str(Path(__file__).resolve().parents[2] / "specs" / f"{name}.k"))
        _reports[name] = run_lab(cluster, spec=f"specs/{name}.k")
    return _reports[name]


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_kernel_agrees_with_model(spec):
    report = lab(spec.stem)
    assert report.results, "the spec produced no probes"
    assert_agrees(report)


def _seen(report, description_part: str):
    rows = [r for r in report.results if description_part in r.description]
    assert rows, description_part
    return {o for r in rows for o in r.observed}


def test_clusterip_keeps_the_pod_address_on_any_node():
    report = lab("clusterip")
    assert {(o.pod, o.client_address) for o in _seen(report, "busybox ->")} == {
        ("default/source-ip-app", "10.244.3.8")}
    assert {(o.pod, o.client_address) for o in _seen(report, "busybox-local ->")} == {
        ("default/source-ip-app", "10.244.1.7")}


def test_nodeport_cluster_shows_a_node_address_and_answers():
    report = lab("nodeport-cluster")
    # Reaching the pod through node2 or node3 SNATs to that node's IP; the reply came back (an echo answer).
    assert {o.client_address for o in _seen(report, "node2 10.240.0.5")} == {"10.240.0.5"}
    assert {o.client_address for o in _seen(report, "node3 10.240.0.4")} == {"10.240.0.4"}
    assert all(o.disposition is Disposition.DELIVERED for o in _seen(report, "node1 10.240.0.3"))


def test_nodeport_local_keeps_the_client_address_and_other_nodes_drop():
    report = lab("nodeport-local")
    assert {o.client_address for o in _seen(report, "node1 10.240.0.3")} == {"104.132.1.79"}
    for node in ("node2 10.240.0.5", "node3 10.240.0.4"):
        assert {o.disposition for o in _seen(report, node)} == {Disposition.DROPPED}  # the connect timed out


def test_loadbalancer_local_health_checks_and_delivery():
    report = lab("loadbalancer-local")
    assert not report.problems
    assert any("node1 200, node2 503, node3 503" in note for note in report.notes)
    assert {r.target.entry_node for r in report.results} == {"node1"}
    assert {o.client_address for r in report.results for o in r.observed} == {"104.132.1.79"}
