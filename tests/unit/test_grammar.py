"""The .k front end: parsing, the IR it builds, resolution, and robustness against malformed input."""
from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import pytest

from kspec import ir
from kspec.diagnostics import KspecError, Severity
from kspec.grammar import decode, load, parse_text
from kspec.grammar.printer import format_cluster

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted((REPO / "specs").glob("*.k"))
EVERYTHING = Path(__file__).with_name("everything.k")
ip = ipaddress.ip_address
net = ipaddress.ip_network


def parse(text: str) -> ir.Cluster:
    cluster, warnings = parse_text(text, "t.k")
    assert warnings == []
    return cluster


def first_error(text: str) -> str:
    with pytest.raises(KspecError) as info:
        parse_text(text, "t.k")
    return next(line for line in str(info.value).splitlines() if ": error: " in line)


# ------------------------------------------------------------------------------------------ the seeds


def test_the_seed_specs_exist() -> None:
    names = {p.name for p in SPECS}
    assert {"clusterip.k", "nodeport-cluster.k", "nodeport-local.k", "loadbalancer-cluster.k",
            "loadbalancer-local.k"} <= names


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_seed_spec_loads_without_warnings(path: Path) -> None:
    cluster, warnings = load(path)
    assert warnings == []
    assert [n.name for n in cluster.nodes] == ["node1", "node2", "node3"]
    assert cluster.proxy.cluster_cidrs == (net("10.244.0.0/16"),)
    assert cluster.checks


def test_nodeport_local_seed() -> None:
    cluster, _ = load(REPO / "specs" / "nodeport-local.k")
    (svc,) = cluster.services
    assert svc.key == "default/nodeport" and svc.type is ir.ServiceType.NODE_PORT
    assert svc.cluster_ips == (ip("10.0.171.239"),)
    assert svc.ports == (ir.ServicePort("", ir.Protocol.TCP, 80, target_port=8080, node_port=30080),)
    assert svc.external_traffic_policy is ir.TrafficPolicy.LOCAL
    assert svc.selector == (("run", "source-ip-app"),)
    assert svc.endpoints == (ir.Endpoint(ip("10.244.1.5"), (ir.EndpointPort("", ir.Protocol.TCP, 8080),),
                                         node="node1", pod="default/source-ip-app"),)
    clients = {c.name: c for c in cluster.clients}
    assert clients["internet"] == ir.Client("internet", ir.ClientKind.EXTERNAL, ip=ip("104.132.1.79"))
    assert clients["busybox"] == ir.Client("busybox", ir.ClientKind.POD, ip=ip("10.244.3.8"), node="node3")
    checks = {c.name: c for c in cluster.checks}
    keeps = checks["what is delivered keeps the client's address"]
    assert keeps.clients == ("internet",)
    assert keeps.destination == ir.Destination("default/nodeport", ir.Via.NODE_PORT)
    assert keeps.prop == ir.Implies(ir.Delivered(), ir.SourceIsClient())
    assert keeps.expect is ir.Expectation.HOLDS
    drops = checks["a node without an endpoint drops"]
    assert drops.destination.node == "node2" and drops.prop == ir.Dropped()


def test_expectations_of_the_cluster_policy_seeds() -> None:
    for name in ("nodeport-cluster.k", "loadbalancer-cluster.k"):
        cluster, _ = load(REPO / "specs" / name)
        expects = {c.prop: c.expect for c in cluster.checks}
        assert expects[ir.Implies(ir.Delivered(), ir.SourceIsClient())] is ir.Expectation.VIOLATED
        assert expects[ir.Delivered()] is ir.Expectation.HOLDS


def test_loadbalancer_local_seed() -> None:
    cluster, _ = load(REPO / "specs" / "loadbalancer-local.k")
    (svc,) = cluster.services
    assert svc.health_check_node_port == 32122
    assert svc.load_balancer_ingress == (ir.LoadBalancerIngress(ip("104.198.149.140")),)
    assert cluster.load_balancers == (ir.LoadBalancer("gce", ir.LoadBalancerStyle.VIP_KEPT, True),)


def test_spans_point_at_the_source() -> None:
    cluster, _ = load(REPO / "specs" / "clusterip.k")
    node = cluster.nodes[0]
    text = (REPO / "specs" / "clusterip.k").read_text().splitlines()
    assert node.span.file.endswith("clusterip.k")
    assert text[node.span.line - 1][node.span.column - 1:].startswith("node node1")
    check = cluster.checks[0]
    assert text[check.prop.span.line - 1][check.prop.span.column - 1:].startswith("source == client")


# ---------------------------------------------------------------------------------- every construct


@pytest.fixture(scope="module")
def everything() -> ir.Cluster:
    cluster, warnings = load(EVERYTHING)
    assert warnings == []
    return cluster


def test_proxy_block(everything: ir.Cluster) -> None:
    assert everything.proxy == ir.ProxyConfig(
        cluster_cidrs=(net("10.244.0.0/16"), net("fd00:10:244::/56")),
        detect_local=ir.LocalDetect(ir.LocalDetectMode.BRIDGE_INTERFACE, "cbr0"),
        masquerade_all=True, masquerade_bit=15, localhost_node_ports=False,
        node_port_addresses=(net("10.240.0.0/24"), net("fd00:10:240::/64")),
        node_port_range=(30000, 32700), large_cluster_threshold=500, random_fully=False, nfacct=False,
        nfacct_unavailable=("localhost_nodeports_accepted_packets",), tcp_liberal=True,
        lb_ip_mode_gate=False, mark_literal="0x4000")


def test_nodes_and_pods(everything: ir.Cluster) -> None:
    node1 = everything.node("node1")
    assert node1.ips == (ip("10.240.0.3"), ip("fd00:10:240::3"))
    assert node1.pod_cidrs == (net("10.244.1.0/24"), net("fd00:10:244:1::/64"))
    pods = {p.key: p for p in everything.pods}
    web0 = pods["default/web-0"]
    assert web0.labels == (("app", "web"), ("app.kubernetes.io/part-of", "shop front"), ("tier", "1"))
    assert web0.ports == (ir.ContainerPort("http", 8080), ir.ContainerPort("dns", 53, ir.Protocol.UDP),
                          ir.ContainerPort("", 9090))
    web1 = pods["prod/web-1"]
    assert (web1.namespace, web1.ready, web1.serving, web1.terminating) == ("prod", False, True, True)
    web2 = pods["default/web-2"]
    assert (web2.ready, web2.serving, web2.terminating) == (False, False, False)


def test_selector_endpoints_resolve_named_target_ports(everything: ir.Cluster) -> None:
    web = {s.key: s for s in everything.services}["default/web"]
    tcp, udp = ir.Protocol.TCP, ir.Protocol.UDP
    assert web.endpoints == (  # web-1 lives in namespace prod, so the selector does not reach it
        ir.Endpoint(ip("10.244.1.5"), (ir.EndpointPort("http", tcp, 8080), ir.EndpointPort("dns", udp, 53)),
                    node="node1", pod="default/web-0"),
        ir.Endpoint(ip("10.244.2.9"), (ir.EndpointPort("http", tcp, 8082), ir.EndpointPort("dns", udp, 5353)),
                    node="node2", ready=False, serving=False, pod="default/web-2"),
    )
    assert web.ports[0] == ir.ServicePort("http", tcp, 80, target_port="http", node_port=30080)
    assert web.load_balancer_ingress == (ir.LoadBalancerIngress(ip("104.198.149.140")),
                                         ir.LoadBalancerIngress(ip("104.198.149.141"), ir.IngressMode.PROXY))
    assert web.session_affinity == ir.SessionAffinity(600)
    assert web.health_check_node_port == 32122
    assert web.internal_traffic_policy is ir.TrafficPolicy.LOCAL
    assert web.cluster_ips == (ip("10.0.171.239"), ip("fd00:10:96::1234"))


def test_explicit_endpoints_are_sorted_and_get_default_ports(everything: ir.Cluster) -> None:
    db = {s.key: s for s in everything.services}["prod/db"]
    assert db.selector is None
    sql = ir.EndpointPort("sql", ir.Protocol.TCP, 5432)
    repl = ir.EndpointPort("replication", ir.Protocol.SCTP, 6000)
    assert db.endpoints == (
        ir.Endpoint(ip("10.244.1.30"), (sql, repl), node="node1"),
        ir.Endpoint(ip("10.244.2.30"), (sql, repl), node="node2", ready=False, serving=False, terminating=True),
        ir.Endpoint(ip("192.168.7.7"), (), ready=False, serving=True, pod="prod/web-1"),
    )


def test_other_service_kinds(everything: ir.Cluster) -> None:
    services = {s.key: s for s in everything.services}
    assert services["default/headless"].cluster_ips == ()
    assert services["default/external"].external_name == "db.example.com"
    assert services["default/external"].type is ir.ServiceType.EXTERNAL_NAME
    assert services["default/sticky"].session_affinity == ir.SessionAffinity()


def test_clients_and_load_balancers(everything: ir.Cluster) -> None:
    assert everything.clients[1:] == (
        ir.Client("pod-client", ir.ClientKind.POD, ip=ip("10.244.2.20"), node="node2"),
        ir.Client("sidecar", ir.ClientKind.POD, ip=ip("10.244.1.99"), node="node1"),
        ir.Client("node1-process", ir.ClientKind.NODE, node="node1"),
        ir.Client("node2-process", ir.ClientKind.NODE, ip=ip("10.240.0.5"), node="node2", uid=1000, gid=1000),
    )
    assert everything.load_balancers[1] == ir.LoadBalancer("elb", ir.LoadBalancerStyle.NODE_PORT, False)


def test_checks_and_precedence(everything: ir.Cluster) -> None:
    first, precedence, others, external = everything.checks
    assert first.destination == ir.Destination("default/web", ir.Via.NODE_PORT, "http")
    assert first.prop == ir.Implies(ir.Delivered(), ir.And(ir.SourceIsClient(),
                                                           ir.EndpointIn(("default/web-0", "prod/web-1"))))
    assert precedence.clients == () and precedence.expect is ir.Expectation.VIOLATED
    assert precedence.destination == ir.Destination("prod/db", ir.Via.NODE_PORT, "sql", "node2")
    # not binds tightest, then and, or, and implies (right associative) loosest.
    assert precedence.prop == ir.Implies(
        ir.Or(ir.And(ir.Not(ir.Dropped()), ir.Rejected()), ir.StaysOnNode()),
        ir.Implies(ir.SourceInNodes(), ir.Or(ir.Delivered(), ir.Dropped())))
    assert others.prop == ir.Not(ir.And(ir.Delivered(), ir.Not(ir.SourceIsClient())))
    assert others.expect is ir.Expectation.HOLDS
    assert others.destination.via is ir.Via.LOAD_BALANCER
    assert external.destination.via is ir.Via.EXTERNAL_IP


# ---------------------------------------------------------------------------------- small semantics

MINI = """cluster c {{
  node n1 {{ ip 10.240.0.3  pod_cidr 10.244.1.0/24 }}
  pod p on n1 {{ ip 10.244.1.5  labels {{ app = a }}  {conditions} }}
  service s {{ cluster_ip 10.0.0.1  selector app = a  port 80/tcp }}
}}"""


@pytest.mark.parametrize("words, flags", [
    ("", (True, True, False)),
    ("not ready", (False, False, False)),
    ("terminating", (False, True, True)),
    ("terminating not serving", (False, False, True)),
    ("not ready serving", (False, True, False)),
])
def test_conditions_flow_from_pod_to_endpoint(words: str, flags: tuple[bool, bool, bool]) -> None:
    cluster = parse(MINI.format(conditions=words))
    pod, endpoint = cluster.pods[0], cluster.services[0].endpoints[0]
    assert (pod.ready, pod.serving, pod.terminating) == flags
    assert (endpoint.ready, endpoint.serving, endpoint.terminating) == flags
    assert endpoint.ports == (ir.EndpointPort("", ir.Protocol.TCP, 80),)  # no target: the service port


def test_keywords_are_names_where_a_name_is_expected() -> None:
    cluster = parse('cluster cluster { node ready { ip 10.0.0.1 }  client port on node ready }')
    assert cluster.name == "cluster" and cluster.nodes[0].name == "ready"


def test_errors_carry_the_warnings_too() -> None:
    text = MINI.format(conditions="").replace("selector app = a", "selector app = b").replace("n1 {", "n2 {", 1)
    with pytest.raises(KspecError) as info:
        parse_text(text, "t.k")
    severities = [d.severity for d in info.value.diagnostics]
    assert Severity.ERROR in severities and Severity.WARNING in severities


def test_settings_given_twice_and_label_keys_given_twice() -> None:
    assert first_error("cluster c { node n { ip 10.0.0.1  ip 10.0.0.2 } }") == \
        "t.k:1:35: error: 'ip' is given twice"
    assert first_error('cluster c { service s { cluster_ip None  selector a = b, a = c } }') == \
        "t.k:1:58: error: label 'a' is given twice"


def test_missing_pieces_are_reported() -> None:
    assert first_error("cluster c { node n { } }") == "t.k:1:18: error: node n has no ip"
    assert first_error('cluster c { check "x" { assert delivered } }') == \
        't.k:1:19: error: check "x" needs a destination (`to SERVICE via ...`)'


def test_load_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(KspecError, match="cannot read"):
        load(tmp_path / "missing.k")
    bad = tmp_path / "bad.k"
    bad.write_bytes(b"cluster c {\n  node n\xff { }\n}\n")
    with pytest.raises(KspecError) as info:
        load(bad)
    assert str(info.value) == f"{bad}:2:9: error: invalid UTF-8 byte 0xff"


# ---------------------------------------------------------------------------------------- robustness


def _only_kspec_errors(data: bytes) -> None:
    try:
        parse_text(decode(data, "f.k"), "f.k")
    except KspecError as err:
        assert err.diagnostics and all(d.span is None or d.span.line >= 1 for d in err.diagnostics)


@pytest.mark.parametrize("path", SPECS + [EVERYTHING], ids=[p.stem for p in SPECS + [EVERYTHING]])
def test_truncations_give_diagnostics_not_tracebacks(path: Path) -> None:
    data = path.read_bytes()
    for end in range(0, len(data), 7):
        _only_kspec_errors(data[:end])


@pytest.mark.parametrize("path", SPECS + [EVERYTHING], ids=[p.stem for p in SPECS + [EVERYTHING]])
def test_mutations_give_diagnostics_not_tracebacks(path: Path) -> None:
    rng = random.Random(path.name)
    data = path.read_bytes()
    alphabet = b'{}()=,:/-># "\n\xff\x00\xc3abz019.'
    for _ in range(60):
        mutant = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(mutant))
            choice = rng.randrange(3)
            if choice == 0:
                mutant[where] = rng.choice(alphabet)
            elif choice == 1:
                del mutant[where]
            else:
                mutant[where:where] = bytes([rng.choice(alphabet)])
        _only_kspec_errors(bytes(mutant))


@pytest.mark.parametrize("text", [
    "", "\x00", "cluster", "cluster c {", "}" * 10_000, "(" * 10_000,
    'cluster c { check "x" { to s via cluster_ip  assert ' + "(" * 5000 + "delivered" + ")" * 5000 + " } }",
    'cluster c { check "x" { to s via cluster_ip  assert ' + "delivered and " * 3000 + "delivered } }",
    "cluster c { node n { ip " + "9" * 5000 + ".1.1.1 } }",
    "cluster c { proxy { node_port_range 99999999999999999999999-1 } }",
    'cluster c { check "\\', "cluster c { node n { ip ::::::::::::::::::::::: } }",
])
def test_hostile_inputs(text: str) -> None:
    _only_kspec_errors(text.encode())


@pytest.mark.parametrize("port", ["dns", "db", "a1", "face", "cafe-2", "e"])
def test_a_port_name_of_hex_letters_is_not_an_ipv6_address(port: str):
    # `web:dns` lexed as `web` and an IPv6 address `:dns` (one colon was enough): now an address needs two.
    text = f"""cluster c {{
      node n {{ ip 10.0.0.1  pod_cidr 10.244.0.0/24 }}
      pod p on n {{ ip 10.244.0.5  labels {{ app = web }}  ports {{ {port} = 53/udp }} }}
      service web {{ cluster_ip 10.96.0.10  selector app = web  port {port} 53 -> 53/udp }}
      client c from pod p
      check "x" {{ from c  to web:{port} via cluster_ip  assert delivered }}
    }}"""
    cluster, diagnostics = parse_text(text)
    assert not [d for d in diagnostics if d.severity is Severity.ERROR], diagnostics
    assert cluster.checks[0].destination.port == port
    again, _ = parse_text(format_cluster(cluster))
    assert again == cluster


def test_session_affinity_reads_kubernetes_spelling_and_prints_it():
    # `type LoadBalancer` and `external_traffic_policy Local` are Kubernetes' words; affinity was not (issue 12).
    text = """cluster c {{
      node n {{ ip 10.0.0.1 }}
      service a {{ cluster_ip 10.96.0.1  port 80/tcp  session_affinity {} timeout 60 }}
    }}"""
    kube, _ = parse_text(text.format("ClientIP"))
    old, _ = parse_text(text.format("client_ip"))
    assert kube == old and kube.services[0].session_affinity.timeout_seconds == 60
    assert "session_affinity ClientIP timeout 60" in format_cluster(kube)
    none, _ = parse_text(text.format("None").replace(" timeout 60", ""))
    assert none.services[0].session_affinity is None
