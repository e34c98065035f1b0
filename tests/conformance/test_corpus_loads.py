"""Every ruleset the corpus holds, and every one kspec compiles, is one the kernel accepts.

Each text goes through ``iptables-restore --test`` (ip6tables-restore for IPv6) and is then committed, with
``--noflush`` as kube-proxy restores, into a throwaway network namespace: with the nf_tables backend only the
commit checks jump targets and nfacct counters (see tests/netns.py).

A partial sync declares only the chains it rewrites and jumps to chains an earlier sync made, so it is
loaded on top of the steps before it, from the last full sync of its sequence on.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kspec.compiler import compile_cluster, compile_node
from kspec.ingest.conformance import load_case
from tests.conftest import REPO, corpus_cases
from tests.netns import iptables_restore, iptables_restore_test, throwaway_netns

pytestmark = pytest.mark.netns

SPECS = sorted((REPO / "specs").glob("*.k"))


def _input(case: Path) -> dict:
    return json.loads((case / "input.json").read_text())


def _is_ipv6(case: Path) -> bool:
    return _input(case)["proxier"]["ipFamily"] == "IPv6"


def _is_full_sync(case: Path) -> bool:
    return _input(case)["proxier"].get("fullSync", True)


def _step(case: Path) -> tuple[str, int] | None:
    """(Go test, step number) for a case that is a numbered step of a sequence of syncs, else None."""
    test, _, rest = case.name.partition("__")
    number = rest.split("_", 1)[0]
    return (test, int(number)) if number.isdigit() else None


def _history(case: Path) -> list[Path]:
    """The earlier steps to restore before ``case``: from the last full sync before it on (empty for a full
    sync). Raises LookupError when a partial sync has no full sync before it in the corpus."""
    if _is_full_sync(case):
        return []
    test, number = _step(case) or (case.name, 0)
    earlier = sorted((c for c in corpus_cases("input.json") if (s := _step(c)) and s[0] == test and s[1] < number),
                     key=lambda c: _step(c)[1])
    full = [i for i, c in enumerate(earlier) if _is_full_sync(c)]
    if not full:
        raise LookupError(f"{case.name} is a partial sync with no earlier full sync in the corpus to load first")
    return earlier[full[-1]:]


def _expected(case: Path) -> str:
    return (case / "expected.iptables").read_text()


def _compiled(case: Path) -> str:
    cluster, node, family, sync = load_case(case)
    return compile_node(cluster, node, family, sync=sync)


def _assert_loads(case: Path, text_of: Callable[[Path], str]) -> None:
    try:
        history = _history(case)
    except LookupError as why:
        pytest.skip(str(why))
    ipv6 = _is_ipv6(case)
    with throwaway_netns() as ns:
        for step in history:
            ok, err = iptables_restore(ns, text_of(step), ipv6, noflush=True)
            assert ok, f"earlier step {step.name} did not load:\n{err}"
        text = text_of(case)
        ok, err = iptables_restore_test(ns, text, ipv6)
        assert ok, f"iptables-restore --test rejected it:\n{err}"
        ok, err = iptables_restore(ns, text, ipv6, noflush=True)
        assert ok, f"the kernel rejected it:\n{err}"


@pytest.mark.parametrize("case", corpus_cases("expected.iptables"), ids=lambda p: p.name)
def test_expected_dump_loads(case: Path):
    _assert_loads(case, _expected)


@pytest.mark.parametrize("case", corpus_cases("input.json"), ids=lambda p: p.name)
def test_compiled_case_loads(case: Path):
    _assert_loads(case, _compiled)


def _load_spec(path: Path):
    try:
        from kspec.grammar import load
    except ImportError:
        pytest.skip("kspec.grammar has no load() yet: the .k front end has not landed")
    loaded = load(str(path))
    # load() returns (cluster, warnings), as kspec.cli uses it; accept a bare cluster too.
    return loaded[0] if isinstance(loaded, tuple) else loaded


@pytest.mark.parametrize("spec", SPECS or [None], ids=lambda p: p.name if p else "no-specs")
def test_spec_compiles_to_loadable_rules(spec: Path | None):
    if spec is None:
        pytest.skip("no specs/*.k yet")
    cluster = _load_spec(spec)
    for family in cluster.families():
        for node, text in compile_cluster(cluster, family).items():
            with throwaway_netns() as ns:
                ipv6 = family.value == "IPv6"
                ok, err = iptables_restore_test(ns, text, ipv6)
                assert ok, f"{spec.name} node {node} ({family.value}): --test rejected it:\n{err}"
                ok, err = iptables_restore(ns, text, ipv6, noflush=True)
                assert ok, f"{spec.name} node {node} ({family.value}): the kernel rejected it:\n{err}"
