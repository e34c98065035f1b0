"""Parse-speed benchmark for kspec.ingest.iptables_save: a synthetic kube-proxy restore text.

Usage: python bench/parse_speed.py [services] [endpoints-per-service]
"""
from __future__ import annotations

import sys
import time

from kspec.ingest.iptables_save import parse_iptables_save


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


def main() -> None:
    services = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    endpoints = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    text = synthetic(services, endpoints)
    lines = text.count("\n")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        parse_iptables_save(text, "synthetic")
        best = min(best, time.perf_counter() - start)
    print(f"{lines} lines in {best:.3f}s: {lines / best:,.0f} lines/s")


if __name__ == "__main__":
    main()
