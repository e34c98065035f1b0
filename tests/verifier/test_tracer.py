"""The concrete tracers (kspec.verifier.engines.tracer) on small hand-written rulesets."""
from __future__ import annotations

import ipaddress

import pytest

from kspec.compiler.iptables.basechains import base_rules
from kspec.rules.iptables import ruleset as rs
from kspec.rules.iptables.iptables_save import parse_iptables_save
from kspec.verifier.engines.tracer import Disposition, Packet, TraceError, kube_proxy_state, trace, unit_test_trace

LOCAL = ["192.168.0.2"]

SERVICE = """*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-SERVICES -m comment --comment "ns/none:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.9 --dport 80 -j REJECT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-1 - [0:0]
:KUBE-SEP-2 - [0:0]
:KUBE-SEP-3 - [0:0]
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -m comment --comment "ns/a:p80 cluster IP" -m tcp -p tcp -d 172.30.0.1 --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -m comment --comment "ns/a:p80 cluster IP" -m tcp -p tcp -d 172.30.0.1 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-A -m comment --comment "ns/a:p80 -> 10.1.0.1:8080" -m recent --name KUBE-SEP-1 --rcheck --seconds 10800 --reap -j KUBE-SEP-1
-A KUBE-SVC-A -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-1
-A KUBE-SVC-A -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-2
-A KUBE-SVC-A -j KUBE-SEP-3
-A KUBE-SEP-1 -s 10.1.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-1 -m recent --name KUBE-SEP-1 --set -m tcp -p tcp -j DNAT --to-destination 10.1.0.1:8080
-A KUBE-SEP-2 -m tcp -p tcp -j DNAT --to-destination 10.1.0.2:8080
-A KUBE-SEP-3 -m tcp -p tcp -j DNAT --to-destination 10.1.0.3:8080
COMMIT
"""


@pytest.fixture(scope="module")
def state() -> rs.Ruleset:
    return kube_proxy_state(SERVICE, "service.rules")


def _dests(outcomes) -> list[str]:
    return [f"{o.dst}:{o.dport}" for o in outcomes]


def test_statistic_cascade_enumerates_every_endpoint_with_its_probability(state):
    outcomes = trace(state, Packet.of("10.0.0.5", "172.30.0.1", "tcp", 80), LOCAL)
    assert _dests(outcomes) == ["10.1.0.1:8080", "10.1.0.2:8080", "10.1.0.3:8080"]
    assert all(o.disposition is Disposition.FORWARDED and not o.masqueraded for o in outcomes)
    assert [round(o.probability, 6) for o in outcomes] == [0.333333, 0.333333, 0.333333]
    first = outcomes[0]
    assert [str(r) for r in first.rewrites] == ["dst: 172.30.0.1 -> 10.1.0.1", "dport: 80 -> 8080"]
    assert [(s.table, s.chain) for s in first.steps][:3] == [("nat", "PREROUTING"), ("nat", "KUBE-SERVICES"),
                                                             ("nat", "KUBE-SVC-A")]
    assert first.steps[1].origin == rs.Origin("service.rules", 25)
    assert "statistic" in first.branches[0]


def test_masquerade_is_applied_in_postrouting(state):
    outcomes = trace(state, Packet.of("203.0.113.7", "172.30.0.1", "tcp", 80), LOCAL)
    assert len(outcomes) == 3 and all(o.masqueraded for o in outcomes)
    first = outcomes[0]
    assert first.src == ipaddress.ip_address("192.168.0.2") and first.mark == 0  # xor-mark cleared it
    assert [r.field for r in first.rewrites] == ["mark", "dst", "dport", "mark", "src"]
    assert first.decided_by.chain == "KUBE-FORWARD"  # the marked packet is accepted in filter FORWARD


def test_recent_is_a_branch_only_when_modelling_affinity(state):
    plain = trace(state, Packet.of("10.0.0.5", "172.30.0.1", "tcp", 80), LOCAL)
    sticky = trace(state, Packet.of("10.0.0.5", "172.30.0.1", "tcp", 80), LOCAL, affinity=True)
    assert len(plain) == 3 and len(sticky) == 4
    assert sticky[0].probability is None and "recent KUBE-SEP-1 --rcheck hits" in sticky[0].branches[0]
    assert _dests(sticky) == ["10.1.0.1:8080", "10.1.0.1:8080", "10.1.0.2:8080", "10.1.0.3:8080"]


def test_hairpin_endpoint_is_masqueraded(state):
    outcomes = trace(state, Packet.of("10.1.0.1", "172.30.0.1", "tcp", 80), LOCAL)
    assert [o.masqueraded for o in outcomes] == [True, False, False]


def test_reject_and_locally_generated(state):
    [rejected] = trace(state, Packet.of("10.0.0.5", "172.30.0.9", "tcp", 80), LOCAL)
    assert rejected.disposition is Disposition.REJECTED and rejected.decided_by.chain == "KUBE-SERVICES"
    sent = trace(state, Packet.of("192.168.0.2", "172.30.0.1", "tcp", 80, in_interface=None), LOCAL)
    assert {o.disposition for o in sent} == {Disposition.SENT}
    assert all(o.masqueraded for o in sent)  # ! -s 10.0.0.0/8 marks node-originated traffic
    assert sent[0].steps[0].chain == "OUTPUT"


def test_kube_firewall_drops_non_local_sources_to_localhost(state):
    [dropped] = trace(state, Packet.of("203.0.113.7", "127.0.0.1", "tcp", 22), LOCAL)
    assert dropped.disposition is Disposition.DROPPED and dropped.decided_by.chain == "KUBE-FIREWALL"
    # the unit-test tracer cannot see it (ctstate never matches there, KUBE-FIREWALL is not walked)
    assert unit_test_trace(state, "203.0.113.7", "TCP", "127.0.0.1", 22, LOCAL) == ("", False)
    [local] = trace(state, Packet.of("127.0.0.1", "127.0.0.1", "tcp", 22, in_interface=None), LOCAL)
    assert local.disposition is Disposition.ACCEPTED_LOCAL


def test_unit_tracer_collects_the_cascade_and_masq_of_any_branch(state):
    assert unit_test_trace(state, "10.0.0.5", "TCP", "172.30.0.1", 80, LOCAL) == (
        "10.1.0.1:8080, 10.1.0.2:8080, 10.1.0.3:8080", False)
    assert unit_test_trace(state, "10.1.0.1", "TCP", "172.30.0.1", 80, LOCAL)[1] is True
    assert unit_test_trace(state, "10.0.0.5", "TCP", "172.30.0.9", 80, LOCAL) == ("REJECT", False)
    assert unit_test_trace(state, "10.0.0.5", "UDP", "172.30.0.1", 80, LOCAL) == ("", False)


def test_goto_return_and_policy():
    text = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
-A FORWARD -j A
-A FORWARD -p udp -j ACCEPT
-A A -g B
-A A -j ACCEPT
-A B -p tcp -j RETURN
-A B -j DROP
COMMIT
"""
    ruleset = parse_iptables_save(text)
    [tcp] = trace(ruleset, Packet.of("10.0.0.1", "10.0.0.2", "tcp", 80), LOCAL)
    # B returns to FORWARD (A was left by the goto): the policy drops it, A's ACCEPT is never reached
    assert tcp.disposition is Disposition.DROPPED and tcp.decided_by.note == "policy DROP"
    [udp] = trace(ruleset, Packet.of("10.0.0.1", "10.0.0.2", "udp", 53), LOCAL)
    assert udp.disposition is Disposition.DROPPED and udp.decided_by.chain == "B"


def test_trace_errors():
    # The parser refuses a reachable loop (kspec.rules.iptables.validity); the tracer still defends against one.
    loop = parse_iptables_save("*filter\n:A - [0:0]\n-A FORWARD -j A\n-A A -j A\nCOMMIT\n",
                               require_declared_jumps=False)
    with pytest.raises(TraceError, match="loop"):
        trace(loop, Packet.of("10.0.0.1", "10.0.0.2", "tcp", 80), LOCAL)
    missing = parse_iptables_save("*filter\n-A FORWARD -j NOPE\nCOMMIT\n", require_declared_jumps=False)
    with pytest.raises(TraceError, match="missing chain 'NOPE'"):
        trace(missing, Packet.of("10.0.0.1", "10.0.0.2", "tcp", 80), LOCAL)


def test_base_rules_follow_spec_4_3():
    base = parse_iptables_save(base_rules(), require_declared_jumps=False)
    targets = {(t.name, c.name): [r.target.chain for r in c.rules] for t in base.tables for c in t.chains}
    assert targets[("filter", "INPUT")] == ["KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS",
                                           "KUBE-EXTERNAL-SERVICES"]
    assert targets[("filter", "FORWARD")] == ["KUBE-PROXY-FIREWALL", "KUBE-FORWARD", "KUBE-SERVICES",
                                             "KUBE-EXTERNAL-SERVICES"]
    assert targets[("filter", "OUTPUT")] == ["KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-SERVICES"]
    assert targets[("nat", "PREROUTING")] == targets[("nat", "OUTPUT")] == ["KUBE-SERVICES"]
    assert targets[("nat", "POSTROUTING")] == ["KUBE-POSTROUTING"]
    assert base.chain("filter", "FORWARD").rules[0].first(rs.Conntrack).states == frozenset({rs.CtState.NEW})
