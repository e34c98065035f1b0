"""Interface matches on packets without that interface, as the kernel evaluates them (found by the lab).

A process on a node sends with no input interface. The kernel compares the empty name: ``-i veth+`` does not
match and ``! -i veth+`` does, so with ``detect_local interface_prefix veth`` kube-proxy's "not from a pod"
rule marks a node's own connection to a cluster IP for masquerading; towards a pod on the same node the pod
then sees the node's pod gateway, not the node IP.
"""
from __future__ import annotations

from kspec import ir
from kspec.grammar import parse_text
from kspec.verifier import node_models
from kspec.verifier.model.network import ClusterNetwork, Disposition
from kspec.verifier.predict import probes
from kspec.verifier.properties import Verifier

SPEC = """cluster c {
  cluster_cidr 10.244.0.0/16
  proxy { detect_local %s }
  node node0 { ip 10.240.0.10  pod_cidr 10.244.1.0/24 }
  pod web on node0 { ip 10.244.1.10  labels { app = web } }
  service web { cluster_ip 10.96.0.10  selector app = web  port 80 -> 8080/tcp }
  client host on node node0
  check "c" { from host  to web via cluster_ip  assert delivered }
}
"""


def _seen(detect: str) -> set[str]:
    cluster, _ = parse_text(SPEC % detect)
    verifier = Verifier(cluster, ClusterNetwork(cluster, node_models(cluster), ir.IPFamily.V4))
    return {o.client_address for p in probes(cluster, verifier) for o in p.outcomes
            if o.disposition is Disposition.DELIVERED}


def test_negated_in_interface_matches_a_locally_sent_packet():
    assert _seen("interface_prefix veth") == {"10.244.1.1"}  # masqueraded out of veth0: the pod gateway


def test_cluster_cidr_detection_agrees():
    assert _seen("cluster_cidr") == {"10.244.1.1"}  # the node IP is outside the cluster CIDR: masqueraded too
