"""Compiler invariants over Hypothesis-generated clusters (kspec.strategies).

Each is something kube-proxy's output must satisfy whatever the cluster, not a re-statement of how the
compiler builds it: determinism, loadability by the real iptables-restore, a closed chain graph, locality
(another Service does not disturb a Service's rules), uniform endpoint selection, and the same bytes from
the Kubernetes-object form and the DSL form of one cluster.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given

from kspec import ir
from kspec import strategies as ks
from kspec.compiler import compile_cluster
from kspec.compiler.names import PER_SERVICE_PREFIXES
from kspec.export.k8s import to_yaml
from kspec.grammar import format_cluster, parse_text
from kspec.ingest.k8s import load_k8s

BUILTIN_TARGETS = {"ACCEPT", "DROP", "RETURN", "REJECT", "MARK", "DNAT", "SNAT", "MASQUERADE", "CONNMARK",
                   "LOG", "NOTRACK", "CT"}
BUILTIN_CHAINS = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}
_JUMP = re.compile(r" -[jg] (\S+)")


def tables(text: str) -> dict[str, tuple[set[str], list[tuple[str, str]]]]:
    """table -> (declared chains, [(chain, rule line)]) of an iptables-restore text."""
    result: dict[str, tuple[set[str], list[tuple[str, str]]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = result.setdefault(line[1:], (set(), []))
        elif line.startswith(":"):
            current[0].add(line[1:].split()[0])
        elif line.startswith("-A "):
            current[1].append((line.split()[1], line))
    return result


# --------------------------------------------------------------------------------------- determinism


@given(ks.clusters(proxy=ks.proxy_configs()))
def test_output_is_deterministic(cluster: ir.Cluster) -> None:
    # The same cluster, rebuilt as a distinct but equal object (through the DSL), compiles to the same bytes.
    again, _ = parse_text(format_cluster(cluster), "again.k")
    assert compile_cluster(cluster) == compile_cluster(cluster) == compile_cluster(again)


# ------------------------------------------------------------------------------------------ chain graph


@given(ks.clusters(proxy=ks.proxy_configs()))
def test_every_jump_is_declared_and_every_service_chain_is_used(cluster: ir.Cluster) -> None:
    for node, text in compile_cluster(cluster).items():
        for table, (declared, rules) in tables(text).items():
            for chain, line in rules:
                assert chain in declared or chain in BUILTIN_CHAINS, f"{node} {table}: rule in undeclared {chain}"
                for target in _JUMP.findall(line):
                    assert target in BUILTIN_TARGETS or target in declared, (
                        f"{node} {table}: jump to undeclared chain {target}\n{line}")
            referenced = {t for _, line in rules for t in _JUMP.findall(line)}
            for chain in declared:
                if chain.startswith(PER_SERVICE_PREFIXES):
                    assert chain in referenced, f"{node} {table}: {chain} is declared but nothing jumps to it"


# ------------------------------------------------------------------------------------------ locality


def service_lines(text: str, key: str) -> list[str]:
    """The lines of ``text`` that belong to Service ``key``: rules naming it in their comment and the
    declarations and rules of the chains those rules live in or jump to."""
    mention = re.compile(re.escape(key) + r"(?![\w.-])")
    per_table = tables(text)
    lines = []
    for table, (declared, rules) in per_table.items():
        own = {chain for chain, line in rules if mention.search(line) and chain.startswith(PER_SERVICE_PREFIXES)}
        own |= {t for _, line in rules if mention.search(line) for t in _JUMP.findall(line)
                if t.startswith(PER_SERVICE_PREFIXES)}
        lines += [f"{table} :{c}" for c in sorted(own & declared)]
        lines += [f"{table} {line}" for chain, line in rules if chain in own or mention.search(line)]
    return lines


@given(ks.clusters(min_services=2, max_services=3))
def test_an_unrelated_service_does_not_change_another_services_rules(cluster: ir.Cluster) -> None:
    without = replace(cluster, services=cluster.services[:-1])
    before, after = compile_cluster(without), compile_cluster(cluster)
    for svc in without.services:
        for node in before:
            assert service_lines(after[node], svc.key) == service_lines(before[node], svc.key), (
                f"adding {cluster.services[-1].key} changed {svc.key}'s rules on {node}")


# ---------------------------------------------------------------------------------- endpoint selection


_PROBABILITY = re.compile(r"--probability (\S+)")


@given(ks.clusters(max_pods_per_node=3, types=(ir.ServiceType.CLUSTER_IP, ir.ServiceType.NODE_PORT)))
def test_every_endpoint_is_chosen_with_equal_probability(cluster: ir.Cluster) -> None:
    """kube-proxy's statistic cascade picks each endpoint of a KUBE-SVC/KUBE-SVL chain with probability 1/n."""
    for node, text in compile_cluster(cluster).items():
        _, rules = tables(text)["nat"]
        chains: dict[str, list[str]] = {}
        for chain, line in rules:
            # (ClientIP affinity's "-m recent --rcheck" lines only catch clients seen before.)
            if chain.startswith(("KUBE-SVC-", "KUBE-SVL-")) and " -j KUBE-SEP-" in line and "--rcheck" not in line:
                chains.setdefault(chain, []).append(line)
        for chain, lines in chains.items():
            reach, shares = Fraction(1), []
            for line in lines:
                match = _PROBABILITY.search(line)
                p = Fraction(match.group(1)) if match else Fraction(1)
                shares.append(reach * p)
                reach *= 1 - p
            n = len(lines)
            assert reach <= Fraction(1, 10**6), f"{node} {chain}: a packet can fall through the cascade"
            for share in shares:
                assert abs(share - Fraction(1, n)) < Fraction(1, 10**4), (
                    f"{node} {chain}: endpoint shares {[float(s) for s in shares]}, wanted 1/{n} each")


# ---------------------------------------------------------------------------------- Kubernetes objects


@given(ks.clusters(proxy=ks.proxy_configs()))
def test_kubernetes_objects_and_dsl_compile_to_the_same_bytes(cluster: ir.Cluster) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cluster.yaml"
        path.write_text(to_yaml(cluster))
        from_objects = load_k8s([str(path)])
    from_dsl, _ = parse_text(format_cluster(cluster), "cluster.k")
    assert compile_cluster(from_objects) == compile_cluster(from_dsl)


# ------------------------------------------------------------------------------------ iptables-restore


@pytest.fixture(scope="module")
def namespace():
    from tests.netns import skip_reason, throwaway_netns

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with throwaway_netns() as ns:
        yield ns


@pytest.mark.netns
def test_every_ruleset_loads_with_iptables_restore_test(namespace) -> None:
    from hypothesis import settings

    from tests.netns import iptables_restore_test

    @settings(max_examples=min(settings().max_examples, 40))
    @given(ks.clusters(proxy=ks.proxy_configs()))
    def loads(cluster: ir.Cluster) -> None:
        for node, text in compile_cluster(cluster).items():
            ok, stderr = iptables_restore_test(namespace, text)
            assert ok, f"{node}: iptables-restore --test rejected the rules: {stderr}\n{text}"

    loads()
