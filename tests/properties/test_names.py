"""Names from the whole space Kubernetes allows round-trip through the ``.k`` language: nodes (DNS-1123
subdomains, which may start with a digit), namespaces and pods, Services (DNS-1035 labels), port names
(IANA service names, ``8080-tcp``), zones, clients, and names that are keywords where they stand (a client
``all``, a node ``any``). fmt quotes what the grammar would not read bare."""
from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from kspec import ir
from kspec.grammar import format_cluster, parse_text

KEYWORDS = ("all", "any", "node", "port", "ready", "from", "to", "via", "on", "pod", "external", "cluster_ip")
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def _label(first: str = _ALNUM, max_size: int = 20) -> st.SearchStrategy[str]:
    """A DNS label: lower-case letters, digits and inner hyphens."""
    inner = st.text(_ALNUM + "-", max_size=max_size - 2)
    return st.tuples(st.sampled_from(first), inner, st.sampled_from(_ALNUM)).map(
        lambda parts: (parts[0] + parts[1] + parts[2]) if parts[1] or parts[2] else parts[0])


DNS1123 = _label() | st.sampled_from(KEYWORDS)
DNS1035 = _label("abcdefghijklmnopqrstuvwxyz") | st.sampled_from(KEYWORDS)
SUBDOMAIN = st.lists(_label(max_size=8), min_size=1, max_size=3).map(".".join)
# IANA_SVC_NAME: at most 15 characters, a letter among them, no leading, trailing or double hyphen.
PORT_NAME = _label(max_size=15).filter(lambda n: "--" not in n and any(c.isalpha() for c in n))

ip, net = ipaddress.ip_address, ipaddress.ip_network


@st.composite
def named_clusters(draw) -> ir.Cluster:
    nodes = draw(st.lists(SUBDOMAIN | st.sampled_from(KEYWORDS), min_size=2, max_size=2, unique=True))
    namespace, service = draw(DNS1123), draw(DNS1035)
    pods = draw(st.lists(SUBDOMAIN, min_size=2, max_size=2, unique=True))
    target, port = draw(PORT_NAME), draw(PORT_NAME)
    clients = draw(st.lists(DNS1123, min_size=2, max_size=2, unique=True))
    zone = draw(SUBDOMAIN)
    node_list = tuple(ir.Node(name, (ip(f"10.240.0.{i + 10}"),), (net(f"10.244.{i}.0/24"),), zone=zone)
                      for i, name in enumerate(nodes))
    pod_list = (ir.Pod(namespace, pods[0], nodes[0], ip("10.244.0.5"), (("app", "web"),),
                       (ir.ContainerPort(target, 8080),)),
                ir.Pod(namespace, pods[1], nodes[1], ip("10.244.1.5")))
    svc = ir.Service(namespace, service, ir.ServiceType.NODE_PORT, (ip("10.96.0.10"),),
                     (ir.ServicePort(port, ir.Protocol.TCP, 80, target, 30080),), (("app", "web"),))
    explicit = ir.Service(namespace, f"{service}-x", ir.ServiceType.CLUSTER_IP, (ip("10.96.0.11"),),
                          (ir.ServicePort(port, ir.Protocol.TCP, 81, 8081),), None,
                          endpoints=(ir.Endpoint(ip("10.244.0.9"), (ir.EndpointPort(port, ir.Protocol.TCP, 8081),),
                                                 node=nodes[0], node_hints=(nodes[0],), zone_hints=(zone,)),))
    client_list = (ir.Client(clients[0], ir.ClientKind.POD, ip("10.244.1.5"), nodes[1]),
                   ir.Client(clients[1], ir.ClientKind.NODE, node=nodes[0]))
    key = f"{namespace}/{service}"
    checks = (ir.Check("cluster ip", (clients[0],), ir.Destination(key, ir.Via.CLUSTER_IP, port), ir.Delivered()),
              ir.Check("node port", tuple(clients), ir.Destination(key, ir.Via.NODE_PORT, port, nodes[1]),
                       ir.EndpointIn((f"{namespace}/{pods[0]}",))))
    return ir.Cluster(draw(DNS1123), node_list, ir.ProxyConfig(cluster_cidrs=(net("10.244.0.0/16"),)), pod_list,
                      (svc, explicit), client_list, checks=checks)


@settings(max_examples=150, deadline=None)
@given(named_clusters())
def test_every_allowed_name_round_trips_through_fmt(drawn: ir.Cluster) -> None:
    text = format_cluster(drawn)
    cluster, _ = parse_text(text, "names.k")  # resolved: the selector's endpoints, hints
    assert [n.name for n in cluster.nodes] == [n.name for n in drawn.nodes], text
    assert [p.key for p in cluster.pods] == [p.key for p in drawn.pods]
    assert cluster.checks == drawn.checks and cluster.clients[1] == drawn.clients[1]
    assert cluster.services[0].endpoints[0].ports[0].name == drawn.services[0].ports[0].name
    again = format_cluster(cluster)
    assert parse_text(again, "names.k")[0] == cluster, again
    assert format_cluster(parse_text(again, "names.k")[0]) == again


def test_a_quoted_name_must_be_a_name():
    from kspec.diagnostics import KspecError

    try:
        parse_text('cluster c { node "a b" { ip 10.0.0.1 } }', "bad.k")
    except KspecError as exc:
        assert "bad.k:1:18: error: \"a b\" is not a name" in str(exc)
    else:
        raise AssertionError("a name with a space was accepted")
