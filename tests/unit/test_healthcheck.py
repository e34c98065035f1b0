"""What kube-proxy's /healthz answers per node (pkg/proxy/healthcheck, EndpointsMap.LocalReadyEndpoints)."""
from __future__ import annotations

import ipaddress
import json

from kspec import ir
from kspec.compiler.healthcheck import healthy_nodes, healthz, local_ready_endpoints

P = ir.Protocol.TCP


def _service(*endpoints: ir.Endpoint) -> ir.Service:
    return ir.Service("default", "lb", ir.ServiceType.LOAD_BALANCER, (ipaddress.ip_address("10.0.0.10"),),
                      (ir.ServicePort("http", P, 80, 8080, 30080), ir.ServicePort("https", P, 443, 8443, 30443)),
                      endpoints=endpoints, external_traffic_policy=ir.TrafficPolicy.LOCAL,
                      health_check_node_port=32122)


def _ep(ip: str, node: str, **conditions) -> ir.Endpoint:
    ports = (ir.EndpointPort("http", P, 8080), ir.EndpointPort("https", P, 8443))
    return ir.Endpoint(ipaddress.ip_address(ip), ports, node, **conditions)


def test_counts_distinct_ready_local_ips_over_all_ports():
    svc = _service(_ep("10.244.1.5", "node1"), _ep("10.244.1.6", "node1", ready=False, terminating=True),
                   _ep("10.244.2.5", "node2"))
    proxy = ir.ProxyConfig()
    assert local_ready_endpoints(svc, "node1", proxy) == 1  # two ports, one IP; the terminating one not counted
    assert local_ready_endpoints(svc, "node3", proxy) == 0
    cluster = ir.Cluster("c", tuple(ir.Node(n, (ipaddress.ip_address(f"10.240.0.{i}"),)) for i, n in
                                    enumerate(("node1", "node2", "node3"), 1)), services=(svc,))
    assert healthy_nodes(cluster, svc) == ("node1", "node2")


def test_no_health_check_without_local_policy():
    from dataclasses import replace

    svc = replace(_service(_ep("10.244.1.5", "node1")), external_traffic_policy=ir.TrafficPolicy.CLUSTER)
    assert local_ready_endpoints(svc, "node1", ir.ProxyConfig()) is None


def test_body_and_status_match_kube_proxy():
    status, body = healthz(_service(), 2)
    assert status == 200
    assert body == ('{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "lb"\n\t},\n'
                    '\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}')
    assert json.loads(body)["localEndpoints"] == 2
    assert healthz(_service(), 0)[0] == 503
    assert healthz(_service(), 3, proxy_healthy=False)[0] == 503
