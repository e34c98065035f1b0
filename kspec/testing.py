"""Helpers for your own test suite: verify clusters in plain asserts, draw clusters with Hypothesis, and
get failures you can act on (the counterexample trace, and the shrunk cluster as a ``.k`` spec to save).

    from hypothesis import strategies as st
    from kspec import ir
    from kspec.strategies import ServiceShape
    from kspec.testing import given_cluster, verify

    LOCAL = [ServiceShape(ir.ServiceType.NODE_PORT, ir.TrafficPolicy.LOCAL),
             ServiceShape(ir.ServiceType.LOAD_BALANCER, ir.TrafficPolicy.LOCAL)]

    @given_cluster(services=st.sampled_from(LOCAL))
    def test_local_keeps_client_ip(cluster):
        assert verify(cluster, "local_keeps_client_ip").proved

``verify(cluster, what)`` takes a check of the cluster (its name or an ``ir.Check``), one of the built-in
property names in ``PROPERTIES``, or nothing (every check and built-in). Nothing here imports z3 until a
verification actually runs.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from hypothesis import given, note, settings

from kspec import ir
from kspec.grammar import format_cluster
from kspec.report import outcomes
from kspec.strategies import clusters
from kspec.verifier import verify as run
from kspec.verifier.builtins import ANY_EXTERNAL, builtin_checks, with_builtin_clients

# Built-in property names -> the prefix of the built-in checks they stand for (kspec.verifier.builtins).
PROPERTIES = {
    "cluster_ip_keeps_pod_ip": "builtin: ClusterIP traffic from",
    "nodes_reach_service": "builtin: every node reaches the Service",
    "rejects_without_endpoints": "builtin: a Service without endpoints rejects",
    "local_keeps_client_ip": "builtin: externalTrafficPolicy Local keeps the client IP",
    "health_check_matches_delivery": "builtin: node",  # "<node> passes/fails its health check ..."
    "source_ranges_enforced": "builtin: loadBalancerSourceRanges",
}
# A property the docs say does *not* hold in general: with externalTrafficPolicy Cluster, external traffic
# entering at a node without a local endpoint is SNATed. ``verify(c, "external_keeps_client_ip")`` checks
# "delivered implies source == client" for every node port from outside.
EXTERNAL_KEEPS_CLIENT_IP = "external_keeps_client_ip"


@dataclass
class Verification:
    """The verdicts of one ``verify`` call; ``proved`` iff every covered check was proved."""

    what: str
    cluster: ir.Cluster
    results: list = field(default_factory=list)

    @property
    def proved(self) -> bool:
        return all(r.verdict.value == "proved" for r in self.results)

    @property
    def violated(self) -> bool:
        return any(r.verdict.value == "violated" for r in self.results)

    @property
    def as_expected(self) -> bool:
        return all(r.as_expected for r in self.results)

    @property
    def counterexample(self):
        return next((r.counterexample for r in self.results if r.counterexample is not None), None)

    @property
    def trace(self) -> str:
        """Verdict lines and counterexample traces of the checks that were not proved."""

        return "\n".join(o.text for o in outcomes(self.cluster.name + ".k", self.results) if o.verdict != "proved")

    @property
    def spec(self) -> str:
        """The cluster as ``.k`` text (save it and run ``kspec verify`` on it)."""
        return spec_text(self.cluster)

    def __repr__(self) -> str:
        verdicts = ", ".join(sorted({r.verdict.value for r in self.results})) or "no checks"
        text = f"<Verification {self.what}: {verdicts} ({len(self.results)} checks)>"
        if not self.proved:
            text += "\n" + self.trace
        return text


def spec_text(cluster: ir.Cluster) -> str:
    return format_cluster(cluster)


def _external_checks(cluster: ir.Cluster) -> tuple[ir.Check, ...]:
    return tuple(ir.Check(f"external traffic keeps the client IP: {svc.key}", (ANY_EXTERNAL,),
                          ir.Destination(svc.key, ir.Via.NODE_PORT), ir.Implies(ir.Delivered(), ir.SourceIsClient()))
                 for svc in cluster.services if any(p.node_port for p in svc.ports))


_seen: list[Verification] = []  # verifications of the running given_cluster example (for its failure report)


def verify(cluster: ir.Cluster, what: str | ir.Check | None = None, *, timeout_ms: int = 10_000) -> Verification:
    """Verify one check of ``cluster`` (by name or ``ir.Check``), a built-in property (``PROPERTIES`` or
    ``"external_keeps_client_ip"``), or everything (``None``)."""
    result = _verify(cluster, what, timeout_ms)
    _seen.append(result)
    return result


def _verify(cluster: ir.Cluster, what, timeout_ms: int) -> Verification:
    if what is None:
        return Verification("everything", cluster, run(cluster, None, builtins=True, timeout_ms=timeout_ms))
    if isinstance(what, ir.Check):
        return Verification(what.name, cluster, run(cluster, (what,), timeout_ms=timeout_ms))
    if what == EXTERNAL_KEEPS_CLIENT_IP:
        full = with_builtin_clients(cluster)
        return Verification(what, cluster, run(full, _external_checks(cluster), timeout_ms=timeout_ms))
    if what in PROPERTIES:
        prefix = PROPERTIES[what]
        every_family = (c for family in cluster.families() for c in builtin_checks(cluster, family))
        checks = tuple(c for c in every_family if c.name.startswith(prefix)
                       and (what != "health_check_matches_delivery" or "health check" in c.name))
        return Verification(what, cluster, run(with_builtin_clients(cluster), checks, timeout_ms=timeout_ms))
    named = tuple(c for c in cluster.checks if c.name == what)
    if not named:
        known = sorted(PROPERTIES) + [EXTERNAL_KEEPS_CLIENT_IP] + [c.name for c in cluster.checks]
        raise KeyError(f"no check or property named {what!r}; known: {', '.join(known)}")
    return Verification(what, cluster, run(cluster, named, timeout_ms=timeout_ms))


# ------------------------------------------------------------------------------------- assertions


def assert_proved(cluster: ir.Cluster, what: str | ir.Check | None = None, **options) -> Verification:
    """Fail (with the trace and the cluster as a ``.k`` spec) unless ``what`` is proved; hides its frame."""
    __tracebackhide__ = True
    result = verify(cluster, what, **options)
    if not result.proved:
        raise AssertionError(_failure_text(result, "proved"))
    return result


def assert_violated(cluster: ir.Cluster, what: str | ir.Check, **options) -> Verification:
    """Fail unless ``what`` is violated (a known violation must be found); hides its frame."""
    __tracebackhide__ = True
    result = verify(cluster, what, **options)
    if not result.violated:
        raise AssertionError(_failure_text(result, "violated"))
    return result


def assert_as_expected(cluster: ir.Cluster, **options) -> Verification:
    """Fail unless every check of ``cluster`` (and every built-in) has its expected verdict."""
    __tracebackhide__ = True
    result = verify(cluster, None, **options)
    if not result.as_expected:
        raise AssertionError(_failure_text(result, "as expected"))
    return result


def _failure_text(result: Verification, wanted: str) -> str:
    return (f"{result.what}: wanted {wanted}\n{result.trace}\n\n"
            f"the cluster, as a .k spec you can save and run `kspec verify` on:\n{result.spec}")


# --------------------------------------------------------------------------------------- Hypothesis


def given_cluster(**cluster_options):
    """``@given`` for a test taking ``cluster``: drawn by ``kspec.strategies.clusters(**cluster_options)``
    (e.g. ``services=st.sampled_from([...])``, ``max_nodes=3``). When the test fails, the report shows the
    shrunk cluster as a ``.k`` spec you can save."""


    def decorate(test):
        @functools.wraps(test)
        def wrapper(*args, **kwargs):
            __tracebackhide__ = True
            _seen.clear()
            try:
                return test(*args, **kwargs)
            except BaseException:
                for result in _seen:
                    if not result.proved:
                        note(f"{result.what}: counterexample\n{result.trace}")
                cluster = kwargs.get("cluster")
                if cluster is not None:
                    note("the failing cluster, as a .k spec you can save and run `kspec verify` on:\n"
                         + spec_text(cluster))
                raise

        wrapped = given(cluster=clusters(**cluster_options))(wrapper)
        # No deadline unless the user's own settings say otherwise: one Z3 run can take a while.
        return settings(deadline=None)(wrapped) if not hasattr(test, "_hypothesis_internal_use_settings") else wrapped

    return decorate
