"""Shared fixtures: where kube-proxy's conformance corpus lives (``../shared`` beside the clone)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "conformance" / "kube-proxy"


def corpus_cases(kind: str) -> list[Path]:
    """Case folders holding ``kind`` (a file name); empty when the corpus is absent."""
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in (CORPUS / "cases").iterdir() if (p / kind).exists())


def require_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"kube-proxy conformance corpus not found at {CORPUS} (it lives in the team's shared/)")


# ----------------------------------------------------------------------- kernel tests (tests/netns.py)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``netns`` skip, with the reason, where namespaces and iptables are not to be had."""
    if item.get_closest_marker("netns"):
        from tests.netns import skip_reason

        reason = skip_reason()
        if reason:
            pytest.skip(reason)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rulesets", type=int, default=200, metavar="N",
                     help="random rulesets the kernel differential draws (tests/lab/test_random_rulesets.py)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "session_hygiene: checks the whole session's side effects; runs last")
    # Read by tests/lab/test_random_rulesets.py at import, where Hypothesis settles its example count.
    os.environ["KSPEC_RULESETS"] = str(config.getoption("--rulesets"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Hygiene checks judge the whole session, so they run after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("session_hygiene") is not None)


@pytest.fixture(scope="session", autouse=True)
def root_ruleset_before():
    """The host's iptables rules as the session found them (None where they cannot be read)."""
    from tests.netns import root_ruleset, skip_reason

    if skip_reason():
        return None
    try:
        return root_ruleset()
    except RuntimeError:  # iptables-save itself fails here: the hygiene test says so and skips
        return None


# ------------------------------------------------------------------------------- Hypothesis profiles
# `ci`: derandomized and bounded, so CI is reproducible and quick; `dev`: more examples for local runs
# (HYPOTHESIS_PROFILE=dev); `local`: Hypothesis' defaults for a plain `pytest`. CI=true selects `ci` unless
# HYPOTHESIS_PROFILE says otherwise. None has a per-example deadline: on a shared machine a wall-clock
# deadline fails at random (a flaky test); hangs are bounded where they can happen (e.g. parser_robustness).

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", derandomize=True, max_examples=60, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("local", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI", "").lower() == "true" else "local"))


# ----------------------------------------------------------------- conformance scoreboard
# The corpus tests are parametrised per case; this tallies them per kind so every run says "how many of
# how many" of kube-proxy's own expectations kspec meets.

_SCOREBOARD = {
    "test_compiler_corpus.py::test_full_dump": "full dumps (expected.iptables)",
    "test_compiler_corpus.py::test_chain": "chain checks (expected_chains.json)",
    "test_compiler_corpus.py::test_assertions": "assertion groups (assertions.json)",
    "test_flows.py::test_unit_tracer_flows": "flow cases (246 flows), kube-proxy's unit-test tracer semantics",
    "test_flows.py::test_full_tracer_agrees": "flow cases (246 flows), full concrete tracer",
    "test_flows_z3.py::test_flows_in_z3_model": "flow cases (246 flows), Z3 model",
    "test_k8s_objects.py::test_objects_compile_to_kube_proxys_ruleset": "full-sync cases written as Kubernetes objects",
    "test_kube_proxy_helpers.py::test_node_port_addresses":
        "helper cases, util/nodeport_addresses_test.go (NodePortAddresses)",
    "test_kube_proxy_helpers.py::test_service_port_info":
        "helper cases, servicechangetracker_test.go (ServicePortInfo)",
    "test_kube_proxy_helpers.py::test_categorize_endpoints":
        "helper cases, topology_test.go (CategorizeEndpoints, topology hints)",
    "test_kube_proxy_helpers.py::test_endpoints_of_each_service_port":
        "helper cases, endpointslicecache_test.go (endpoints per node, one case at 1.36)",
    "test_kube_proxy_helpers.py::test_trafficdist_reconcile_hints":
        "controller cases, trafficdist_test.go (trafficDistribution's hints)",
}
_tally: dict[str, list[int]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" and not (report.when == "setup" and report.skipped):
        return
    for prefix, kind in _SCOREBOARD.items():
        if prefix in report.nodeid:
            passed, total = _tally.setdefault(kind, [0, 0])
            _tally[kind] = [passed + report.passed, total + 1]


def pytest_terminal_summary(terminalreporter) -> None:
    random_rulesets = sys.modules.get("tests.lab.test_random_rulesets")
    if random_rulesets is not None and random_rulesets.STATS["examples"]:
        stats = random_rulesets.STATS
        terminalreporter.section("random rulesets against the kernel")
        terminalreporter.write_line(f"{stats['examples']} rulesets in {stats['seconds']:.0f} s, "
                                    f"{len(stats['disagreements'])} disagreement(s)")
        seen = ", ".join(f"{what} {count}" for what, count in sorted(stats["outcomes"].items()))
        terminalreporter.write_line(f"  predicted outcomes: {seen}")
        for where in stats["disagreements"]:
            terminalreporter.write_line(f"  {where}")
    if _tally:
        terminalreporter.section("kube-proxy conformance corpus")
        for kind, (passed, total) in _tally.items():
            terminalreporter.write_line(f"{passed}/{total} {kind}")
