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
from kspec.verifier.model.network import Disposition, Fate
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
    """What the client observes of one fate of the model (None: no packet takes it)."""
    solver = z3.Solver()
    solver.add(fate.cond)
    if solver.check() != z3.sat:
        return None
    seen = None
    if fate.disposition is Disposition.DELIVERED:
        value = solver.model().eval(fate.source_seen, model_completion=True).as_long()
        seen = ipaddress.IPv4Address(value) if fate.source_seen.size() == 32 else ipaddress.IPv6Address(value)
    return observed(fate.disposition, fate.pod, seen, *fate.later())


def observed(disposition: Disposition, pod, seen, comes_back: Disposition | None,
             data: Disposition | None = None, data_error: Disposition | None = None) -> Outcome:
    """What a client observes of a first packet's fate, of what comes back (``comes_back``: the answer's, or a
    REJECT's ICMP error's, fate; None when not traced) and of its data after a TCP handshake (``data``; and
    ``data_error``, the fate of the ICMP error a REJECT of the data sends). Both engines' paths are judged
    here."""
    if comes_back is Disposition.ANSWERED and data is Disposition.DELIVERED and data_error is not None and \
            data_error is not Disposition.ANSWERED:
        # Connected and its data delivered, but the pod's echo never comes back as the connection's.
        return Outcome(Disposition.UNKNOWN if data_error is Disposition.UNKNOWN else Disposition.HOST)
    if comes_back is Disposition.ANSWERED and data is Disposition.REJECTED and data_error is not None:
        # Connected, then its data refused: the client hears the ICMP error (if it comes back), as a refusal.
        return Outcome({Disposition.ANSWERED: Disposition.REJECTED,
                        Disposition.UNKNOWN: Disposition.UNKNOWN}.get(data_error, Disposition.HOST))
    if comes_back is Disposition.ANSWERED and data is not None and data is not Disposition.DELIVERED:
        # Connected, but what it then sends never reaches the pod: no echo comes, as from a host socket.
        return Outcome(Disposition.UNKNOWN if data is Disposition.UNKNOWN else Disposition.HOST)
    if comes_back is not None and comes_back is not Disposition.ANSWERED:
        # The pod got the packet (or a REJECT or the outside answered), but nothing reaches the client, or
        # not as its own: it sees no answer, as after a drop (an unknown way back stays unknown).
        if disposition in (Disposition.DELIVERED, Disposition.REJECTED, Disposition.NO_ROUTE, Disposition.HOST):
            return Outcome(Disposition.UNKNOWN if comes_back is Disposition.UNKNOWN else Disposition.DROPPED)
    if disposition is not Disposition.DELIVERED:
        return Outcome(disposition)
    return Outcome(Disposition.DELIVERED, pod.key, str(seen))
