"""One Verifier answers many checks with one Z3 solver (a scope per question) and with the heap frozen per
check. Neither may change an answer: every spec's checks, built-ins included, get the same verdicts and the
same counterexamples from one shared Verifier as from a fresh Verifier per check."""
from __future__ import annotations

import gc
from pathlib import Path

import pytest

from kspec import ir
from kspec.grammar import load
from kspec.heap import collector_paused, heap_frozen
from kspec.verifier import node_models
from kspec.verifier.builtins import builtin_checks, with_builtin_clients
from kspec.verifier.model.network import ClusterNetwork
from kspec.verifier.properties import Verdict, Verifier

SPECS = sorted((Path(__file__).resolve().parents[2] / "specs").glob("*.k"))


def _summary(result) -> tuple:
    ce = result.counterexample
    where = None if ce is None else (ce.src, ce.seen, [h.node for h in ce.fate.hops], ce.fate.disposition)
    return result.verdict, result.as_expected, where, result.replay_error


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_a_shared_verifier_answers_as_fresh_ones_do(spec: Path):
    cluster, _ = load(str(spec))
    checks = tuple(cluster.checks) + builtin_checks(cluster)
    cluster = with_builtin_clients(cluster)
    network = ClusterNetwork(cluster, node_models(cluster), ir.IPFamily.V4)
    shared = Verifier(cluster, network)
    together = [_summary(shared.check(check)) for check in checks]
    alone = [_summary(Verifier(cluster, network).check(check)) for check in checks]
    assert together == alone
    assert {verdict for verdict, *_ in together} >= {Verdict.PROVED}  # not vacuous: real answers


def test_heap_frozen_scopes_the_freeze_and_still_collects_the_blocks_garbage():
    assert gc.get_freeze_count() == 0
    with heap_frozen():
        assert gc.get_freeze_count() > 0
        cycle = []
        cycle.append(cycle)  # garbage made inside the block: a collection inside must still free it
        del cycle
        assert gc.collect() >= 1
    assert gc.get_freeze_count() == 0


def test_heap_frozen_leaves_an_outer_freeze_alone():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with heap_frozen():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("enabled", [True, False])
def test_collector_paused_restores_the_collector_as_it_was(enabled: bool):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_collector_paused_hands_what_it_built_to_the_oldest_generation():
    was = gc.isenabled()
    gc.enable()
    try:
        with collector_paused():
            built = [[index] for index in range(5000)]
        assert gc.get_count()[0] < 5000  # no young collection pending over the build
        oldest = {id(obj) for obj in gc.get_objects(generation=2)}
        assert all(id(item) in oldest for item in built)
        assert gc.get_freeze_count() == 0
    finally:
        (gc.enable if was else gc.disable)()


def test_collector_paused_leaves_an_outer_freeze_alone():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_paused():
            built = [[index] for index in range(100)]
        assert gc.get_freeze_count() == frozen
        assert built
    finally:
        gc.unfreeze()
