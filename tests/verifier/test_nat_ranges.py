"""NAT to a range: the address the kernel's hash picks, the port it keeps, takes or draws at random.

The picks are checked against the kernel's own (tests/data/nat-picks.tsv, observed by
tests/data/nat-picks.sh); the scenarios run in the lab too (tests/lab/test_lab_dumps.py)."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import z3

from kspec import ir
from kspec.verifier import node_models
from kspec.verifier.engines.replay import ConcreteCluster
from kspec.verifier.engines.tracer import Packet
from kspec.verifier.model.natpick import pick_address
from kspec.verifier.model.network import ClusterNetwork, Disposition
from kspec.verifier.predict import probes
from kspec.verifier.properties import Verdict, Verifier
from tests.verifier.test_kernel_faithful import SCENARIOS, _dump, _results, scenario

PICKS = Path(__file__).resolve().parents[1] / "data" / "nat-picks.tsv"


def _observed():
    for line in PICKS.read_text().splitlines():
        if not line.startswith("#"):
            kind, src, dst, low, high, persistent, picked = line.split("\t")
            yield kind, *(ipaddress.ip_address(a) for a in (src, dst, low, high)), persistent == "yes", picked


def test_the_hash_picks_what_the_kernel_picked():
    rows = list(_observed())
    assert len(rows) == 210
    for kind, src, dst, low, high, persistent, picked in rows:
        width = 32 if src.version == 4 else 128
        assert str(pick_address(src, dst, low, high, persistent, width)) == picked, (kind, src, dst)
        if width == 32:  # the same hash on a Z3 term, as the model computes it for a symbolic source
            term = z3.simplify(pick_address(z3.BitVecVal(int(src), 32), dst, low, high, persistent, 32))
            assert str(ipaddress.ip_address(term.as_long())) == picked


def _outcomes(check: str, **spec) -> set:
    cluster, rules = scenario(**spec)
    verifier = Verifier(cluster, ClusterNetwork(cluster, node_models(cluster, rules=rules), ir.IPFamily.V4))
    return {(o.disposition, o.client_address) for p in probes(cluster, verifier) if p.check.name == check
            for o in p.outcomes}


def test_snat_to_a_range_takes_the_hashed_address():
    spec = SCENARIOS["SNAT to a range: the hash picks the address"]
    results = _results(**spec)
    assert results["keeps source"].counterexample.seen == "10.240.0.12"
    assert results["answered"].verdict is Verdict.VIOLATED  # the pod answers 10.240.0.12: nobody's
    assert results["external answered"].verdict is Verdict.PROVED  # 10.240.0.11, node1's own


def test_a_symbolic_source_splits_by_where_the_hash_lands():
    # Any external host through node1: the hash of its address decides, so both picks are possible.
    cluster, rules = scenario(**SCENARIOS["SNAT to a range: the hash picks the address"])
    cluster = cluster.__class__(**{**{f: getattr(cluster, f) for f in cluster.__dataclass_fields__},
                                   "clients": tuple(c if c.name != "ext" else ir.Client("ext", ir.ClientKind.EXTERNAL)
                                                    for c in cluster.clients)})
    verifier = Verifier(cluster, ClusterNetwork(cluster, node_models(cluster, rules=rules), ir.IPFamily.V4))
    check = next(c for c in cluster.checks if c.name == "external delivered")
    seen = {str(fate.packet.src_value) for inst in verifier.instances(check) for fate in inst.fates
            if fate.disposition is Disposition.DELIVERED and fate.hops[0].node == "node1"}
    assert seen == {"10.240.0.11", "10.240.0.12"}
    # Still a proof where the pick does not matter, and a counterexample that replays where it does.
    results = {r.check.name: r for r in (verifier.check(c) for c in cluster.checks)}
    assert results["external delivered"].verdict is Verdict.PROVED
    answered = results["external answered"]
    assert answered.verdict is Verdict.VIOLATED and not answered.replay_error


def test_dnat_to_a_range_takes_the_hashed_address_and_the_first_port():
    spec = SCENARIOS["DNAT to a range: the hash picks the address, the first port"]
    results = _results(**spec)
    assert results["answered"].verdict is Verdict.PROVED  # the pod client's goes to 10.244.0.10:8080
    # The neighbour's goes to 10.244.0.1:8080, node0's own address, where nothing listens.
    assert _outcomes("neighbour keeps source", **spec) == {(Disposition.HOST, None)}


@pytest.mark.parametrize("target, read", [
    ("-j MASQUERADE --random-fully", "1024:65535"),
    ("-j SNAT --to-source 10.240.0.11 --random", "1024:65535"),
    # A client port inside the range is kept (then 1:999 does not hold); any other is drawn at random.
    ("-p tcp -j SNAT --to-source 10.240.0.11:1000-2000", "1:999")])
def test_a_rule_reading_a_randomly_picked_port_is_unknown(target: str, read: str):
    node1 = _dump(nat=f"-A POSTROUTING -o eth0 {target}")
    node0 = _dump(filter=f"-A FORWARD -p tcp -m tcp --sport {read} -j DROP")
    results = _results(node0=node0, node1=node1)
    assert results["delivered"].verdict is Verdict.UNKNOWN
    assert "node0.rules:" in results["delivered"].reason
    # Where nothing reads it, the port does not matter: the answer comes back, un-NATed.
    assert _results(node1=node1)["answered"].verdict is Verdict.PROVED


def test_a_port_range_holding_the_clients_port_keeps_it():
    # Kept (the kernel's first choice): a rule on the port then reads the client's own.
    node1 = _dump(nat="-A POSTROUTING -o eth0 -p tcp -j SNAT --to-source 10.240.0.11:1024-65535")
    node0 = _dump(filter="-A FORWARD -p tcp -m tcp --sport 1:1023 -j DROP")
    cluster, rules = scenario(node0=node0, node1=node1)
    network = ClusterNetwork(cluster, node_models(cluster, rules=rules), ir.IPFamily.V4)
    client = next(c for c in cluster.clients if c.name == "c")
    ip = ipaddress.ip_address
    for sport, fate in ((40000, Disposition.DELIVERED), (1000, Disposition.UNKNOWN)):
        packet = Packet(ip("10.244.1.10"), ip("10.96.0.10"), "tcp", sport, 80)
        found = ConcreteCluster(network).journeys(client, packet, None)
        assert {f.disposition for f in found} == {fate}, sport  # 1000: drawn at random, then read
