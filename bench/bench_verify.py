"""Verification-speed benchmark: parse rate of rulesets, and the time to prove the built-in property set.

    python bench/bench_verify.py [--sizes 1000x2,10000x10] [--nodes 10] [--family ipv4|ipv6]

For each size (services x endpoints per service) it prints: lines parsed per second, time to build the
per-node models, time to prove every built-in property over the whole cluster, that time per node, and the
p50/p95 time per Service slice (all built-in checks of one Service, over every node) and that per node (a
Service's checks enter once per node). Targets from the issue: parse
>= 200k lines/s; 1k x 2 under 1 s per node; 10k x 10 under 60 s per node, p50 per slice under 5 ms.
Each size runs in a child process so memory and caches do not leak between sizes. Times are CPU time of
that one process (time.process_time), so other load on the machine does not inflate them.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

TARGETS = {"parse_lines_per_s": 200_000, "small_per_node_s": 1.0, "large_per_node_s": 60.0, "p50_slice_ms": 5.0}


def measure(services: int, endpoints: int, nodes: int, family_name: str = "ipv4") -> dict:
    from bench_compile import make_cluster
    from parse_speed import best_rate

    from kspec import ir
    from kspec.compiler import compile_cluster
    from kspec.families import as_ipv6
    from kspec.verifier import node_models
    from kspec.verifier.builtins import builtin_checks, with_builtin_clients
    from kspec.verifier.model.network import ClusterNetwork
    from kspec.verifier.properties import Verifier

    family = ir.IPFamily.V6 if family_name == "ipv6" else ir.IPFamily.V4
    cluster = make_cluster(services, endpoints, nodes)
    if family is ir.IPFamily.V6:  # the same cluster under fd00::/96
        cluster = as_ipv6(cluster)
    texts = compile_cluster(cluster, family)
    text = next(iter(texts.values()))
    lines, parse_rate = best_rate(text, 3)

    checks = builtin_checks(cluster, family)
    cluster = with_builtin_clients(cluster)
    start = time.process_time()
    network = ClusterNetwork(cluster, node_models(cluster, family), family)
    models_s = time.process_time() - start
    verifier = Verifier(cluster, network)
    slices: dict[str, float] = {}
    verdicts: dict[str, int] = {}
    start = time.process_time()
    for check in checks:
        t0 = time.process_time()
        result = verifier.check(check)
        slices[check.destination.service] = slices.get(check.destination.service, 0.0) + time.process_time() - t0
        key = result.verdict.value + ("" if result.as_expected else " (unexpected)")
        verdicts[key] = verdicts.get(key, 0) + 1
    prove_s = time.process_time() - start
    per_slice = sorted(slices.values())
    return {
        "services": services, "endpoints": endpoints, "nodes": nodes, "lines": lines,
        "parse_lines_per_s": parse_rate, "models_s": models_s, "checks": len(checks),
        "prove_s": prove_s, "per_node_s": (prove_s + models_s) / nodes,
        "p50_slice_ms": 1000 * statistics.median(per_slice),
        # A Service's built-in checks enter the cluster once per node: its slice on one node.
        "p50_node_slice_ms": 1000 * statistics.median(per_slice) / nodes,
        "p95_slice_ms": 1000 * per_slice[int(0.95 * (len(per_slice) - 1))],
        "verdicts": verdicts,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000x2,10000x10")
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--family", choices=("ipv4", "ipv6"), default="ipv4",
                        help="ipv6: the same clusters moved under fd00::/96 (kspec.families.as_ipv6)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        services, endpoints = map(int, args.child.split("x"))
        print(json.dumps(measure(services, endpoints, args.nodes, args.family)))
        return
    rows = []
    for size in args.sizes.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", size, "--nodes", str(args.nodes),
                              "--family", args.family], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    header = ("services", "eps", "nodes", "rules lines", "parse lines/s", "models s", "checks", "prove s",
              "s/node", "p50 slice ms", "p95 slice ms", "p50 slice/node ms", "peak MB", "verdicts")
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(str(x) for x in (
            r["services"], r["endpoints"], r["nodes"], r["lines"], f"{r['parse_lines_per_s']:,.0f}",
            f"{r['models_s']:.2f}", r["checks"], f"{r['prove_s']:.2f}", f"{r['per_node_s']:.2f}",
            f"{r['p50_slice_ms']:.2f}", f"{r['p95_slice_ms']:.2f}", f"{r['p50_node_slice_ms']:.2f}",
            f"{r['peak_mb']:.0f}", r["verdicts"])))
    print(f"targets: parse >= {TARGETS['parse_lines_per_s']:,} lines/s; 1k x 2 < {TARGETS['small_per_node_s']} s/node; "
          f"10k x 10 < {TARGETS['large_per_node_s']} s/node; p50 slice < {TARGETS['p50_slice_ms']} ms")


if __name__ == "__main__":
    main()
