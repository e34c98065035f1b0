"""The source-IP tutorial's scenarios on an IPv6 cluster: the compiler's ip6tables text, the 128-bit Z3
model, the concrete replay of every counterexample, and a real ``ip6tables-save`` dump read back.

The cluster is the IPv4 seed cluster moved into IPv6 (``kspec.families.as_ipv6``): three nodes, the app's
one endpoint on node1, a pod client on node2, an external client, a process on node3.
"""
from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import replace

import pytest
from hypothesis import given, settings

from kspec import ir
from kspec import strategies as ks
from kspec.compiler import compile_cluster
from kspec.compiler.iptables.basechains import base_rules
from kspec.families import as_dual_stack, as_ipv6
from kspec.verifier import verify
from kspec.verifier.model.network import Disposition
from kspec.verifier.properties import Verdict
from tests.netns import iptables_restore, throwaway_netns
from tests.verifier import seed_clusters

V6 = ir.IPFamily.V6
D = ir.Destination
KEEPS = ir.Implies(ir.Delivered(), ir.SourceIsClient())
ip, net = ipaddress.ip_address, ipaddress.ip_network


def cluster(policy: ir.TrafficPolicy, typ: ir.ServiceType = ir.ServiceType.NODE_PORT) -> ir.Cluster:
    """The IPv4 seed cluster with every address moved under fd00::/96."""
    return as_ipv6(seed_clusters.cluster(policy, typ))


def _one(c: ir.Cluster, dest: ir.Destination, prop: ir.Prop, client: str = "internet"):
    [result] = verify(c, (ir.Check("c", (client,), dest, prop),), family=V6)
    assert not result.replay_error, result.replay_error  # every counterexample replays concretely
    return result


@pytest.mark.parametrize("typ", [ir.ServiceType.NODE_PORT, ir.ServiceType.LOAD_BALANCER])
def test_cluster_policy_hides_the_client_behind_a_node_address(typ):
    c = cluster(ir.TrafficPolicy.CLUSTER, typ)
    result = _one(c, D("nodeport", ir.Via.NODE_PORT, node="node2"), KEEPS)
    assert result.verdict is Verdict.VIOLATED
    fate = result.counterexample.fate
    assert fate.disposition is Disposition.DELIVERED and [h.node for h in fate.hops] == ["node2", "node1"]
    internet = next(client for client in c.clients if client.name == "internet")
    assert result.counterexample.src == str(internet.ip) and ":" in result.counterexample.src
    assert result.counterexample.seen == str(c.node("node2").ips[0])  # node2's address


def test_local_policy_keeps_the_client_and_other_nodes_drop():
    c = cluster(ir.TrafficPolicy.LOCAL)
    assert _one(c, D("nodeport", ir.Via.NODE_PORT), KEEPS).verdict is Verdict.PROVED
    assert _one(c, D("nodeport", ir.Via.NODE_PORT, node="node2"), ir.Dropped()).verdict is Verdict.PROVED


def test_cluster_ip_from_a_pod_is_not_snated():
    c = cluster(ir.TrafficPolicy.CLUSTER)
    assert _one(c, D("nodeport", ir.Via.CLUSTER_IP), KEEPS, client="busybox").verdict is Verdict.PROVED


@pytest.mark.parametrize("policy", [ir.TrafficPolicy.CLUSTER, ir.TrafficPolicy.LOCAL])
def test_builtin_properties_are_as_expected(policy):
    results = verify(cluster(policy, ir.ServiceType.LOAD_BALANCER), (), family=V6, builtins=True)
    assert results and all(r.as_expected and not r.replay_error for r in results), \
        [(r.check.name, r.verdict) for r in results if not r.as_expected]


@pytest.mark.netns
@pytest.mark.parametrize("policy", [ir.TrafficPolicy.CLUSTER, ir.TrafficPolicy.LOCAL])
def test_ip6tables_save_dump_gives_the_compiled_verdicts(policy):
    c = cluster(policy, ir.ServiceType.LOAD_BALANCER)
    checks = (ir.Check("keeps", ("internet",), D("nodeport", ir.Via.NODE_PORT), KEEPS),
              ir.Check("pods", ("busybox",), D("nodeport", ir.Via.CLUSTER_IP), KEEPS))
    compiled = [(r.check.name, r.verdict) for r in verify(c, checks, family=V6, builtins=True)]
    texts = compile_cluster(c, V6)
    for node in c.nodes:
        with throwaway_netns() as ns:
            for restore in (texts[node.name], base_rules(has_kube_firewall=False)):
                ok, stderr = iptables_restore(ns, restore, ipv6=True, noflush=True)
                assert ok, stderr
            dump = subprocess.run(["ip", "netns", "exec", ns, "ip6tables-save"], capture_output=True, text=True,
                                  check=True).stdout
        assert "/128" in dump  # really ip6tables-save's rendering
        from_dump = [(r.check.name, r.verdict) for r in verify(c, checks, family=V6, builtins=True,
                                                               rules={node.name: dump})]
        assert from_dump == compiled, node.name


# ---------------------------------------------------------------------------------------------- dual stack


def dual_stack(policy: ir.TrafficPolicy) -> ir.Cluster:
    """Nodes with both families; 'web' is dual-stack (an endpoint of each family on node1), 'legacy' is
    IPv4 only (kube-proxy programs it in iptables, not ip6tables)."""
    nodes = tuple(ir.Node(f"node{i}", (ip(f"10.240.0.{2 + i}"), ip(f"fd00:240::{2 + i}")),
                          (net(f"10.244.{i}.0/24"), net(f"fd00:244:0:{i}::/64"))) for i in (1, 2))
    port = (ir.ServicePort("", ir.Protocol.TCP, 80, 8080, 30080),)
    eport = (ir.EndpointPort("", ir.Protocol.TCP, 8080),)
    web = ir.Service("default", "web", ir.ServiceType.NODE_PORT, (ip("10.96.0.10"), ip("fd00:96::10")), port,
                     endpoints=(ir.Endpoint(ip("10.244.1.5"), eport, "node1"),
                                ir.Endpoint(ip("fd00:244:0:1::5"), eport, "node1")),
                     external_traffic_policy=policy)
    legacy = ir.Service("default", "legacy", ir.ServiceType.CLUSTER_IP, (ip("10.96.0.20"),),
                        (ir.ServicePort("", ir.Protocol.TCP, 80, 8080),),
                        endpoints=(ir.Endpoint(ip("10.244.2.9"), eport, "node2"),))
    pods = (ir.Pod("default", "client4", "node2", ip("10.244.2.7")),
            ir.Pod("default", "client6", "node2", ip("fd00:244:0:2::7")))
    clients = (ir.Client("internet4", ir.ClientKind.EXTERNAL, ip("104.132.1.79")),
               ir.Client("internet6", ir.ClientKind.EXTERNAL, ip("2001:db8:cafe::79")),
               ir.Client("client4", ir.ClientKind.POD, pods[0].ip, "node2"),
               ir.Client("client6", ir.ClientKind.POD, pods[1].ip, "node2"))
    proxy = ir.ProxyConfig(cluster_cidrs=(net("10.244.0.0/16"), net("fd00:244::/48")))
    return ir.Cluster("dual", nodes, proxy, pods, (web, legacy), clients)


def test_a_dual_stack_check_combines_both_families():
    c = dual_stack(ir.TrafficPolicy.CLUSTER)
    via_node2 = D("web", ir.Via.NODE_PORT, node="node2")
    keeps, pods, legacy = verify(c, (
        ir.Check("keeps", ("internet4", "internet6"), via_node2, KEEPS),
        ir.Check("pods", ("client4", "client6"), D("web", ir.Via.CLUSTER_IP), KEEPS),
        ir.Check("legacy", ("client4", "client6"), D("legacy", ir.Via.CLUSTER_IP), ir.Delivered())))
    assert keeps.verdict is Verdict.VIOLATED and not keeps.replay_error  # SNAT in both families: one is shown
    assert pods.verdict is Verdict.PROVED and pods.instances == 2  # one client per family, both proved
    assert legacy.verdict is Verdict.PROVED and legacy.instances == 1  # IPv4 only: IPv6 has no say
    # each family alone agrees
    for family, sender in ((ir.IPFamily.V4, "internet4"), (V6, "internet6")):
        [alone] = verify(c, (ir.Check("k", (sender,), via_node2, KEEPS),), family=family)
        assert alone.verdict is Verdict.VIOLATED


def test_a_violation_in_one_family_is_a_violation():
    c = dual_stack(ir.TrafficPolicy.CLUSTER)
    web = next(s for s in c.services if s.name == "web")
    from dataclasses import replace

    only4 = replace(web, endpoints=web.endpoints[:1])  # the IPv6 side lost its endpoint: it rejects
    c = replace(c, services=(only4,) + c.services[1:])
    [result] = verify(c, (ir.Check("up", ("client4", "client6"), D("web", ir.Via.CLUSTER_IP), ir.Delivered()),))
    assert result.verdict is Verdict.VIOLATED
    assert ":" in result.counterexample.src  # the IPv6 client's packet is the counterexample


def test_dual_stack_builtins_are_per_family_and_named_so():
    results = verify(dual_stack(ir.TrafficPolicy.LOCAL), (), builtins=True)
    names = [r.check.name for r in results]
    assert all(r.as_expected and not r.replay_error for r in results), \
        [(r.check.name, r.verdict) for r in results if not r.as_expected]
    assert any(n.endswith("(IPv4)") for n in names) and any(n.endswith("(IPv6)") for n in names)
    assert len(names) == len(set(names))
    assert not any("legacy" in n and n.endswith("(IPv6)") for n in names)  # not proxied in IPv6
    assert any("legacy" in n and n.endswith("(IPv4)") for n in names)


def test_a_dump_of_a_dual_stack_cluster_needs_its_family():
    with pytest.raises(ValueError, match="family"):
        verify(dual_stack(ir.TrafficPolicy.CLUSTER), (), rules={"node1": "*nat\nCOMMIT\n"})


# ------------------------------------------------------------------------------- the same cluster, moved


@settings(max_examples=25, deadline=None)
@given(ks.clusters(max_nodes=3, max_services=2))
def test_moving_a_cluster_into_ipv6_changes_no_verdict(c: ir.Cluster):
    """kube-proxy's Service rules mean the same in both families (for what the built-ins ask), so the
    built-in verdicts of a drawn cluster and of the same cluster under fd00::/96 are equal."""
    four = [(r.check.name, r.verdict) for r in verify(c, (), builtins=True)]
    six = [(r.check.name, r.verdict) for r in verify(as_ipv6(c), (), builtins=True)]
    assert four == six


def _side_by_side(four, six) -> Verdict:
    """One check's verdict over two families, as ``verify`` documents it: violated in either, then unknown,
    else proved; a family where the check covers no packet has no say."""
    say = [r.verdict for r in (four, six) if r.instances] or [four.verdict]
    return next((v for v in (Verdict.VIOLATED, Verdict.UNKNOWN) if v in say), Verdict.PROVED)


@settings(max_examples=20, deadline=None)
@given(ks.clusters(max_nodes=3, max_services=2, with_checks=True, max_checks=3))
def test_a_dual_stack_cluster_is_its_two_families_side_by_side(c: ir.Cluster):
    """``as_dual_stack`` puts a drawn cluster and its IPv6 twin in one cluster. kube-proxy programs the two
    families apart, so each of the cluster's checks is answered as the two single-stack clusters' answers
    combined, and the built-ins are each family's own, named with the family."""
    twin = as_ipv6(c, suffix="-v6")
    four, six, both = (verify(x, builtins=True) for x in (c, twin, as_dual_stack(c)))
    own = len(c.checks)
    assert [r.verdict for r in both[:own]] == [_side_by_side(a, b) for a, b in zip(four[:own], six[:own])]
    assert [(r.check.name, r.verdict) for r in both[own:]] == \
        [(f"{r.check.name} (IPv4)", r.verdict) for r in four[own:]] + \
        [(f"{r.check.name} (IPv6)", r.verdict) for r in six[own:]]


def test_a_dual_stack_check_accepts_the_twin_endpoint_in_its_own_family():
    """``endpoint in {pod}`` names the IPv4 pod; in the dual-stack cluster the IPv6 packets reach its twin,
    which ``as_dual_stack`` adds to the set (without it the IPv6 family would violate the check)."""
    app = next(pod for pod in cluster(ir.TrafficPolicy.CLUSTER).pods if pod.name.startswith("source-ip-app"))
    c = replace(seed_clusters.cluster(ir.TrafficPolicy.CLUSTER, ir.ServiceType.NODE_PORT), checks=(
        ir.Check("to the app", ("busybox",), D("nodeport", ir.Via.CLUSTER_IP), ir.EndpointIn((app.name,))),))
    dual = as_dual_stack(c)
    assert dual.checks[0].prop == ir.EndpointIn((app.name, f"{app.name}-v6"))
    assert dual.checks[0].clients == ("busybox", "busybox-v6")
    for family in (ir.IPFamily.V4, V6):
        [result] = verify(dual, family=family)
        assert result.verdict is Verdict.PROVED and result.instances, family


def test_testing_helpers_see_an_ipv6_clusters_builtins():
    """kspec.testing's named properties on an IPv6 cluster run its IPv6 built-ins (not none at all)."""
    from kspec import testing

    c = cluster(ir.TrafficPolicy.LOCAL)
    for name in ("local_keeps_client_ip", "cluster_ip_keeps_pod_ip", "nodes_reach_service"):
        result = testing.verify(c, name)
        assert result.results and result.proved, name
