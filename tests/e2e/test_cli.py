"""The kspec command as a user runs it: a subprocess, exit codes, stdout/stderr."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS, REPO

SPECS = sorted(str(p) for p in (REPO / "specs").glob("*.k"))


def kspec(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KSPEC_DEBUG"}
    return subprocess.run([sys.executable, "-m", "kspec.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_verify_seed_specs_exits_0_with_summary():
    run = kspec("verify", *SPECS)
    assert run.returncode == 0, run.stdout + run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert last.endswith("- 0 failures") and "violated (2 expected)" in last


def test_verify_json_has_format_version():
    run = kspec("verify", "--format", "json", *SPECS)
    data = json.loads(run.stdout)
    assert data["format_version"] == "1.3" and data["failures"] == 0
    violated = [r for r in data["results"] if r["verdict"] == "violated"]
    assert violated and all(r["counterexample"]["hops"] for r in violated)


def test_wrong_expectation_exits_1_and_shows_trace(tmp_path: Path):
    text = (REPO / "specs" / "nodeport-cluster.k").read_text().replace("expect violated", "expect holds")
    spec = tmp_path / "wrong.k"
    spec.write_text(text)
    run = kspec("verify", str(spec))
    assert run.returncode == 1
    assert "-j MASQUERADE" in run.stdout and "client_address=" in run.stdout
    assert "1 failure" in run.stdout.strip().splitlines()[-1]


def test_bad_input_exits_2_with_position_and_no_traceback(tmp_path: Path):
    spec = tmp_path / "bad.k"
    spec.write_text("cluster c {\n  node n1 { ip 10.0.0.300 }\n}\n")
    for command in (("verify", str(spec)), ("compile", str(spec)), ("fmt", str(spec))):
        run = kspec(*command)
        assert run.returncode == 2, command
        assert f"{spec}:2:" in run.stderr and "Traceback" not in run.stderr
    compact = kspec("--compact", "verify", str(spec))
    assert compact.stderr.count("\n") == 1


def test_verify_an_ipv6_only_spec():
    run = kspec("verify", str(REPO / "tests" / "data" / "specs" / "ipv6-nodeport.k"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "packet  [2001:db8::79]:" in run.stdout and "client_address=fd00:240::5" in run.stdout
    assert run.stdout.strip().splitlines()[-1].endswith("1 violated (1 expected), 0 unknown - 0 failures")


def test_compile_an_ipv6_only_spec_gives_ip6tables_rules():
    run = kspec("compile", str(REPO / "tests" / "data" / "specs" / "ipv6-nodeport.k"), "--node", "node1")
    assert run.returncode == 0, run.stderr
    assert "-d fd00:96::239" in run.stdout and "--to-destination [fd00:244:0:1::5]:8080" in run.stdout
    v4 = kspec("compile", str(REPO / "tests" / "data" / "specs" / "ipv6-nodeport.k"), "--node", "node1",
               "--family", "ipv4")
    assert v4.returncode == 0 and "fd00:96::239" not in v4.stdout


def test_verify_rules_on_a_dual_stack_cluster_needs_the_family(tmp_path: Path):
    text = (REPO / "specs" / "nodeport-cluster.k").read_text().replace(
        "ip 10.240.0.3", "ip 10.240.0.3, fd00:240::3", 1)
    spec = tmp_path / "dual.k"
    spec.write_text(text)
    dump = tmp_path / "node1.rules"
    dump.write_text("*nat\nCOMMIT\n")
    run = kspec("verify", "--rules", str(dump), "--node", "node1", str(spec))
    assert run.returncode == 2 and "--family" in run.stderr, run.stdout + run.stderr


def test_usage_error_exits_2():
    assert kspec("verify", "--format", "nonsense").returncode == 2


def test_compile_all_nodes_writes_each_node_atomically(tmp_path: Path):
    out = tmp_path / "rules"
    run = kspec("compile", SPECS[0], "--all-nodes", "-o", str(out))
    assert run.returncode == 0, run.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["node1.rules", "node2.rules", "node3.rules"]  # and no temporary files left behind
    single = kspec("compile", SPECS[0], "--node", "node2")
    assert single.stdout == (out / "node2.rules").read_text()


def test_compile_is_deterministic():
    runs = {kspec("compile", spec, "--node", "node1").stdout for spec in SPECS[:1] for _ in range(2)}
    assert len(runs) == 1


def test_compile_since_emits_partial_restore(tmp_path: Path):
    before = (REPO / "specs" / "nodeport-local.k").read_text()
    after = tmp_path / "after.k"
    after.write_text(before.replace("external_traffic_policy Local", "external_traffic_policy Cluster"))
    run = kspec("compile", str(after), "--node", "node2", "--since", str(REPO / "specs" / "nodeport-local.k"))
    assert run.returncode == 0, run.stderr
    assert "masquerade traffic for default/nodeport external destinations" in run.stdout


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus absent")
def test_compile_k8s_objects_equals_kube_proxy():
    case = "TestOverallIPTablesRules"
    run = kspec("compile", "--k8s", str(REPO / "tests/data/k8s" / case / "objects.yaml"), "--node", "test-node")
    assert run.stdout == (CORPUS / "cases" / case / "expected.iptables").read_text()


def test_trace_shows_every_branch_and_the_client_address():
    cluster_ = kspec("trace", str(REPO / "specs" / "nodeport-cluster.k"), "--from", "internet",
                     "--to", "10.240.0.5:30080")
    assert cluster_.returncode == 0, cluster_.stderr
    assert "dst: 10.240.0.5 -> 10.244.1.5" in cluster_.stdout and "dport: 30080 -> 8080" in cluster_.stdout
    assert "client_address=10.240.0.5\n  answer:" in cluster_.stdout
    assert "=> ANSWERED on node2, from 10.240.0.5\n  then the client's data:" in cluster_.stdout
    assert cluster_.stdout.rstrip().endswith("client_address=10.240.0.5")  # the data reaches the pod too
    local = kspec("trace", str(REPO / "specs" / "nodeport-local.k"), "--from", "internet", "--to", "10.240.0.5:30080")
    assert local.stdout.rstrip().endswith("=> DROPPED: drop in filter INPUT on node2")
    bad = kspec("trace", str(REPO / "specs" / "nodeport-local.k"), "--from", "nobody", "--to", "10.240.0.5:30080")
    assert bad.returncode == 2 and "unknown client 'nobody'" in bad.stderr


@pytest.mark.netns
def test_verify_against_a_real_iptables_save_dump(tmp_path: Path):
    from kspec.compiler import compile_cluster
    from kspec.grammar import load
    from tests.verifier.test_real_dumps import _dump

    # The seed spec, with its checks aimed at node2, whose rules come from the dump.
    spec = tmp_path / "nodeport-cluster.k"
    spec.write_text((REPO / "specs" / "nodeport-cluster.k").read_text().replace("on any node", "on node2"))
    cluster, _ = load(str(spec))
    dump = tmp_path / "node2.save"
    dump.write_text(_dump(compile_cluster(cluster)["node2"]))
    ok = kspec("verify", "--spec", str(spec), "--rules", str(dump), "--node", "node2")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # A dump where someone deleted the MASQUERADE rule no longer shows the expected SNAT.
    dump.write_text("".join(line for line in dump.read_text().splitlines(True) if "MASQUERADE" not in line))
    changed = kspec("verify", "--spec", str(spec), "--rules", str(dump), "--node", "node2", "--no-builtins")
    assert changed.returncode == 1
    broken = tmp_path / "broken.save"
    # (an unknown module is read as Opaque; a malformed option of a module kspec models is an error)
    broken.write_text("*nat\n-A PREROUTING -p tcp -m multiport --dports 80,http -j ACCEPT\nCOMMIT\n")
    bad = kspec("verify", "--spec", str(spec), "--rules", str(broken), "--node", "node2")
    assert bad.returncode == 2 and f"{broken}:2:" in bad.stderr


def test_a_family_the_cluster_lacks_is_bad_input():
    # It verified nothing (every check unknown, "3 failures") instead of saying so (issue 12).
    result = kspec("verify", "specs/clusterip.k", "--family", "ipv6")
    assert result.returncode == 2
    assert "--family ipv6: cluster source-ip has no IPv6 node or Service address (it is IPv4)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_cluster_without_nodes_is_bad_input(tmp_path: Path):
    # Its built-ins sent from a made-up external host and reported a violation (issue 12).
    spec = tmp_path / "zero.k"
    spec.write_text("cluster z {\n  service web { cluster_ip 10.96.0.10  port 80/tcp }\n}\n")
    result = kspec("verify", str(spec))
    assert result.returncode == 2
    assert "zero.k:1:1: error: cluster z has no nodes" in result.stderr


def test_verify_rules_warns_when_given_compile_output(tmp_path: Path):
    # kspec compile writes kube-proxy's restore text, without the jumps from PREROUTING and OUTPUT that
    # kube-proxy adds apart: given as a node's dump, every Service was missed without a word (issue 12).
    compiled = kspec("compile", "specs/clusterip.k", "--node", "node1")
    dump = tmp_path / "node1.rules"
    dump.write_text(compiled.stdout)
    result = kspec("verify", "specs/clusterip.k", "--rules", str(dump), "--node", "node1")
    assert "warning: nothing jumps to KUBE-SERVICES from PREROUTING or OUTPUT" in result.stderr
    real = kspec("verify", "tests/data/real-nodes/cluster.k", "--rules", "tests/data/real-nodes/calico")
    assert "nothing jumps to KUBE-SERVICES" not in real.stderr, real.stderr


def test_trace_to_a_load_balancer_goes_through_its_backends():
    # Without --node it said NO ROUTE although the spec declares the load balancer (issue 12).
    result = kspec("trace", "specs/loadbalancer-local.k", "--from", "internet", "--to", "104.198.149.140:80")
    assert result.returncode == 0, result.stderr
    assert "via the load balancer: LB 104.198.149.140:80 -> node1 (default/loadbalancer:80)" in result.stdout
    assert "DELIVERED to default/source-ip-app on node1, client_address=104.132.1.79" in result.stdout
    assert "NO ROUTE" not in result.stdout


def test_trace_to_a_port_the_service_lacks_says_so():
    result = kspec("trace", "specs/loadbalancer-local.k", "--from", "busybox", "--to", "104.198.149.140:80/udp")
    assert "note: default/loadbalancer has no UDP port 80 (its ports: 80/TCP)" in result.stdout


def test_verify_tells_its_progress_check_by_check():
    # A 10k-Service verify ran for minutes without a sign (issue 12): the CLI draws a bar from these calls
    # when stderr is a terminal, and stays silent otherwise (every other test here reads a pipe).
    from kspec.grammar import load
    from kspec.verifier import verify

    cluster, _ = load(str(REPO / "specs" / "clusterip.k"))
    heard = []
    results = verify(cluster, builtins=True, progress=lambda what, done, total: heard.append((what, done, total)))
    assert [done for _, done, _ in heard[1:]] == list(range(len(results)))
    assert heard[0][0].endswith("reading the nodes' rules") and all(t == len(results) for *_, t in heard)
    quiet = kspec("verify", "specs/clusterip.k")
    assert quiet.stderr == ""


def test_a_check_without_from_means_the_specs_own_clients(tmp_path: Path):
    # With the built-ins on, their made-up external host joined it: violated with them, proved without
    # (issue 12). It now means the spec's clients either way.
    spec = tmp_path / "nofrom.k"
    spec.write_text("""cluster c {
      cluster_cidr 10.244.0.0/16
      node n1 { ip 10.240.0.2  pod_cidr 10.244.1.0/24 }
      pod web on n1 { ip 10.244.1.5  labels { app = web }  ports { http = 8080/tcp } }
      pod cl on n1 { ip 10.244.1.6 }
      service web { cluster_ip 10.96.0.10  selector app = web  port http 80 -> http/tcp }
      client p from pod cl
      check "no from" { to web:http via cluster_ip  assert delivered }
    }""")
    for extra in ((), ("--no-builtins",)):
        result = kspec("verify", str(spec), *extra)
        assert "proved: no from" in result.stdout, (extra, result.stdout)
