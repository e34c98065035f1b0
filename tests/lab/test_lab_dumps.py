"""Dumps with more than kube-proxy's rules through the lab: the kernel is the judge of every scenario of
``tests/verifier/test_kernel_faithful.py`` (``-o`` in FORWARD, SNAT and MASQUERADE, every table, conntrack in
raw, protocol numbers, MASQUERADE towards an own pod on either pod-network wiring)."""
from __future__ import annotations

import pytest

from kspec.lab import run_lab
from tests.lab.conftest import assert_agrees
from tests.verifier.test_kernel_faithful import SCENARIOS, owner_scenario, scenario

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("name", SCENARIOS)
def test_kernel_agrees_on_dump(name):
    cluster, rules = scenario(**SCENARIOS[name])
    report = run_lab(cluster, spec=name, rules=rules)
    assert report.results, "no probes"
    assert_agrees(report)


def test_kernel_agrees_on_socket_owners():
    # Node processes of three users; node1's OUTPUT drops by the socket's owner (the lab sends as each user).
    cluster, rules = owner_scenario()
    report = run_lab(cluster, spec="owner", rules=rules)
    assert {r.check for r in report.results} >= {"alice dropped", "bob delivered", "root delivered"}
    assert_agrees(report)
