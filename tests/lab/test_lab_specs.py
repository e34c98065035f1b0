"""Every spec in specs/ through the lab: every probe's observed outcome is what the verifier predicts, and the
source-IP tutorial's observations hold on a real kernel."""
from __future__ import annotations

from pathlib import Path

import pytest

from kspec import ir
from kspec.families import as_ipv6
from kspec.grammar import load
from kspec.lab import run_lab
from kspec.verifier.model.network import Disposition
from tests.lab.conftest import assert_agrees

pytestmark = pytest.mark.netns

SPECS = sorted((Path(__file__).resolve().parents[2] / "specs").glob("*.k"))
_reports = {}


def lab(name: str, ipv6: bool = False):
    """The lab report of specs/NAME.k (run once per session); ``ipv6``: of the spec moved into IPv6
    (``kspec.families.as_ipv6``: fd00::/96 plus the IPv4 address), built with ip6tables."""
    if (name, ipv6) not in _reports:
        cluster, _ = load(str(Path(__file__).resolve().parents[2] / "specs" / f"{name}.k"))
        _reports[name, ipv6] = run_lab(as_ipv6(cluster) if ipv6 else cluster, spec=f"specs/{name}.k")
    return _reports[name, ipv6]


@pytest.mark.parametrize("ipv6", [False, True], ids=["IPv4", "IPv6"])
@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_kernel_agrees_with_model(spec, ipv6):
    report = lab(spec.stem, ipv6)
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


def test_ipv6_nodeport_cluster_shows_a_node_address_and_local_keeps_the_client():
    cluster_policy = lab("nodeport-cluster", ipv6=True)
    assert {o.client_address for o in _seen(cluster_policy, "node2 fd00::af0:5")} == {"fd00::af0:5"}
    local_policy = lab("nodeport-local", ipv6=True)
    assert {o.client_address for o in _seen(local_policy, "node1 fd00::af0:3")} == {"fd00::6884:14f"}
    for node in ("node2 fd00::af0:5", "node3 fd00::af0:4"):
        assert {o.disposition for o in _seen(local_policy, node)} == {Disposition.DROPPED}


@pytest.mark.parametrize("family", [ir.IPFamily.V4, ir.IPFamily.V6], ids=["IPv4", "IPv6"])
def test_a_dual_stack_spec_builds_a_lab_per_family(family):
    cluster, _ = load(str(Path(__file__).resolve().parents[2] / "tests" / "data" / "specs" / "dual-stack.k"))
    report = run_lab(cluster, family=family)
    assert_agrees(report)
    version = 4 if family is ir.IPFamily.V4 else 6
    assert {r.target.dst.version for r in report.results} == {version}  # the other family's probes are not sent
    assert {o.pod for r in report.results for o in r.observed} == {f"default/web{version}"}
    assert {o.client_address for o in _seen(report, "node2")} == {"10.240.0.4" if version == 4 else "fd00:240::4"}


def test_topology_keeps_each_zone_in_its_zone_and_without_hints_does_not():
    report = lab("topology")
    assert {o.pod for o in _seen(report, "shop-a ->")} == {"default/web-a"}
    assert {o.pod for o in _seen(report, "shop-b ->")} == {"default/web-b"}
    # kube-proxy 1.30 with its controller: no hints, so the kernel spreads zone a's connections over both.
    from kspec.releases import with_release

    cluster, _ = load(str(Path(__file__).resolve().parents[2] / "specs" / "topology.k"))
    older = run_lab(with_release(cluster, "1.30"), spec="specs/topology.k at 1.30")
    assert_agrees(older)
    assert {o.pod for o in _seen(older, "shop-a ->")} == {"default/web-a", "default/web-b"}
