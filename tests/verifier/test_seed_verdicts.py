"""The source-IP tutorial's scenarios, decided by the Z3 model over the compiled rules.

The clusters are built as IR directly (three nodes, one source-ip-app endpoint on node1, an external client,
a pod on node2, a process on node3) so these tests exercise only compiler + verifier.
"""
from __future__ import annotations

import pytest

from kspec import ir
from kspec.verifier import verify
from kspec.verifier.engines import encode
from kspec.verifier.model.network import Disposition
from kspec.verifier.properties import Verdict
from tests.verifier.seed_clusters import cluster

D = ir.Destination
KEEPS = ir.Implies(ir.Delivered(), ir.SourceIsClient())


def _one(c: ir.Cluster, dest: ir.Destination, prop: ir.Prop, clients=("internet",)):
    [result] = verify(c, (ir.Check("c", clients, dest, prop),))
    return result


@pytest.mark.parametrize("typ", [ir.ServiceType.NODE_PORT, ir.ServiceType.LOAD_BALANCER])
def test_cluster_policy_hides_client_ip_behind_a_node_ip(typ):
    result = _one(cluster(ir.TrafficPolicy.CLUSTER, typ), D("nodeport", ir.Via.NODE_PORT, node="node2"), KEEPS)
    assert result.verdict is Verdict.VIOLATED
    fate = result.counterexample.fate
    assert fate.disposition is Disposition.DELIVERED and fate.pod.name == "source-ip-app-0"
    assert [h.node for h in fate.hops] == ["node2", "node1"]
    rules = [s.rule.text for h in fate.hops for s in h.steps if s.rule is not None]
    assert any("-j MASQUERADE" in r for r in rules)
    assert result.counterexample.seen == "10.240.0.4"  # node2's IP is what the pod sees
    assert result.counterexample.src == "104.132.1.79"


def test_local_policy_keeps_client_ip_and_other_nodes_drop():
    c = cluster(ir.TrafficPolicy.LOCAL)
    assert _one(c, D("nodeport", ir.Via.NODE_PORT), KEEPS).verdict is Verdict.PROVED
    assert _one(c, D("nodeport", ir.Via.NODE_PORT, node="node2"), ir.Dropped()).verdict is Verdict.PROVED
    assert _one(c, D("nodeport", ir.Via.NODE_PORT, node="node1"), ir.Delivered()).verdict is Verdict.PROVED
    # and the claim that node2 delivers is refuted, with a path ending in the filter DROP
    refuted = _one(c, D("nodeport", ir.Via.NODE_PORT, node="node2"), ir.Delivered())
    assert refuted.verdict is Verdict.VIOLATED
    assert refuted.counterexample.fate.disposition is Disposition.DROPPED


def test_cluster_ip_from_a_pod_keeps_the_client_ip():
    c = cluster(ir.TrafficPolicy.CLUSTER, ir.ServiceType.CLUSTER_IP)
    prop = ir.And(ir.Delivered(), ir.SourceIsClient())
    assert _one(c, D("nodeport"), prop, clients=("busybox",)).verdict is Verdict.PROVED


def test_load_balancer_local_only_sends_to_the_healthy_node():
    c = cluster(ir.TrafficPolicy.LOCAL, ir.ServiceType.LOAD_BALANCER)
    result = _one(c, D("nodeport", ir.Via.LOAD_BALANCER), ir.And(ir.Delivered(), ir.SourceIsClient()))
    assert result.verdict is Verdict.PROVED
    assert result.instances == 1  # only node1 passes the health check
    no_hc = ir.LoadBalancer("cloud", respects_health_check=False)
    from dataclasses import replace

    blind = replace(c, load_balancers=(no_hc,))
    assert _one(blind, D("nodeport", ir.Via.LOAD_BALANCER), ir.Delivered()).verdict is Verdict.VIOLATED


def test_external_client_cannot_reach_a_cluster_ip():
    c = cluster(ir.TrafficPolicy.CLUSTER, ir.ServiceType.CLUSTER_IP)
    result = _one(c, D("nodeport"), ir.Delivered())
    assert result.verdict is Verdict.VIOLATED
    assert result.counterexample.fate.disposition is Disposition.NO_ROUTE


def test_a_model_bug_shows_as_a_counterexample_that_does_not_replay(monkeypatch):
    """Plant a bug in the Z3 engine's MASQUERADE: the concrete tracer must refuse the counterexample."""
    from tests.verifier.test_differential import _planted_source_nat

    monkeypatch.setattr(encode.NodeModel, "_source_nat", _planted_source_nat)
    result = _one(cluster(ir.TrafficPolicy.CLUSTER), D("nodeport", ir.Via.NODE_PORT, node="node1"), KEEPS)
    assert result.verdict is Verdict.VIOLATED
    assert result.replay_error and not result.as_expected


def test_counterexamples_replay():
    result = _one(cluster(ir.TrafficPolicy.CLUSTER), D("nodeport", ir.Via.NODE_PORT), KEEPS)
    assert result.verdict is Verdict.VIOLATED and result.replay_error == ""


def test_a_solver_that_gives_up_yields_unknown_never_proved(monkeypatch):
    import ipaddress

    import z3

    from kspec.verifier.builtins import ANY_EXTERNAL, with_builtin_clients
    from kspec.verifier.properties import SourceInRanges

    c = with_builtin_clients(cluster(ir.TrafficPolicy.LOCAL))
    monkeypatch.setattr(z3.Solver, "check", lambda self, *a: z3.unknown)
    monkeypatch.setattr(z3.Solver, "reason_unknown", lambda self: "timeout")
    # A property over the symbolic "any external host", which only the solver can decide.
    prop = ir.Implies(ir.Delivered(), SourceInRanges((ipaddress.ip_network("0.0.0.0/1"),)))
    [result] = verify(c, (ir.Check("c", (ANY_EXTERNAL,), D("nodeport", ir.Via.NODE_PORT), prop),), timeout_ms=1)
    assert result.verdict is Verdict.UNKNOWN and "timeout" in result.reason
