"""Parse-speed benchmark for kspec.rules.iptables.iptables_save: lines per second on several rulesets, one table.

Usage: python bench/parse_speed.py [--repeat 5] [--no-dump]

Rows:
  kube-proxy SxE    node-0's restore text for bench_compile's generated cluster (S Services x E endpoints,
                    10 nodes), as kspec compiles it, i.e. byte for byte what kube-proxy writes. Above 1000
                    endpoints kube-proxy leaves out the per-endpoint comments (its large-cluster mode).
  kube-proxy v6     the same clusters moved under fd00::/96 (kspec.families.as_ipv6): ip6tables text.
  synthetic         a hand-made kube-proxy-shaped text that keeps per-endpoint comments at 50k endpoints
                    (kube-proxy itself would not), the worst case for the parser's memo of match texts.
  iptables-save     the 1000x2 rules loaded into a throwaway network namespace and dumped back by the
                    kernel's iptables-save (base matches first, /32, every comment quoted); needs root and
                    iptables, skipped otherwise or with --no-dump.

Each row is parsed in a child process of its own (as `kspec verify --rules` parses a dump: one text, a fresh
heap; in one process the 10k compile left a heap that slowed the small rows by up to a quarter). Its figure
is the best of at least --repeat parses, and of as many as fill --seconds (the small texts parse in tens of
milliseconds), CPU time, with the parsed ruleset kept alive while timed: freeing it is not parsing.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.netns: the one place that knows how to make throwaway namespaces
sys.path.insert(0, str(REPO / "bench"))

from kspec.rules.iptables.iptables_save import parse_iptables_save  # noqa: E402

TARGET = 200_000  # lines/s, from issue 3


def synthetic(services: int, endpoints: int) -> str:
    """kube-proxy-shaped nat text: per service a KUBE-SERVICES rule, a SVC chain with a statistic cascade
    and one SEP chain (2 rules) per endpoint."""
    decl, rules = [":KUBE-SERVICES - [0:0]", ":KUBE-MARK-MASQ - [0:0]"], []
    rules.append("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000")
    for s in range(services):
        name = f"ns{s % 97}/svc{s}:p80"
        svc = f"KUBE-SVC-{s:016X}"
        decl.append(f":{svc} - [0:0]")
        cip = f"172.{16 + s // 65536 % 16}.{s // 256 % 256}.{s % 256}"
        rules.append(f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" -m tcp -p tcp -d {cip} '
                     f'--dport 80 -j {svc}')
        rules.append(f'-A {svc} -m comment --comment "{name} cluster IP" -m tcp -p tcp -d {cip} --dport 80 '
                     f'! -s 10.0.0.0/8 -j KUBE-MARK-MASQ')
        for e in range(endpoints):
            sep = f"KUBE-SEP-{s:08X}{e:08X}"
            ip = f"10.{s // 256 % 256}.{s % 256}.{e + 1}"
            decl.append(f":{sep} - [0:0]")
            stat = (f" -m statistic --mode random --probability {1 / (endpoints - e):0.10f}"
                    if e < endpoints - 1 else "")
            rules.append(f'-A {svc} -m comment --comment "{name} -> {ip}:80"{stat} -j {sep}')
            rules.append(f"-A {sep} -m comment --comment {name} -s {ip} -j KUBE-MARK-MASQ")
            rules.append(f"-A {sep} -m comment --comment {name} -m tcp -p tcp -j DNAT --to-destination {ip}:80")
    return "\n".join(["*nat", *decl, *rules, "COMMIT", ""])


def kube_proxy_text(services: int, endpoints: int, ipv6: bool = False) -> str:
    from bench_compile import make_cluster

    from kspec import ir
    from kspec.compiler import compile_node
    from kspec.families import as_ipv6

    cluster = make_cluster(services, endpoints, 10)
    if ipv6:  # the same cluster under fd00::/96: ip6tables text
        return compile_node(as_ipv6(cluster), "node-0", ir.IPFamily.V6)
    return compile_node(cluster, "node-0")


def kernel_dump(text: str) -> tuple[str | None, str]:
    """``text`` loaded into a throwaway namespace and read back with iptables-save, or (None, why)."""
    from tests.netns import iptables_restore, skip_reason, throwaway_netns

    reason = skip_reason()
    if reason:
        return None, reason
    with throwaway_netns("kspec-bench-") as ns:
        ok, err = iptables_restore(ns, text, noflush=True)
        if not ok:
            return None, f"iptables-restore failed: {err.strip()[:200]}"
        dump = subprocess.run(["ip", "netns", "exec", ns, "iptables-save"], capture_output=True, text=True)
    if dump.returncode != 0:
        return None, f"iptables-save failed: {dump.stderr.strip()[:200]}"
    return dump.stdout, ""


def best_rate(text: str, repeat: int, seconds: float = 0.0) -> tuple[int, float]:
    """(lines, best lines/s) over at least ``repeat`` parses and as many more as fit in ``seconds``."""
    lines = text.count("\n")
    best, spent, runs = float("inf"), 0.0, 0
    while runs < repeat or spent < seconds:
        start = time.process_time()
        ruleset = parse_iptables_save(text, "bench.rules")
        took = time.process_time() - start
        del ruleset
        best, spent, runs = min(best, took), spent + took, runs + 1
    return lines, lines / best


def rate_in_child(text: str, repeat: int, seconds: float) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".rules") as rules:
        rules.write(text)
        rules.flush()
        child = subprocess.run([sys.executable, __file__, "--child", rules.name, "--repeat", str(repeat),
                                "--seconds", str(seconds)], capture_output=True, text=True)
    if child.returncode != 0:
        raise SystemExit(f"parse child failed:\n{child.stderr}")
    return float(child.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds of parsing per row, at least")
    parser.add_argument("--no-dump", action="store_true", help="skip the kernel iptables-save row")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: parse one file, print its rate
    args = parser.parse_args(argv)
    if args.child:
        print(best_rate(Path(args.child).read_text(), args.repeat, args.seconds)[1])
        return 0
    texts: dict[str, str | None] = {}
    notes: dict[str, str] = {}
    for services, endpoints in ((300, 3), (1000, 2), (10000, 10)):
        texts[f"kube-proxy {services}x{endpoints}"] = kube_proxy_text(services, endpoints)
    for services, endpoints in ((1000, 2), (10000, 10)):
        texts[f"kube-proxy v6 {services}x{endpoints}"] = kube_proxy_text(services, endpoints, ipv6=True)
    texts["synthetic 10000x5"] = synthetic(10000, 5)
    if args.no_dump:
        notes["iptables-save 1000x2"] = "--no-dump"
    else:
        texts["iptables-save 1000x2"], notes["iptables-save 1000x2"] = kernel_dump(texts["kube-proxy 1000x2"])
    print(f"{'ruleset':<22} {'lines':>9} {'lines/s':>10}  target {TARGET:,}")
    for name, text in texts.items():
        if text is None:
            print(f"{name:<22} {'-':>9} {'-':>10}  skipped: {notes[name]}")
            continue
        rate = rate_in_child(text, args.repeat, args.seconds)
        print(f"{name:<22} {text.count(chr(10)):>9,} {rate:>10,.0f}  {'met' if rate >= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
