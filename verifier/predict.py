"""What the model predicts for each probe a real network can send: the lab's side of the differential test.

A probe is one instance of a check (client, destination address and port, entry node). Its prediction is
the set of outcomes of every feasible path: which pod answers and which client address it reports, or that
the packet is dropped, rejected, reaches a host socket, or has no route.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import z3

from kspec import ir
from kspec.verifier.network import Disposition, Fate
from kspec.verifier.properties import Instance, Target, Verifier


@dataclass(frozen=True, slots=True)
class Outcome:
    disposition: Disposition
    pod: str | None = None  # "ns/name" when delivered
    client_address: str | None = None  # what the pod sees as the peer, when delivered

    def __str__(self) -> str:
        if self.disposition is Disposition.DELIVERED:
            return f"{self.pod} client_address={self.client_address}"
        return self.disposition.value


@dataclass(frozen=True, slots=True)
class Probe:
    check: ir.Check
    instance: Instance  # the model's paths, for traces when the kernel disagrees
    outcomes: frozenset[Outcome]

    @property
    def client(self) -> ir.Client:
        return self.instance.client

    @property
    def target(self) -> Target:
        return self.instance.target

    @property
    def description(self) -> str:
        return self.instance.description


def probes(cluster: ir.Cluster, verifier: Verifier) -> list[Probe]:
    """One probe per instance of every check whose clients have a concrete address."""
    found = []
    for check in cluster.checks:
        for inst in verifier.instances(check):
            if inst.target is None or inst.client_address is None:
                continue
            found.append(Probe(check, inst, outcomes(verifier.round_trip_fates(inst))))
    return found


def outcomes(fates) -> frozenset[Outcome]:
    """What a client observes of each feasible fate: a real connection is a round trip."""
    return frozenset(o for fate in fates if (o := fate_outcome(fate)) is not None)


def fate_outcome(fate: Fate) -> Outcome | None:
    solver = z3.Solver()
    solver.add(fate.cond)
    if solver.check() != z3.sat:
        return None
    if fate.disposition is Disposition.REJECTED and fate.reply is not None and not fate.answered:
        return Outcome(Disposition.UNKNOWN if fate.reply.disposition is Disposition.UNKNOWN else Disposition.DROPPED)
    if fate.disposition is not Disposition.DELIVERED:
        return Outcome(fate.disposition)
    if fate.reply is not None and not fate.answered:
        # The pod got the packet, but its answer never reaches the client (or not from where it sent to):
        # the client sees no answer, as after a drop (an unknown answer stays unknown).
        unknown = fate.reply.disposition is Disposition.UNKNOWN
        return Outcome(Disposition.UNKNOWN if unknown else Disposition.DROPPED)
    seen = solver.model().eval(fate.source_seen, model_completion=True).as_long()
    address = ipaddress.IPv4Address(seen) if fate.source_seen.size() == 32 else ipaddress.IPv6Address(seen)
    return Outcome(Disposition.DELIVERED, fate.pod.key, str(address))
