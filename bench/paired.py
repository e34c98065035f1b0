"""Old against new in one sitting: ``bench_verify.py`` for a base commit and for this tree, alternately, so
that a busy or slow host moves both sides alike; the table ends with new/old ratios.

    .venv/bin/python bench/paired.py BASE_COMMIT [--rounds 2] [--sizes 1000x2] [--nodes 10]

The base commit is checked out into a throwaway git worktree (its package folders linked the way the
editable install maps them) and run with this venv's interpreter. A calibration line (a fixed Python loop)
says how fast the host was, so figures of different days can be compared.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ("parse lines/s", "models s", "prove s", "s/node")


def _worktree(base: str, into: Path) -> Path:
    tree = into / "base"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(tree), base],
                   check=True, capture_output=True)
    for package in ("compiler", "verifier", "grammar"):  # older commits mapped them in pyproject instead
        link = tree / "kspec" / package
        if not link.exists():
            link.symlink_to(tree / package)
    return tree


def _run(tree: Path, sizes: str, nodes: int) -> list[list[str]]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, str(tree / "bench" / "bench_verify.py"), "--sizes", sizes,
                          "--nodes", str(nodes)], cwd=tree, env=env, capture_output=True, text=True, check=True)
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line[:1].isdigit()]
    return [[row[0], row[1], row[2], row[4], row[5], row[7], row[8]] for row in rows]


def calibration() -> float:
    start = time.process_time()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the commit to compare with (e.g. the main before a change)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", default="1000x2")
    parser.add_argument("--nodes", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kspec-paired-") as tmp:
        base = _worktree(args.base, Path(tmp))
        try:
            results: dict[str, list[list[str]]] = {"old": [], "new": []}
            for _ in range(args.rounds):
                results["old"] += _run(base, args.sizes, args.nodes)
                results["new"] += _run(REPO, args.sizes, args.nodes)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False,
                           capture_output=True)
    print(f"calibration: a 10M-iteration Python loop took {calibration():.2f} s of CPU")
    print("side  services eps nodes  " + "  ".join(f"{c:>14}" for c in COLUMNS))
    for side, rows in results.items():
        for row in rows:
            print(f"{side:<5} {row[0]:>8} {row[1]:>3} {row[2]:>5}  " + "  ".join(f"{v:>14}" for v in row[3:]))
    for column, index in (("prove s", 5), ("s/node", 6)):
        old = sum(float(r[index]) for r in results["old"]) / len(results["old"])
        new = sum(float(r[index]) for r in results["new"]) / len(results["new"])
        print(f"new/old {column}: {new / old:.2f}")


if __name__ == "__main__":
    main()
