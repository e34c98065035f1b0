"""``kspec diff``: which packets two clusters treat differently, exact over every source (issue 14, first
part: specs and releases). The concrete tracer is the independent judge of each difference's packet."""
from __future__ import annotations

import io
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kspec import ir
from kspec import strategies as ks
from kspec.cli import main
from kspec.grammar import load
from kspec.releases import with_release
from kspec.verifier import node_models
from kspec.verifier.diff import diff, outcome
from kspec.verifier.engines.replay import ConcreteCluster
from kspec.verifier.engines.tracer import Packet
from kspec.verifier.model.network import ClusterNetwork
from kspec.verifier.properties import Verifier
from tests.conftest import REPO

DEMO = REPO / "examples/diff/externalips-local.k"


def _verifier(cluster: ir.Cluster) -> Verifier:
    family = cluster.families()[0]
    return Verifier(cluster, ClusterNetwork(cluster, node_models(cluster, family), family))


def _concrete_outcomes(cluster: ir.Cluster, client: ir.Client, dst, dport: int, proto: str, src, sport: int,
                       entry: str | None) -> set:
    family = cluster.families()[0]
    concrete = ConcreteCluster(ClusterNetwork(cluster, node_models(cluster, family), family))
    packet = Packet.of(str(src), str(dst), proto, dport, sport)
    return {outcome(f) for f in concrete.journeys(client, packet, entry)}


def test_the_release_that_made_external_ips_local_shows_exactly_there():
    cluster, _ = load(DEMO)
    old, new = (with_release(cluster, release) for release in ("1.28", "1.29"))
    result = diff(_verifier(old), _verifier(new))
    where = sorted(d.destination.split(" -> ", 1)[1] for d in result.differences)
    assert where == ["external IP 192.0.2.50:80 via node1 (default/web:http)",
                     "external IP 192.0.2.50:80 via node2 (default/web:http)"]
    assert not result.unknown and not result.only_before and not result.only_after and result.compared == 9
    by_node = {d.destination.rsplit("via ", 1)[1].split()[0]: d for d in result.differences}
    # 1.28: Cluster policy, masqueraded; 1.29: Local, the client's address kept (node1) or dropped (node2).
    assert {outcome(f)[2] for f in by_node["node1"].before} == {"10.244.1.1"}
    assert {outcome(f)[2] for f in by_node["node1"].after} == {"client"}
    assert {outcome(f)[0] for f in by_node["node2"].after} == {"dropped"}
    # The concrete tracer, run on the difference's own packet, agrees on both sides.
    for d in result.differences:
        entry = d.destination.rsplit("via ", 1)[1].split()[0]
        client = ir.Client(d.client, ir.ClientKind.EXTERNAL)
        for side, fates in ((old, d.before), (new, d.after)):
            got = _concrete_outcomes(side, client, "192.0.2.50", 80, "tcp", d.src, d.sport, entry)
            assert got == {_concrete_view(outcome(f), d.src) for f in fates}


def _concrete_view(key: tuple, src: str) -> tuple:
    """The model's outcome as the concrete tracer writes it (it knows the source as an address)."""
    return key[:2] + ((src if key[2] == "client" else key[2]),) if key[2] is not None else key


def test_the_cli_reports_both_traces_and_exits_1():
    out, err = io.StringIO(), io.StringIO()
    code = main(["diff", str(DEMO), "--kube-proxy-version", "1.28", "--against-version", "1.29"], out, err)
    text = out.getvalue()
    assert code == 1, err.getvalue()
    assert "difference 2: any external host -> external IP 192.0.2.50:80 via node2" in text
    assert "at kube-proxy 1.28: DELIVERED to default/web on node1, client_address=10.240.0.4" in text
    assert "at kube-proxy 1.29: DROPPED: drop in filter FORWARD on node2" in text
    assert "9 destinations compared: 2 differences" in text


def test_a_spec_against_itself_is_proved_the_same():
    for spec in sorted((REPO / "specs").glob("*.k")):
        out = io.StringIO()
        assert main(["diff", str(spec), str(spec)], out, io.StringIO()) == 0, out.getvalue()
        assert out.getvalue().rstrip().endswith("no difference: proved for every source")


def test_an_edit_of_one_service_changes_only_its_destinations(tmp_path):
    before = REPO / "specs/nodeport-cluster.k"
    after = tmp_path / "edited.k"
    after.write_text(before.read_text().replace("type NodePort", "type NodePort\n    external_traffic_policy Local"))
    out = io.StringIO()
    assert main(["diff", str(before), str(after)], out, io.StringIO()) == 1
    changed = [line for line in out.getvalue().splitlines() if line.startswith("difference ")]
    assert changed and all("node port" in line or ":30080" in line for line in changed), changed


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(ks.clusters(max_nodes=2, max_services=1), st.data())
def test_diff_is_empty_exactly_when_the_concrete_tracer_sees_no_change(cluster, data):
    # diff(A, A) is empty; diff(A, B), B with every Service's external policy flipped, reports a difference
    # only where the concrete tracer, on that very packet, sees the two sides end differently, and where it
    # reports none, drawn packets end alike on both sides.
    assert diff(_verifier(cluster), _verifier(cluster)).same
    flipped = replace(cluster, services=tuple(replace(s, external_traffic_policy=ir.TrafficPolicy.LOCAL
                                                      if s.external_traffic_policy is ir.TrafficPolicy.CLUSTER
                                                      else ir.TrafficPolicy.CLUSTER) for s in cluster.services))
    result = diff(_verifier(cluster), _verifier(flipped))
    assert not result.unknown
    for d in result.differences:
        assert {outcome(f) for f in d.before} != {outcome(f) for f in d.after}
    if result.same and cluster.clients and any(s.cluster_ips and s.ports for s in cluster.services):
        pkt = data.draw(ks.packets(cluster))
        for side in (cluster, flipped):
            got = _concrete_outcomes(side, pkt.client, pkt.dst, pkt.dport, pkt.protocol.lower, pkt.src, pkt.sport,
                                     pkt.entry_node)
            assert got == _concrete_outcomes(cluster, pkt.client, pkt.dst, pkt.dport, pkt.protocol.lower, pkt.src,
                                             pkt.sport, pkt.entry_node)


def _dumps(spec, folder):
    """Each node's rules as its kube-proxy programs them, as the node's iptables-save would print them."""
    from kspec.compiler import compile_node
    from kspec.rules.iptables.ruleset import save_text
    from kspec.verifier.engines.tracer import kube_proxy_state

    cluster, _ = load(spec)
    folder.mkdir()
    for node in cluster.nodes:
        text = save_text(kube_proxy_state(compile_node(cluster, node.name), f"{node.name}.rules"))
        (folder / f"{node.name}.rules").write_text(text)
    return folder


def _drift(spec, folder) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["diff", str(spec), "--rules", str(folder)], out, io.StringIO())
    return code, out.getvalue()


def test_drift_a_node_as_its_kube_proxy_wrote_it_is_no_difference(tmp_path):
    spec = REPO / "specs/nodeport-cluster.k"
    code, text = _drift(spec, _dumps(spec, tmp_path / "dumps"))
    assert code == 0 and "no difference: proved for every source" in text and "note:" not in text


def test_drift_a_missing_sep_chain_is_a_difference(tmp_path):
    spec = REPO / "specs/nodeport-cluster.k"
    dumps = _dumps(spec, tmp_path / "dumps")
    rules = dumps / "node2.rules"
    sep = next(word for line in rules.read_text().splitlines() if line.startswith(":KUBE-SEP-")
               for word in [line[1:].split()[0]])
    rules.write_text("\n".join(line for line in rules.read_text().splitlines() if sep not in line) + "\n")
    code, text = _drift(spec, dumps)
    assert code == 1 and "difference 1:" in text and "node2" in text


def test_drift_a_stale_chain_is_a_note_not_a_difference(tmp_path):
    spec = REPO / "specs/nodeport-cluster.k"
    dumps = _dumps(spec, tmp_path / "dumps")
    rules = dumps / "node1.rules"
    text = rules.read_text().replace("*nat\n", "*nat\n:KUBE-SEP-STALEOLDCHAIN7 - [0:0]\n", 1)
    head, _, tail = text.rpartition("COMMIT\n")  # the nat table's end (it is the last table)
    assert head.rsplit("*", 1)[-1].startswith("nat")
    rules.write_text(head + "-A KUBE-SEP-STALEOLDCHAIN7 -p tcp -j DNAT --to-destination 10.244.9.9:80\nCOMMIT\n" + tail)
    code, out = _drift(spec, dumps)
    assert "no difference: proved for every source" in out
    assert "note: node1: chain KUBE-SEP-STALEOLDCHAIN7 in table nat is left behind" in out


def test_drift_rules_reordered_without_effect_are_no_difference(tmp_path):
    spec = REPO / "specs/nodeport-cluster.k"
    dumps = _dumps(spec, tmp_path / "dumps")
    rules = dumps / "node1.rules"
    lines = rules.read_text().splitlines()
    nat = lines.index("*nat")
    services = [i for i, line in enumerate(lines) if i > nat and line.startswith("-A KUBE-SERVICES ")]
    first, second = services[0], services[1]  # the cluster IP rule and the node ports' rule: disjoint packets
    assert "cluster IP" in lines[first] and "nodeports" in lines[second]
    lines[first], lines[second] = lines[second], lines[first]
    rules.write_text("\n".join(lines) + "\n")
    code, text = _drift(spec, dumps)
    assert code == 0 and "no difference" in text, text


def test_a_reused_pod_ip_reaches_the_new_pod_from_1_36():
    out = io.StringIO()
    code = main(["diff", str(REPO / "examples/diff/reused-pod-ip.k"), "--kube-proxy-version", "1.35",
                 "--against-version", "1.36"], out, io.StringIO())
    text = out.getvalue()
    assert code == 1
    assert "difference 1: a process on node-a -> default/web:http cluster IP 10.96.0.10:80" in text
    assert "at kube-proxy 1.35: REJECTED: reject in filter OUTPUT on node-a" in text
    assert "at kube-proxy 1.36: DELIVERED to default/endpoint-10.244.2.9 on node-b" in text
    assert "3 destinations compared: 1 difference," in text


def test_diff_as_json():
    import json

    out = io.StringIO()
    code = main(["diff", str(DEMO), "--kube-proxy-version", "1.28", "--against-version", "1.29", "--format",
                 "json"], out, io.StringIO())
    data = json.loads(out.getvalue())
    assert code == 1 and data["format"] == "kspec-diff/1" and data["compared"] == 9 and not data["same"]
    node2 = next(d for d in data["differences"] if "via node2" in d["destination"])
    assert [f["disposition"] for f in node2["after"]] == ["dropped"]
    assert node2["before"][0]["client_address"] == "10.240.0.4" and node2["before"][0]["hops"][0]["node"] == "node2"


def test_a_difference_says_the_region_of_sources_it_holds_for(tmp_path):
    import ipaddress

    before = REPO / "specs/loadbalancer-cluster.k"
    after = tmp_path / "ranges.k"
    after.write_text(before.read_text().replace("type LoadBalancer",
                                                "type LoadBalancer\n    load_balancer_source_ranges 203.0.113.0/24"))
    cluster_a, _ = load(before)
    cluster_b, _ = load(after)
    result = diff(_verifier(cluster_a), _verifier(cluster_b))
    regions = [d for d in result.differences if d.client.endswith("any-external-host")]
    assert regions, result.differences
    listed = ipaddress.ip_network("203.0.113.0/24")
    for d in regions:
        region = ipaddress.ip_network(d.region)
        # A proved claim about a whole prefix around the example, which the admitted range stays out of.
        assert ipaddress.ip_address(d.src) in region and not region.overlaps(listed), (d.src, d.region)


def test_diff_for_ci_junit_and_github(tmp_path):
    from junitparser import JUnitXml

    args = ["diff", str(DEMO), "--kube-proxy-version", "1.28", "--against-version", "1.29", "--format"]
    out = io.StringIO()
    assert main([*args, "junit"], out, io.StringIO()) == 1
    path = tmp_path / "diff.xml"
    path.write_text(out.getvalue())
    xml = JUnitXml.fromfile(str(path))
    assert xml.tests == 9 and xml.failures == 2
    out = io.StringIO()
    main([*args, "github"], out, io.StringIO())
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("::error title=kspec diff%3A any external host -> external IP") for line in lines) == 2
    assert lines[-1].startswith("::notice title=kspec diff::9 destinations compared: 2 differences")


def test_diff_as_sarif_meets_the_schema():
    import json

    import jsonschema

    schema = json.loads((REPO / "tests/data/sarif/sarif-schema-2.1.0.json").read_text())
    out = io.StringIO()
    main(["diff", str(DEMO), "--kube-proxy-version", "1.28", "--against-version", "1.29", "--format", "sarif"],
         out, io.StringIO())
    data = json.loads(out.getvalue())
    jsonschema.validate(data, schema)
    results = data["runs"][0]["results"]
    assert len(results) == 2 and all(r["ruleId"] == "diff" for r in results)
    location = results[0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("examples/diff/externalips-local.k")
    assert {len(r["codeFlows"][0]["threadFlows"]) for r in results} == {2}  # both sides' ways


def _against_dump(spec: str, dump: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["diff", str(REPO / "examples/diff" / spec), "--rules", str(REPO / "examples/diff" / dump),
                 "--node", "node1"], out, io.StringIO())
    return code, out.getvalue()


def test_kubernetes_109826_drops_only_what_comes_from_the_second_lb_ip():
    # Before the fix each LB IP's accept rules ended in KUBE-MARK-DROP: a packet from the second IP met the
    # first IP's drop. Only the client sending from 192.0.2.20 sees a difference, to either LB IP.
    code, text = _against_dump("lb-two-ips-source-range.k", "lb-two-ips-source-range.before-109826.rules")
    heads = [line for line in text.splitlines() if line.startswith("difference ")]
    assert code == 1 and heads and all(": via-second-ip -> LB " in head for head in heads), text
    assert {head.split(" -> ")[1] for head in heads} == {"LB 192.0.2.10:80", "LB 192.0.2.20:80"}
    assert "lb-two-ips-source-range.k: DELIVERED to default/web on node2" in text
    assert "before-109826.rules: DROPPED: drop in filter OUTPUT on node1" in text
    assert "-j KUBE-MARK-DROP" in text and "kubernetes firewall for dropping marked packets" in text  # its trace


def test_kubernetes_110289_takes_the_lb_ip_from_pods_outside_the_ranges():
    # 1.24 marked the packet for a drop that only INPUT and OUTPUT carried out: a pod's packet was forwarded
    # to the load balancer itself. From 1.25 KUBE-PROXY-FIREWALL drops it in FORWARD.
    code, text = _against_dump("lb-source-range-pods.k", "lb-source-range-pods.before-110289.rules")
    heads = [line for line in text.splitlines() if line.startswith("difference ")]
    assert code == 1 and any(": shop -> LB 192.0.2.10:80" in head for head in heads), text
    assert not any("a process on node1" in head for head in heads)  # OUTPUT dropped the marked packet then too
    assert "lb-source-range-pods.k: DROPPED: drop in filter FORWARD on node1" in text
    assert "before-110289.rules: NO ROUTE: 192.0.2.10 leaves the cluster" in text
    assert "KUBE-PROXY-FIREWALL" in text and "-j KUBE-MARK-DROP" in text  # both traces
