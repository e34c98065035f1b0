"""kube-proxy's helper-level table tests (``tests/data/kube-proxy-helpers/``, transcribed as data with the
upstream file, test and case beside each) against the kspec code that computes the same thing:

* ``util/nodeport_addresses_test.go`` -> ``compiler.nodeportaddresses.NodePortAddresses``;
* ``servicechangetracker_test.go`` ``TestServiceToServiceMap`` -> a Service object through kspec's Kubernetes
  ingest, then ``compiler.nodeview.port_infos`` (kube-proxy's ServicePortInfo);
* ``endpointslicecache_test.go`` (the endpoints of each service port as one node keeps them) -> EndpointSlice
  objects through the ingest, then ``nodeview.node_endpoints``.

Each file is run at the kube-proxy release its cases describe (``RELEASE``); a case of a later release is run
at that release (``LATER``, with the upstream change).
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path

import pytest

from kspec import ir, releases
from kspec.compiler.nodeportaddresses import NodePortAddresses
from kspec.compiler.nodeview import EndpointView, ServicePortInfo, categorise, node_endpoints, port_infos
from kspec.ingest.k8s import load_k8s

DATA = Path(__file__).resolve().parent.parent / "data" / "kube-proxy-helpers"
FAMILIES = {"IPv4": ir.IPFamily.V4, "IPv6": ir.IPFamily.V6}
# The release each file's cases describe (see its README): servicechangetracker_test.go emulates 1.31 to
# switch LoadBalancerIPMode off.
RELEASE = {"endpointslicecache.json": (1, 34), "servicechangetracker.json": (1, 31),
           "topology-categorize-endpoints.json": (1, 34)}
# Cases of a later release: kubernetes PR #135593 (1.36) keeps a non-terminating duplicate.
LATER = {"with duplicate Endpoints, prefer non-terminating": (1, 36)}


def _cases(name: str, tests: tuple[str, ...]):
    cases = [c for c in json.loads((DATA / name).read_text()) if c["upstream"]["test"] in tests]
    return [pytest.param(c, LATER.get(c["upstream"]["case"], RELEASE.get(name, releases.NEWEST)),
                         id=f"{c['upstream']['test']}: {c['upstream']['case']}") for c in cases]


# ------------------------------------------------------------------------------ nodePortAddresses


@pytest.mark.parametrize("case, release", _cases("nodeport-addresses.json", ("TestGetNodeIPs",
                                                                             "TestContainsIPv4Loopback")))
def test_node_port_addresses(case, release):
    cidrs = [ipaddress.ip_network(c, strict=False) for c in case["input"]["nodeport_addresses"]]
    addresses = [ipaddress.ip_interface(a).ip for iface in case["input"].get("interfaces", ()) for a in iface["addrs"]]
    for family_name, expected in case["expected"].items():
        npa = NodePortAddresses.of(FAMILIES[family_name], cidrs)
        if "match_all" in expected:
            assert npa.match_all == expected["match_all"], family_name
            assert sorted(map(str, npa.node_ips(addresses))) == sorted(expected["node_ips"]), family_name
        if "contains_ipv4_loopback" in expected:
            assert npa.contains_ipv4_loopback == expected["contains_ipv4_loopback"], family_name


# ------------------------------------------------------------------------------- ServicePortInfo


def _service_object(svc: dict) -> dict:
    spec: dict = {"type": svc["type"] or "ClusterIP",
                  "ports": [{"name": p["name"], "protocol": p["protocol"], "port": p["port"],
                             **({"nodePort": p["node_port"]} if p["node_port"] else {})} for p in svc["ports"]]}
    if svc.get("cluster_ip") is not None:
        spec["clusterIP"] = svc["cluster_ip"]
    if svc.get("cluster_ips"):
        spec["clusterIPs"] = svc["cluster_ips"]
    for key, field in (("external_ips", "externalIPs"), ("load_balancer_source_ranges", "loadBalancerSourceRanges")):
        if svc.get(key):
            spec[field] = svc[key]
    for key, field in (("external_traffic_policy", "externalTrafficPolicy"),
                       ("health_check_node_port", "healthCheckNodePort"), ("external_name", "externalName"),
                       ("load_balancer_ip", "loadBalancerIP")):
        if svc.get(key):
            spec[field] = svc[key]
    ingress = [{"ip": i["ip"], **({"ipMode": i["ip_mode"]} if i.get("ip_mode") else {})}
               for i in svc.get("load_balancer_ingress") or ()]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": svc["namespace"], "name": svc["name"]},
            "spec": spec, **({"status": {"loadBalancer": {"ingress": ingress}}} if ingress else {})}


def _load(tmp_path: Path, objects: list[dict]) -> ir.Cluster:
    path = tmp_path / "objects.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    return load_k8s([str(path)])


@pytest.mark.parametrize("case, release", _cases("servicechangetracker.json", ("TestServiceToServiceMap",)))
def test_service_port_info(case, release, tmp_path):
    given = case["input"]
    family = FAMILIES[given["ip_family"]]
    got = []
    if given["service"] is not None:
        cluster = _load(tmp_path, [_service_object(given["service"])])
        proxy = dataclasses.replace(cluster.proxy, lb_ip_mode_gate=given["load_balancer_ip_mode_enabled"],
                                    kube_proxy_version=release)
        for svc in cluster.services:
            for info in port_infos(svc, family, proxy):
                got.append({
                    "service_port_name": {"namespace": svc.namespace, "name": svc.name, "port": info.port.name,
                                          "protocol": info.port.protocol.value},
                    "cluster_ip": str(info.cluster_ip), "port": info.port.port, "protocol": info.port.protocol.value,
                    "health_check_node_port": info.health_check_node_port,
                    "external_ips": sorted(map(str, info.external_ips)),
                    "load_balancer_source_ranges": sorted(map(str, info.source_ranges)),
                    "load_balancer_vips": sorted(map(str, info.lb_ips))})
    expected = [{**sp, **{k: sorted(sp[k]) for k in ("external_ips", "load_balancer_source_ranges",
                                                       "load_balancer_vips")}}
                for sp in case["expected"]["service_ports"]]
    key = lambda sp: (sp["service_port_name"]["port"], sp["protocol"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)


# ------------------------------------------------------------------------------ EndpointSliceCache


def _slices(given: dict) -> list[dict]:
    """The slices as the cache holds them: applied in order, a later slice of the same name replacing."""
    by_name: dict[tuple, dict] = {}
    for s in given["endpoint_slices"]:
        by_name[(s["namespace"], s["name"])] = s
    return list(by_name.values())


def _slice_object(s: dict) -> dict:
    endpoints = []
    for ep in s["endpoints"]:
        item: dict = {"addresses": ep["addresses"]}
        conditions = {k: v for k, v in (ep.get("conditions") or {}).items() if v is not None}
        if conditions:
            item["conditions"] = conditions
        if ep.get("node_name"):
            item["nodeName"] = ep["node_name"]
        endpoints.append(item)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": s["address_type"],
            "metadata": {"namespace": s["namespace"], "name": s["name"],
                         "labels": {"kubernetes.io/service-name": s["service_name"]}},
            "ports": [{k: v for k, v in p.items() if v is not None} for p in s["ports"] or ()],
            "endpoints": endpoints}


def _services_for(slices: list[dict]) -> list[dict]:
    """A Service per slice owner, with one port per (name, protocol) its slices carry."""
    owners: dict[tuple, dict] = {}
    for s in slices:
        ports = owners.setdefault((s["namespace"], s["service_name"]), {})
        for p in s["ports"] or ():
            if p.get("port") is not None:
                ports[(p.get("name") or "", p.get("protocol") or "TCP")] = p["port"]
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name},
             "spec": {"clusterIP": f"10.96.0.{i + 1}",
                      "ports": [{"name": pname, "protocol": proto, "port": 1000 + j}
                                for j, (pname, proto) in enumerate(sorted(ports))]}}
            for i, ((ns, name), ports) in enumerate(sorted(owners.items()))]


@pytest.mark.parametrize("case, release", _cases("endpointslicecache.json",
                                                 ("TestEndpointsMapFromESC", "TestEndpointInfoByServicePort")))
def test_endpoints_of_each_service_port(case, release, tmp_path):
    given = case["input"]
    slices = _slices(given)
    cluster = _load(tmp_path, _services_for(slices) + [_slice_object(s) for s in slices])
    cluster = dataclasses.replace(cluster, proxy=dataclasses.replace(cluster.proxy, kube_proxy_version=release))
    node = given["node_name"]
    got = {}
    for svc in cluster.services:  # the test asks for one Service's map
        if (svc.namespace, svc.name) != (given["service"]["namespace"], given["service"]["name"]):
            continue
        for info in port_infos(svc, ir.IPFamily.V4, cluster.proxy):
            eps = node_endpoints(info, node)
            if eps:
                got[(svc.namespace, svc.name, info.port.name, info.port.protocol.value)] = sorted(
                    (ep.text, ep.node == node and node != "", ep.ready, ep.serving, ep.terminating) for ep in eps)
    expected = {}
    wanted = case["expected"]
    for entry in wanted["endpoints_map"] if "endpoints_map" in wanted else wanted["endpoint_info_by_service_port"]:
        spn = entry["service_port_name"]
        expected[(spn["namespace"], spn["name"], spn["port"], spn["protocol"])] = sorted(
            (ep["endpoint"], ep["is_local"], ep["ready"], ep["serving"], ep["terminating"])
            for ep in entry["endpoints"])
    assert got == {k: v for k, v in expected.items() if v}


# ------------------------------------------------------------------------------------------ topology


def _view(ep: dict, node: str) -> EndpointView:
    address, _, port = ep["endpoint"].rpartition(":")
    ip = ipaddress.ip_address(address.strip("[]"))
    return EndpointView(ip, int(port), node if ep["is_local"] else f"not-{node}", ep["ready"], ep["serving"],
                        ep["terminating"], ep["endpoint"], f"sep-{ep['endpoint']}", address,
                        tuple(ep.get("zone_hints") or ()), tuple(ep.get("node_hints") or ()))


@pytest.mark.parametrize("case, release", _cases("topology-categorize-endpoints.json", ("TestCategorizeEndpoints",)))
def test_categorize_endpoints(case, release):
    given = case["input"]
    svc = given["service"]
    node = given["node_name"]
    eps = tuple(sorted((_view(ep, node) for ep in given["endpoints"]), key=lambda e: e.text))
    proxy = ir.ProxyConfig(kube_proxy_version=release)
    port = ir.ServicePort("p", ir.Protocol.TCP, 80, node_port=svc["node_port"])
    info = ServicePortInfo(
        service=ir.Service("ns", "svc"), port=port, name="ns/svc:p", protocol="tcp", hash="X",
        cluster_ip=ipaddress.ip_address("10.96.0.1"),
        external_ips=tuple(map(ipaddress.ip_address, svc["external_ips"])),
        lb_ips=tuple(map(ipaddress.ip_address, svc["load_balancer_vips"])), source_ranges=(),
        external_policy_local=svc["external_policy_local"], internal_policy_local=svc["internal_policy_local"],
        health_check_node_port=0, affinity_timeout=None, endpoints=eps, hints=releases.topology_hints(proxy))
    zone = (given["node_labels"] or {}).get("topology.kubernetes.io/zone")
    view = categorise(info, node, zone)
    expected = case["expected"]
    texts = lambda found: sorted(ep.text for ep in found)  # noqa: E731
    # kube-proxy's nil (the list is not used) and empty lists both mean "none" to the rules written.
    assert texts(view.cluster if info.uses_cluster_endpoints else ()) == sorted(expected["cluster_endpoints"] or [])
    assert texts(view.local if info.uses_local_endpoints else ()) == sorted(expected["local_endpoints"] or [])
    assert texts(view.reachable) == sorted(expected["all_reachable_endpoints"] or [])
    assert view.has_endpoints == expected["has_any_endpoints"]


# ------------------------------------------------------------------- trafficdist_test.go (the controller)

def _trafficdist_cases():
    cases = [c for c in json.loads((DATA / "trafficdist-hints.json").read_text()) if "slices" in c["expected"]]
    return [pytest.param(c, id=c["upstream"]["case"]) for c in cases]


@pytest.mark.parametrize("case", _trafficdist_cases())
def test_trafficdist_reconcile_hints(case):
    """The EndpointSlice controller's hints for trafficDistribution (kspec.topology, at 1.34), endpoint by
    endpoint; upstream compares with EquateEmpty, so null and [] are alike."""
    from kspec.topology import hints

    distribution = case["input"]["traffic_distribution"]
    got, want = [], []
    for before, after in zip(case["input"]["slices"], case["expected"]["slices"]):
        for ep, expected in zip(before["endpoints"], after["endpoints"]):
            given = ep["hints"] or {}
            endpoint = ir.Endpoint(ipaddress.ip_address(ep["addresses"][0]), (), node=ep["node"],
                                   ready=ep["conditions"]["ready"] is True,  # unset counts as not ready here
                                   zone_hints=tuple(given.get("for_zones") or ()),
                                   node_hints=tuple(given.get("for_nodes") or ()))
            got.append(hints(distribution, endpoint, {ep["node"]: ep["zone"]}, releases.CORPUS))
            wanted = expected["hints"] or {}
            want.append((tuple(wanted.get("for_zones") or ()), tuple(wanted.get("for_nodes") or ())))
    assert got == want
