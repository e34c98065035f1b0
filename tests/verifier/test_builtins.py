"""Built-in properties: they hold where the Kubernetes docs say they must, and the exceptions the docs name
(hairpin SNAT, source ranges) are real, found by Z3 with the symbolic external client."""
from __future__ import annotations

import ipaddress
from dataclasses import replace

from kspec import ir
from kspec.verifier import verify
from kspec.verifier.builtins import ANY_EXTERNAL, builtin_checks, pod_client, with_builtin_clients
from kspec.verifier.properties import SourceInRanges, Verdict
from tests.verifier.seed_clusters import cluster


def test_builtins_hold_on_local_load_balancer():
    c = cluster(ir.TrafficPolicy.LOCAL, ir.ServiceType.LOAD_BALANCER)
    results = verify(c, (), builtins=True)
    names = [r.check.name for r in results]
    assert any("keeps the client IP" in n for n in names)
    assert sum("health check" in n for n in names) == 3  # one per node
    assert all(r.verdict is Verdict.PROVED for r in results), [(r.check.name, r.verdict) for r in results]


def test_hairpin_is_the_one_snat_from_a_pod():
    c = with_builtin_clients(cluster(ir.TrafficPolicy.CLUSTER, ir.ServiceType.CLUSTER_IP))
    me = next(p for p in c.pods if p.name == "source-ip-app-0")
    check = ir.Check("hairpin", (pod_client(me),), ir.Destination("nodeport"),
                     ir.Implies(ir.Delivered(), ir.SourceIsClient()))
    [result] = verify(c, (check,))
    assert result.verdict is Verdict.VIOLATED
    assert result.counterexample.fate.pod == me
    assert result.counterexample.seen == "10.244.1.1"  # the node's pod gateway, not the pod itself


def test_source_ranges_admit_exactly_the_listed_sources():
    base = cluster(ir.TrafficPolicy.CLUSTER, ir.ServiceType.LOAD_BALANCER)
    allowed = (ipaddress.ip_network("203.0.113.0/25"),)
    svc = replace(base.services[0], load_balancer_source_ranges=allowed)
    c = replace(base, services=(svc,))
    results = [r for r in verify(c, (), builtins=True) if "SourceRanges" in r.check.name]
    assert [r.verdict for r in results] == [Verdict.PROVED]
    # Claiming a narrower range is refuted by a concrete external address inside the real one.
    narrow = ir.Check("narrow", (ANY_EXTERNAL,), ir.Destination("nodeport", ir.Via.LOAD_BALANCER),
                      ir.Implies(ir.Delivered(), SourceInRanges((ipaddress.ip_network("203.0.113.0/26"),))))
    [result] = verify(with_builtin_clients(c), (narrow,))
    assert result.verdict is Verdict.VIOLATED
    src = ipaddress.ip_address(result.counterexample.src)
    assert src in allowed[0] and src not in ipaddress.ip_network("203.0.113.0/26")


def test_cluster_policy_gets_no_local_builtin():
    c = cluster(ir.TrafficPolicy.CLUSTER, ir.ServiceType.NODE_PORT)
    assert not any("Local" in chk.name for chk in builtin_checks(c))


def test_a_nodeport_style_load_balancer_enforces_source_ranges_itself():
    """With style nodeport the VIP never reaches kube-proxy's KUBE-FW: the cloud LB filters (found by the
    property suite as a false alarm of the source-range built-in)."""
    base = cluster(ir.TrafficPolicy.CLUSTER, ir.ServiceType.LOAD_BALANCER)
    svc = replace(base.services[0], load_balancer_source_ranges=(ipaddress.ip_network("203.0.113.0/25"),))
    c = replace(base, services=(svc,), load_balancers=(ir.LoadBalancer("cloud", ir.LoadBalancerStyle.NODE_PORT),))
    results = [r for r in verify(c, (), builtins=True) if "SourceRanges" in r.check.name]
    assert [r.verdict for r in results] == [Verdict.PROVED]


def test_a_source_refused_by_the_load_balancer_replays():
    base = cluster(ir.TrafficPolicy.CLUSTER, ir.ServiceType.LOAD_BALANCER)
    svc = replace(base.services[0], load_balancer_source_ranges=(ipaddress.ip_network("203.0.113.0/25"),))
    c = replace(base, services=(svc,), load_balancers=(ir.LoadBalancer("cloud", ir.LoadBalancerStyle.NODE_PORT),))
    [result] = verify(c, (ir.Check("all delivered", ("internet",), ir.Destination("nodeport", ir.Via.LOAD_BALANCER),
                                   ir.Delivered()),))
    assert result.verdict is Verdict.VIOLATED and result.replay_error == ""
    assert result.counterexample.fate.disposition.value == "dropped"
