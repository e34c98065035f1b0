"""The corpus at every release (docs/kube-proxy-releases.md, "The corpus across releases"): its cases are
kube-proxy 1.34's, and 1.35 and 1.36 write every one of them byte for byte as 1.34 does (the one
release-keyed change after 1.34, row 1's duplicate endpoints, is a state no case holds); older releases
differ where the table says (nfacct counters before 1.31, and so on)."""
from __future__ import annotations

import dataclasses

import pytest

from kspec import releases
from kspec.compiler import compile_node
from kspec.ingest.conformance import load_case
from tests.conftest import corpus_cases, require_corpus

CASES = corpus_cases("input.json")


def _at(case, release) -> str:
    cluster, node, family, sync = load_case(case)
    cluster = dataclasses.replace(cluster, proxy=dataclasses.replace(cluster.proxy, kube_proxy_version=release))
    return compile_node(cluster, node, family, sync=sync)


@pytest.mark.parametrize("release", [r for r in releases.SUPPORTED if r > releases.CORPUS], ids=releases.text)
def test_releases_after_the_corpus_write_every_case_alike(release):
    require_corpus()
    assert len(CASES) >= 60
    changed = [case.name for case in CASES if _at(case, release) != _at(case, releases.CORPUS)]
    assert changed == []


def test_an_older_release_does_change_cases():
    # The comparison above can fail: 1.30 writes no nfacct counters, which most cases' rules have.
    require_corpus()
    changed = [case.name for case in CASES if _at(case, (1, 30)) != _at(case, releases.CORPUS)]
    assert len(changed) > 50
