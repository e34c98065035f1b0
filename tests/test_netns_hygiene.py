"""The kernel-test helpers clean up after themselves, and the session leaves the host as it found it."""
from __future__ import annotations

import pytest

from tests.netns import (
    PREFIX,
    iptables_restore,
    iptables_restore_test,
    leftover_namespaces,
    namespaces,
    root_ruleset,
    throwaway_netns,
)

pytestmark = pytest.mark.netns

NFACCT_RULES = """*filter
:KUBE-FORWARD - [0:0]
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
COMMIT
"""


def test_namespace_exists_inside_and_is_gone_after():
    with throwaway_netns() as ns:
        assert ns.startswith(PREFIX) and ns in namespaces()
    assert ns not in namespaces()


def test_namespace_is_deleted_when_the_body_raises():
    with pytest.raises(ZeroDivisionError):
        with throwaway_netns() as ns:
            raise ZeroDivisionError("the body fails")
    assert ns not in namespaces()


def test_names_are_unique():
    with throwaway_netns() as first, throwaway_netns() as second:
        assert first != second


def test_restore_test_reports_errors():
    with throwaway_netns() as ns:
        ok, err = iptables_restore_test(ns, "*filter\n:X - [0:0]\n-A X --no-such-option -j ACCEPT\nCOMMIT\n")
    assert not ok and "no-such-option" in err


def test_nfacct_counters_are_created_for_a_real_restore():
    # Without the counter, a real restore fails: the helper must create it in the namespace first.
    with throwaway_netns() as ns:
        assert iptables_restore_test(ns, NFACCT_RULES) == (True, "")
        ok, err = iptables_restore(ns, NFACCT_RULES)
        assert ok, err


def test_real_restore_checks_jump_targets():
    # Why the corpus tests commit into the namespace as well: --test would accept this.
    with throwaway_netns() as ns:
        ok, err = iptables_restore(ns, "*nat\n:X - [0:0]\n-A X -j KUBE-NO-SUCH-CHAIN\nCOMMIT\n")
    assert not ok and "KUBE-NO-SUCH-CHAIN" in err


@pytest.mark.session_hygiene
def test_session_left_no_namespace_behind():
    assert leftover_namespaces() == []


@pytest.mark.session_hygiene
def test_session_left_host_rules_unchanged(root_ruleset_before):
    if root_ruleset_before is None:
        pytest.skip("iptables-save could not read the host's rules when the session started")
    assert root_ruleset() == root_ruleset_before
