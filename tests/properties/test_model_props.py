"""Model invariants over Hypothesis-generated clusters: what the Kubernetes documentation promises holds, and
the violations it warns about are found.

* The built-in properties (ClusterIP traffic keeps the pod's address, nodes reach a Service with ready
  endpoints, externalTrafficPolicy Local keeps the client address and stays on the node, health checks) are
  proved on every generated cluster with kube-proxy's default settings.
* "Source IP for Services with Type=NodePort": with externalTrafficPolicy Cluster, a packet from outside that
  enters at a node without a local endpoint is SNATed to that node's address; kspec must find it every time.
* Endpoint selection: every ready endpoint can be chosen, and while some endpoint is ready no other is.

(The Z3 verdicts and the concrete tracer are compared packet by packet in tests/verifier/test_differential.py,
on these same generated clusters.)
"""
from __future__ import annotations

from hypothesis import assume, given

from kspec import ir
from kspec import strategies as ks
from kspec.verifier import verify

TIMEOUT_MS = 10_000


def _failures(results) -> list[str]:
    return [f"{r.check.name}: {r.verdict.value} {r.reason} {r.replay_error}".strip()
            for r in results if not r.as_expected or r.replay_error]


@given(ks.clusters(max_nodes=3, max_services=2))
def test_builtin_properties_hold_where_the_docs_say_they_must(cluster: ir.Cluster) -> None:
    results = verify(cluster, (), builtins=True, timeout_ms=TIMEOUT_MS)
    assert not _failures(results), "\n".join(_failures(results))


def _nodes_without_local_endpoint(cluster: ir.Cluster, svc: ir.Service) -> list[ir.Node]:
    ready_nodes = {ep.node for ep in svc.endpoints if ep.ready}
    return [n for n in cluster.nodes if n.name not in ready_nodes]


@given(ks.clusters(max_nodes=3, max_services=1, min_pods=1,
                   services=ks.service_shapes(types=(ir.ServiceType.NODE_PORT, ir.ServiceType.LOAD_BALANCER),
                                              external_policies=(ir.TrafficPolicy.CLUSTER,))))
def test_cluster_policy_snat_is_found_on_every_node_without_a_local_endpoint(cluster: ir.Cluster) -> None:
    svc = cluster.services[0]
    assume(any(ep.ready for ep in svc.endpoints))
    remote = _nodes_without_local_endpoint(cluster, svc)
    assume(remote)
    checks = tuple(
        ir.Check(f"SNAT via {node.name}", ("internet",), ir.Destination(svc.key, ir.Via.NODE_PORT, None, node.name),
                 ir.Implies(ir.Delivered(), ir.SourceIsClient()), ir.Expectation.VIOLATED)
        for node in remote)
    results = verify(cluster, checks, timeout_ms=TIMEOUT_MS)
    assert not _failures(results), "\n".join(_failures(results))
    for node, result in zip(remote, results):
        ce = result.counterexample
        assert ce is not None and ce.seen == str(node.ips[0]), (
            f"via {node.name}: the endpoint should see {node.ips[0]}, saw {ce and ce.seen}")


@given(ks.clusters(max_nodes=2, max_services=1, max_pods_per_node=3, min_pods=1,
                   services=ks.service_shapes(types=(ir.ServiceType.CLUSTER_IP,),
                                              internal_policies=(ir.TrafficPolicy.CLUSTER,))))
def test_every_ready_endpoint_and_only_ready_ones_are_chosen(cluster: ir.Cluster) -> None:
    svc = cluster.services[0]
    ready = [ep.pod for ep in svc.endpoints if ep.ready]
    assume(ready)
    others = tuple(ep.pod for ep in svc.endpoints if not ep.ready)
    client = (f"{cluster.nodes[0].name}-process",)
    dest = ir.Destination(svc.key)
    checks = [ir.Check(f"{pod} can be chosen", client, dest, ir.Not(ir.EndpointIn((pod,))), ir.Expectation.VIOLATED)
              for pod in ready]
    if others:
        checks.append(ir.Check("no endpoint that is not ready is chosen", client, dest,
                               ir.Not(ir.EndpointIn(others))))
    results = verify(cluster, tuple(checks), timeout_ms=TIMEOUT_MS)
    assert not _failures(results), "\n".join(_failures(results))

