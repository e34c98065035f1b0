"""The Z3 model and the concrete tracer agree on every outcome.

For random packets (any client, any service address, random source port) over the compiled rules of every
spec and of Hypothesis-generated small topologies, the set of outcomes the model finds feasible
(disposition, receiving pod, source address it sees) equals the set the concrete tracer enumerates. A
disagreement is a bug in one of them; the failure shows both sides.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import z3
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kspec import ir
from kspec import strategies as ks
from kspec.families import as_dual_stack, as_ipv6
from kspec.grammar import load
from kspec.verifier import node_models
from kspec.verifier.engines import encode
from kspec.verifier.engines.replay import ConcreteCluster, outcome_key
from kspec.verifier.engines.tracer import Packet
from kspec.verifier.model.network import ClusterNetwork
from kspec.verifier.properties import Target, Verifier
from tests.conftest import REPO

SPECS = sorted((REPO / "specs").glob("*.k"))


class Both:
    """The model and the concrete tracer over the same compiled rules."""

    def __init__(self, cluster: ir.Cluster, family: ir.IPFamily = ir.IPFamily.V4):
        network = ClusterNetwork(cluster, node_models(cluster, family), family)
        self.verifier = Verifier(cluster, network)
        self.concrete = ConcreteCluster(network)

    def compare(self, pkt: ks.ClientPacket) -> None:
        target = Target(pkt.dst, pkt.dport, pkt.protocol, pkt.entry_node, None, pkt.service)
        inst = self.verifier.instance(pkt.client, target, str(target))
        model = {outcome_key(f.disposition, f.pod, _seen(f), *f.later())
                 for f in self.verifier.round_trip_fates(inst) if _feasible(f)}
        packet = Packet(pkt.src, pkt.dst, pkt.protocol.lower, pkt.sport, pkt.dport)
        journeys = self.concrete.round_trips(pkt.client, packet, pkt.entry_node, (pkt.dst, pkt.dport))
        concrete = {outcome_key(j.disposition, j.pod, j.packet.src_value, *j.later())
                    for j in journeys}
        assert model == concrete, (
            f"\n{pkt.client.name} {pkt.src}:{pkt.sport} -> {pkt.dst}:{pkt.dport}/{pkt.protocol.lower} "
            f"entering at {pkt.entry_node}\n  Z3 model:  {sorted(model, key=str)}\n  concrete:  {sorted(concrete, key=str)}")


def _feasible(fate) -> bool:
    solver = z3.Solver()
    solver.add(fate.cond)
    return solver.check() == z3.sat


def _seen(fate):
    """The source the pod sees on a delivered path (the clients here have concrete addresses)."""
    if fate.disposition.value != "delivered":
        return None
    return fate.packet.src_value if fate.packet.src_value is not None else fate.packet.src


def _concrete_clients(cluster: ir.Cluster) -> ir.Cluster:
    from dataclasses import replace

    return replace(cluster, clients=tuple(c for c in cluster.clients if c.ip is not None or c.kind is ir.ClientKind.NODE))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_specs(spec: Path, data):
    cluster = _concrete_clients(load(str(spec))[0])
    both = _both(spec, cluster)
    both.compare(data.draw(ks.packets(cluster)))


_cache: dict = {}


def _both(key, cluster: ir.Cluster) -> Both:
    if key not in _cache:
        _cache[key] = Both(cluster)
    return _cache[key]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_generated_topologies(data):
    cluster = data.draw(ks.clusters(max_nodes=3, max_services=2))
    assume(any(svc.cluster_ips and svc.ports for svc in cluster.services))  # e.g. only ExternalName
    both = Both(cluster)
    for _ in range(3):
        both.compare(data.draw(ks.packets(cluster)))


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_generated_ipv6_topologies(data):
    """The same topologies moved into IPv6: ip6tables text, 128-bit Z3 terms, the tracer's IPv6 paths."""
    cluster = data.draw(ks.clusters(max_nodes=3, max_services=2).map(as_ipv6))
    assume(any(svc.cluster_ips and svc.ports for svc in cluster.services))
    both = Both(cluster, ir.IPFamily.V6)
    for _ in range(3):
        both.compare(data.draw(ks.packets(cluster)))


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_generated_dual_stack_topologies(data):
    """Drawn topologies beside their IPv6 twins in one cluster: each packet's family is modelled apart, next
    to pods, Services and node addresses of the other family."""
    cluster = data.draw(ks.clusters(max_nodes=3, max_services=2).map(as_dual_stack))
    assume(any(svc.cluster_ips and svc.ports for svc in cluster.services))
    both = {family: Both(cluster, family) for family in ir.IPFamily}
    for _ in range(4):
        pkt = data.draw(ks.packets(cluster))
        both[ir.IPFamily.of(pkt.dst)].compare(pkt)


def test_the_comparison_can_fail(monkeypatch):
    """Guard against a vacuous comparison: a planted bug in the Z3 engine's own MASQUERADE (it ignores the
    address the shared network model picked) is caught."""
    monkeypatch.setattr(encode.NodeModel, "_source_nat", _planted_source_nat)
    cluster = _concrete_clients(load(str(REPO / "specs" / "nodeport-cluster.k"))[0])
    both = Both(cluster)
    internet = next(c for c in cluster.clients if c.name == "internet")
    node1 = cluster.node("node1")
    pkt = ks.ClientPacket(internet, internet.ip, 40000, node1.ips[0], 30080, ir.Protocol.TCP,
                          ir.Via.NODE_PORT, "default/nodeport", "", "node1")
    with pytest.raises(AssertionError, match="Z3 model"):
        both.compare(pkt)


_real_source_nat = encode.NodeModel._source_nat


def _planted_source_nat(model, target, pkt, step):
    """The Z3 engine's MASQUERADE with a bug: it takes the node's first local address, whatever the route."""
    wrong = min((ip for ip in model.local_ips if ip.version == pkt.dst.version), key=int)
    return _real_source_nat(model, target, pkt.evolve(nat_address=wrong), step)
