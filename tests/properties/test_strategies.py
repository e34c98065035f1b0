"""kspec.strategies: what it draws is valid (round-trips through the DSL), covers every shape, and shrinks
to something small."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from kspec import ir
from kspec import strategies as ks
from kspec.families import as_dual_stack, as_ipv6
from kspec.grammar import format_cluster, parse_text


@given(ks.clusters(with_checks=True, proxy=ks.proxy_configs()))
def test_clusters_round_trip_through_the_dsl(cluster: ir.Cluster) -> None:
    text = format_cluster(cluster)
    again, _ = parse_text(text, "generated.k")
    assert again == cluster, text


@given(ks.clusters(with_checks=True, proxy=ks.proxy_configs()).map(as_ipv6))
def test_ipv6_clusters_round_trip_and_hold_no_ipv4_address(cluster: ir.Cluster) -> None:
    text = format_cluster(cluster)
    again, _ = parse_text(text, "generated6.k")
    assert again == cluster, text
    addresses = [n for n in cluster.nodes for n in n.ips + n.pod_cidrs] + [p.ip for p in cluster.pods] + \
        [ip for s in cluster.services for ip in s.cluster_ips + tuple(e.ip for e in s.endpoints)]
    assert addresses and all(a.version == 6 for a in addresses)


@given(ks.clusters(with_checks=True, proxy=ks.proxy_configs()).map(as_dual_stack))
def test_dual_stack_clusters_round_trip_and_pair_every_pod_with_an_ipv6_twin(cluster: ir.Cluster) -> None:
    text = format_cluster(cluster)
    again, _ = parse_text(text, "generated46.k")
    assert again == cluster, text
    assert all({ip.version for ip in node.ips} == {4, 6} for node in cluster.nodes)
    assert all({ip.version for ip in svc.cluster_ips} == {4, 6} for svc in cluster.services if svc.cluster_ips)
    pods = {pod.name: pod for pod in cluster.pods}
    for pod in cluster.pods:
        if pod.ip.version == 4:
            twin = pods[f"{pod.name}-v6"]
            assert (twin.ip.version, twin.node, twin.labels) == (6, pod.node, pod.labels)


@given(ks.specs(max_nodes=2))
def test_specs_are_canonical_text(text: str) -> None:
    assert format_cluster(parse_text(text, "generated.k")[0]) == text


@given(st.data())
def test_addresses_stay_inside_their_cidrs(data) -> None:
    cidrs = data.draw(st.lists(ks.networks("10.0.0.0/8", 8, 30), min_size=1, max_size=3))
    ip = data.draw(ks.addresses(*cidrs))
    assert any(ip in c for c in cidrs)
    assert all(ip != c.network_address for c in cidrs if ip in c and c.prefixlen < 31)


@given(ks.clusters(max_nodes=3, max_services=3))
def test_pods_live_on_their_nodes_and_ports_are_unique(cluster: ir.Cluster) -> None:
    for pod in cluster.pods:
        assert any(pod.ip in cidr for cidr in cluster.node(pod.node).pod_cidrs)
    assert len({p.ip for p in cluster.pods}) == len(cluster.pods)
    node_ports = [(p.node_port, p.protocol) for s in cluster.services for p in s.ports if p.node_port]
    node_ports += [(s.health_check_node_port, ir.Protocol.TCP) for s in cluster.services if s.health_check_node_port]
    assert len(set(node_ports)) == len(node_ports)
    assert all(30000 <= n <= 32767 for n, _ in node_ports)
    ips = [ip for s in cluster.services for ip in s.cluster_ips]
    assert len(set(ips)) == len(ips)


_SHAPES = [ks.ServiceShape(ir.ServiceType.CLUSTER_IP, ir.TrafficPolicy.CLUSTER, itp) for itp in ir.TrafficPolicy]
_SHAPES += [ks.ServiceShape(kind, etp, itp) for kind in (ir.ServiceType.NODE_PORT, ir.ServiceType.LOAD_BALANCER)
            for etp in ir.TrafficPolicy for itp in ir.TrafficPolicy]
_SHAPES += [ks.ServiceShape(ir.ServiceType.EXTERNAL_NAME)]


@pytest.mark.parametrize("shape", _SHAPES, ids=lambda s: f"{s.type.value}-{s.external_traffic_policy.value}"
                         f"-{s.internal_traffic_policy.value}")
@settings(max_examples=5)
@given(data=st.data())
def test_every_type_and_policy_can_be_asked_for(shape: ks.ServiceShape, data) -> None:
    cluster = data.draw(ks.clusters(services=st.just(shape), max_services=1))
    svc = cluster.services[0]
    assert (svc.type, svc.external_traffic_policy, svc.internal_traffic_policy) == (
        shape.type, shape.external_traffic_policy, shape.internal_traffic_policy)
    assert parse_text(format_cluster(cluster), "x.k")[0] == cluster


@pytest.mark.parametrize("state", ks.READINESS_STATES)
@settings(max_examples=3)
@given(data=st.data())
def test_every_readiness_state_can_be_asked_for(state: ks.Readiness, data) -> None:
    cluster = data.draw(ks.clusters(states=st.just(state), min_pods=1))
    pod = cluster.pods[0]
    assert (pod.ready, pod.serving, pod.terminating) == (state.ready, state.serving, state.terminating)


def test_from_type_is_registered_through_the_entry_point() -> None:
    cluster = find(st.from_type(ir.Cluster), lambda c: True)
    assert isinstance(cluster, ir.Cluster) and cluster.nodes and cluster.services


def test_shrinks_to_a_small_readable_cluster() -> None:
    # "some LoadBalancer Service with policy Local has a terminating endpoint" shrinks to one node, one
    # pod, one Service, in the plainest form.
    def wanted(c: ir.Cluster) -> bool:
        return any(s.type is ir.ServiceType.LOAD_BALANCER and s.external_traffic_policy is ir.TrafficPolicy.LOCAL
                   and any(e.terminating for e in s.endpoints) for s in c.services)

    cluster = find(ks.clusters(max_nodes=3, max_services=2), wanted)
    assert len(cluster.nodes) == 1 and len(cluster.pods) == 1 and len(cluster.services) == 1
    svc = cluster.services[0]
    assert len(svc.ports) == 1 and svc.ports[0].port == 80 and svc.ports[0].protocol is ir.Protocol.TCP
    assert 30000 <= svc.ports[0].node_port <= 30002 and svc.ports[0].target_port is None
    assert svc.cluster_ips == (ipaddress.ip_address("10.96.0.1"),)
    assert len(format_cluster(cluster).splitlines()) < 30


@given(st.data())
def test_packets_aim_at_the_clusters_addresses(data) -> None:
    cluster = data.draw(ks.clusters(min_nodes=1))
    if not any(s.cluster_ips and s.ports for s in cluster.services):
        return
    packet = data.draw(ks.packets(cluster))
    svc = next(s for s in cluster.services if s.key == packet.service)
    port = next(p for p in svc.ports if p.name == packet.port)
    own = {ir.Via.CLUSTER_IP: set(svc.cluster_ips), ir.Via.EXTERNAL_IP: set(svc.external_ips),
           ir.Via.LOAD_BALANCER: {i.ip for i in svc.load_balancer_ingress},
           ir.Via.NODE_PORT: {ip for n in cluster.nodes for ip in n.ips}}[packet.via]
    assert packet.dst in own
    assert packet.dport == (port.node_port if packet.via is ir.Via.NODE_PORT else port.port)


def test_importing_the_strategies_first_works() -> None:
    # Hypothesis runs its entry-point hooks while it is imported; kspec's must not re-enter kspec.strategies.
    import subprocess
    import sys

    code = ("import kspec.strategies as ks\nfrom hypothesis import find, strategies as st\nfrom kspec import ir\n"
            "print(find(st.from_type(ir.Cluster), lambda c: True).nodes[0].name)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "node1", run.stderr
