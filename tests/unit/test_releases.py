"""``--kube-proxy-version``: each row of docs/kube-proxy-releases.md kspec keys by release, pinned on both sides
of the release that changed it."""
from __future__ import annotations

import dataclasses
import io
import ipaddress

import pytest

from kspec import ir, releases
from kspec.cli import main
from kspec.compiler import compile_node
from kspec.diagnostics import KspecError
from tests.conftest import REPO

ip = ipaddress.ip_address
net = ipaddress.ip_network
NODE = ir.Node("a", (ip("10.0.0.1"),), (net("10.244.1.0/24"),))
EP_PORT = (ir.EndpointPort("http", ir.Protocol.TCP, 8080),)


def _rules(release: tuple[int, int], *services: ir.Service, **proxy) -> str:
    config = ir.ProxyConfig(cluster_cidrs=(net("10.244.0.0/16"),), kube_proxy_version=release, **proxy)
    return compile_node(ir.Cluster("c", (NODE,), config, services=services), "a")


def _service(**fields) -> ir.Service:
    base = dict(namespace="ns", name="web", cluster_ips=(ip("10.96.0.10"),),
                ports=(ir.ServicePort("http", ir.Protocol.TCP, 80),),
                endpoints=(ir.Endpoint(ip("10.244.1.9"), EP_PORT, node="a"),))
    return ir.Service(**{**base, **fields})


def test_row_2_a_cluster_ip_with_external_ips_honours_local_policy_from_1_29():
    svc = _service(external_ips=(ip("192.0.2.50"),), external_traffic_policy=ir.TrafficPolicy.LOCAL)
    assert "KUBE-SVL-" not in _rules((1, 28), svc)
    assert "KUBE-SVL-" in _rules((1, 29), svc)


@pytest.mark.parametrize("ranges", [("0.0.0.0/0",), ("198.51.100.0/24", "0.0.0.0/0"), ("10.0.0.0/0",)])
def test_row_3_a_zero_prefix_source_range_means_no_restriction_from_1_34(ranges):
    lb = _service(type=ir.ServiceType.LOAD_BALANCER,
                  ports=(ir.ServicePort("http", ir.Protocol.TCP, 80, node_port=30080),),
                  load_balancer_ingress=(ir.LoadBalancerIngress(ip("192.0.2.9")),),
                  load_balancer_source_ranges=tuple(net(r, strict=False) for r in ranges))
    before, after = _rules((1, 33), lb), _rules((1, 34), lb)
    assert "-A KUBE-FW-" in before and "-A KUBE-PROXY-FIREWALL" in before
    assert "-A KUBE-FW-" not in after and "-A KUBE-PROXY-FIREWALL" not in after
    assert "loadbalancer IP\" -m tcp -p tcp -d 192.0.2.9 --dport 80 -j KUBE-EXT-" in after
    # Per family: an IPv6 /0 leaves the IPv4 list as it is.
    v6_open = dataclasses.replace(lb, load_balancer_source_ranges=(net("198.51.100.0/24"), net("::/0")))
    assert "-A KUBE-FW-" in _rules((1, 34), v6_open)


def test_row_4_load_balancer_ip_mode_proxy_is_honoured_by_release():
    lb = _service(type=ir.ServiceType.LOAD_BALANCER,
                  ports=(ir.ServicePort("http", ir.Protocol.TCP, 80, node_port=30080),),
                  load_balancer_ingress=(ir.LoadBalancerIngress(ip("192.0.2.9"), ir.IngressMode.PROXY),))
    vip = "-d 192.0.2.9 "
    assert vip in _rules((1, 28), lb)  # no ipMode field yet: a VIP
    assert vip in _rules((1, 29), lb)  # alpha, off by default
    assert vip not in _rules((1, 29), lb, lb_ip_mode_gate=True)
    assert vip not in _rules((1, 30), lb)  # beta, on by default
    assert vip in _rules((1, 34), lb, lb_ip_mode_gate=False)  # an emulated older version can still disable it


def test_row_8a_tcp_liberal_drops_the_invalid_rule_from_1_29_and_nfacct_counts_from_1_31():
    invalid = "-A KUBE-FORWARD -m conntrack --ctstate INVALID"
    assert invalid in _rules((1, 28), tcp_liberal=True)
    assert invalid not in _rules((1, 29), tcp_liberal=True)
    counted = "--nfacct-name ct_state_invalid_dropped_pkts"
    assert counted not in _rules((1, 30)) and counted in _rules((1, 31))


def test_row_6a_node_port_addresses_primary_needs_1_31():
    cluster = ir.Cluster("c", (NODE,), ir.ProxyConfig(node_port_primary=True, kube_proxy_version=(1, 30)))
    with pytest.raises(KspecError, match='"primary" needs kube-proxy 1.31 or later'):
        releases.with_release(cluster, None)
    assert releases.with_release(cluster, "1.31").proxy.kube_proxy_version == (1, 31)


def test_row_1_a_non_terminating_duplicate_wins_from_1_36():
    # The example of the release table: a stale copy (terminating, no longer serving) on this node and a new
    # ready pod elsewhere share one address.
    remote = ir.Endpoint(ip("10.244.2.9"), EP_PORT, node="b")
    stale_local = ir.Endpoint(ip("10.244.2.9"), EP_PORT, node="a", ready=False, serving=False, terminating=True)
    svc = _service(endpoints=(remote, stale_local))
    assert "has no endpoints" in _rules((1, 35), svc)  # this node keeps its own, stale copy
    new = _rules((1, 36), svc)
    assert "has no endpoints" not in new and "--to-destination 10.244.2.9:8080" in new


def test_the_flag_is_on_every_command_and_refuses_what_it_does_not_know():
    spec = str(REPO / "specs" / "clusterip.k")
    for argv in (["compile", spec, "--node", "node1"], ["verify", spec, "--no-builtins"]):
        out, err = io.StringIO(), io.StringIO()
        assert main([*argv, "--kube-proxy-version", "1.29"], out, err) in (0, 1), err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert main(["compile", spec, "--kube-proxy-version", "1.27"], out, err) == 2
    assert "1.27 is not supported (kspec compiles 1.28 to 1.36)" in err.getvalue()
    assert main(["compile", spec, "--kube-proxy-version", "latest"], out, err) == 2
    assert "'latest' is not a release like 1.31" in err.getvalue()


def test_the_default_is_the_newest_release_and_the_corpus_is_1_34():
    assert ir.ProxyConfig().kube_proxy_version == releases.NEWEST == (1, 36)
    assert dataclasses.replace(ir.ProxyConfig(), kube_proxy_version=releases.CORPUS).kube_proxy_version == (1, 34)


def test_rows_8b_8c_zone_hints_from_1_31_and_node_hints_from_1_34():
    zone_a = ir.Endpoint(ip("10.244.1.9"), EP_PORT, node="a", zone_hints=("zone-a",), node_hints=("b",))
    zone_b = ir.Endpoint(ip("10.244.2.9"), EP_PORT, node="b", zone_hints=("zone-b",), node_hints=("a",))
    svc = _service(endpoints=(zone_a, zone_b))
    node = dataclasses.replace(NODE, zone="zone-a")

    def dispatched(release):
        config = ir.ProxyConfig(cluster_cidrs=(net("10.244.0.0/16"),), kube_proxy_version=release)
        text = compile_node(ir.Cluster("c", (node,), config, services=(svc,)), "a")
        svc_rules = [line for line in text.splitlines() if line.startswith("-A KUBE-SVC-")]
        return {ep for ep in ("10.244.1.9", "10.244.2.9") if any(f"-> {ep}:8080" in line for line in svc_rules)}

    assert dispatched((1, 30)) == {"10.244.1.9", "10.244.2.9"}  # hints need the topology annotation
    assert dispatched((1, 33)) == {"10.244.1.9"}  # zone hints: this node's zone
    assert dispatched((1, 34)) == {"10.244.2.9"}  # node hints first (PreferSameNode): hinted for node a


def test_topology_hints_and_zones_are_written_in_the_dsl_and_printed_back():
    from kspec.grammar import parse_text
    from kspec.grammar.printer import format_cluster

    text = """cluster c {
      cluster_cidr 10.244.0.0/16
      node a { ip 10.0.0.1  pod_cidr 10.244.1.0/24  zone zone-a }
      node b { ip 10.0.0.2  pod_cidr 10.244.2.0/24  zone zone-b }
      service web {
        cluster_ip 10.96.0.10
        port http 80 -> 8080/tcp
        endpoints {
          10.244.1.9 on a zone_hints zone-a node_hints a
          10.244.2.9 on b zone_hints zone-b
        }
      }
    }"""
    cluster, _ = parse_text(text)
    assert cluster.node("a").zone == "zone-a"
    eps = {str(ep.ip): ep for ep in cluster.services[0].endpoints}
    assert eps["10.244.1.9"].zone_hints == ("zone-a",) and eps["10.244.1.9"].node_hints == ("a",)
    again, _ = parse_text(format_cluster(cluster))
    assert again == cluster
    rules = compile_node(dataclasses.replace(cluster, proxy=dataclasses.replace(cluster.proxy,
                                                                                kube_proxy_version=(1, 33))), "a")
    assert "-> 10.244.1.9:8080" in rules and "-> 10.244.2.9:8080" not in rules  # zone-a only


def test_a_zone_keeps_its_traffic_while_it_has_ready_endpoints_proved_by_the_verifier():
    from kspec.grammar import parse_text
    from kspec.verifier import verify
    from kspec.verifier.properties import Verdict

    text = """cluster c {
      cluster_cidr 10.244.0.0/16
      node a { ip 10.0.0.1  pod_cidr 10.244.1.0/24  zone zone-a }
      node b { ip 10.0.0.2  pod_cidr 10.244.2.0/24  zone zone-b }
      pod web-a on a { ip 10.244.1.9  labels { app = web }  ports { http = 8080/tcp } }
      pod web-b on b { ip 10.244.2.9  labels { app = web }  ports { http = 8080/tcp } }
      pod client on a { ip 10.244.1.7 }
      service web {
        cluster_ip 10.96.0.10
        port http 80 -> 8080/tcp
        endpoints {
          10.244.1.9 on a pod default/web-a %s
          10.244.2.9 on b pod default/web-b %s
        }
      }
      client c from pod client
      check "zone a stays in zone a" { from c  to web:http via cluster_ip  assert endpoint in { web-a } }
    }"""
    for hints, verdict in ((("zone_hints zone-a", "zone_hints zone-b"), Verdict.PROVED), (("", ""), Verdict.VIOLATED)):
        cluster, _ = parse_text(text % hints)
        cluster = dataclasses.replace(cluster, proxy=dataclasses.replace(cluster.proxy, kube_proxy_version=(1, 33)))
        [result] = [r for r in verify(cluster, builtins=False, family=ir.IPFamily.V4)]
        assert result.verdict is verdict, hints


def test_traffic_distribution_hints_reach_kube_proxy_by_both_roads(tmp_path):
    # specs/topology.k: PreferClose on a selector Service. The .k road writes the controller's hints
    # (kspec.topology); exported as objects, the EndpointSlices carry them and the Service its
    # trafficDistribution, and the Kubernetes road compiles to the same rules on every node.
    from kspec.export.k8s import to_yaml
    from kspec.grammar import load
    from kspec.ingest.k8s import load_k8s

    cluster, _ = load(str(REPO / "specs" / "topology.k"))
    assert {str(ep.ip): ep.zone_hints for ep in cluster.services[0].endpoints} == {
        "10.244.2.5": ("zone-a",), "10.244.3.5": ("zone-b",)}
    objects = tmp_path / "objects.yaml"
    objects.write_text(to_yaml(cluster))
    again = load_k8s([str(objects)])
    assert again.services[0].traffic_distribution == "PreferClose"
    for node in ("node1", "node3"):
        assert compile_node(again, node) == compile_node(cluster, node)
    rules = compile_node(cluster, "node1")
    assert "-> 10.244.2.5:8080" in rules and "-> 10.244.3.5:8080" not in rules


@pytest.mark.parametrize("release, zone_a, zone_b", [
    ((1, 30), ("",), ()),  # ServiceTrafficDistribution off by default: no hints
    ((1, 31), ("zone-a",), ("",)),  # PreferClose: a zone, or the dummy "" zone before 1.33
    ((1, 33), ("zone-a",), ()),
])
def test_prefer_close_hints_by_release(release, zone_a, zone_b):
    from kspec.topology import hints

    zones = {"a": "zone-a", "b": None}
    ep_a = ir.Endpoint(ip("10.244.1.9"), EP_PORT, node="a")
    ep_b = ir.Endpoint(ip("10.244.2.9"), EP_PORT, node="b")
    if release == (1, 30):
        zone_a = ()
    assert hints("PreferClose", ep_a, zones, release) == (zone_a, ())
    assert hints("PreferClose", ep_b, zones, release) == (zone_b, ())
    # PreferSameNode: from 1.34 (on by default), zone and node hints; before, as if unset.
    assert hints("PreferSameNode", ep_a, zones, (1, 33)) == ((), ())
    assert hints("PreferSameNode", ep_a, zones, (1, 34)) == (("zone-a",), ("a",))
