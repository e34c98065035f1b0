"""Compile-speed benchmark: how long kspec takes to write one node's kube-proxy rules, and how that compares
with the time the kernel takes to load them.

    python bench/bench_compile.py [--services 1000,10000] [--endpoints 10] [--nodes 10] [--profile]

Each cluster size is measured in a child process of its own, so one size's memory never inflates the next
one's peak. The kernel load is a real ``iptables-restore --noflush`` into a throwaway network namespace
(needs root and iptables; skipped with a note otherwise). See bench/README.md.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for tests.netns, the one place that knows how to make throwaway namespaces

from kspec import ir  # noqa: E402

# Targets for services=10k x endpoints=10 (from the project brief).
TARGET_SECONDS = 2.0
TARGET_MB = 500
NODE_PORT_RANGE = (30000, 32767)


# ------------------------------------------------------------------------------------------ cluster


def make_cluster(services: int, endpoints: int, nodes: int) -> ir.Cluster:
    """A deterministic cluster with a realistic mix of Service shapes.

    Per 25 services: 20 ClusterIP, 3 NodePort, 2 LoadBalancer (node ports are scarce: 2768 per protocol,
    and Local LoadBalancers take a health-check port as well). Every other NodePort/LoadBalancer has
    externalTrafficPolicy Local; every 10th service internalTrafficPolicy Local; every 20th ClientIP
    affinity; every 5th ClusterIP service a second port; every 4th LoadBalancer source ranges; about 2% of
    endpoints are terminating.
    """
    node_list = tuple(
        ir.Node(f"node-{k}", (ipaddress.ip_address(f"192.168.{k // 200}.{k % 200 + 10}"),),
                (ipaddress.ip_network(f"10.{k + 1}.0.0/16"),))
        for k in range(nodes)
    )
    ports = iter(range(*NODE_PORT_RANGE))
    pod_serial = [0] * nodes
    svcs = []
    for i in range(services):
        kind = _kind(i)
        local = kind is not ir.ServiceType.CLUSTER_IP and (i // 25) % 2 == 0
        svc_ports = [ir.ServicePort("http", ir.Protocol.TCP, 80, 8080)]
        if kind is ir.ServiceType.CLUSTER_IP and i % 5 == 0:
            svc_ports.append(ir.ServicePort("metrics", ir.Protocol.TCP, 9090, 9090))
        if kind is not ir.ServiceType.CLUSTER_IP:
            svc_ports = [ir.ServicePort(p.name, p.protocol, p.port, p.target_port, _next(ports)) for p in svc_ports]
        eps = []
        for j in range(endpoints):
            k = (i + j) % nodes
            pod_serial[k] += 1
            ip = node_list[k].pod_cidrs[0].network_address + 1 + pod_serial[k]  # .1 is the node's pod gateway
            terminating = (i * endpoints + j) % 50 == 49
            eps.append(ir.Endpoint(ip, tuple(ir.EndpointPort(p.name, p.protocol, p.target_port) for p in svc_ports),
                                   node=f"node-{k}", ready=not terminating, terminating=terminating))
        is_lb = kind is ir.ServiceType.LOAD_BALANCER
        svcs.append(ir.Service(
            namespace=f"ns-{i % 37}",
            name=f"svc-{i}",
            type=kind,
            cluster_ips=(ipaddress.ip_address("172.30.0.0") + i + 1,),
            ports=tuple(svc_ports),
            endpoints=tuple(eps),
            external_ips=(ipaddress.ip_address("198.18.0.0") + i,) if i % 50 == 11 else (),
            load_balancer_ingress=(ir.LoadBalancerIngress(ipaddress.ip_address("100.64.0.0") + i),) if is_lb else (),
            load_balancer_source_ranges=(ipaddress.ip_network("203.0.113.0/24"),) if is_lb and i % 4 == 0 else (),
            external_traffic_policy=ir.TrafficPolicy.LOCAL if local else ir.TrafficPolicy.CLUSTER,
            internal_traffic_policy=ir.TrafficPolicy.LOCAL if i % 10 == 7 else ir.TrafficPolicy.CLUSTER,
            health_check_node_port=_next(ports) if is_lb and local else 0,
            session_affinity=ir.SessionAffinity() if i % 20 == 3 else None,
        ))
    proxy = ir.ProxyConfig(cluster_cidrs=(ipaddress.ip_network("10.0.0.0/8"),))
    return ir.Cluster(f"bench-{services}x{endpoints}", node_list, proxy, services=tuple(svcs))


def _kind(i: int) -> ir.ServiceType:
    slot = i % 25
    if slot < 20:
        return ir.ServiceType.CLUSTER_IP
    return ir.ServiceType.NODE_PORT if slot < 23 else ir.ServiceType.LOAD_BALANCER


def _next(ports) -> int:
    try:
        return next(ports)
    except StopIteration:
        raise SystemExit("too many node ports for 30000-32767: use fewer services") from None


# ---------------------------------------------------------------------------------- child: compile


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _cold_caches() -> None:
    """Forget memoised chain-name hashes so every timed run pays for them, as a fresh kube-proxy sync would."""
    from kspec.compiler import names

    getattr(names._hash, "cache_clear", lambda: None)()


def measure(services: int, endpoints: int, nodes: int, out: Path) -> dict:
    """Runs in the child: build the IR, then time one node and all nodes. Writes node-0's rules to ``out``."""
    from kspec.compiler import compile_cluster, compile_node

    start = time.perf_counter()
    cluster = make_cluster(services, endpoints, nodes)
    build_s = time.perf_counter() - start
    rss_ir = _rss_mb()

    _cold_caches()
    start = time.perf_counter()
    text = compile_node(cluster, "node-0")
    one_s = time.perf_counter() - start
    rss_one = _rss_mb()
    out.write_text(text)
    lines = text.count("\n")
    del text

    _cold_caches()
    start = time.perf_counter()
    texts = compile_cluster(cluster)
    all_s = time.perf_counter() - start
    return {"services": services, "endpoints": endpoints, "nodes": nodes, "build_s": build_s,
            "one_s": one_s, "rss_ir_mb": rss_ir, "rss_one_mb": rss_one, "lines": lines,
            "bytes": out.stat().st_size, "all_s": all_s, "all_nodes": len(texts)}


def profile(services: int, endpoints: int, nodes: int) -> None:
    """cProfile of one node's compile, the top functions by own time and by cumulative time."""
    import cProfile
    import pstats

    from kspec.compiler import compile_node

    cluster = make_cluster(services, endpoints, nodes)
    _cold_caches()
    prof = cProfile.Profile()
    prof.runcall(compile_node, cluster, "node-0")
    stats = pstats.Stats(prof, stream=sys.stdout).strip_dirs()
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(25)


# --------------------------------------------------------------------------------- parent: kernel


def kernel_load_seconds(rules: Path) -> tuple[float | None, str]:
    """Seconds for a real ``iptables-restore --noflush`` of ``rules`` into a fresh namespace, or (None, why)."""
    from tests.netns import ensure_nfacct, iptables_restore, nfacct_names, skip_reason, throwaway_netns

    reason = skip_reason()
    if reason:
        return None, reason
    text = rules.read_text()
    with throwaway_netns("kspec-bench-") as ns:
        ensure_nfacct(ns, nfacct_names(text))  # outside the timing: kube-proxy creates counters once
        start = time.perf_counter()
        ok, err = iptables_restore(ns, text, noflush=True)
        seconds = time.perf_counter() - start
    if not ok:
        return None, f"iptables-restore failed: {err.strip()[:200]}"
    return seconds, ""


def run_size(services: int, endpoints: int, nodes: int, workdir: Path, kernel: bool) -> dict:
    rules = workdir / f"node-0.{services}.rules"
    child = subprocess.run(
        [sys.executable, __file__, "--child", str(services), "--endpoints", str(endpoints),
         "--nodes", str(nodes), "--out", str(rules)],
        capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise SystemExit(f"benchmark child for {services} services failed:\n{child.stderr}")
    result = json.loads(child.stdout)
    result["kernel_s"], result["kernel_note"] = kernel_load_seconds(rules) if kernel else (None, "--no-kernel")
    return result


# ----------------------------------------------------------------------------------------- report


def _iptables_version() -> str:
    try:
        return subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "iptables not installed"


def _ok(good: bool) -> str:
    return "ok" if good else "MISSED"


def print_table(results: list[dict]) -> None:
    head = ("services", "rules lines", "MB", "1 node s", "peak RSS MB", "all nodes s", "all/1",
            "kernel load s", "compile/kernel")
    rows = []
    for r in results:
        kernel = f"{r['kernel_s']:.2f}" if r["kernel_s"] is not None else "n/a"
        ratio = f"{r['one_s'] / r['kernel_s']:.2f}" if r["kernel_s"] else "n/a"
        rows.append((f"{r['services']}", f"{r['lines']:,}", f"{r['bytes'] / 1e6:.1f}", f"{r['one_s']:.2f}",
                     f"{r['rss_one_mb']:.0f}", f"{r['all_s']:.2f} ({r['all_nodes']})",
                     f"{r['all_s'] / r['one_s']:.1f}x", kernel, ratio))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    print()
    print(f"python {sys.version.split()[0]}; {_iptables_version()}; {os.cpu_count()} cpus, load average "
          f"{os.getloadavg()[0]:.1f} (timings are wall-clock, single runs)")
    for r in results:
        print(f"{r['services']} services: IR built in {r['build_s']:.2f} s (RSS {r['rss_ir_mb']:.0f} MB before "
              f"compiling); endpoints/service {r['endpoints']}, nodes {r['nodes']}")
        if r["kernel_s"] is None:
            print(f"  kernel load not measured: {r['kernel_note']}")
        if r["services"] >= 10000:
            print(f"  target one node < {TARGET_SECONDS} s: {_ok(r['one_s'] < TARGET_SECONDS)}; "
                  f"< {TARGET_MB} MB peak RSS: {_ok(r['rss_one_mb'] < TARGET_MB)}; "
                  f"{r['all_nodes']} nodes well under {r['all_nodes']}x one node (<= {r['all_nodes'] / 2:.0f}x): "
                  f"{_ok(r['all_s'] / r['one_s'] <= r['all_nodes'] / 2)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", default="1000,10000", help="comma-separated cluster sizes")
    parser.add_argument("--endpoints", type=int, default=10, help="endpoints per service")
    parser.add_argument("--nodes", type=int, default=10, help="nodes the endpoints spread over")
    parser.add_argument("--no-kernel", action="store_true",
                        help="skip the kernel load (iptables-restore of 10k services takes minutes)")
    parser.add_argument("--profile", action="store_true", help="cProfile one node's compile at the largest size")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # internal: measure one size
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        print(json.dumps(measure(args.child, args.endpoints, args.nodes, args.out)))
        return 0
    sizes = [int(s) for s in args.services.split(",") if s]
    if args.profile:
        profile(max(sizes), args.endpoints, args.nodes)
        return 0
    with tempfile.TemporaryDirectory(prefix="kspec-bench-") as tmp:
        results = [run_size(n, args.endpoints, args.nodes, Path(tmp), not args.no_kernel) for n in sizes]
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
