"""Issue 11's classes A-F: cluster states kube-proxy's corpus never holds, where kspec wrote other rules than
kube-proxy does. Each test states kube-proxy's behaviour (v1.33/1.34 source named per test) on a small state.
"""
from __future__ import annotations

import ipaddress
import json

from kspec import ir
from kspec.compiler import compile_node
from kspec.compiler.healthcheck import local_ready_endpoints
from kspec.ingest.conformance import load_case

ip = ipaddress.ip_address
net = ipaddress.ip_network

NODES = (ir.Node("node-a", (ip("10.0.0.1"),), (net("10.244.1.0/24"),)),
         ir.Node("node-b", (ip("10.0.0.2"),), (net("10.244.2.0/24"),)))
HTTP = ir.ServicePort("http", ir.Protocol.TCP, 80, node_port=30080)
EP_PORT = (ir.EndpointPort("http", ir.Protocol.TCP, 8080),)


def _cluster(*services: ir.Service, **proxy) -> ir.Cluster:
    return ir.Cluster("c", NODES, ir.ProxyConfig(cluster_cidrs=(net("10.244.0.0/16"),), **proxy), services=services)


def _rules(cluster: ir.Cluster, node: str = "node-a", family: ir.IPFamily = ir.IPFamily.V4) -> list[str]:
    return compile_node(cluster, node, family).splitlines()


def _service(**fields) -> ir.Service:
    base = dict(namespace="ns", name="web", type=ir.ServiceType.NODE_PORT, cluster_ips=(ip("10.96.0.10"),),
                ports=(HTTP,))
    return ir.Service(**{**base, **fields})


# A. endpointslicecache.go addEndpoints: `if _, exists := endpointSet[key]; !exists || isLocal` - a copy on
# this node replaces the one kept so far; otherwise the first copy stays.
def test_a_duplicate_endpoint_is_the_local_copy_on_its_node_and_the_first_elsewhere():
    remote_ready = ir.Endpoint(ip("10.244.2.9"), EP_PORT, node="node-b", ready=True)
    local_terminating = ir.Endpoint(ip("10.244.2.9"), EP_PORT, node="node-a", ready=False, serving=True,
                                    terminating=True)
    cluster = _cluster(_service(type=ir.ServiceType.LOAD_BALANCER, external_traffic_policy=ir.TrafficPolicy.LOCAL,
                                health_check_node_port=31000, endpoints=(remote_ready, local_terminating)),
                       kube_proxy_version=(1, 34))  # 1.36 keeps the non-terminating copy (tests/unit/test_releases.py)
    svc = cluster.services[0]
    # node-a keeps its own (terminating) copy: not ready, so /healthz counts no local endpoint, and the
    # Local chain falls back to the serving-terminating endpoint.
    assert local_ready_endpoints(svc, "node-a", cluster.proxy) == 0
    assert any("KUBE-SVL-" in line and "KUBE-SEP-" in line for line in _rules(cluster, "node-a"))
    # node-b keeps the first copy (ready, on node-b): one local ready endpoint there.
    assert local_ready_endpoints(svc, "node-b", cluster.proxy) == 1
    # Before: the first copy everywhere, so node-a had no local endpoint at all (its Local chain dropped).
    assert not any("has no local endpoints" in line for line in _rules(cluster, "node-a"))


# B. util/nodeport_addresses.go NewNodePortAddresses: no CIDR of the proxier's family -> the zero CIDR.
def test_b_node_port_addresses_of_the_other_family_only_match_every_local_address():
    cluster = _cluster(_service(), node_port_addresses=(net("2001:db8::/64"),))
    entry = [line for line in _rules(cluster) if "-j KUBE-NODEPORTS" in line]
    assert entry == ['-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
                     'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS']


# C. kube-proxy matches nodePortAddresses against its interfaces' addresses (GetNodeIPs), never its nodeIP,
# and its source-range hairpin check compares nodeIP across families as "not contained".
def test_c_the_corpus_node_ip_is_not_an_interface_address(tmp_path):
    case = {"proxier": {"ipFamily": "IPv4", "nodeName": "n", "nodeIP": "192.168.0.2",
                        "interfaceAddresses": [{"interface": "eth0", "cidr": "192.168.1.2/24"}],
                        "localDetector": {"mode": "ClusterCIDR", "cidr": "10.0.0.0/8"},
                        "masqueradeAll": False, "masqueradeBit": 14, "localhostNodePorts": False,
                        "nodePortAddresses": ["192.168.0.0/16"], "iptablesHasRandomFully": True,
                        "conntrackTCPLiberal": False},
            "services": [], "endpointSlices": []}
    (tmp_path / "input.json").write_text(json.dumps(case))
    cluster, node, family, _ = load_case(tmp_path)
    entry = [line for line in compile_node(cluster, node, family).splitlines() if "-j KUBE-NODEPORTS" in line]
    assert [line.split(" -d ")[1].split()[0] for line in entry] == ["192.168.1.2"]


def test_c_an_ipv4_node_ip_is_never_inside_ipv6_source_ranges():
    node = ir.Node("node-a", (ip("fd00::1"),), proxy_ip=ip("192.168.0.2"))
    svc = _service(type=ir.ServiceType.LOAD_BALANCER, cluster_ips=(ip("fd00:96::10"),),
                   load_balancer_ingress=(ir.LoadBalancerIngress(ip("2001:db8::5")),),
                   load_balancer_source_ranges=(net("fd00::/64"),),
                   endpoints=(ir.Endpoint(ip("fd00:244::9"), EP_PORT, node="node-a"),))
    cluster = ir.Cluster("c", (node,), ir.ProxyConfig(), services=(svc,))
    fw = [line for line in _rules(cluster, "node-a", ir.IPFamily.V6) if line.startswith("-A KUBE-FW-")]
    assert not any("-s 2001:db8::5/128" in line for line in fw)  # no hairpin source: nodeIP is IPv4
    assert any("-s fd00::/64" in line for line in fw)


# D. The NodeCIDR local detector's CIDR is the node's pod CIDR: pod traffic is told apart by it.
def test_d_the_node_cidr_detector_of_the_corpus_writes_its_masquerade_rule(tmp_path):
    case = {"proxier": {"ipFamily": "IPv4", "nodeName": "n", "nodeIP": "192.168.0.2",
                        "interfaceAddresses": [{"interface": "eth0", "cidr": "192.168.0.2/24"}],
                        "localDetector": {"mode": "NodeCIDR", "cidr": "10.0.1.0/24"},
                        "masqueradeAll": False, "masqueradeBit": 14, "localhostNodePorts": True,
                        "iptablesHasRandomFully": True, "conntrackTCPLiberal": False},
            "services": [{"namespace": "ns", "name": "web", "type": "ClusterIP", "clusterIP": "172.30.0.41",
                          "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}]}],
            "endpointSlices": [{"namespace": "ns", "name": "web-1", "serviceName": "web", "addressType": "IPv4",
                                "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}],
                                "endpoints": [{"addresses": ["10.180.0.1"]}]}]}
    (tmp_path / "input.json").write_text(json.dumps(case))
    cluster, node, family, _ = load_case(tmp_path)
    assert cluster.node(node).pod_cidrs == (net("10.0.1.0/24"),) and cluster.proxy.cluster_cidrs == ()
    rules = compile_node(cluster, node, family).splitlines()
    assert any("! -s 10.0.1.0/24" in line and "-j KUBE-MARK-MASQ" in line for line in rules)


# E. apiservice.ExternalPolicyLocal: a ClusterIP Service with external IPs is externally accessible, so its
# externalTrafficPolicy Local holds for its external IPs (no SNAT, the Local chain).
def test_e_a_cluster_ip_service_with_external_ips_keeps_local_policy():
    svc = _service(type=ir.ServiceType.CLUSTER_IP, ports=(ir.ServicePort("http", ir.Protocol.TCP, 80),),
                   external_ips=(ip("192.0.2.50"),), external_traffic_policy=ir.TrafficPolicy.LOCAL,
                   endpoints=(ir.Endpoint(ip("10.244.1.9"), EP_PORT, node="node-a"),))
    rules = _rules(_cluster(svc))
    ext = [line for line in rules if line.startswith("-A KUBE-EXT-")]
    assert any("-j KUBE-SVL-" in line for line in ext) and not any("KUBE-MARK-MASQ" in line for line in ext
                                                                     if "LOCAL" not in line)


# F. NewProxier: `if !nodePortAddresses.ContainsIPv4Loopback() { localhostNodePorts = false }`.
def test_f_localhost_node_ports_are_off_when_node_port_addresses_miss_loopback():
    cluster = _cluster(_service(), node_port_addresses=(net("10.0.0.0/24"),), localhost_node_ports=True)
    rules = _rules(cluster)
    assert not any("KUBE-FIREWALL" in line for line in rules)
    assert [line for line in rules if "-j KUBE-NODEPORTS" in line] == [
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule '
        'in this chain" -d 10.0.0.1 -j KUBE-NODEPORTS']
    covered = _cluster(_service(), node_port_addresses=(net("10.0.0.0/24"), net("127.0.0.0/8")))
    assert any("-d 127.0.0.1 -j KUBE-NODEPORTS" in line for line in _rules(covered))


# Part 5: nodePortAddresses ["primary"] (kube-proxy 1.29+): each node's primary IP of each family; a family
# the node has no address of is left without a CIDR, so there every address matches (as B).
def test_node_port_addresses_primary_is_each_nodes_primary_ip():
    from kspec.grammar import parse_text

    cluster, _ = parse_text("""cluster c {
      cluster_cidr 10.244.0.0/16
      proxy { node_port_addresses primary }
      node a { ip 10.0.0.1, 10.0.0.9  pod_cidr 10.244.1.0/24 }
      service web { type NodePort  cluster_ip 10.96.0.10  port 80 -> 8080/tcp node_port 30080 }
    }""")
    assert cluster.proxy.node_port_primary
    entry = [line for line in compile_node(cluster, "a").splitlines() if "-j KUBE-NODEPORTS" in line]
    assert len(entry) == 1 and " -d 10.0.0.1 -j KUBE-NODEPORTS" in entry[0]
    v6 = [line for line in compile_node(cluster, "a", ir.IPFamily.V6).splitlines() if "-j KUBE-NODEPORTS" in line]
    assert len(v6) == 1 and "--dst-type LOCAL ! -d ::1/128" in v6[0]  # no IPv6 primary: every address


def test_node_port_addresses_primary_from_a_kube_proxy_configuration(tmp_path):
    from kspec.ingest.k8s import load_k8s

    objects = tmp_path / "objects.yaml"
    objects.write_text("apiVersion: v1\nkind: Node\nmetadata: {name: a}\nstatus:\n  addresses:\n"
                       "  - {type: InternalIP, address: 10.0.0.1}\n")
    config = tmp_path / "proxy.yaml"
    config.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                      "nodePortAddresses: [primary]\n")
    cluster = load_k8s([str(objects)], str(config))
    assert cluster.proxy.node_port_primary and cluster.proxy.node_port_addresses is None
