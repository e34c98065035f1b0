"""Which packets two clusters treat differently (``kspec diff``): two specs, one spec under two kube-proxy
releases, a spec and a cluster's objects. Exact over every source address: for each client class and each
destination both sides have, the outcome a packet meets (its disposition, the pod, the source the pod sees)
is compared in Z3, outcome by outcome: a packet for which one side can give an outcome the other cannot is a
difference, shown as one concrete packet with both sides' traces. "No difference" is a proof.

Client classes: "any external host" (its address symbolic), a process on each node, and the clients both
specs declare alike. Destinations: every port of every Service, by cluster IP, node port on each node,
external IP and load balancer.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace

import z3

from kspec import ir
from kspec.rules.iptables.validity import unreached_chains
from kspec.verifier.builtins import ANY_EXTERNAL, node_client
from kspec.verifier.model import matches
from kspec.verifier.model.network import Disposition, Fate
from kspec.verifier.properties import Instance, Target, Verifier

VIAS = (ir.Via.CLUSTER_IP, ir.Via.NODE_PORT, ir.Via.EXTERNAL_IP, ir.Via.LOAD_BALANCER)


@dataclass(frozen=True)
class Difference:
    """One packet both sides treat differently: what each side can do with it (every fate it may meet)."""

    client: str
    destination: str  # the instance's description
    src: str
    sport: int
    before: tuple[Fate, ...]
    after: tuple[Fate, ...]
    # For any external host: the widest prefix around ``src`` all of whose sources (that the client can have,
    # on any source port) meet the difference; empty when not even ``src`` does on every port.
    region: str = ""
    service: str = ""  # "ns/name" of the destination's Service


@dataclass
class DiffResult:
    compared: int = 0  # (client, destination) pairs both sides have
    destinations: list[str] = field(default_factory=list)  # their descriptions
    differences: list[Difference] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (destination, why) not decided exactly
    only_before: list[str] = field(default_factory=list)  # destinations one side has and the other has not
    only_after: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.differences or self.unknown or self.only_before or self.only_after)


def readable(description: str) -> str:
    """An instance's description with the synthetic clients' names said in words."""
    text = description.replace(ANY_EXTERNAL, "any external host")
    return re.sub(r"kspec:node:(\S+)", r"a process on \1", text)


def outcome(fate: Fate) -> tuple:
    """What a fate means to the client and the pod: disposition, pod, and the source the pod sees ("client"
    when it is the client's own, symbolic one)."""
    if fate.disposition is not Disposition.DELIVERED:
        return (fate.disposition.value, None, None)
    seen = fate.packet.src_value
    return (fate.disposition.value, fate.pod.key if fate.pod else None, "client" if seen is None else str(seen))


def diff(before: Verifier, after: Verifier) -> DiffResult:
    result = DiffResult()
    for client in _clients(before.cluster, after.cluster, before.family):
        theirs = _targets(after, client)
        mine = _targets(before, client)
        for key in sorted(set(mine) - set(theirs), key=str):
            result.only_before.append(f"{client.name} -> {mine[key][1]}")
        for key in sorted(set(theirs) - set(mine), key=str):
            result.only_after.append(f"{client.name} -> {theirs[key][1]}")
        for key in sorted(set(mine) & set(theirs), key=str):
            result.compared += 1
            result.destinations.append(f"{client.name} -> {mine[key][1]}")  # as its instance says it
            _compare(result, client, before.instance(client, *mine[key]), after.instance(client, *theirs[key]),
                     z3.And(_start(before, client, mine[key][0]), _start(after, client, theirs[key][0])))
    return result


def _clients(a: ir.Cluster, b: ir.Cluster, family: ir.IPFamily) -> list[ir.Client]:
    """Any external host, a process on each node both have, and the clients both declare alike."""
    clients = [ir.Client(ANY_EXTERNAL, ir.ClientKind.EXTERNAL)]
    shared_nodes = {n.name for n in a.nodes} & {n.name for n in b.nodes}
    clients += [ir.Client(node_client(n), ir.ClientKind.NODE, node=n.name) for n in a.nodes if n.name in shared_nodes]
    theirs = {c.name: c for c in b.clients}
    clients += [c for c in a.clients if theirs.get(c.name) == c and a.speaks(c, family)]
    return clients


def _targets(verifier: Verifier, client: ir.Client) -> dict[tuple, tuple[Target, str]]:
    """Every destination of the side, keyed by what it is (not how the side's instance labels it)."""
    found = {}
    for svc in verifier.cluster.services:
        for port in svc.ports:
            for via in VIAS:
                try:
                    pairs = list(verifier.targets(svc, port, ir.Destination(svc.key, via, port.name or None)))
                except LookupError:
                    continue  # e.g. a port without a node port
                for target, label in pairs:
                    key = (target.service_port, via.value, str(target.dst), target.dport, target.protocol.value,
                           target.entry_node, str(target.load_balancer))
                    found[key] = (target, label)
    return found


def _compare(result: DiffResult, client: ir.Client, a: Instance, b: Instance, base: z3.BoolRef) -> None:
    """``base``: the packets both sides take as this client's (an external host's source outside both
    clusters)."""
    unknown = [f for f in a.fates + b.fates if f.disposition is Disposition.UNKNOWN]
    solver = z3.Solver()
    solver.set("timeout", 10_000)
    if unknown:
        solver.add(base, z3.Or([f.cond for f in unknown]))
        if solver.check() != z3.unsat:
            result.unknown.append((a.description, unknown[0].reason))
            return
        solver.reset()
    for wanted in sorted({outcome(f) for f in a.fates + b.fates}, key=str):
        mine = z3.Or([f.cond for f in a.fates if outcome(f) == wanted] or [z3.BoolVal(False)])
        theirs = z3.Or([f.cond for f in b.fates if outcome(f) == wanted] or [z3.BoolVal(False)])
        differs = z3.Xor(mine, theirs)
        answer, model = _example(solver, base, differs)
        if answer == z3.unknown:
            result.unknown.append((a.description, "Z3 gave up comparing the two sides"))
            return
        if model is not None:
            found = _difference(client, a, b, model)
            region = _region(solver, base, differs, a, found.src) if a.client_address is None else ""
            result.differences.append(replace(found, region=region))
            return


def _start(verifier: Verifier, client: ir.Client, target: Target) -> z3.BoolRef:
    """The constraint the side puts on the client's packets before any rule (its source, for any host)."""
    pkt, _ = verifier.client_packet(client, target.dst, target.dport, target.protocol)
    return z3.And(list(pkt.conds)) if pkt.conds else z3.BoolVal(True)


def _example(solver: z3.Solver, base, differs) -> tuple:
    """(Z3's answer, a model) for a packet of ``base`` that ``differs``, with a source port a client would
    really use where one does."""
    solver.push()
    try:
        solver.add(base, differs)
        answer = solver.check()
        if answer != z3.sat:
            return answer, None
        model = solver.model()
        solver.push()
        solver.add(z3.UGE(z3.BitVec("sport", 16), 1024))
        if solver.check() == z3.sat:
            model = solver.model()
        solver.pop()
        return answer, model
    finally:
        solver.pop()


def _region(solver: z3.Solver, base, differs, inst: Instance, src: str) -> str:
    """The widest prefix around the example source within which every source the client can have (any
    source port) meets the difference: 'every source in 0.0.0.0/0' is a claim proved, not a sample. Empty
    when even the one address depends on its port."""
    ip = ipaddress.ip_address(src)
    width = ip.max_prefixlen
    term = inst.client_src

    def holds(length: int) -> bool:
        inside = matches.addr_in(term, ipaddress.ip_network(f"{ip}/{length}", strict=False), width)
        solver.push()
        try:
            solver.add(base, inside, z3.Not(differs))
            return solver.check() == z3.unsat
        finally:
            solver.pop()

    if not holds(width):
        return ""
    low, high = 0, width  # holds(high); find the least length that holds (wider prefixes are longer claims)
    while low < high:
        middle = (low + high) // 2
        if holds(middle):
            high = middle
        else:
            low = middle + 1
    return str(ipaddress.ip_network(f"{ip}/{high}", strict=False))


def _difference(client: ir.Client, a: Instance, b: Instance, model: z3.ModelRef) -> Difference:
    holds = lambda fate: z3.is_true(model.eval(fate.cond, model_completion=True))  # noqa: E731
    width = 32 if a.target is None or a.target.dst.version == 4 else 128
    address = ipaddress.IPv4Address if width == 32 else ipaddress.IPv6Address
    src = a.client_address if a.client_address is not None else \
        address(model.eval(a.client_src, model_completion=True).as_long())
    sport = model.eval(z3.BitVec("sport", 16), model_completion=True).as_long()
    return Difference(client.name, a.description, str(src), sport, tuple(f for f in a.fates if holds(f)),
                      tuple(f for f in b.fates if holds(f)),
                      service=a.target.service_port.rpartition(":")[0] if a.target else "")


def stale_chains(models: dict) -> list[tuple[str, str, str]]:
    """(node, table, chain) of every user chain no built-in chain reaches through jumps and gotos: left
    behind (kube-proxy deletes a chain it no longer uses; an interrupted sync may not have). They change no
    packet's way, so they are no difference; they are worth knowing about."""
    return [(node, table.name, chain) for node, model in models.items() for table in model.rules.tables
            for chain in unreached_chains(table)]


def result_json(result: DiffResult, sides: tuple[str, str], stale: list[tuple[str, str, str]] = ()) -> dict:
    """``kspec diff --format json``: the differences with both sides' fates (hops in verify's JSON vocabulary),
    what was not decided, what one side has only, and the stale chains of a drift."""
    from kspec.verifier.render import hops_json

    def fate(f: Fate) -> dict:
        key = outcome(f)
        return {"disposition": key[0], "pod": key[1], "client_address": key[2], "reason": f.reason or None,
                "hops": hops_json(f)}

    return {
        "format": "kspec-diff/1",
        "sides": list(sides),
        "compared": result.compared,
        "destinations": [readable(x) for x in result.destinations],
        "same": result.same,
        "differences": [{"destination": readable(d.destination), "packet": {"src": d.src, "sport": d.sport},
                         "region": d.region or None, "service": d.service or None,
                         "before": [fate(f) for f in d.before], "after": [fate(f) for f in d.after]}
                        for d in result.differences],
        "unknown": [{"destination": readable(where), "reason": why} for where, why in result.unknown],
        "only_before": [readable(x) for x in result.only_before],
        "only_after": [readable(x) for x in result.only_after],
        "stale_chains": [{"node": node, "table": table, "chain": chain} for node, table, chain in stale],
    }

