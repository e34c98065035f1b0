"""Measure which small rulesets iptables-restore / ip6tables-restore (and the kernel) accept.

Usage: python scripts/measure_iptables_validity.py [--json OUT.json] [--markdown OUT.md]

Needs root, iproute2 and iptables. Every probe of tests/validity_cases.py is restored (without --noflush:
the table is replaced) in one throwaway network namespace per family, named ``kspec-val-<pid>-N`` and
deleted on the way out; the root namespace's rules are never touched. For a refused probe the script keeps
the restore's error text and the kernel's own words (the new netfilter lines of ``dmesg``, when readable;
the kernel rate-limits them, so many refusals have none). ``--markdown`` writes the tables of
docs/iptables-validity.md; the prose around them is the doc's own.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from itertools import count
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.validity_cases: the probe table the kernel differential test shares

from tests.validity_cases import BUILTINS, TARGETS, probes  # noqa: E402

_serial = count()
_STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]")
_BANNER = re.compile(r"^ip6?tables-restore v[\d.]+ \([\w_]+\):\s*")


@contextmanager
def namespace():
    name = f"kspec-val-{os.getpid()}-{next(_serial)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def kernel_lines(after: float) -> tuple[list[str], float]:
    """The netfilter lines dmesg has after timestamp ``after``, and the newest timestamp."""
    out = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    lines, newest = [], after
    for line in out.splitlines():
        stamp = _STAMP.match(line)
        if stamp and float(stamp.group(1)) > after:
            newest = max(newest, float(stamp.group(1)))
            if re.search(r"x_tables|xt_|nft|ip6?_tables", line):
                lines.append(line[stamp.end():].strip())
    return lines, newest


def restore(ns: str, family: int, text: str) -> tuple[bool, str]:
    tool = "ip6tables-restore" if family == 6 else "iptables-restore"
    run = subprocess.run(["ip", "netns", "exec", ns, tool], input=text, capture_output=True, text=True)
    words = (_BANNER.sub("", line).strip() for line in run.stderr.splitlines() if not line.startswith("Try `"))
    return run.returncode == 0, " | ".join(word for word in words if word)


def measure() -> list[dict]:
    results = []
    _, stamp = kernel_lines(0.0)
    for family in (4, 6):
        with namespace() as ns:
            for probe in probes(family):
                ok, error = restore(ns, family, probe.text)
                kernel: list[str] = []
                if not ok:
                    kernel, stamp = kernel_lines(stamp)
                results.append({"family": family, "group": probe.group, "label": probe.label, "ok": ok,
                                "error": error, "kernel": kernel})
    return results


# ------------------------------------------------------------------------------------------ markdown


def markdown(data: dict) -> str:
    out = [f"Measured with {data['iptables']}, Linux {data['kernel']}.", ""]
    for family in (4, 6):
        rows = [r for r in data["results"] if r["family"] == family]
        out += [f"### {'iptables' if family == 4 else 'ip6tables'}-restore: where each target is accepted", ""]
        out += [_LEGEND, ""] + matrix_table(rows) + [""]
        for group in ("reject-with", "structure", "nat-port", "tcpmss"):
            out += [f"#### {group}", "", "| probe | result | iptables-restore / kernel says |", "|---|---|---|"]
            out += [f"| `{r['label']}` | {'accepted' if r['ok'] else '**refused**'} | {reason(r)} |"
                    for r in rows if r["group"] == group] + [""]
    return "\n".join(out)


_LEGEND = ("A cell lists the built-in chains of the table where a rule with the target is accepted; the same "
           "holds for a user chain that only that built-in chain reaches (by -j and by -g) unless the cell says "
           "otherwise; \"unreached chain\" is a user chain nothing reaches. \"all\": everywhere in the table; "
           "\"—\": nowhere.")


def matrix_table(rows: list[dict]) -> list[str]:
    """Per target and table: the built-in chains where a rule of it is accepted directly, and the same
    through -j/-g into a user chain, and in a user chain nothing reaches."""
    ok = {r["label"]: r["ok"] for r in rows if r["group"] == "matrix"}
    lines = ["| target | " + " | ".join(BUILTINS) + " |", "|---" * (len(BUILTINS) + 1) + "|"]
    for target in TARGETS:
        cells = [matrix_cell(ok, target, name, chains) for name, chains in BUILTINS.items()]
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return lines


def matrix_cell(ok: dict, target: str, name: str, chains: tuple[str, ...]) -> str:
    direct = [c for c in chains if ok[f"{target} {name} {c}"]]
    via = [c for c in chains if ok[f"{target} {name} {c} -j U"] and ok[f"{target} {name} {c} -g U"]]
    unreached = ok[f"{target} {name} unreached U"]
    if len(direct) == len(via) == len(chains) and unreached:
        return "all"
    if not direct and not via and not unreached:
        return "—"
    text = f"{', '.join(direct) or 'none'}"
    if via != direct:
        text += f"; via a user chain: {', '.join(via) or 'none'}"
    return text + ("; unreached chain: yes" if unreached else "; unreached chain: no")


def reason(row: dict) -> str:
    if row["ok"]:
        return ""
    said = [row["error"]] + row["kernel"]
    return "; ".join(part.replace("|", "/") for part in said if part)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--markdown", help="write the tables here")
    parser.add_argument("--from-json", help="render results measured before instead of measuring")
    args = parser.parse_args()
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
    else:
        version = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout.strip()
        data = {"iptables": version, "kernel": os.uname().release, "results": measure()}
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(markdown(data))
    if not args.json and not args.markdown:
        print(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
