"""The Kubernetes-object loader: kubectl's output formats, kube-proxy's defaults and leniency, and errors."""
from __future__ import annotations

import ipaddress
import json
import textwrap
from pathlib import Path

import pytest

from kspec import ir
from kspec.diagnostics import KspecError, Severity
from kspec.ingest.k8s import load_k8s, load_k8s_with_diagnostics

ip = ipaddress.ip_address
net = ipaddress.ip_network


@pytest.fixture
def write(tmp_path: Path):
    """write(text, name) -> path of a file holding the dedented text."""
    def _write(text: str, name: str = "objects.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return str(path)
    return _write


def load(write, text: str, **kwargs) -> ir.Cluster:
    return load_k8s([write(text)], **kwargs)


def problems(write, text: str, proxy_text: str | None = None) -> list[str]:
    """The diagnostics (errors and warnings) of loading ``text``, as "line:column: severity: message"."""
    path = write(text)
    proxy = write(proxy_text, "proxy.yaml") if proxy_text is not None else None
    try:
        _, diagnostics = load_k8s_with_diagnostics([path], proxy)
    except KspecError as err:
        diagnostics = err.diagnostics
    return [f"{d.span.line}:{d.span.column}: {d.severity.value}: {d.message}" if d.span else
            f"{d.severity.value}: {d.message}" for d in diagnostics]


SVC = """
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 10.96.0.10
  ports:
  - name: http
    port: 80
    targetPort: 8080
"""


# ------------------------------------------------------------------------------------ formats


def test_a_single_service_with_kubernetes_defaults(write):
    (svc,) = load(write, SVC).services
    assert svc == ir.Service(
        namespace="shop", name="web", type=ir.ServiceType.CLUSTER_IP, cluster_ips=(ip("10.96.0.10"),),
        ports=(ir.ServicePort("http", ir.Protocol.TCP, 80, target_port=8080),),
    )
    assert svc.external_traffic_policy is svc.internal_traffic_policy is ir.TrafficPolicy.CLUSTER
    assert svc.session_affinity is None


def test_list_and_multi_document_files_are_flattened(write):
    text = """
    apiVersion: v1
    kind: List
    items:
    - {apiVersion: v1, kind: Service, metadata: {name: a, namespace: x}, spec: {clusterIP: 10.96.0.1}}
    - {apiVersion: v1, kind: Service, metadata: {name: b, namespace: x}, spec: {clusterIP: 10.96.0.2}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: c, namespace: y}
    spec: {clusterIP: 10.96.0.3}
    ---
    # an empty document is fine
    """
    assert [s.key for s in load(write, text).services] == ["x/a", "x/b", "y/c"]


def test_typed_lists_from_the_api_have_items_without_kind(write):
    text = """
    apiVersion: v1
    kind: ServiceList
    items:
    - metadata: {name: a, namespace: x}
      spec: {clusterIP: 10.96.0.1}
    """
    assert [s.key for s in load(write, text).services] == ["x/a"]


def test_json_as_kubectl_prints_it(write):
    objects = {
        "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
        "items": [
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "web", "namespace": "shop"},
             "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                      "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
                      "type": "ClusterIP"}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
             "metadata": {"name": "web-x1", "namespace": "shop",
                          "labels": {"kubernetes.io/service-name": "web"}},
             "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "n1",
                            "conditions": {"ready": True, "serving": True, "terminating": False}}],
             "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
        ],
    }
    path = write(json.dumps(objects, indent=4), "objects.json")
    (svc,) = load_k8s([path]).services
    assert svc.ports[0].target_port == "http"
    assert svc.endpoints == (ir.Endpoint(ip("10.244.1.5"), (ir.EndpointPort("http", ir.Protocol.TCP, 8080),),
                                         node="n1"),)
    # JSON is YAML: spans point into the JSON text too.
    assert (svc.span.file, svc.span.line, svc.span.column) == (path, 8, 9)


def test_spans_point_at_the_objects(write):
    text = """
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Service
      metadata: {name: a, namespace: x}
      spec:
        clusterIP: 10.96.0.1
        ports:
        - port: 53
          protocol: UDP
    """
    (svc,) = load(write, text).services
    assert (svc.span.line, svc.span.column) == (4, 3)
    assert (svc.ports[0].span.line, svc.ports[0].span.column) == (10, 7)


# ---------------------------------------------------------------------------------- services


def test_leading_zeros_are_decimal_everywhere(write):
    text = """
    apiVersion: v1
    kind: Service
    metadata: {name: svc1, namespace: ns1}
    spec:
      type: LoadBalancer
      clusterIP: 172.30.0.041
      externalIPs: [192.168.099.022]
      loadBalancerSourceRanges: [" 203.0.113.000/025 "]
      ports: [{name: p80, port: 80, nodePort: 3001}]
    status:
      loadBalancer:
        ingress: [{ip: 1.2.3.004}]
    """
    (svc,) = load(write, text).services
    assert svc.cluster_ips == (ip("172.30.0.41"),)
    assert svc.external_ips == (ip("192.168.99.22"),)
    assert svc.load_balancer_source_ranges == (net("203.0.113.0/25"),)
    assert svc.load_balancer_ingress == (ir.LoadBalancerIngress(ip("1.2.3.4")),)


def test_invalid_external_ips_and_source_ranges_are_dropped_like_kube_proxy_does(write):
    text = """
    apiVersion: v1
    kind: Service
    metadata: {name: s, namespace: n}
    spec:
      clusterIP: 10.96.0.1
      externalIPs: ["", "not-an-ip", 1.2.3.4]
      loadBalancerSourceRanges: [10.0.0.0/33, 10.1.0.0/16]
    """
    (svc,) = load(write, text).services
    assert svc.external_ips == (ip("1.2.3.4"),)
    assert svc.load_balancer_source_ranges == (net("10.1.0.0/16"),)
    # The empty string is skipped silently, as kube-proxy does.
    assert problems(write, text) == [
        '6:21: warning: Service n/s: spec.externalIPs[1]: "not-an-ip" is not an IP address; kube-proxy ignores it',
        '7:30: warning: Service n/s: spec.loadBalancerSourceRanges[0]: "10.0.0.0/33" is not a CIDR; '
        'kube-proxy ignores it',
    ]


def test_dual_stack_headless_and_external_name(write):
    text = """
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Service
      metadata: {name: dual, namespace: n}
      spec:
        clusterIP: 10.96.0.7
        clusterIPs: [10.96.0.7, "fd00:96::7"]
        ipFamilies: [IPv4, IPv6]
    - apiVersion: v1
      kind: Service
      metadata: {name: headless, namespace: n}
      spec: {clusterIP: None, clusterIPs: [None]}
    - apiVersion: v1
      kind: Service
      metadata: {name: ext, namespace: n}
      spec: {type: ExternalName, externalName: db.example.com}
    """
    dual, headless, ext = load(write, text).services
    assert dual.cluster_ips == (ip("10.96.0.7"), ip("fd00:96::7"))
    assert headless.cluster_ips == ()
    assert (ext.type, ext.external_name, ext.cluster_ips) == (ir.ServiceType.EXTERNAL_NAME, "db.example.com", ())


def test_policies_health_check_and_affinity(write):
    text = """
    apiVersion: v1
    kind: Service
    metadata: {name: s, namespace: n}
    spec:
      type: LoadBalancer
      clusterIP: 10.96.0.1
      externalTrafficPolicy: Local
      internalTrafficPolicy: Local
      healthCheckNodePort: 32000
      sessionAffinity: ClientIP
      ports: [{port: 443, nodePort: 30443}]
    status:
      loadBalancer:
        ingress: [{ip: 5.6.7.8, ipMode: Proxy}, {hostname: lb.example.com}, {ip: 5.6.7.9, ipMode: VIP}]
    """
    (svc,) = load(write, text).services
    assert svc.external_traffic_policy is svc.internal_traffic_policy is ir.TrafficPolicy.LOCAL
    assert svc.health_check_node_port == 32000
    assert svc.session_affinity == ir.SessionAffinity(10800)  # the API default timeout
    assert svc.ports == (ir.ServicePort("", ir.Protocol.TCP, 443, node_port=30443),)
    assert svc.load_balancer_ingress == (ir.LoadBalancerIngress(ip("5.6.7.8"), ir.IngressMode.PROXY),
                                         ir.LoadBalancerIngress(ip("5.6.7.9"), ir.IngressMode.VIP))


def test_affinity_timeout(write):
    text = SVC + "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n"
    assert load(write, text).services[0].session_affinity == ir.SessionAffinity(60)


# ---------------------------------------------------------------------------- EndpointSlices


SLICE = """
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP}
- {port: 9090}
- {name: nil-port}
- {name: zero, port: 0}
endpoints:
- addresses: [10.244.1.5]
  nodeName: node-a
  targetRef: {kind: Pod, name: web-1, namespace: shop}
- addresses: [10.244.002.006, 10.244.9.9]
  conditions: {ready: false, serving: true, terminating: true}
- addresses: [10.244.3.7]
  conditions: {ready: null}
"""


def test_slice_endpoints_and_default_conditions(write):
    (svc,) = load(write, SVC + SLICE).services
    ports = (ir.EndpointPort("http", ir.Protocol.TCP, 8080), ir.EndpointPort("", ir.Protocol.TCP, 9090))
    assert svc.endpoints == (
        ir.Endpoint(ip("10.244.1.5"), ports, node="node-a", pod="shop/web-1"),
        # Only the first address counts; leading zeros are decimal.
        ir.Endpoint(ip("10.244.2.6"), ports, ready=False, serving=True, terminating=True),
        ir.Endpoint(ip("10.244.3.7"), ports, ready=True, serving=True, terminating=False),
    )
    assert svc.endpoints[0].span.line == 27


def test_slices_join_by_label_and_namespace(write):
    other_namespace = SLICE.replace("namespace: shop", "namespace: other")
    text = SVC + SLICE + other_namespace.replace("web-abc", "web-def")
    (svc,) = load(write, text).services
    assert len(svc.endpoints) == 3
    assert problems(write, text) == [
        "36:1: warning: EndpointSlice other/web-def: no Service other/web was given; ignored"]


def test_both_families_kept_fqdn_and_unlabelled_slices_ignored(write):
    text = SVC + """
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-v6, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv6
ports: [{name: http, port: 8080}]
endpoints: [{addresses: ["fd00:244::5"]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-fqdn, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: FQDN
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [web.example.com]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: stray, namespace: shop}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
"""
    (svc,) = load(write, text).services
    assert [e.ip for e in svc.endpoints] == [ip("fd00:244::5")]
    assert problems(write, text) == [
        "30:11: warning: EndpointSlice shop/stray: no kubernetes.io/service-name label; "
        "kube-proxy ignores this EndpointSlice"]


# ------------------------------------------------------------------------------- nodes, pods


def test_node_addresses_internal_first_and_pod_cidrs(write):
    text = """
    apiVersion: v1
    kind: Node
    metadata: {name: node-a}
    spec: {podCIDR: 10.244.1.0/24, podCIDRs: [10.244.1.0/24, "fd00:244:1::/64"]}
    status:
      addresses:
      - {type: ExternalIP, address: 203.0.113.10}
      - {type: Hostname, address: node-a}
      - {type: InternalIP, address: 192.168.0.2}
      - {type: InternalIP, address: "2001:db8::2"}
    """
    (node,) = load(write, text).nodes
    assert node == ir.Node("node-a", (ip("192.168.0.2"), ip("2001:db8::2"), ip("203.0.113.10")),
                           (net("10.244.1.0/24"), net("fd00:244:1::/64")))
    assert node.primary_ip(ir.IPFamily.V6) == ip("2001:db8::2")


def test_pods(write):
    text = """
    apiVersion: v1
    kind: Pod
    metadata: {name: web-1, namespace: shop, labels: {app: web, tier: front}}
    spec:
      nodeName: node-a
      containers:
      - name: c
        ports: [{name: http, containerPort: 8080}, {containerPort: 53, protocol: UDP}]
    status:
      podIP: 10.244.1.5
      conditions: [{type: Ready, status: "True"}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web-2, namespace: shop, deletionTimestamp: "2025-01-01T00:00:00Z"}
    spec: {nodeName: node-b, containers: [{name: c}]}
    status: {podIP: 10.244.2.5, conditions: [{type: Ready, status: "True"}]}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: pending, namespace: shop}
    spec: {containers: [{name: c}]}
    """
    web1, web2 = load(write, text).pods
    assert web1 == ir.Pod("shop", "web-1", "node-a", ip("10.244.1.5"), (("app", "web"), ("tier", "front")),
                          (ir.ContainerPort("http", 8080), ir.ContainerPort("", 53, ir.Protocol.UDP)))
    assert (web2.ready, web2.serving, web2.terminating) == (False, True, True)


# -------------------------------------------------------------------- proxy config, node facts


def test_defaults_without_configuration(write):
    assert load(write, SVC).proxy == ir.ProxyConfig()


def test_kube_proxy_configuration_and_node_facts(write):
    text = SVC + """
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clusterCIDR: "10.244.0.0/16,fd00:244::/56"
detectLocalMode: InterfaceNamePrefix
detectLocal: {interfaceNamePrefix: veth}
iptables: {masqueradeAll: true, masqueradeBit: 15, localhostNodePorts: false}
nodePortAddresses: [192.168.0.0/24, "2001:db8::/64"]
portRange: 30000-31000
featureGates: {LoadBalancerIPMode: false}
conntrack: {tcpBeLiberal: true}
---
apiVersion: kspec.dev/v1alpha1
kind: NodeFacts
randomFully: false
nfacct: true
nfacctUnavailable: [localhost_nps_accepted_pkts]
markLiteral: "0x4000"
"""
    proxy = load(write, text).proxy
    assert proxy == ir.ProxyConfig(
        cluster_cidrs=(net("10.244.0.0/16"), net("fd00:244::/56")),
        detect_local=ir.LocalDetect(ir.LocalDetectMode.INTERFACE_NAME_PREFIX, "veth"),
        masquerade_all=True, masquerade_bit=15, localhost_node_ports=False,
        node_port_addresses=(net("192.168.0.0/24"), net("2001:db8::/64")),
        node_port_range=(30000, 31000), lb_ip_mode_gate=False, tcp_liberal=True,
        random_fully=False, nfacct=True, nfacct_unavailable=("localhost_nps_accepted_pkts",),
        mark_literal="0x4000",
    )
    assert proxy.span.line == 14


def test_node_facts_override_the_configured_tcp_liberal(write):
    text = SVC + """
---
{apiVersion: kubeproxy.config.k8s.io/v1alpha1, kind: KubeProxyConfiguration, conntrack: {tcpBeLiberal: true}}
---
{apiVersion: kspec.dev/v1alpha1, kind: NodeFacts, tcpLiberal: false}
"""
    assert load(write, text).proxy.tcp_liberal is False


def test_proxy_config_from_a_separate_file(write):
    cluster = load_k8s([write(SVC)], write("""
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    kind: KubeProxyConfiguration
    detectLocalMode: BridgeInterface
    detectLocal: {bridgeInterface: cbr0}
    """, "proxy.yaml"))
    assert cluster.proxy.detect_local == ir.LocalDetect(ir.LocalDetectMode.BRIDGE_INTERFACE, "cbr0")


def test_proxy_config_file_without_a_configuration(write):
    assert problems(write, SVC, proxy_text=SVC)[-1].endswith("proxy.yaml: no KubeProxyConfiguration found")


# ------------------------------------------------------------------------------------ errors


def test_errors_are_positioned_and_collected(write):
    text = """
    apiVersion: v1
    kind: Service
    metadata: {name: s, namespace: n}
    spec:
      type: Balanced
      clusterIP: 10.96.0.300
      externalTrafficPolicy: OnlyLocal
      ports:
      - {port: 80, protocol: ICMP}
      - {name: no-port}
      - {port: 70000, nodePort: "30080"}
    status:
      loadBalancer: {ingress: [{ip: lb}]}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: d}
    ---
    apiVersion: discovery.k8s.io/v1beta1
    kind: EndpointSlice
    metadata: {name: e, namespace: n}
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: e2, namespace: n, labels: {kubernetes.io/service-name: s}}
    addressType: IPv4
    endpoints: [{addresses: [10.1.2.x]}, {addresses: []}]
    ---
    apiVersion: v1
    kind: Node
    metadata: {}
    ---
    - just a list
    """
    assert problems(write, text) == [
        '5:9: error: Service n/s: spec.type: unsupported value "Balanced" '
        "(expected one of ClusterIP, NodePort, LoadBalancer, ExternalName)",
        '6:14: error: Service n/s: spec.clusterIP: "10.96.0.300" is not an IP address',
        '7:26: error: Service n/s: spec.externalTrafficPolicy: unsupported value "OnlyLocal" '
        "(expected one of Cluster, Local)",
        '9:26: error: Service n/s: spec.ports[0].protocol: unsupported value "ICMP" (expected one of TCP, UDP, SCTP)',
        "10:5: error: Service n/s: missing required field spec.ports[1].port",
        "11:12: error: Service n/s: spec.ports[2].port: 70000 is not a valid port number",
        "11:29: error: Service n/s: spec.ports[2].nodePort must be an integer, not a string",
        '13:33: error: Service n/s: status.loadBalancer.ingress[0].ip: "lb" is not an IP address',
        '16:7: error: unsupported kind "Deployment" (kspec reads Service, EndpointSlice, Node, Pod, '
        "KubeProxyConfiguration, NodeFacts, ConfigMap and List)",
        '19:13: error: EndpointSlice n/e: apiVersion must be "discovery.k8s.io/v1", not "discovery.k8s.io/v1beta1"',
        '27:26: error: EndpointSlice n/e2: endpoints[0].addresses[0]: "10.1.2.x" is not an IP address',
        "27:38: error: EndpointSlice n/e2: endpoints[1].addresses must hold at least one address",
        "31:11: error: Node: missing required field metadata.name",
        "33:1: error: expected a Kubernetes object (a mapping), not a list",
    ]


def test_load_k8s_raises_one_error_with_everything(write):
    with pytest.raises(KspecError) as caught:
        load(write, "apiVersion: v2\nkind: Service\n---\nkind: Pod\n")
    assert [d.message for d in caught.value.diagnostics] == [
        'Service: apiVersion must be "v1", not "v2"', "Pod: missing required field apiVersion"]
    assert all(d.severity is Severity.ERROR for d in caught.value.diagnostics)


def test_yaml_syntax_errors_are_positioned(write):
    (problem,) = problems(write, "apiVersion: v1\nkind: [Service\n")
    # libyaml and the pure-Python parser word it differently.
    assert problem.startswith("3:1: error: invalid YAML: ") and "expected ',' or ']'" in problem


def test_duplicates(write):
    path = write(SVC + "---\n" + SVC)
    with pytest.raises(KspecError) as caught:
        load_k8s([path])
    assert str(caught.value) == (
        f"{path}:14:1: error: Service shop/web: defined twice (the first is at {path}:1:1)")


def test_configuration_errors(write):
    text = """
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    kind: KubeProxyConfiguration
    mode: nftables
    clusterCIDR: 10.244.0.0/16,bogus
    detectLocalMode: BridgeInterface
    iptables: {masqueradeBit: 32}
    nodePortAddresses: [primary, 10.0.0.0/40]
    portRange: 32767-30000
    ---
    apiVersion: kspec.dev/v1alpha1
    kind: NodeFacts
    markLiteral: 0x4000
    randomFully: yes please
    nfacctUnavailable: [bogus_counter]
    colour: blue
    """
    assert problems(write, text) == [
        '3:7: error: KubeProxyConfiguration: mode: kspec models the iptables mode, not "nftables"',
        '4:14: error: KubeProxyConfiguration: clusterCIDR: "bogus" is not a CIDR',
        "5:18: error: KubeProxyConfiguration: detectLocal.bridgeInterface must be set when detectLocalMode is "
        "BridgeInterface",
        "6:27: error: KubeProxyConfiguration: iptables.masqueradeBit: 32 is not between 0 and 31",
        '7:21: error: KubeProxyConfiguration: nodePortAddresses[0]: "primary" must be the only entry of '
        'nodePortAddresses',
        '7:30: error: KubeProxyConfiguration: nodePortAddresses[1]: "10.0.0.0/40" is not a CIDR',
        '8:12: error: KubeProxyConfiguration: portRange: "32767-30000" is not a port range (like "30000-32767")',
        '12:14: error: NodeFacts: markLiteral must be a string, not an integer (quote it: "0x4000")',
        "13:14: error: NodeFacts: randomFully must be a boolean, not a string",
        '14:21: error: NodeFacts: nfacctUnavailable[0]: unknown counter "bogus_counter" '
        "(expected one of ct_state_invalid_dropped_pkts, localhost_nps_accepted_pkts)",
        '15:1: error: NodeFacts: unknown field "colour" '
        "(expected randomFully, nfacct, tcpLiberal, markLiteral, nfacctUnavailable)",
    ]


# ------------------------------------------------------------------------------ kubeadm ConfigMap


def test_kube_proxy_configuration_inside_kubeadms_configmap(write):
    cm = """
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: kube-proxy, namespace: kube-system}
    data:
      config.conf: |-
        apiVersion: kubeproxy.config.k8s.io/v1alpha1
        kind: KubeProxyConfiguration
        clusterCIDR: 10.244.0.0/16
        iptables:
          masqueradeBit: 99
      kubeconfig.conf: |-
        apiVersion: v1
        kind: Config
    """
    assert problems(write, SVC, proxy_text=cm) == [
        # Positions inside the embedded text point into the ConfigMap's file.
        "10:22: error: KubeProxyConfiguration: iptables.masqueradeBit: 99 is not between 0 and 31"]
    cluster = load_k8s([write(SVC)], write(cm.replace("99", "14"), "proxy.yaml"))
    assert cluster.proxy.cluster_cidrs == (net("10.244.0.0/16"),)
    assert (cluster.proxy.span.line, cluster.proxy.span.column) == (6, 5)


def test_configmap_as_json(write):
    config = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmasqueradeAll: x\n"
    cm = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy"},
                     "data": {"config.conf": config}}, indent=2)
    # A quoted string cannot be mapped line by line: the diagnostics point at the string.
    assert problems(write, SVC, proxy_text=cm) == []
    bad = cm.replace("masqueradeAll: x", "iptables: 3")
    assert problems(write, SVC, proxy_text=bad) == [
        "8:20: error: KubeProxyConfiguration: iptables must be a mapping, not an integer"]


def test_configmap_without_a_configuration_is_ignored(write):
    cm = "{apiVersion: v1, kind: ConfigMap, metadata: {name: other, namespace: x}, data: {a: b}}"
    assert problems(write, SVC + "---\n" + cm) == [
        "13:1: warning: ConfigMap x/other: holds no KubeProxyConfiguration; ignored"]


def test_non_integer_numbers_are_reported(write):
    text = SVC.replace("targetPort: 8080", "targetPort: 80.5")
    assert problems(write, text) == [
        "11:17: error: Service shop/web: spec.ports[0].targetPort must be an integer or a string, not a number"]


@pytest.mark.parametrize("text, message", [
    ("&a [*a]", "1:1: error: invalid YAML: an alias refers to its own anchor"),
    ("[" * 3000 + "]" * 3000, None),
])
def test_hostile_yaml_is_an_error_not_a_crash(write, text, message):
    (problem,) = problems(write, text)
    assert problem == message if message else "error: invalid YAML" in problem


def test_aliases_are_expanded_once(write):
    laughs = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    assert "Service: missing required field" in problems(write, laughs + "kind: Service\napiVersion: v1\n")[0]


def test_the_cluster_wide_checks_run_for_kubernetes_objects_too(write):
    # kspec.consistency: the same checks as a .k spec's (issue 11, part 2); node ports only warn here.
    text = """
    apiVersion: v1
    kind: Node
    metadata: {name: a}
    spec: {podCIDR: 10.244.0.0/16}
    ---
    apiVersion: v1
    kind: Node
    metadata: {name: b}
    spec: {podCIDR: 10.244.1.0/24}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: p, namespace: default}
    spec: {nodeName: a}
    status: {podIP: 10.99.0.5}
    """
    found = problems(write, text)
    assert any("error: Node: pod CIDR 10.244.1.0/24 of node b overlaps 10.244.0.0/16 of node a" in p for p in found)
    assert any("error: Pod: pod IP 10.99.0.5 of default/p is outside the pod CIDR 10.244.0.0/16" in p for p in found)


def test_topology_hints_and_the_node_zone_are_read(write):
    text = """
    apiVersion: v1
    kind: Node
    metadata: {name: a, labels: {topology.kubernetes.io/zone: zone-a}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: shop}
    spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}], trafficDistribution: PreferClose}
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
    addressType: IPv4
    ports: [{name: http, port: 8080}]
    endpoints:
    - addresses: [10.244.1.5]
      nodeName: a
      hints: {forZones: [{name: zone-a}], forNodes: [{name: a}]}
    """
    cluster = load(write, text)
    assert cluster.node("a").zone == "zone-a"
    [ep] = cluster.services[0].endpoints
    assert ep.zone_hints == ("zone-a",) and ep.node_hints == ("a",)


@pytest.mark.parametrize("text", ["", "---\n", "# only a comment\n"])
def test_a_file_without_objects_is_bad_input(write, text: str):
    # It loaded as an empty cluster: "0 checks", exit 0 (issue 12).
    assert problems(write, text) == ["1:1: error: " + f"{write(text)} holds no Kubernetes objects"]


def test_a_bad_utf8_byte_is_an_error_at_its_position(tmp_path: Path):
    path = tmp_path / "objects.yaml"
    path.write_bytes(b"apiVersion: v1\nkind: Service\nmetadata: {name: caf\xe9}\n")
    with pytest.raises(KspecError) as err:
        load_k8s([str(path)])
    [diag] = err.value.diagnostics
    assert (diag.span.line, diag.span.column, diag.message) == (3, 21, "invalid UTF-8 byte 0xe9")


def test_every_supported_kind_has_its_reader():
    from kspec.ingest import k8s

    assert set(k8s._READERS) == set(k8s.API_VERSIONS)
