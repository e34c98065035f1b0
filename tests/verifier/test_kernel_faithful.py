"""The verifier on node dumps that carry more than kube-proxy's rules: what the kernel does, not a guess.

Each test is one defect of issue 10, found by loading hand-written dumps into network namespaces and
sending traffic: before the fix kspec gave the verdict the kernel refutes (several were false proofs). The
cluster is two nodes; a pod on node1 talks to a Service whose one endpoint is a pod on node0. Each node's
rules are a small ``iptables-save`` dump: a plain DNAT for the Service, plus the rules under test.
"""
from __future__ import annotations

import io

import pytest

from kspec import ir
from kspec.cli import main
from kspec.grammar import parse_text
from kspec.verifier import verify
from kspec.verifier.model.network import Disposition
from kspec.verifier.properties import Verdict
from tests.conftest import REPO

SPEC = """cluster c {
  cluster_cidr 10.244.0.0/16
  node node0 { ip 10.240.0.10  pod_cidr 10.244.0.0/24 %(wiring)s}
  node node1 { ip 10.240.0.11  pod_cidr 10.244.1.0/24 }
  pod web on node0 { ip 10.244.0.10  labels { app = web }  ports { http = 8080/tcp, resolver = 5353/udp } }
  pod other on node0 { ip 10.244.0.20 }
  pod client on node1 { ip 10.244.1.10 }
  service web {
    cluster_ip 10.96.0.10
    external_ips 192.0.2.50
    selector app = web
    port http 80 -> 8080/tcp
    port resolver 53 -> 5353/udp
  }
  client c from pod client
  client neighbour from pod other
  client ext { ip 203.0.113.5  external }
  check "delivered" { from c  to web:http via cluster_ip  assert delivered }
  check "answered" { from c  to web:http via cluster_ip  assert answered }
  check "udp answered" { from c  to web:resolver via cluster_ip  assert answered }
  check "udp delivered" { from c  to web:resolver via cluster_ip  assert delivered }
  check "keeps source" { from c  to web:http via cluster_ip  assert source == client }
  check "neighbour keeps source" { from neighbour  to web:http via cluster_ip  assert source == client }
  check "external answered" { from ext  to web:http via external_ip  assert answered }
  check "external delivered" { from ext  to web:http via external_ip  assert delivered }
}
"""

# The Service, as a bare DNAT on the client's node (where a pod's packet meets PREROUTING first).
SERVICE_NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.0.10:8080
-A PREROUTING -d 10.96.0.10/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.244.0.10:5353
-A PREROUTING -d 192.0.2.50/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.0.10:8080
%s
COMMIT
"""


def _dump(nat: str = "", **tables: str) -> str:
    """A dump: the Service's nat table (plus ``nat`` lines), and each other table with its lines."""
    parts = [SERVICE_NAT % nat]
    for table, lines in tables.items():
        chains = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "raw": ("PREROUTING", "OUTPUT"),
                  "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
                  "security": ("INPUT", "FORWARD", "OUTPUT")}[table]
        header = "".join(f":{chain} ACCEPT [0:0]\n" for chain in chains)
        parts.append(f"*{table}\n{header}{lines}\nCOMMIT\n")
    return "".join(parts)


def scenario(node0: str = "", node1: str = "", wiring: str = "") -> tuple[ir.Cluster, dict[str, str]]:
    """The cluster and each node's dump (a bare Service DNAT where not given)."""
    cluster, _ = parse_text(SPEC % {"wiring": wiring})
    return cluster, {"node0": node0 or _dump(), "node1": node1 or _dump()}


def _results(node0: str = "", node1: str = "", wiring: str = "") -> dict[str, object]:
    cluster, rules = scenario(node0, node1, wiring)
    return {r.check.name: r for r in verify(cluster, rules=rules, family=ir.IPFamily.V4)}


HAIRPIN = "-A POSTROUTING -s 10.244.0.0/24 -d 10.244.0.0/24 -j MASQUERADE"
NEIGHBOUR_NAT = """-A PREROUTING -s 10.244.0.20/32 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 \
-j DNAT --to-destination 10.244.0.10:8080"""

# The first packet marks its connection on node1; the pod's answer carries that mark back there and is dropped.
CONNMARK_DROP = """-A PREROUTING -m connmark --mark 0x1/0x1 -j DROP
-A PREROUTING -i veth+ -j CONNMARK --set-xmark 0x1/0x1"""

# node1 lets the cluster IP through untranslated and source-NATs it to node0's address on its way out.
SKIP_AND_SNAT_TO_NODE0 = SERVICE_NAT.replace(
    ":POSTROUTING ACCEPT [0:0]\n", ":POSTROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.96.0.10/32 -j RETURN\n") % (
    "-A POSTROUTING -d 10.96.0.0/12 -j SNAT --to-source 10.240.0.10")

# node0 sends the cluster IP to its own address (nothing listens: its stack resets) and SNATs it in nat INPUT.
TO_SELF_SNATED = SERVICE_NAT.replace(
    ":POSTROUTING ACCEPT [0:0]\n", ":POSTROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.96.0.10/32 -p tcp -j DNAT "
    "--to-destination 10.240.0.10\n") % "-A INPUT -j SNAT --to-source 10.240.0.10"

DNAT_RANGE = "-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.0.1-10.244.0.12:8080-8090\n"

# The scenarios above, for the lab (tests/lab/test_lab_dumps.py): the kernel must do what kspec says.
SCENARIOS = {
    "forward -o drop": dict(node0=_dump(filter="-A FORWARD -i eth+ -o veth+ -j DROP")),
    "forward ! -o drop": dict(node0=_dump(filter="-A FORWARD ! -o veth+ -j DROP")),
    "answers established only": dict(node0=_dump(
        filter="-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n-A FORWARD -o eth0 -j DROP")),
    "answer's source after the undo": dict(node1=_dump(filter="-A FORWARD -s 10.96.0.10/32 -j DROP")),
    "external, DNAT on another node": dict(),
    "untracked: never DNATed, leaves from a pod address": dict(node1=_dump(raw="-A PREROUTING -p udp -j CT --notrack")),
    "reject, ICMP error dropped on the way back": dict(node0=_dump(filter="-A FORWARD -p tcp -j REJECT"),
                                                        node1=_dump(filter="-A FORWARD -p icmp -j DROP")),
    "reject, RELATED dropped": dict(node0=_dump(filter="-A FORWARD -p tcp -j REJECT"),
                                    node1=_dump(filter="-A FORWARD -m conntrack --ctstate RELATED -j DROP")),
    "external, DNAT and masquerade": dict(node1=_dump(nat="-A POSTROUTING -o eth0 -j MASQUERADE")),
    "answer DNAT state dropped": dict(node1=_dump(
        filter="-A FORWARD -m conntrack --ctstate DNAT -m conntrack --ctstate ESTABLISHED -j DROP")),
    "masquerade -o eth0": dict(node1=_dump(nat="-A POSTROUTING -o eth0 -j MASQUERADE")),
    "snat --to-source": dict(node1=_dump(nat="-A POSTROUTING -o eth0 -j SNAT --to-source 10.240.0.11")),
    "raw drop": dict(node0=_dump(raw="-A PREROUTING -p tcp -j DROP")),
    "mangle drop": dict(node0=_dump(mangle="-A FORWARD -p tcp -j DROP")),
    "security drop": dict(node0=_dump(security="-A FORWARD -p tcp -j DROP")),
    "mangle mark, filter drop": dict(node0=_dump(mangle="-A PREROUTING -p tcp -j MARK --set-xmark 0x8/0x8",
                                                 filter="-A FORWARD -m mark --mark 0x8/0x8 -j DROP")),
    "raw ctstate NEW": dict(node0=_dump(raw="-A PREROUTING -m conntrack --ctstate NEW -j DROP")),
    "raw ctstate INVALID": dict(node0=_dump(raw="-A PREROUTING -m conntrack --ctstate INVALID -j DROP")),
    "protocol number": dict(node0=_dump(filter="-A FORWARD -p 17 -j DROP")),
    "hairpin, gateway": dict(node0=_dump(nat=f"{NEIGHBOUR_NAT}\n{HAIRPIN}")),
    "hairpin, unnumbered": dict(node0=_dump(nat=f"{NEIGHBOUR_NAT}\n{HAIRPIN}"), wiring="pod_wiring unnumbered "),
    "connmark set by the first packet, seen by the answer": dict(node1=_dump(mangle=CONNMARK_DROP)),
    "reject, ICMP error meets raw OUTPUT with its connection": dict(node0=_dump(
        filter="-A FORWARD -p tcp -j REJECT", raw="-A OUTPUT -o eth0 -m connmark ! --mark 0x1 -j DROP")),
    "reject, ICMP error is RELATED in raw OUTPUT": dict(node0=_dump(
        filter="-A FORWARD -p tcp -j REJECT", raw="-A OUTPUT -m conntrack --ctstate INVALID -j DROP")),
    "answer untracked on the way back": dict(node1=_dump(raw="-A PREROUTING -s 10.244.0.10/32 -j CT --notrack")),
    "client's data dropped after the handshake": dict(node1=_dump(
        mangle="-A FORWARD -i veth+ -m conntrack --ctstate ESTABLISHED -j DROP")),
    "left the cluster from another node's address": dict(node1=SKIP_AND_SNAT_TO_NODE0),
    "external, untracked at the entry node": dict(node1=_dump(raw="-A PREROUTING -d 192.0.2.50/32 -j CT --notrack")),
    # The pod sees whether node0 found the first packet's entry unconfirmed (then it masquerades it).
    # Found by the 10,000-ruleset run of 2026-12-01: the pod's answer marks the connection on node0, and
    # node0 then drops the client's data by that mark.
    "the answer's CONNMARK is what the client's data meets": dict(node0=_dump(
        security="-A FORWARD -i eth0 -m connmark --mark 0x1 -j DROP\n"
                 "-A FORWARD -s 10.244.0.10/32 -j CONNMARK --set-xmark 0x1/0x1")),
    # ... and node0 refuses the client's data (ESTABLISHED, in from eth0): the client hears the refusal.
    "the client's refused data comes back as an ICMP error": dict(node0=_dump(
        filter="-A FORWARD -i eth0 -p tcp -m conntrack --ctstate ESTABLISHED -j REJECT")),
    # Found by the 10,000-ruleset run of 2026-12-01 (second): node0 sends the pod client's connection back to
    # node1's own address; node1's reset comes from there, not from the cluster IP, and the client ignores it.
    "a node's reset from an address the client did not send to": dict(node0=_dump(
        nat="-A PREROUTING -s 10.244.1.10/32 -p tcp -j DNAT --to-destination 10.240.0.11")),
    # ... and one that comes back un-NATed: the external client hears the reset (connection refused).
    "a node's reset undone to the address the client sent to": dict(node0=SERVICE_NAT.replace(
        ":POSTROUTING ACCEPT [0:0]\n", ":POSTROUTING ACCEPT [0:0]\n-A PREROUTING -d 192.0.2.50/32 -p tcp "
        "-j DNAT --to-destination 10.240.0.10\n") % ""),
    # Found by the third 10,000-ruleset run (a6a578a): node1 drops ASSURED packets to its pods: the handshake's
    # answer passes (not ASSURED yet), the client's data reaches the pod, its echo never comes back.
    "the pod's echo of the client's data is dropped": dict(node1=_dump(
        mangle="-A POSTROUTING -o veth+ -m conntrack --ctstatus ASSURED -j DROP")),
    # ... the same by TCP flags: the SYN-ACK passes, the echo (PSH|ACK) does not.
    "the pod's echo dropped by its TCP flags": dict(node1=_dump(
        filter="-A FORWARD -o veth+ -p tcp -m tcp ! --tcp-flags SYN,ACK SYN,ACK -j DROP")),
    # Found by the fourth 10,000-ruleset run (d5cdaee): node1 leaves the ICMP error of node0's REJECT untracked
    # (raw sees every packet INVALID), so it never undoes its DNAT in the quoted header: the client's kernel
    # does not recognise its packet, and hears nothing.
    "SNAT in nat INPUT: the node's reset gets its destination back in OUTPUT": dict(node0=TO_SELF_SNATED),
    "a REJECT's error left untracked keeps the DNATed quote": dict(
        node0=_dump(filter="-A FORWARD -p tcp -j REJECT"),
        node1=_dump(raw="-A PREROUTING -i eth0 -m conntrack --ctstate INVALID -j CT --notrack")),
    "ctstatus: the first packet is unconfirmed, the answer confirmed": dict(node0=_dump(
        nat="-A POSTROUTING -m mark --mark 0x8/0x8 -j MASQUERADE",
        mangle="-A FORWARD -m conntrack ! --ctstatus CONFIRMED -j MARK --set-xmark 0x8/0x8",
        filter="-A FORWARD -s 10.244.0.10/32 -m conntrack ! --ctstatus CONFIRMED -j DROP")),
    "ctstatus: the answer has seen a reply, only the data is assured": dict(node1=_dump(
        mangle="-A FORWARD -m conntrack --ctstatus SEEN_REPLY -m conntrack ! --ctstatus ASSURED "
               "-j MARK --set-xmark 0x8/0x8\n-A FORWARD -p tcp -m conntrack --ctstatus ASSURED -j DROP",
        filter="-A FORWARD -m mark --mark 0x8/0x8 -d 10.244.1.10/32 -p udp -j DROP")),
    "ctstatus NONE never, not NONE whenever tracked": dict(node0=_dump(
        raw="-A PREROUTING -m conntrack ! --ctstatus NONE -j DROP",
        mangle="-A FORWARD -m conntrack --ctstatus NONE -j DROP\n"
               "-A FORWARD -p udp -m conntrack ! --ctstatus NONE -j DROP")),
    # node0 unnumbered: the neighbour's hairpin is masqueraded to node0's eth0 address, which the answer then
    # comes to through a pod's veth (LOCAL, but not through that interface); the error from that address
    # about a rejected packet leaves through a veth too.
    "limit-iface-in: the node's address is not local on a pod's veth": dict(node0=_dump(
        nat=f"{NEIGHBOUR_NAT}\n{HAIRPIN}",
        mangle="-A PREROUTING -i veth+ -m addrtype --dst-type LOCAL --limit-iface-in -j DROP\n"
               "-A PREROUTING -i veth+ -m addrtype --dst-type UNICAST --limit-iface-in -j MARK --set-xmark 0x8/0x8",
        filter="-A FORWARD -m mark ! --mark 0x8/0x8 -d 10.244.0.20/32 -j DROP"), wiring="pod_wiring unnumbered "),
    "limit-iface-out: a reject's error leaves a veth from the eth0 address": dict(node0=_dump(
        mangle="-A POSTROUTING -p icmp -m addrtype --src-type LOCAL --limit-iface-out -j DROP",
        filter="-A FORWARD -s 10.244.0.20/32 -j REJECT"), wiring="pod_wiring unnumbered "),
    # The kernel's hash picks 10.240.0.12 for the pod client (its answer then leaves the cluster) and
    # 10.240.0.11 for the external client (verifier/model/natpick.py; tests/verifier/test_nat_ranges.py).
    "SNAT to a range: the hash picks the address": dict(node1=_dump(
        nat="-A POSTROUTING -o eth0 -j SNAT --to-source 10.240.0.11-10.240.0.12")),
    # ... and 10.244.0.10 (web) for the pod client, 10.244.0.1 (node0's own) for the neighbour; port 80 is
    # outside 8080-8090, so the range's first port. (Not a pick nobody has: the kernel rate-limits the ICMP
    # errors of a forwarded packet with no route, per peer and outside the lab's reach.)
    "DNAT to a range: the hash picks the address, the first port": dict(
        node0=SERVICE_NAT.replace(":POSTROUTING ACCEPT [0:0]\n", ":POSTROUTING ACCEPT [0:0]\n" + DNAT_RANGE) % "",
        node1=SERVICE_NAT.replace(":POSTROUTING ACCEPT [0:0]\n", ":POSTROUTING ACCEPT [0:0]\n" + DNAT_RANGE) % ""),
    # The client's port is outside 1000-2000: the kernel picks one at random, and undoes it for the answer.
    "SNAT to a port range the client's port is not in": dict(node1=_dump(
        nat="-A POSTROUTING -o eth0 -p tcp -j SNAT --to-source 10.240.0.11:1000-2000")),
    "ctstatus: a reject's ICMP error shows its connection's status": dict(node0=_dump(
        filter="-A FORWARD -p tcp -j REJECT", raw="-A OUTPUT -p icmp -m conntrack --ctstatus CONFIRMED -j DROP"),
        node1=_dump(mangle="-A FORWARD -p icmp -m conntrack ! --ctstatus CONFIRMED -j DROP")),
}


def test_1_out_interface_is_known_in_forward():
    # The kernel drops the packet on node0 as it leaves for the pod's veth; kspec proved "delivered".
    results = _results(node0=_dump(filter="-A FORWARD -i eth+ -o veth+ -j DROP"))
    assert results["delivered"].verdict is Verdict.VIOLATED
    assert results["delivered"].counterexample.fate.disposition is Disposition.DROPPED
    assert not results["delivered"].replay_error


def test_1_negated_out_interface_is_not_always_true():
    results = _results(node0=_dump(filter="-A FORWARD ! -o veth+ -j DROP"))
    assert results["delivered"].verdict is Verdict.PROVED


def test_2_out_interface_on_a_counterexample_path_replays():
    # Masquerading out of eth0 on the client's node: the pod sees node1's address. kspec exited 3.
    results = _results(node1=_dump(nat="-A POSTROUTING -o eth0 -j MASQUERADE"))
    keeps = results["keeps source"]
    assert keeps.verdict is Verdict.VIOLATED and not keeps.replay_error
    assert keeps.counterexample.seen == "10.240.0.11"


def test_3_snat_to_source_rewrites_the_source_in_both_engines():
    results = _results(node1=_dump(nat="-A POSTROUTING -o eth0 -j SNAT --to-source 192.0.2.7"))
    keeps = results["keeps source"]
    assert keeps.verdict is Verdict.VIOLATED and not keeps.replay_error
    assert keeps.counterexample.seen == "192.0.2.7"


def test_4_raw_mangle_and_security_tables_are_walked():
    for table, line in (("raw", "-A PREROUTING -p tcp -j DROP"), ("mangle", "-A FORWARD -p tcp -j DROP"),
                        ("security", "-A FORWARD -p tcp -j DROP")):
        results = _results(node0=_dump(**{table: line}))
        assert results["delivered"].verdict is Verdict.VIOLATED, table
        assert not results["delivered"].replay_error, table


def test_4_a_mark_set_in_mangle_is_seen_by_filter():
    node0 = _dump(mangle="-A PREROUTING -p tcp -j MARK --set-xmark 0x8/0x8",
                  filter="-A FORWARD -m mark --mark 0x8/0x8 -j DROP")
    assert _results(node0=node0)["delivered"].verdict is Verdict.VIOLATED


def test_4_conntrack_has_not_seen_the_packet_in_raw():
    # raw runs before conntrack: --ctstate NEW does not match there yet (the state is INVALID).
    node0 = _dump(raw="-A PREROUTING -m conntrack --ctstate NEW -j DROP")
    assert _results(node0=node0)["delivered"].verdict is Verdict.PROVED
    node0 = _dump(raw="-A PREROUTING -m conntrack --ctstate INVALID -j DROP")
    assert _results(node0=node0)["delivered"].verdict is Verdict.VIOLATED


def test_5_a_path_through_an_unmodelled_match_is_unknown_not_violated():
    node0 = _dump(filter='-A FORWARD -m string --algo bm --string "GET /" -j DROP')
    result = _results(node0=node0)["delivered"]
    assert result.verdict is Verdict.UNKNOWN, result.verdict
    assert "node0.rules:" in result.reason  # the rule is named
    # A known match that rules the packet out settles it: the unknown one is never asked.
    node0 = _dump(filter='-A FORWARD -p udp -m string --algo bm --string "GET /" -j DROP')
    assert _results(node0=node0)["delivered"].verdict is Verdict.PROVED


def test_5_address_types_are_modelled_as_the_kernel_types_them():
    # A pod's address is UNICAST to node0 (IPv4 looks in the local table only), not LOCAL.
    results = _results(node0=_dump(filter="-A FORWARD -m addrtype --dst-type UNICAST -j DROP"))
    assert results["delivered"].verdict is Verdict.VIOLATED and not results["delivered"].replay_error
    results = _results(node0=_dump(filter="-A FORWARD -m addrtype --dst-type LOCAL,BROADCAST -j DROP"))
    assert results["delivered"].verdict is Verdict.PROVED


def test_7_protocol_numbers_match_like_names():
    results = _results(node0=_dump(filter="-A FORWARD -p 17 -j DROP"))
    assert results["udp delivered"].verdict is Verdict.VIOLATED
    assert results["delivered"].verdict is Verdict.PROVED  # TCP is not protocol 17


def test_8_masquerade_towards_an_own_pod_follows_the_pod_network_wiring():
    node0 = _dump(nat=f"{NEIGHBOUR_NAT}\n{HAIRPIN}")
    gateway = _results(node0=node0)["neighbour keeps source"]
    assert gateway.counterexample.seen == "10.244.0.1" and not gateway.replay_error  # cni0 / veth address
    unnumbered = _results(node0=node0, wiring="pod_wiring unnumbered ")["neighbour keeps source"]
    assert unnumbered.counterexample.seen == "10.240.0.10" and not unnumbered.replay_error  # Calico-style


def test_9_a_dropped_answer_is_a_failed_round_trip():
    # The first packet arrives; the pod's answer leaves node0 through eth0 and is dropped there.
    results = _results(node0=_dump(filter="-A FORWARD ! -o veth+ -j DROP"))
    assert results["delivered"].verdict is Verdict.PROVED
    answered = results["answered"]
    assert answered.verdict is Verdict.VIOLATED and not answered.replay_error
    assert answered.counterexample.fate.reply.disposition is Disposition.DROPPED


def test_9_answers_are_filtered_as_established_and_un_natted_on_the_way_back():
    # Replies are ESTABLISHED; node1 undoes its DNAT, so the client hears from the cluster IP.
    node0 = _dump(filter="-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n-A FORWARD -o eth0 -j DROP")
    assert _results(node0=node0)["answered"].verdict is Verdict.PROVED
    node1 = _dump(filter="-A FORWARD -s 10.96.0.10/32 -j DROP")  # the answer's source after the undo: not yet
    assert _results(node1=node1)["answered"].verdict is Verdict.PROVED  # in FORWARD (undone in POSTROUTING)
    node1 = _dump(filter="-A FORWARD -m conntrack --ctstate DNAT -m conntrack --ctstate ESTABLISHED -j DROP")
    assert _results(node1=node1)["answered"].verdict is Verdict.VIOLATED


def test_9_an_answer_that_skips_the_node_that_dnatted_is_lost():
    # An external client's packet enters at node1 (external IP), is DNATed there and forwarded to node0
    # with its source kept: the pod answers the client straight out of node0, from its own address.
    result = _results()["external answered"]
    assert result.verdict is Verdict.VIOLATED and not result.replay_error
    lost = result.counterexample.fate
    assert lost.disposition is Disposition.DELIVERED and lost.hops[0].node == "node1"
    assert lost.reply.disposition is Disposition.NO_ROUTE and "from 10.244.0.10:8080" in lost.reply.reason
    # Masquerading on node1 brings the answer back through it: answered.
    node1 = _dump(nat="-A POSTROUTING -o eth0 -j MASQUERADE")
    assert _results(node1=node1)["external answered"].verdict is Verdict.PROVED


def test_9_a_rejects_icmp_error_makes_its_own_way_back():
    # node0 rejects; the ICMP error crosses node1's FORWARD (RELATED) on its way to the client.
    from kspec.verifier.predict import probes

    for node1_filter, seen in (("", Disposition.REJECTED), ("-A FORWARD -p icmp -j DROP", Disposition.DROPPED),
                               ("-A FORWARD -m conntrack --ctstate RELATED -j DROP", Disposition.DROPPED),
                               ("-A FORWARD -m conntrack --ctstate ESTABLISHED -j DROP", Disposition.REJECTED)):
        cluster, rules = scenario(node0=_dump(filter="-A FORWARD -p tcp -j REJECT"),
                                  node1=_dump(filter=node1_filter) if node1_filter else "")
        from kspec.verifier import node_models
        from kspec.verifier.model.network import ClusterNetwork
        from kspec.verifier.properties import Verifier

        verifier = Verifier(cluster, ClusterNetwork(cluster, node_models(cluster, rules=rules), ir.IPFamily.V4))
        http = [p for p in probes(cluster, verifier) if p.check.name == "delivered"]
        assert {o.disposition for p in http for o in p.outcomes} == {seen}, node1_filter


def test_9_an_answer_sees_the_mark_its_connection_got_from_the_first_packet():
    # Found by the 10,000-ruleset run against the kernel: the Z3 model sent answers with no connection mark
    # while the concrete tracer (and the kernel) used the connection's; one walk for both engines now.
    results = _results(node1=_dump(mangle=CONNMARK_DROP))
    assert results["delivered"].verdict is Verdict.PROVED
    answered = results["answered"]
    assert answered.verdict is Verdict.VIOLATED and not answered.replay_error
    assert answered.counterexample.fate.reply.disposition is Disposition.DROPPED


def test_9_an_external_ip_left_untranslated_loops_and_what_comes_back_is_unknown():
    # Found by the random-ruleset run: node1 does not track (so never DNATs) the external client's packet to
    # the Service's external IP; it leaves for the outside, which routes that address back to node1. The
    # kernel loops it until its TTL runs out: it reaches no pod, and what the client hears of it is unknown.
    from kspec.verifier import node_models
    from kspec.verifier.model.network import ClusterNetwork
    from kspec.verifier.properties import Verifier

    cluster, rules = scenario(node1=_dump(raw="-A PREROUTING -d 192.0.2.50/32 -j CT --notrack"))
    verifier = Verifier(cluster, ClusterNetwork(cluster, node_models(cluster, rules=rules), ir.IPFamily.V4))
    check = next(c for c in cluster.checks if c.name == "external delivered")
    [via_node1] = [i for i in verifier.instances(check) if i.target.entry_node == "node1"]
    [fate] = via_node1.fates
    assert fate.disposition is Disposition.NO_ROUTE and fate.loops and "routes it back in: a loop" in fate.reason
    [trip] = verifier.round_trip_fates(via_node1)
    assert trip.reply.disposition is Disposition.UNKNOWN


def test_9_a_rejects_icmp_error_carries_its_connection_from_birth():
    # Found by the 10,000-ruleset run: the kernel attaches the connection to the ICMP error a REJECT sends
    # before raw OUTPUT runs, so raw sees it RELATED and with the connection's mark (not untracked, INVALID).
    from kspec.verifier import node_models
    from kspec.verifier.model.network import ClusterNetwork
    from kspec.verifier.predict import probes
    from kspec.verifier.properties import Verifier

    for raw, seen in (("-A OUTPUT -o eth0 -m connmark ! --mark 0x1 -j DROP", Disposition.DROPPED),
                      ("-A OUTPUT -o eth0 -m conntrack --ctstate RELATED -j DROP", Disposition.DROPPED),
                      ("-A OUTPUT -m conntrack --ctstate INVALID -j DROP", Disposition.REJECTED)):
        cluster, rules = scenario(node0=_dump(filter="-A FORWARD -p tcp -j REJECT", raw=raw))
        verifier = Verifier(cluster, ClusterNetwork(cluster, node_models(cluster, rules=rules), ir.IPFamily.V4))
        http = [p for p in probes(cluster, verifier) if p.check.name == "delivered"]
        assert {o.disposition for p in http for o in p.outcomes} == {seen}, raw


def test_9_an_answer_left_untracked_keeps_the_pods_address():
    # Found by the 10,000-ruleset run: node1 does not track the pod's answer (raw CT --notrack), so its
    # conntrack cannot undo the DNAT; the client hears from the pod's address, not the Service's: no answer.
    results = _results(node1=_dump(raw="-A PREROUTING -s 10.244.0.10/32 -j CT --notrack"))
    assert results["delivered"].verdict is Verdict.PROVED
    answered = results["answered"]
    assert answered.verdict is Verdict.VIOLATED and not answered.replay_error
    assert "from 10.244.0.10:8080" in answered.counterexample.fate.reply.reason


def test_9_a_connection_works_only_if_the_clients_data_follows():
    # Found by the 10,000-ruleset run: node1 drops ESTABLISHED packets from its pods. The SYN (NEW) passes,
    # the SYN-ACK comes back through eth0, but the client's data never leaves node1: connected, no answer.
    from kspec.verifier import node_models
    from kspec.verifier.model.network import ClusterNetwork
    from kspec.verifier.predict import probes
    from kspec.verifier.properties import Verifier

    node1 = _dump(mangle="-A FORWARD -i veth+ -m conntrack --ctstate ESTABLISHED -j DROP")
    results = _results(node1=node1)
    assert results["delivered"].verdict is Verdict.PROVED
    answered = results["answered"]
    assert answered.verdict is Verdict.VIOLATED and not answered.replay_error
    assert answered.counterexample.fate.reply.disposition is Disposition.ANSWERED
    assert answered.counterexample.fate.reply.reply.disposition is Disposition.DROPPED
    cluster, rules = scenario(node1=node1)
    verifier = Verifier(cluster, ClusterNetwork(cluster, node_models(cluster, rules=rules), ir.IPFamily.V4))
    http = [p for p in probes(cluster, verifier) if p.check.name == "delivered"]
    assert {o.disposition for p in http for o in p.outcomes} == {Disposition.HOST}  # connected, no echo
    # UDP has no handshake: the datagram is the data, and its answer comes back.
    assert results["udp answered"].verdict is Verdict.PROVED


def test_9_the_outside_answers_a_source_address_not_the_client():
    # Found by the 10,000-ruleset run: a packet leaving the cluster from another node's address (SNAT
    # --to-source node0 on node1) is answered by the outside towards node0, which never saw it: the client
    # hears nothing (dropped), not "no route".
    from kspec.verifier import node_models
    from kspec.verifier.model.network import ClusterNetwork
    from kspec.verifier.predict import probes
    from kspec.verifier.properties import Verifier

    cluster, rules = scenario(node1=SKIP_AND_SNAT_TO_NODE0)
    verifier = Verifier(cluster, ClusterNetwork(cluster, node_models(cluster, rules=rules), ir.IPFamily.V4))
    http = [p for p in probes(cluster, verifier) if p.check.name == "delivered"]
    assert {o.disposition for p in http for o in p.outcomes} == {Disposition.DROPPED}


def test_ctstatus_bits_follow_the_connection():
    # What the kernel showed (tests/lab/test_lab_dumps.py runs these scenarios): a first packet's entry is
    # unconfirmed, its answer has SEEN_REPLY and CONFIRMED, the client's data after the handshake ASSURED.
    def results_of(name):
        return _results(**SCENARIOS[f"ctstatus: {name}"])

    confirmed = results_of("the first packet is unconfirmed, the answer confirmed")
    assert confirmed["answered"].verdict is Verdict.PROVED
    kept = confirmed["keeps source"]
    assert kept.verdict is Verdict.VIOLATED and not kept.replay_error
    assert kept.counterexample.seen == "10.244.0.1"  # node0's pod gateway: masqueraded
    assured = results_of("the answer has seen a reply, only the data is assured")
    assert assured["delivered"].verdict is Verdict.PROVED
    assert assured["udp answered"].verdict is Verdict.VIOLATED  # the UDP answer: SEEN_REPLY, not ASSURED
    fate = assured["answered"].counterexample.fate
    assert fate.reply.disposition is Disposition.ANSWERED  # the SYN-ACK is not assured...
    assert fate.reply.reply.disposition is Disposition.DROPPED  # ...the client's data is
    none = _results(**SCENARIOS["ctstatus NONE never, not NONE whenever tracked"])
    assert none["answered"].verdict is Verdict.PROVED  # raw: no connection yet; NONE: no bit at all
    assert none["udp delivered"].verdict is Verdict.VIOLATED
    error = _results(**SCENARIOS["ctstatus: a reject's ICMP error shows its connection's status"])
    assert error["delivered"].counterexample.fate.disposition is Disposition.REJECTED
    # The error is about a connection node0 never confirmed (its first packet was rejected there) and node1
    # did (it forwarded that packet): neither rule drops it, and the client hears the refusal.
    assert error["answered"].verdict is Verdict.PROVED


def test_addrtype_limit_iface_looks_at_the_interface_that_holds_the_address():
    # The neighbour reaches the Service through the hairpin; masqueraded to node0's eth0 address, its answer
    # comes to that address through web's veth: not LOCAL there (--limit-iface-in), UNICAST.
    hairpin = _results(**SCENARIOS["limit-iface-in: the node's address is not local on a pod's veth"])
    assert hairpin["neighbour keeps source"].counterexample.seen == "10.240.0.10"
    # Without the limit the error's source is LOCAL and it is dropped; with it, the neighbour hears it.
    from kspec.verifier import node_models
    from kspec.verifier.model.network import ClusterNetwork
    from kspec.verifier.predict import probes
    from kspec.verifier.properties import Verifier

    for mangle, heard in (("--limit-iface-out ", True), ("", False)):
        cluster, rules = scenario(node0=_dump(
            mangle=f"-A POSTROUTING -p icmp -m addrtype --src-type LOCAL {mangle}-j DROP",
            filter="-A FORWARD -s 10.244.0.20/32 -j REJECT"), wiring="pod_wiring unnumbered ")
        verifier = Verifier(cluster, ClusterNetwork(cluster, node_models(cluster, rules=rules), ir.IPFamily.V4))
        found = {o.disposition for p in probes(cluster, verifier) if p.check.name == "neighbour keeps source"
                 for o in p.outcomes}
        assert found == ({Disposition.REJECTED} if heard else {Disposition.DROPPED}), (mangle, found)


def test_addrtype_limit_iface_is_unknown_where_the_address_is_on_several_veths():
    # Numbered wiring, two pods on node0: the gateway address is on both veths, and which one's local route
    # the kernel finds depends on the order they were added.
    from kspec.verifier import node_models
    from kspec.verifier.model.network import ClusterNetwork
    from kspec.verifier.predict import probes
    from kspec.verifier.properties import Verifier

    cluster, rules = scenario(node0=_dump(nat=f"{NEIGHBOUR_NAT}\n{HAIRPIN}",
                                          mangle="-A PREROUTING -m addrtype --dst-type LOCAL --limit-iface-in -j DROP"))
    verifier = Verifier(cluster, ClusterNetwork(cluster, node_models(cluster, rules=rules), ir.IPFamily.V4))
    neighbour = [p for p in probes(cluster, verifier) if p.check.name == "neighbour keeps source"]
    assert {o.disposition for p in neighbour for o in p.outcomes} == {Disposition.UNKNOWN}
    reasons = {fate.reply.reason for p in neighbour for fate in verifier.round_trip_fates(p.instance)}
    assert all("AddrType" in reason and "node0.rules:" in reason for reason in reasons), reasons


# Two processes on node1, as users 1000 and 1001 (group 2000); node1's OUTPUT drops by socket owner.
OWNER_CLIENTS = """
  client alice on node node1 uid 1000 gid 1000
  client bob on node node1 uid 1001 gid 2000
  client root on node node1
  check "alice dropped" { from alice  to web:http via cluster_ip  assert delivered  expect violated }
  check "bob delivered" { from bob  to web:http via cluster_ip  assert answered }
  check "root delivered" { from root  to web:http via cluster_ip  assert answered }
"""
OWNER_RULES = """-A OUTPUT -m owner --uid-owner 1000 -j DROP
-A OUTPUT -m owner ! --uid-owner 1000-1001 --gid-owner 2000 -j DROP
-A OUTPUT -m owner --uid-owner 0 ! --gid-owner 0 -j DROP"""


OUTPUT_DNAT = "-A OUTPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.0.10:8080"


def owner_scenario() -> tuple[ir.Cluster, dict[str, str]]:
    """The cluster with node processes of several users (tests/lab/test_lab_dumps.py runs it)."""
    text = SPEC % {"wiring": ""}
    cluster, _ = parse_text(text[:text.rstrip().rfind("}")] + OWNER_CLIENTS + "}\n")
    return cluster, {"node0": _dump(), "node1": _dump(nat=OUTPUT_DNAT, filter=OWNER_RULES)}


def test_owner_matches_the_node_processs_user_and_group():
    cluster, rules = owner_scenario()
    results = {r.check.name: r for r in verify(cluster, rules=rules, family=ir.IPFamily.V4)}
    for name in ("alice dropped", "bob delivered", "root delivered"):
        assert results[name].as_expected and not results[name].replay_error, results[name]


def test_supplementary_groups_are_unknown_unless_the_primary_group_decides():
    cluster, _ = owner_scenario()
    rules = {"node0": _dump(), "node1": _dump(nat=OUTPUT_DNAT,
                                              filter="-A OUTPUT -m owner --gid-owner 2000 --suppl-groups -j DROP")}
    results = {r.check.name: r for r in verify(cluster, rules=rules, family=ir.IPFamily.V4)}
    assert results["bob delivered"].verdict is Verdict.VIOLATED  # bob's own group is 2000
    assert results["root delivered"].verdict is Verdict.UNKNOWN
    assert "Owner" in results["root delivered"].reason and "node1.rules:" in results["root delivered"].reason


def _probe_outcomes(check: str, **spec) -> set:
    from kspec.verifier import node_models
    from kspec.verifier.model.network import ClusterNetwork
    from kspec.verifier.predict import probes
    from kspec.verifier.properties import Verifier

    cluster, rules = scenario(**spec)
    verifier = Verifier(cluster, ClusterNetwork(cluster, node_models(cluster, rules=rules), ir.IPFamily.V4))
    return {o.disposition for p in probes(cluster, verifier) if p.check.name == check for o in p.outcomes}


def test_9_the_clients_data_meets_the_connmark_the_answer_left():
    spec = SCENARIOS["the answer's CONNMARK is what the client's data meets"]
    assert _probe_outcomes("answered", **spec) == {Disposition.HOST}  # connected, its data dropped
    assert _results(**spec)["udp answered"].verdict is Verdict.PROVED  # no data after a UDP answer


def test_9_a_refusal_of_the_clients_data_reaches_the_client():
    spec = SCENARIOS["the client's refused data comes back as an ICMP error"]
    assert _probe_outcomes("answered", **spec) == {Disposition.REJECTED}
    assert _results(**spec)["answered"].verdict is Verdict.VIOLATED


def test_9_a_nodes_reset_counts_only_from_the_address_the_client_sent_to():
    wrong = SCENARIOS["a node's reset from an address the client did not send to"]
    assert _probe_outcomes("answered", **wrong) == {Disposition.DROPPED}  # the reset is ignored
    right = SCENARIOS["a node's reset undone to the address the client sent to"]
    assert _probe_outcomes("external answered", **right) >= {Disposition.HOST}  # refused, through node0


@pytest.mark.parametrize("name", ["the pod's echo of the client's data is dropped",
                                  "the pod's echo dropped by its TCP flags"])
def test_9_a_connection_works_only_if_the_pods_echo_comes_back(name: str):
    spec = SCENARIOS[name]
    assert _probe_outcomes("answered", **spec) == {Disposition.HOST}  # connected, no echo
    answered = _results(**spec)["answered"]
    assert answered.verdict is Verdict.VIOLATED and not answered.replay_error
    assert answered.counterexample.fate.reply.reply.reply.disposition is Disposition.DROPPED  # the echo


def test_9_an_untracked_icmp_error_quotes_a_packet_the_client_did_not_send():
    spec = SCENARIOS["a REJECT's error left untracked keeps the DNATed quote"]
    assert _probe_outcomes("answered", **spec) == {Disposition.DROPPED}  # not "rejected": the quote is foreign


def test_9_a_nodes_own_answer_gets_its_snat_undone_in_output():
    # Found by the random-ruleset run of 2026-12-01: conntrack undoes SNAT on a reply in OUTPUT too (the
    # kernel's destination-manip hooks are PREROUTING and OUTPUT). The node's reset, sent to the address the
    # SNAT gave (its own), goes back to the neighbour pod; kspec kept it at the node ("dropped").
    spec = SCENARIOS["SNAT in nat INPUT: the node's reset gets its destination back in OUTPUT"]
    assert _probe_outcomes("neighbour keeps source", **spec) == {Disposition.HOST}  # the client hears the reset


def test_10_trace_rewrite_and_conclusion_agree():
    out, err = io.StringIO(), io.StringIO()
    code = main(["trace", str(REPO / "specs" / "nodeport-cluster.k"), "--from", "internet",
                 "--to", "10.240.0.3:30080"], out, err)
    assert code == 0, err.getvalue()
    for branch in out.getvalue().split("branch ")[1:]:
        branch = branch.split("  answer:")[0]  # the first packet's journey (the answer rewrites its own source)
        rewrites = [line.split("->")[1].strip() for line in branch.splitlines() if "src:" in line]
        seen = [line.split("client_address=")[1] for line in branch.splitlines() if "client_address=" in line]
        if rewrites and seen:
            assert rewrites[-1] == seen[0], branch


def test_6_a_negated_zero_prefix_is_refused_as_the_kernel_refuses_it():
    # Found by the random-ruleset differential: nf_tables refuses '! -s 0.0.0.0/0' (it can match nothing).
    import pytest

    from kspec.diagnostics import KspecError
    from kspec.rules.iptables.iptables_save import parse_iptables_save

    with pytest.raises(KspecError) as refused:
        parse_iptables_save(_dump(filter="-A FORWARD ! -s 0.0.0.0/0 -j DROP"), "node0.rules")
    assert "node0.rules:" in str(refused.value) and "! -s 0.0.0.0/0" in str(refused.value)
    parse_iptables_save(_dump(filter="-A FORWARD -s 0.0.0.0/0 -j DROP"), "node0.rules")  # not negated: fine


def test_a_pod_client_by_an_address_no_pod_has_is_unknown_not_a_crash():
    # `client X { ip IP  pod on NODE }` with no pod of that address raised StopIteration (exit 3).
    cluster, _ = parse_text("""cluster c {
      cluster_cidr 10.244.0.0/16
      node n1 { ip 10.240.0.2  pod_cidr 10.244.1.0/24 }
      pod web on n1 { ip 10.244.1.5  labels { app = web }  ports { http = 8080/tcp } }
      service web { cluster_ip 10.96.0.10  selector app = web  port http 80 -> http/tcp }
      client side { ip 10.244.1.99  pod on n1 }
      check "x" { from side  to web:http via cluster_ip  assert delivered }
    }""")
    [result] = verify(cluster, family=ir.IPFamily.V4)
    assert result.verdict is Verdict.UNKNOWN and "no pod has client side's address 10.244.1.99" in result.reason


def test_an_answer_the_model_cannot_follow_is_unknown_not_violated():
    # A module kspec does not model on the answer's way only (ESTABLISHED): the first packet is delivered,
    # what becomes of the answer is not known. `answered` was "violated" (a false counterexample).
    results = _results(node1=_dump(filter="-A FORWARD -m conntrack --ctstate ESTABLISHED -m quota --quota 100 "
                                          "-j DROP"))
    assert results["delivered"].verdict is Verdict.PROVED
    assert results["answered"].verdict is Verdict.UNKNOWN
    assert "quota" in results["answered"].reason


def test_an_endpoint_without_a_pod_object_answers_on_its_endpoint_ports():
    cluster, _ = parse_text("""cluster c {
  node node1 { ip 10.240.0.3  pod_cidr 10.244.1.0/24 }
  node node2 { ip 10.240.0.4  pod_cidr 10.244.2.0/24 }
  pod probe on node2 { ip 10.244.2.9 }
  service web { cluster_ip 10.96.0.10  port http 80 -> 8080/tcp
    endpoints { 10.244.1.5 on node1 ports { http = 8080/tcp } } }
  client p from pod probe
  check "answered" { from p  to web:http via cluster_ip  assert answered }
}
""")
    [result] = verify(cluster)
    assert result.verdict is Verdict.PROVED, result.reason
