"""Random rulesets against the kernel: the Z3 model, the concrete tracer and the kernel must agree on what a
client observes (delivered where and seen as whom, answered or not, dropped, rejected, no route).

Each example draws a whole ``iptables-save`` for both nodes of ``tests/verifier/test_kernel_faithful.py``'s
cluster (``ruleset_strategies.cluster_dumps``: every table, user chains, marks, conntrack states, NAT,
interfaces) and one probe (a client and a Service address); one lab is built for the whole run and the
rules are replaced per example. CI runs ``--rulesets`` examples (200, fixed: derandomized); ``--rulesets
10000`` is the long run, which goes on past disagreements and writes each to ``KSPEC_RULESETS_LOG``. The count,
the time and every disagreement are printed at the end of the session.
"""
from __future__ import annotations

import os
import re
import time

import pytest
import z3
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kspec import ir
from kspec.diagnostics import KspecError
from kspec.lab import _client_end, _flush_conntrack, _steer, requirements
from kspec.lab.netns import LabError, call_in_ns
from kspec.lab.probe import send_batch
from kspec.lab.report import ProbeResult
from kspec.lab.topology import Lab
from kspec.rules.iptables.iptables_save import parse_iptables_save
from kspec.verifier import node_models
from kspec.verifier.engines.replay import ConcreteCluster
from kspec.verifier.engines.tracer import Packet
from kspec.verifier.model.network import ClusterNetwork, Disposition
from kspec.verifier.predict import fate_outcome, observed
from kspec.verifier.properties import Verifier
from tests.lab.ruleset_strategies import cluster_dumps
from tests.verifier.test_kernel_faithful import scenario

pytestmark = pytest.mark.netns

SPORT = 40000  # the concrete tracer's source port; the kernel's are ephemeral (32768-60999), the model's too
EPHEMERAL = (32768, 60999)
STATS = {"examples": 0, "seconds": 0.0, "disagreements": [], "outcomes": {}}


@pytest.fixture(scope="module")
def lab():
    reason = requirements(ir.IPFamily.V4)
    if reason:
        pytest.skip(reason)
    from kspec.lab import workloads

    cluster, rules = scenario()
    built = Lab(cluster, ir.IPFamily.V4, rules=rules)
    try:
        built.build()
        built.load_rules()
        workloads.start_servers(built)
        yield built
    finally:
        built.teardown()


def _probes(cluster: ir.Cluster, verifier: Verifier):
    """(check, instance) for every probe the cluster's checks make (the clients all have addresses)."""
    return [(check, inst) for check in cluster.checks for inst in verifier.instances(check)]


def _model(verifier: Verifier, inst) -> frozenset:
    sport = z3.BitVec("sport", 16)
    ephemeral = z3.And(z3.UGE(sport, EPHEMERAL[0]), z3.ULE(sport, EPHEMERAL[1]))
    found = set()
    for fate in verifier.round_trip_fates(inst):
        constrained = _with(fate, ephemeral)
        outcome = fate_outcome(constrained)
        if outcome is not None:
            found.add(outcome)
    return frozenset(found)


def _with(fate, extra):
    """``fate`` with one more conjunct on its path condition (the packets the kernel can really send): on its
    last stage (the answer's, the client's data's), whose condition holds all earlier ones."""
    from dataclasses import replace

    if fate.reply is not None:
        return replace(fate, reply=_with(fate.reply, extra))
    return replace(fate, packet=fate.packet.evolve(conds=fate.packet.conds + (extra,)))


def _concrete(concrete: ConcreteCluster, inst) -> frozenset:
    target = inst.target
    packet = Packet(inst.client_address, target.dst, target.protocol.lower, SPORT, target.dport)
    journeys = concrete.round_trips(inst.client, packet, target.entry_node, (target.dst, target.dport))
    return frozenset(observed(j.disposition, j.pod, j.packet.src_value, *j.later())
                     for j in journeys)


def _count(what: str) -> None:
    STATS["outcomes"][what] = STATS["outcomes"].get(what, 0) + 1


def _same_refusals(lab: Lab, dumps: dict[str, str]) -> None:
    """Node by node: the kernel refuses a dump exactly when kspec does, at a line kspec names."""
    for node, text in dumps.items():
        try:
            parse_iptables_save(text, f"{node}.rules")
            lines: set[int] = set()
        except KspecError as refused:
            lines = {d.span.line for d in refused.diagnostics if d.span is not None}
        try:
            lab.reload({node: text})
            kernel = None
        except LabError as exc:
            kernel = re.search(r"line (\d+):", str(exc))
            kernel = int(kernel.group(1)) if kernel else -1
        if (kernel is None) != (not lines) or (kernel is not None and kernel not in lines):
            _disagree(f"{node}: kspec refuses lines {sorted(lines)}, the kernel line {kernel}", text)


def _kernel(lab: Lab, check, inst, predicted) -> ProbeResult:
    ns, src = _client_end(lab, inst.client)
    target = inst.target
    _steer(lab, inst.client, target)
    _flush_conntrack(lab)
    tries = call_in_ns(ns, lambda: send_batch(target.protocol.lower, str(src), str(target.dst), target.dport, 2,
                                              connect_timeout=0.5))
    return ProbeResult(check.name, inst.client.name, inst.description, target, predicted, tries, inst.fates)


WANTED = int(os.environ.get("KSPEC_RULESETS", "200"))
# A long run does not stop at the first disagreement: it writes each one (both dumps, the traces) to LOG and
# goes on; test_the_long_run_found_no_disagreement then fails if there was any.
LONG_RUN = WANTED > 1000
LOG = os.environ.get("KSPEC_RULESETS_LOG", "kspec-rulesets-disagreements.txt")


# No shrinking: every step of it reloads the lab, and a failure prints both dumps whole already. The CI
# count is derandomized (the same rulesets every run); a long run draws fresh ones.
@settings(max_examples=WANTED, deadline=None, derandomize=WANTED <= 1000,
          database=None, suppress_health_check=list(HealthCheck), print_blob=True,
          phases=[Phase.explicit, Phase.generate])
@given(dumps=cluster_dumps(), pick=st.integers(0, 1 << 16))
def test_kernel_agrees_on_random_rulesets(lab, dumps, pick):
    start = time.monotonic()
    STATS["examples"] += 1
    try:
        _differential(lab, dumps, pick)
    finally:
        STATS["seconds"] += time.monotonic() - start
        if LONG_RUN and STATS["examples"] % 250 == 0:  # how far a long run got, beside its LOG
            with open(f"{LOG}.progress", "a", encoding="utf-8") as progress:
                progress.write(f"random rulesets: {STATS['examples']} in {STATS['seconds']:.0f} s, "
                               f"{len(STATS['disagreements'])} disagreement(s), {STATS['outcomes']}\n")


def _disagree(summary: str, details: str) -> None:
    STATS["disagreements"].append(summary)
    if not LONG_RUN:
        pytest.fail(f"{summary}\n{details}", pytrace=False)
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(f"=== {summary}\n{details}\n\n")


def test_the_long_run_found_no_disagreement():
    """After a long run (which goes on past disagreements), every one is a failure; see LOG."""
    if not LONG_RUN:
        pytest.skip("only a long run (--rulesets > 1000) goes on past a disagreement")
    assert not STATS["disagreements"], f"{len(STATS['disagreements'])} disagreement(s), written to {LOG}"


def _differential(lab: Lab, dumps: dict[str, str], pick: int) -> None:
    cluster = lab.cluster
    try:
        models = node_models(cluster, rules=dumps)
    except KspecError:  # kspec refuses a ruleset: so must the kernel, for the same rules
        _same_refusals(lab, dumps)
        _count("refused by kspec and the kernel")
        return
    verifier = Verifier(cluster, ClusterNetwork(cluster, models, ir.IPFamily.V4))
    probes = _probes(cluster, verifier)
    check, inst = probes[pick % len(probes)]
    model = _model(verifier, inst)
    concrete = _concrete(ConcreteCluster(verifier.net), inst)
    try:
        lab.reload(dumps)
    except LabError as exc:
        _disagree(f"the kernel refuses a ruleset kspec accepts: {exc}",
                  "\n".join(f"## {node}.rules\n{dump}" for node, dump in dumps.items()))
        return
    for outcome in model:
        _count(outcome.disposition.value)
    if any(o.disposition is Disposition.UNKNOWN for o in model):
        # Honest, never wrong, and counted: e.g. a pod port nothing listens on (its reset's way back).
        if model != concrete:
            text = "\n".join(f"## {node}.rules\n{dump}" for node, dump in dumps.items())
            _disagree(inst.description, f"  Z3 {sorted(map(str, model))} != concrete tracer "
                      f"{sorted(map(str, concrete))} (unknown)\n{text}")
        return
    result = _kernel(lab, check, inst, model)
    problems = []
    if model != concrete:
        problems.append(f"Z3 {sorted(map(str, model))} != concrete tracer {sorted(map(str, concrete))}")
    if not result.agree:
        problems.append(f"the kernel observed {result.observed_text()}, the model predicts {result.predicted_text()}")
    if problems:
        text = "\n".join(f"## {node}.rules\n{dump}" for node, dump in dumps.items())
        _disagree(inst.description, "  " + "\n  ".join(problems) + f"\n{text}\n{result.traces()}")
