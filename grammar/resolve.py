"""IR draft -> Cluster: cross references, derived endpoints, and the checks that need the whole cluster.

Every problem is collected (never stopping at the first) so a user fixes a spec in one round trip.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from kspec import consistency, ir
from kspec.diagnostics import Diagnostic, Severity
from kspec.topology import with_controller_hints

from .to_ir import Draft


def resolve(draft: Draft, base: ir.Cluster | None = None) -> tuple[ir.Cluster, list[Diagnostic]]:
    """Return the finished cluster and every diagnostic (the draft's and ours), sorted by position.

    ``base``: the cluster the spec's ``objects`` (or ``--k8s``) read from Kubernetes objects; its nodes, pods
    and Services come first and are taken as they are, the spec adds to them (and names them in clients and
    checks); its proxy configuration holds unless the spec writes one."""
    resolver = _Resolver(draft, base)
    cluster = resolver.run()
    diagnostics = sorted(draft.diagnostics + resolver.diagnostics, key=_position)
    return cluster, diagnostics


def _joined(base: ir.Cluster, draft: Draft) -> ir.Cluster:
    own = draft.cluster
    return dataclasses.replace(own, nodes=base.nodes + own.nodes, pods=base.pods + own.pods,
                               services=base.services + own.services,
                               proxy=own.proxy if draft.proxy_written else base.proxy)


def _position(diag: Diagnostic) -> tuple[str, int, int]:
    span = diag.span
    return (span.file, span.line, span.column) if span else ("", 0, 0)


def endpoint_order(endpoint: ir.Endpoint) -> tuple:
    """Endpoints sort by address (IPv4 first), then by their ports."""
    ip = endpoint.ip
    ports = tuple((p.name, p.protocol.value, p.port or 0) for p in endpoint.ports or ())
    return (ip.version, int(ip)) if ip is not None else (0, 0), ports


def _no_way_in(svc: ir.Service, via: ir.Via) -> str:
    """Why kube-proxy gives ``svc`` no address of kind ``via`` ('' when it does): such a check would cover
    no packet at all."""
    if svc.type is ir.ServiceType.EXTERNAL_NAME:
        return "is an ExternalName Service (a DNS alias; kube-proxy programs nothing for it)"
    if via is ir.Via.CLUSTER_IP and not svc.cluster_ips:
        return "is headless (cluster_ip None; kube-proxy programs nothing for it)"
    if via is ir.Via.NODE_PORT and svc.type not in (ir.ServiceType.NODE_PORT, ir.ServiceType.LOAD_BALANCER):
        return f"is of type {svc.type.value}, which has no node port"
    if via is ir.Via.LOAD_BALANCER and not svc.load_balancer_ingress:
        return "has no load_balancer_ingress address"
    if via is ir.Via.EXTERNAL_IP and not svc.external_ips:
        return "has no external_ips"
    return ""


class _Resolver:
    def __init__(self, draft: Draft, base: ir.Cluster | None = None):
        self.draft = draft
        self.base = base
        self.cluster = draft.cluster if base is None else _joined(base, draft)
        self.diagnostics: list[Diagnostic] = []
        self.pods = {pod.key: pod for pod in self.cluster.pods}
        self.nodes = {node.name: node for node in self.cluster.nodes}

    def _error(self, span: ir.Span | None, message: str, *notes: str) -> None:
        self.diagnostics.append(Diagnostic(span, message, notes=notes))

    def _warn(self, span: ir.Span | None, message: str, *notes: str) -> None:
        self.diagnostics.append(Diagnostic(span, message, Severity.WARNING, notes))

    def run(self) -> ir.Cluster:
        self._check_duplicates()
        self._check_references()
        self._check_cluster()
        given = len(self.base.services) if self.base is not None else 0  # the objects' are final already
        services = self.cluster.services[:given] + tuple(self._resolve_service(svc)
                                                         for svc in self.cluster.services[given:])
        clients = tuple(self._resolve_client(i, c) for i, c in enumerate(self.cluster.clients))
        self._check_destinations()
        # A selector's endpoints get the hints the EndpointSlice controller writes (kspec.topology).
        return with_controller_hints(dataclasses.replace(self.cluster, services=services, clients=clients))

    # -------------------------------------------------------------------------------- names

    def _check_duplicates(self) -> None:
        c = self.cluster
        groups: list[tuple[str, Iterable[tuple[str, Any]]]] = [
            ("node", ((n.name, n) for n in c.nodes)),
            ("pod", ((p.key, p) for p in c.pods)),
            ("service", ((s.key, s) for s in c.services)),
            ("client", ((x.name, x) for x in c.clients)),
            ("load balancer", ((lb.name, lb) for lb in c.load_balancers)),
            ("check", ((ch.name, ch) for ch in c.checks)),
        ]
        for kind, named in groups:
            first: dict[str, Any] = {}
            for name, node in named:
                if name in first:
                    where = self.draft.span_of(first[name], "name")
                    self._error(self.draft.span_of(node, "name"), f"duplicate {kind} '{name}'",
                                f"first defined at {where.line}:{where.column}" if where else "defined twice")
                else:
                    first[name] = node

    def _check_references(self) -> None:
        known = {
            "node": set(self.nodes),
            "pod": set(self.pods),
            "service": {svc.key for svc in self.cluster.services},
            "client": {client.name for client in self.cluster.clients},
        }
        for ref in self.draft.refs:
            if ref.name not in known[ref.kind]:
                names = sorted(known[ref.kind])
                note = f"known {ref.kind}s: {', '.join(names)}" if names else f"no {ref.kind}s are defined"
                self._error(ref.span, f"unknown {ref.kind} '{ref.name}'", note)

    # ---------------------------------------------------------------------------- addresses

    def _check_cluster(self) -> None:
        """The checks every front end runs (``kspec.consistency``), positioned at the field as written."""
        for problem in consistency.problems(self.cluster):
            self._error(self.draft.span_of(problem.subject, problem.field, problem.index), problem.message)

    # ------------------------------------------------------------------------------ services

    def _resolve_service(self, svc: ir.Service) -> ir.Service:
        if svc.selector is not None:
            endpoints = self._selected_endpoints(svc)
        else:
            endpoints = tuple(self._explicit_endpoint(svc, ep) for ep in svc.endpoints)
        return dataclasses.replace(svc, endpoints=tuple(sorted(endpoints, key=endpoint_order)))

    def _selected_endpoints(self, svc: ir.Service) -> tuple[ir.Endpoint, ...]:
        wanted = set(svc.selector or ())
        pods = [pod for pod in self.cluster.pods if pod.namespace == svc.namespace and wanted <= set(pod.labels)]
        if not pods:
            shown = ", ".join(f"{k} = {v}" for k, v in svc.selector or ())
            self._warn(self.draft.span_of(svc, "selector"), f"selector {shown} of service {svc.key} matches no pod",
                       "the service has no endpoints")
        return tuple(ir.Endpoint(pod.ip, self._endpoint_ports(svc, pod), node=pod.node, ready=pod.ready,
                                 serving=pod.serving, terminating=pod.terminating, pod=pod.key)
                     for pod in pods if pod.ip is not None)  # a bad IP was reported already

    def _endpoint_ports(self, svc: ir.Service, pod: ir.Pod | None,
                        endpoint: ir.Endpoint | None = None) -> tuple[ir.EndpointPort, ...]:
        """One EndpointPort per service port: the target port resolved as the endpoints controller does."""
        ports = []
        for sp in svc.ports:
            number = self._target(svc, sp, pod, endpoint)
            if number is not None:
                ports.append(ir.EndpointPort(sp.name, sp.protocol, number))
        return tuple(ports)

    def _target(self, svc: ir.Service, sp: ir.ServicePort, pod: ir.Pod | None,
                endpoint: ir.Endpoint | None) -> int | None:
        if not isinstance(sp.target_port, str):
            return sp.target_port or sp.port
        if pod is not None:
            for cp in pod.ports:
                if cp.name == sp.target_port and cp.protocol is sp.protocol:
                    return cp.port
            self._error(sp.span, f"target port '{sp.target_port}' of service {svc.key} is not a "
                                 f"{sp.protocol.lower} port of pod {pod.key}")
        elif endpoint is not None:
            self._error(endpoint.span, f"endpoint {endpoint.ip} needs `ports {{ ... }}` or `pod NS/NAME`: "
                                       f"service {svc.key} has the named target port '{sp.target_port}'")
        return None

    def _explicit_endpoint(self, svc: ir.Service, endpoint: ir.Endpoint) -> ir.Endpoint:
        if endpoint.ports is not None:
            return endpoint
        pod = self.pods.get(endpoint.pod) if endpoint.pod else None
        return dataclasses.replace(endpoint, ports=self._endpoint_ports(svc, pod, endpoint))

    # ------------------------------------------------------------------------ clients, checks

    def _resolve_client(self, index: int, client: ir.Client) -> ir.Client:
        ref = self.draft.client_pods.get(index)
        pod = self.pods.get(ref.key) if ref else None
        if pod is None:
            return client
        return dataclasses.replace(client, ip=pod.ip, node=pod.node)

    def _check_destinations(self) -> None:
        services = {svc.key: svc for svc in self.cluster.services}
        for check in self.cluster.checks:
            dest = check.destination
            svc = services.get(dest.service)
            if svc is None:
                continue
            if not check.clients and not self.cluster.clients:
                self._warn(check.span, f"check \"{check.name}\" is from every client, and the spec declares none",
                           "it covers no packet (the built-ins' own clients are not the spec's)")
            missing = _no_way_in(svc, dest.via)
            if missing:
                self._error(dest.span, f"service {svc.key} {missing}: no packet can go `via {dest.via.value}`")
            if dest.port is None:
                continue
            if not any(port.name == dest.port for port in svc.ports):
                names = ", ".join(p.name for p in svc.ports if p.name) or "none are named"
                self._error(self.draft.span_of(dest, "port"), f"service {svc.key} has no port named '{dest.port}'",
                            f"its ports: {names}")
