"""Rules text -> rule IR -> Z3; properties; counterexamples.

Start at ``verify``: it compiles (or takes) each node's ruleset, parses it into the rule IR, adds kube-proxy's
jumps from the built-in chains, builds one ``encode.NodeModel`` per node inside a ``network.ClusterNetwork``,
and asks ``properties.Verifier`` about every check.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from kspec import ir
from kspec.heap import collector_paused


def node_models(cluster: ir.Cluster, family: ir.IPFamily = ir.IPFamily.V4,
                rules: dict[str, str | Path] | None = None, ipsets: dict[str, str | Path] | None = None,
                strict: bool = False) -> dict:
    """One NodeModel per node; ``rules`` maps node names to the restore/save text (or a file holding it) to
    use instead of compiling, e.g. a real node's ``iptables-save`` dump; ``ipsets`` to its ``ipset save``
    (the sets its ``-m set`` rules name). ``strict``: a match or target kspec does not model is an error
    rather than an unknown."""
    with collector_paused():  # a bulk build: every model lives as long as the verification
        return _node_models(cluster, family, rules, ipsets or {}, strict)


def _read(source: str | Path, name: str) -> tuple[str, str]:
    """(text, file name) of a dump given as text or as a file."""
    if isinstance(source, Path):
        return source.read_text(encoding="utf-8", errors="replace"), str(source)
    return source, name


def _node_sets(node: str, source, ruleset):
    """The node's sets, and a positioned error for each ``-m set`` naming a set they do not hold."""
    from kspec.diagnostics import Diagnostic, KspecError
    from kspec.rules.iptables import ruleset as rs
    from kspec.rules.iptables.ipset_save import IpSets, parse_ipset_save

    sets = parse_ipset_save(*_read(source, f"{node}.ipsets")) if source is not None else None
    errors = []
    for rule in ruleset.rules():
        for match in rule.matches:
            if type(match) is rs.SetMatch and (sets is None or match.name not in sets):
                column = max(rule.text.find(match.name), 0) + 1 if rule.text else 1
                where = "the node's sets" if sets is not None else "no sets were given for the node"
                errors.append(Diagnostic(ir.Span(rule.file or node, rule.line, column),
                                         f"-m set names '{match.name}', which is not in {where} "
                                         f"(give its 'ipset save': {node}.ipsets beside the rules, or --ipsets)"))
    if errors:
        raise KspecError(errors)
    return sets if sets is not None else IpSets()


def _node_models(cluster: ir.Cluster, family: ir.IPFamily, rules: dict[str, str | Path] | None,
                 ipsets: dict, strict: bool) -> dict:
    from kspec.compiler import compile_cluster
    from kspec.compiler.context import NodeContext
    from kspec.rules.iptables.iptables_save import RuleParser, parse_iptables_save
    from kspec.verifier.engines.encode import NodeModel
    from kspec.verifier.engines.tracer import kube_proxy_state
    from kspec.verifier.model.network import device_routes, local_routes

    texts = compile_cluster(cluster, family) if not rules or set(rules) != {n.name for n in cluster.nodes} else {}
    models = {}
    memo = RuleParser()  # nodes have nearly the same rules: each text is parsed once for the whole cluster
    for node in cluster.nodes:
        local = NodeContext(node, family, cluster.proxy, False)
        if rules and node.name in rules:
            text, name = _read(rules[node.name], f"{node.name}.rules")
            ruleset = parse_iptables_save(text, name, memo=memo, strict=strict)
        else:
            ruleset = kube_proxy_state(texts[node.name], f"{node.name}.rules", local.localhost_node_ports, memo)
        sets = _node_sets(node.name, ipsets.get(node.name), ruleset)
        width = 32 if family is ir.IPFamily.V4 else 128
        # The kernel's LOCAL addresses: loopback and the node's own (the pod gateway it holds for its pods).
        routes = local_routes(cluster, node, family)
        local_ips = frozenset(local.local_ips()) | frozenset(routes)
        devices = device_routes(cluster, node) if family is ir.IPFamily.V6 else None
        models[node.name] = NodeModel(node.name, ruleset, local_ips, width, sets, routes, devices)
    return models


def verify(cluster: ir.Cluster, checks: tuple[ir.Check, ...] | None = None, *, timeout_ms: int = 10_000,
           family: ir.IPFamily | None = None, rules: dict[str, str | Path] | None = None,
           builtins: bool = False, ipsets: dict[str, str | Path] | None = None, strict: bool = False,
           progress: Callable[[str, int, int], None] | None = None):
    """CheckResult for every check (the cluster's own when ``checks`` is None), plus the built-in
    properties when ``builtins``. ``progress(what, done, total)`` hears of each step (for a progress bar).

    ``family``: verify one IP family; None: every family the cluster's nodes and Services have. A
    dual-stack cluster is verified once per family (kube-proxy programs iptables and ip6tables apart) and
    each check's answers are combined: violated in either family is violated, then unknown, else proved; a
    family in which the check covers no packet (an IPv4-only Service, an IPv6 client) has no say. Built-ins
    are per family, and named with it when there are two. ``rules`` (a node's dump) is of one family, so it
    needs ``family`` then.
    """
    families = (family,) if family is not None else cluster.families()
    if rules and len(families) > 1:
        raise ValueError("a dump holds one family's rules: pass family= with rules= for a dual-stack cluster")
    own = tuple(cluster.checks if checks is None else checks)
    answers = [_verify_family(cluster, own, f, timeout_ms, rules, builtins, len(families) > 1, ipsets, strict,
                              progress or _quiet) for f in families]
    combined = [_combined([results[i] for results in answers]) for i in range(len(own))]
    return combined + [result for results in answers for result in results[len(own):]]


def _verify_family(cluster: ir.Cluster, own: tuple[ir.Check, ...], family: ir.IPFamily, timeout_ms: int,
                   rules, builtins: bool, named: bool, ipsets=None, strict: bool = False,
                   progress: Callable[[str, int, int], None] = None) -> list:
    from kspec.verifier.builtins import builtin_checks, with_builtin_clients
    from kspec.verifier.model.network import ClusterNetwork
    from kspec.verifier.properties import Verifier

    # A check without `from` speaks of the spec's own clients, never of those the built-ins add below.
    declared = tuple(c.name for c in cluster.clients)
    todo = tuple(replace(c, clients=declared) if not c.clients and declared else c for c in own)
    if builtins:
        extra = builtin_checks(cluster, family)
        todo += tuple(replace(c, name=f"{c.name} ({family.value})") for c in extra) if named else extra
        cluster = with_builtin_clients(cluster)
    progress(f"{cluster.name} ({family.value}): reading the nodes' rules", 0, len(todo))
    network = ClusterNetwork(cluster, node_models(cluster, family, rules, ipsets, strict), family)
    verifier = Verifier(cluster, network, timeout_ms)
    results = []
    for done, check in enumerate(todo):
        progress(f"{cluster.name} ({family.value}): {check.name}", done, len(todo))
        results.append(verifier.check(check))
    return results


def _quiet(what: str, done: int, total: int) -> None:
    pass


def _combined(results: list):
    """One check's answer from its answers per family (see ``verify``)."""
    from kspec.verifier.properties import Verdict

    live = [r for r in results if r.instances] or results[:1]
    for verdict in (Verdict.VIOLATED, Verdict.UNKNOWN):
        found = next((r for r in live if r.verdict is verdict), None)
        if found is not None:
            return found
    return replace(live[0], instances=sum(r.instances for r in live))
