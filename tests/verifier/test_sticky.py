"""``assert sticky``: ClientIP session affinity proved over two connections in a row, the first one's
choice remembered in each node's ``-m recent`` lists (``verifier.matches.recent``)."""
from __future__ import annotations

import pytest

from kspec.grammar import format_cluster, parse_text
from kspec.verifier import verify
from kspec.verifier.properties import Verdict

SPEC = """cluster c {
  cluster_cidr 10.244.0.0/16
  node node1 { ip 10.240.0.3  pod_cidr 10.244.1.0/24 }
  node node2 { ip 10.240.0.4  pod_cidr 10.244.2.0/24 }
  pod a on node1 { ip 10.244.1.5  labels { app = web }  ports { http = 8080/tcp } }
  pod b on node2 { ip 10.244.2.5  labels { app = web }  ports { http = 8080/tcp } }
  pod shop on node2 { ip 10.244.2.9 }
  service web { type LoadBalancer  cluster_ip 10.96.0.10  selector app = web  port 80 -> 8080/tcp node_port 30080
    load_balancer_ingress 192.0.2.10  %(affinity)s }
  client shop from pod shop
  client internet { ip 203.0.113.7  external }
  load_balancer cloud { style nodeport  health_check on }
  check "cluster ip" { from shop  to web via cluster_ip  assert sticky }
  check "node port on node1" { from internet  to web via node_port on node1  assert sticky }
  check "every node port" { from internet  to web via node_port on any node  assert sticky }
  check "through the load balancer" { from internet  to web via load_balancer  assert sticky }
}
"""


def _verdicts(affinity: str, rules=None) -> dict[str, Verdict]:
    cluster, _ = parse_text(SPEC % {"affinity": affinity})
    return {r.check.name: r for r in verify(cluster, rules=rules, family=None if rules is None else
                                            cluster.families()[0])}


def test_client_ip_affinity_is_sticky_on_every_way_in():
    results = _verdicts("session_affinity ClientIP")
    assert {name: r.verdict for name, r in results.items()} == dict.fromkeys(results, Verdict.PROVED)


def test_without_affinity_the_next_connection_may_reach_another_pod():
    results = _verdicts("")
    assert {r.verdict for r in results.values()} == {Verdict.VIOLATED}
    ce = results["cluster ip"].counterexample
    assert ce.fate.then is not None and ce.fate.then.pod != ce.fate.pod
    from kspec.verifier.render import counterexample_text

    assert "the client's next connection" in counterexample_text(ce)


DUMP_SPEC = """cluster c {
  node node1 { ip 10.240.0.3  pod_cidr 10.244.1.0/24 }
  node node2 { ip 10.240.0.4  pod_cidr 10.244.2.0/24 }
  pod a on node1 { ip 10.244.1.5  ports { http = 8080/tcp } }
  pod b on node2 { ip 10.244.2.5  ports { http = 8080/tcp } }
  pod shop on node2 { ip 10.244.2.9 }
  service web { cluster_ip 10.96.0.10  port 80 -> 8080/tcp
    endpoints { 10.244.1.5 on node1 pod a  ports { http = 8080/tcp }
                10.244.2.5 on node2 pod b  ports { http = 8080/tcp } } }
  client shop from pod shop
  check "sticky" { from shop  to web via cluster_ip  assert sticky }
}
"""
# Affinity as kube-proxy writes it: check each endpoint's list first, else pick at random; the endpoint's
# chain records the client in its list. {a} and {b} are what each endpoint's chain does before its DNAT.
AFFINITY = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SVC - [0:0]
:SEP-A - [0:0]
:SEP-B - [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j SVC
-A SVC -m recent --rcheck --seconds 10800 --reap --name SEP-A --mask 255.255.255.255 --rsource -j SEP-A
-A SVC -m recent --rcheck --seconds 10800 --reap --name SEP-B --mask 255.255.255.255 --rsource -j SEP-B
-A SVC -m statistic --mode random --probability 0.50000000000 -j SEP-A
-A SVC -j SEP-B
-A SEP-A -p tcp {a}-j DNAT --to-destination 10.244.1.5:8080
-A SEP-B -p tcp {b}-j DNAT --to-destination 10.244.2.5:8080
COMMIT
"""
RECORD = "-m recent --set --name SEP-{} --mask 255.255.255.255 --rsource "


@pytest.mark.parametrize("b, verdict", [
    (RECORD.format("B"), Verdict.PROVED),
    ("", Verdict.VIOLATED),  # B's chain forgets the choice: the next connection may go to a
    (RECORD.format("B") + "-m mark --mark 0x1/0x1 ", Verdict.UNKNOWN),  # what it recorded depends on the mark
])
def test_real_dumps_are_sticky_only_where_they_record_the_choice(b, verdict):
    cluster, _ = parse_text(DUMP_SPEC)
    dumps = {node: AFFINITY.format(a=RECORD.format("A"), b=b) for node in ("node1", "node2")}
    [result] = verify(cluster, rules=dumps, family=cluster.families()[0])
    assert result.verdict is verdict, result.reason
    if verdict is Verdict.UNKNOWN:
        assert "-m recent records before another match at node2.rules:" in result.reason


def test_sticky_prints_back_and_cannot_go_with_answered():
    cluster, _ = parse_text(SPEC % {"affinity": "session_affinity ClientIP"})
    assert parse_text(format_cluster(cluster))[0] == cluster
    both = SPEC.replace('assert sticky }\n  check "node port on node1"',
                        'assert sticky and answered }\n  check "node port on node1"') % {"affinity": ""}
    cluster, _ = parse_text(both)
    [result] = [r for r in verify(cluster) if r.check.name == "cluster ip"]
    assert result.verdict is Verdict.UNKNOWN and "write two checks" in result.reason


