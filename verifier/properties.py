"""Checks -> Z3 queries -> verdicts.

A check quantifies over clients and destinations; each (client, destination address, entry node) is one
*instance*. The network model yields every feasible fate of the instance's packets, each with its path
condition; the check is violated iff Z3 finds a packet satisfying some fate's path condition and the
negated property. ``proved`` is only ever the result of Z3 answering unsat.
"""
from __future__ import annotations

import enum
import ipaddress
from contextlib import contextmanager
from dataclasses import dataclass, replace

import z3

from kspec import ir
from kspec.heap import heap_frozen
from kspec.verifier.engines.encode import symbolic_packet
from kspec.verifier.model.network import ClusterNetwork, Disposition, Fate, Hop, pod_gateway
from kspec.verifier.model.walk import Walk

# Checks of one Service ask about the same packets (e.g. the Local and the health-check built-ins); a small
# LRU keeps those shared without holding every path of a big cluster in memory.
INSTANCE_CACHE = 256


# Sources no remote host's packet reaches a node with: IPv4's martians, which routing drops (0/8, multicast,
# the limited broadcast); IPv6's ::, multicast, IPv4-mapped (dropped on receipt) and link-local (never
# forwarded; -m addrtype could not tell a node's own link-local addresses from others).
_NOT_A_SENDER = {
    32: tuple(map(ipaddress.ip_network, ("0.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32"))),
    128: tuple(map(ipaddress.ip_network, ("::/128", "ff00::/8", "::ffff:0:0/96", "fe80::/10"))),
}

class Verdict(enum.Enum):
    PROVED = "proved"
    VIOLATED = "violated"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SourceInRanges:
    """The client's address is inside one of ``ranges`` (for loadBalancerSourceRanges; not in the DSL)."""

    ranges: tuple[ir.IPNetwork, ...]


@dataclass(frozen=True, slots=True)
class Target:
    """Where one instance's packets go, and how they get into the cluster."""

    dst: ir.IPAddress
    dport: int
    protocol: ir.Protocol
    entry_node: str | None  # where an external client's packet enters (None: it cannot)
    load_balancer: ir.IPAddress | None = None  # the VIP when a cloud load balancer forwards it
    service_port: str = ""  # "ns/name:port"
    # loadBalancerSourceRanges the cloud load balancer itself enforces: when it rewrites to nodeIP:nodePort,
    # kube-proxy's KUBE-FW never sees the VIP, so the filtering is the load balancer's.
    lb_source_ranges: tuple[ir.IPNetwork, ...] = ()

    def __str__(self) -> str:
        return f"{_hostport(self.dst, self.dport)}/{self.protocol.lower}"


@dataclass(frozen=True, slots=True)
class Instance:
    client: ir.Client
    description: str  # e.g. "internet -> node2 10.240.0.5:30080 (default/nodeport:80)"
    fates: tuple[Fate, ...]
    client_src: z3.BitVecRef
    target: Target | None = None
    client_address: ir.IPAddress | None = None  # the same as a Python address, unless "any external host"


@dataclass
class CheckResult:
    check: ir.Check
    verdict: Verdict
    instances: int = 0
    counterexample: Counterexample | None = None
    reason: str = ""
    replay_error: str = ""  # the counterexample did not replay in the concrete tracer: a bug in kspec

    @property
    def as_expected(self) -> bool:
        if self.replay_error:
            return False
        wanted = Verdict.PROVED if self.check.expect is ir.Expectation.HOLDS else Verdict.VIOLATED
        return self.verdict is wanted


@dataclass(frozen=True, slots=True)
class Counterexample:
    instance: Instance
    fate: Fate
    src: str  # the client's address in this counterexample
    sport: int
    seen: str  # the source address the receiver sees (client_address)


class Verifier:
    def __init__(self, cluster: ir.Cluster, network: ClusterNetwork, timeout_ms: int = 10_000):
        self.cluster = cluster
        self.net = network
        self.walk = Walk(network, network.models)  # the Z3 engine's walk through the cluster
        self.family = network.family
        self.timeout_ms = timeout_ms
        self.width = 32 if self.family is ir.IPFamily.V4 else 128
        self._concrete = None
        self._instances: dict[tuple, Instance] = {}
        self._outside: z3.BoolRef | None = None  # the "any external host" constraint, built once
        self._node_addrs: frozenset[ir.IPAddress] | None = None
        self._solver: z3.Solver | None = None  # see _query
        self._round_trips: dict[tuple, tuple[Fate, ...]] = {}

    # --------------------------------------------------------------------------------- checking

    def check(self, check: ir.Check) -> CheckResult:
        """One Z3 query for the whole check: is there a packet, on any feasible path of any instance, for
        which the property fails? unsat: proved. sat: the most telling violating path becomes the
        counterexample. unknown: said so, with Z3's reason."""
        with heap_frozen():  # the node models, and what earlier checks left, are not garbage
            return self._check(check)

    def _check(self, check: ir.Check) -> CheckResult:
        try:
            instances = list(self.instances(check))
        except LookupError as exc:
            return CheckResult(check, Verdict.UNKNOWN, reason=str(exc))
        if not instances:
            return CheckResult(check, Verdict.UNKNOWN, reason="the check covers no packet (no client and "
                               "destination of the check exist together)")
        candidates = []  # (instance, fate, path condition and negated property)
        unknown_fates = []
        round_trips = _mentions(check.prop, ir.Answered)
        sticky = _mentions(check.prop, ir.Sticky)
        if round_trips and sticky:
            return CheckResult(check, Verdict.UNKNOWN, len(instances), reason="`answered` and `sticky` in one check "
                               "are not supported: write two checks")
        for inst in instances:
            fates = self.round_trip_fates(inst) if round_trips else self.sticky_fates(inst) if sticky else inst.fates
            for fate in fates:
                part = fate.not_known if round_trips or sticky else \
                    fate if fate.disposition is Disposition.UNKNOWN else None
                if part is not None:
                    # Never a counterexample: what the packet (or, for `answered`, what comes back, or the
                    # client's data after it) really meets there is not known.
                    unknown_fates.append((fate.cond, part.reason))
                    continue
                negated = _not(self.holds(check.prop, fate, inst))
                if negated is False:  # the property holds on this whole path, whatever the packet
                    continue
                candidates.append((inst, fate, fate.cond if negated is True else z3.And(fate.cond, negated)))
        with self._query(z3.Or([term for _, _, term in candidates]) if candidates else z3.BoolVal(False)) as solver:
            answer = solver.check()
            gave_up = solver.reason_unknown() if answer == z3.unknown else ""
            model = solver.model() if answer == z3.sat else None
        if answer == z3.unknown:
            return CheckResult(check, Verdict.UNKNOWN, len(instances), reason=f"Z3 gave up ({gave_up})")
        if answer == z3.sat:
            best = self._counterexample_from(candidates, model)
            return CheckResult(check, Verdict.VIOLATED, len(instances), best, replay_error=self._replay(best))
        # Proved on every known path; a feasible path whose fate the model does not know makes it unknown.
        reason = next((why for cond, why in unknown_fates if self._feasible(cond)), "")
        if reason:
            return CheckResult(check, Verdict.UNKNOWN, len(instances), reason=reason)
        return CheckResult(check, Verdict.PROVED, len(instances))

    def _counterexample_from(self, candidates, model: z3.ModelRef) -> Counterexample:
        """The violating path that crosses the most nodes (e.g. SNAT on a node without the endpoint); failing
        that (a per-path query timed out), the path the whole query's model satisfies."""
        ephemeral = z3.UGE(z3.BitVec("sport", 16), 1024)  # show a source port a client would really use
        for inst, fate, term in sorted(candidates, key=lambda c: -len(c[1].hops)):
            for extra in (ephemeral, z3.BoolVal(True)):
                with self._query(term, extra) as solver:
                    if solver.check() == z3.sat:
                        return self._counterexample(inst, fate, solver.model())
        inst, fate, _ = next(c for c in candidates if z3.is_true(model.eval(c[2], model_completion=True)))
        return self._counterexample(inst, fate, model)

    @contextmanager
    def _query(self, *terms: z3.BoolRef):
        """The verifier's one solver with ``terms`` asserted in a scope of their own, popped on the way out. A
        fresh solver per question would cost more (about 1 ms) than most of kube-proxy's questions."""
        if self._solver is None:
            self._solver = z3.Solver()
            self._solver.set("timeout", self.timeout_ms)
        self._solver.push()
        try:
            self._solver.add(*terms)
            yield self._solver
        finally:
            self._solver.pop()

    def _replay(self, ce: Counterexample) -> str:
        from kspec.verifier.engines.replay import ConcreteCluster, replays

        if self._concrete is None:
            self._concrete = ConcreteCluster(self.net)
        return replays(self._concrete, ce)

    def _feasible(self, cond: z3.BoolRef) -> bool:
        with self._query(cond) as solver:
            return solver.check() != z3.unsat

    def _counterexample(self, inst: Instance, fate: Fate, model: z3.ModelRef) -> Counterexample:
        value = lambda term: model.eval(term, model_completion=True).as_long()  # noqa: E731
        address = ipaddress.IPv4Address if self.width == 32 else ipaddress.IPv6Address
        return Counterexample(inst, fate, str(address(value(inst.client_src))), value(z3.BitVec("sport", 16)),
                              str(address(value(fate.source_seen))))

    # ------------------------------------------------------------------------------- semantics

    def holds(self, prop: ir.Prop, fate: Fate, inst: Instance) -> bool | z3.BoolRef:
        """Whether ``prop`` holds on ``fate``'s path: a Python bool where the path decides it, a Z3 term where
        it depends on the symbolic packet (e.g. the source of "any external host")."""
        d = fate.disposition
        if isinstance(prop, ir.Delivered):
            return d is Disposition.DELIVERED
        if isinstance(prop, ir.Answered):
            return fate.answered
        if isinstance(prop, ir.Dropped):
            return d is Disposition.DROPPED
        if isinstance(prop, ir.Rejected):
            return d is Disposition.REJECTED
        if isinstance(prop, ir.SourceIsClient):
            if fate.packet.src_value is not None and inst.client_address is not None:
                return fate.packet.src_value == inst.client_address
            return fate.source_seen == inst.client_src
        if isinstance(prop, ir.SourceInNodes):
            if fate.packet.src_value is not None:
                return fate.packet.src_value in self._node_addresses()
            nodes = sorted(self._node_addresses())
            return z3.Or([fate.source_seen == z3.BitVecVal(int(ip), self.width) for ip in nodes]
                         or [z3.BoolVal(False)])
        if isinstance(prop, ir.EndpointIn):
            return fate.pod is not None and (fate.pod.key in prop.pods or fate.pod.name in prop.pods)
        if isinstance(prop, ir.Sticky):
            after = fate.then
            return d is Disposition.DELIVERED and after is not None and \
                after.disposition is Disposition.DELIVERED and after.pod == fate.pod
        if isinstance(prop, ir.StaysOnNode):
            return fate.node is not None and fate.node == fate.hops[0].node
        if isinstance(prop, SourceInRanges):
            return z3.Or([self._in(inst.client_src, net) for net in prop.ranges] or [z3.BoolVal(False)])
        if isinstance(prop, ir.Not):
            return _not(self.holds(prop.operand, fate, inst))
        if isinstance(prop, ir.And):
            return _and(self.holds(prop.left, fate, inst), self.holds(prop.right, fate, inst))
        if isinstance(prop, ir.Or):
            return _not(_and(_not(self.holds(prop.left, fate, inst)), _not(self.holds(prop.right, fate, inst))))
        if isinstance(prop, ir.Implies):
            return _not(_and(self.holds(prop.left, fate, inst), _not(self.holds(prop.right, fate, inst))))
        raise TypeError(f"unknown property {prop!r}")

    def round_trip_fates(self, inst: Instance) -> tuple[Fate, ...]:
        """``inst``'s fates, each DELIVERED (REJECTED) one split by the fates of the pod's answer (the
        REJECT's ICMP error): ``Fate.reply``."""
        key = (inst.client.name, inst.target)
        found = self._round_trips.get(key)
        if found is None:
            expect = (inst.target.dst, inst.target.dport) if inst.target is not None else None
            found = tuple(replace(fate, reply=answer) for fate in inst.fates
                          for answer in (self.walk.answers(fate, inst.client, expect) if expect else [None]))
            if len(self._round_trips) >= INSTANCE_CACHE:
                self._round_trips.clear()
            self._round_trips[key] = found
        return found

    def sticky_fates(self, inst: Instance) -> tuple[Fate, ...]:
        """Two connections in a row from ``inst``'s client to its target, no affinity history before the
        first: each fate of the first that is delivered, once per fate of the second (``Fate.then``), which
        meets the ``recent`` lists the first set on each node (``SymPacket.recent``)."""
        target = inst.target
        if target is None or target.load_balancer is not None and target.entry_node is None:
            return inst.fates
        pkt, src = self.client_packet(inst.client, target.dst, target.dport, target.protocol)
        if target.lb_source_ranges:
            pkt = pkt.evolve(conds=pkt.conds + (self._admitted(src, target),))
        found = []
        for first in self._send(inst.client, pkt.evolve(recent=frozenset()), target.entry_node):
            if first.disposition is not Disposition.DELIVERED:
                found.append(first)
                continue
            # The same client: the same source address (term), another source port.
            nxt = pkt.evolve(sport=z3.BitVec("sport-next", 16), recent=first.packet.recent,
                             conds=first.packet.conds)
            found += [replace(first, then=second) for second in self._send(inst.client, nxt, target.entry_node)]
        return tuple(found)

    def _node_addresses(self) -> frozenset[ir.IPAddress]:
        """Every address a node can masquerade with: its own, and the pod gateway it holds for its pods."""
        if self._node_addrs is None:
            addrs = {ip for node in self.cluster.nodes for ip in node.ips if ir.IPFamily.of(ip) is self.family}
            addrs |= {gw for node in self.cluster.nodes if (gw := pod_gateway(node, self.family)) is not None}
            self._node_addrs = frozenset(addrs)
        return self._node_addrs

    # ------------------------------------------------------------------------------- instances

    def instances(self, check: ir.Check):
        clients = [c for c in self.cluster.clients if not check.clients or c.name in check.clients]
        service = self._service(check.destination.service)
        for client in clients:
            if not self.cluster.speaks(client, self.family):
                continue  # e.g. an IPv4 client in the IPv6 verifier: it sends nothing of this family
            for port in service.ports:
                if check.destination.port not in (None, port.name, str(port.port)):
                    continue
                yield from self._instances_for(client, service, port, check.destination)

    def _service(self, name: str) -> ir.Service:
        key = name if "/" in name else f"default/{name}"
        for svc in self.cluster.services:
            if svc.key == key:
                return svc
        raise LookupError(f"no service {key}")

    def client_packet(self, client: ir.Client, dst: ir.IPAddress, dport: int, proto: ir.Protocol):
        """(the client's first packet to ``dst:dport``, its source term): symbolic where the client is "any
        external host", constrained to the sources such a host can have."""
        src = self.cluster.client_address(client, self.family)  # None: any address
        pkt = symbolic_packet(self.width, src, dst=dst, dport=dport, proto=proto.lower)
        if src is None:
            # "Any external host": every address the cluster does not own itself, and that a host out there
            # can send from at all.
            if self._outside is None:
                ranges = self._cluster_ranges() + list(_NOT_A_SENDER[self.width])
                self._outside = z3.Not(z3.Or([self._in(pkt.src, net) for net in ranges]))
            pkt = pkt.evolve(conds=(self._outside,))
        return pkt, pkt.src

    def _admitted(self, src: z3.BitVecRef, target: Target) -> z3.BoolRef:
        """The sources the cloud load balancer lets through to ``target`` (its loadBalancerSourceRanges)."""
        return z3.Or([self._in(src, net) for net in target.lb_source_ranges if net.version == target.dst.version]
                     or [z3.BoolVal(False)])

    def _in(self, term: z3.BitVecRef, net: ir.IPNetwork) -> z3.BoolRef:
        mask = z3.BitVecVal(int(net.netmask), self.width)
        return (term & mask) == z3.BitVecVal(int(net.network_address), self.width)

    def _cluster_ranges(self) -> list[ir.IPNetwork]:
        """Loopback, the cluster CIDRs, the nodes' pod CIDRs and addresses."""
        loopback = ipaddress.ip_network("127.0.0.0/8" if self.width == 32 else "::1/128")
        ranges = [loopback] + [c for c in self.cluster.proxy.cluster_cidrs if c.version == loopback.version]
        for node in self.cluster.nodes:
            ranges += [c for c in node.pod_cidrs if c.version == loopback.version]
            ranges += [ipaddress.ip_network(ip) for ip in node.ips if ip.version == loopback.version]
        return ranges

    def _send(self, client: ir.Client, pkt, entry_node: str | None) -> tuple[Fate, ...]:
        """Fates of ``pkt`` sent by ``client``; external clients enter at ``entry_node``."""
        return tuple(self.walk.send(client, pkt, entry_node))

    def _instances_for(self, client: ir.Client, svc: ir.Service, port: ir.ServicePort, dest: ir.Destination):
        for target, label in self.targets(svc, port, dest):
            yield self.instance(client, target, label)

    def targets(self, svc: ir.Service, port: ir.ServicePort, dest: ir.Destination):
        """(Target, description) for every address and entry node the destination stands for."""
        proto = port.protocol
        name = f"{svc.key}:{port.name or port.port}"
        make = lambda dst, dport, entry, lb=None: Target(dst, dport, proto, entry, lb, name)  # noqa: E731
        mine = lambda ip: ip is not None and ir.IPFamily.of(ip) is self.family  # noqa: E731
        if not any(mine(ip) for ip in svc.cluster_ips):
            return  # kube-proxy programs a Service only in the families of its cluster IPs (its ipFamilies)
        if dest.via is ir.Via.CLUSTER_IP:
            for ip in filter(mine, svc.cluster_ips):
                yield make(ip, port.port, None), f"{name} cluster IP {ip}:{port.port}"
        elif dest.via is ir.Via.NODE_PORT:
            if not port.node_port:
                raise LookupError(f"{name} has no node port")
            nodes = [self.cluster.node(dest.node)] if dest.node else list(self.cluster.nodes)
            for node in nodes:
                ip = node.primary_ip(self.family)
                if ip is not None:
                    yield make(ip, port.node_port, node.name), f"{node.name} {ip}:{port.node_port} ({name})"
        elif dest.via is ir.Via.EXTERNAL_IP:
            for ip in filter(mine, svc.external_ips):
                for node in self.cluster.nodes:
                    yield make(ip, port.port, node.name), f"external IP {ip}:{port.port} via {node.name} ({name})"
        elif dest.via is ir.Via.LOAD_BALANCER:
            for ingress in (i for i in svc.load_balancer_ingress if mine(i.ip)):
                for node_name in self._lb_backends(svc) or (None,):
                    if node_name is None:
                        yield make(ingress.ip, port.port, None, ingress.ip), f"LB {ingress.ip}:{port.port} ({name})"
                    elif self._lb().style is ir.LoadBalancerStyle.VIP_KEPT:
                        yield (make(ingress.ip, port.port, node_name, ingress.ip),
                               f"LB {ingress.ip}:{port.port} -> {node_name} ({name})")
                    elif (ip := self.cluster.node(node_name).primary_ip(self.family)) is not None:
                        target = replace(make(ip, port.node_port, node_name, ingress.ip),
                                         lb_source_ranges=svc.load_balancer_source_ranges)
                        yield target, f"LB {ingress.ip}:{port.port} -> {node_name} {ip}:{port.node_port} ({name})"

    def _lb(self) -> ir.LoadBalancer:
        return self.cluster.load_balancers[0] if self.cluster.load_balancers else ir.LoadBalancer("cloud")

    def _lb_backends(self, svc: ir.Service) -> tuple[str, ...]:
        """The nodes the cloud load balancer sends to: all, or with Local only those passing the health check."""
        from kspec.compiler.healthcheck import healthy_nodes

        if svc.external_traffic_policy is ir.TrafficPolicy.LOCAL and self._lb().respects_health_check:
            return healthy_nodes(self.cluster, svc, self.family)
        return tuple(node.name for node in self.cluster.nodes)

    def instance(self, client: ir.Client, target: Target, label: str) -> Instance:
        """The fates of ``client``'s packets to ``target``; computed once, shared by every check asking."""
        key = (client.name, target)
        found = self._instances.pop(key, None)
        if found is None:
            found = self._instance(client, target, label)
        self._instances[key] = found  # most recently used last
        if len(self._instances) > INSTANCE_CACHE:
            del self._instances[next(iter(self._instances))]
        return found

    def _instance(self, client: ir.Client, target: Target, label: str) -> Instance:
        pkt, src = self.client_packet(client, target.dst, target.dport, target.protocol)
        description = f"{client.name} -> {label}"
        if target.load_balancer is not None and target.entry_node is None:
            fate = Fate(Disposition.DROPPED, (Hop(self._lb().name, (), "no node passes the health check"),), pkt,
                        reason="the load balancer has no healthy backend")
            return Instance(client, description, (fate,), src, target, pkt.src_value)
        if not target.lb_source_ranges:
            return Instance(client, description, self._send(client, pkt, target.entry_node), src, target,
                            pkt.src_value)
        admitted = self._admitted(src, target)
        refused = Fate(Disposition.DROPPED, (Hop(self._lb().name, (), "source not in loadBalancerSourceRanges"),),
                       pkt.evolve(conds=pkt.conds + (z3.Not(admitted),)),
                       reason="the load balancer refuses sources outside loadBalancerSourceRanges")
        forwarded = self._send(client, pkt.evolve(conds=pkt.conds + (admitted,)), target.entry_node)
        return Instance(client, description, (refused,) + forwarded, src, target, pkt.src_value)


def _hostport(ip: ir.IPAddress, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _mentions(prop: ir.Prop, kind: type) -> bool:
    if isinstance(prop, kind):
        return True
    return any(_mentions(getattr(prop, name), kind) for name in ("operand", "left", "right") if hasattr(prop, name))


# Boolean connectives over "a Python bool when decided, else a Z3 term".

def _not(value):
    return (not value) if isinstance(value, bool) else z3.Not(value)


def _and(left, right):
    if left is False or right is False:
        return False
    if left is True:
        return right
    if right is True:
        return left
    return z3.And(left, right)
