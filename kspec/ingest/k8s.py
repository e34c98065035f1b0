"""Read real Kubernetes objects (``kubectl get ... -o yaml`` or ``-o json``) into the cluster IR.

Input files are YAML (any number of ``---``-separated documents) or JSON; any document may be a ``v1 List``
(``kind: List`` with ``items``, which is what ``kubectl get`` prints for several objects) or a typed list
such as ``ServiceList``. Understood kinds:

==============================  ============================================================================
``v1 Service``                  one ``ir.Service`` each; ExternalName services are kept (type EXTERNAL_NAME)
``discovery.k8s.io/v1``         joined to their Service by the ``kubernetes.io/service-name`` label and
``EndpointSlice``               namespace; each endpoint becomes an ``ir.Endpoint``
``v1 Node``                     ``ir.Node``: InternalIP then ExternalIP addresses, ``spec.podCIDRs``
``v1 Pod``                      optional: ``ir.Pod`` (name, node, IP, labels, container ports, readiness)
``kubeproxy.config.k8s.io/``    at most one: the proxy configuration (``ir.ProxyConfig``); it may also come
``v1alpha1``                    from the separate ``proxy_config`` file
``KubeProxyConfiguration``
``kspec.dev/v1alpha1``          at most one: node facts that live in no Kubernetes object (below)
``NodeFacts``
``v1 ConfigMap``                a KubeProxyConfiguration held as text in its data, as kubeadm stores it
                                (``kubectl -n kube-system get configmap kube-proxy -o yaml``)
==============================  ============================================================================

From the KubeProxyConfiguration kspec reads ``mode`` (must be iptables or unset), ``clusterCIDR``
(comma-separated, one per family), ``detectLocalMode`` (unset means ClusterCIDR, as in kube-proxy) with
``detectLocal.bridgeInterface`` / ``detectLocal.interfaceNamePrefix``, ``iptables.masqueradeAll``,
``iptables.masqueradeBit``, ``iptables.localhostNodePorts``, ``nodePortAddresses`` (CIDRs, or ``primary``: each
node's primary IPs), ``portRange``, ``conntrack.tcpBeLiberal`` and ``featureGates.LoadBalancerIPMode``;
other fields are ignored. ClusterCIDR mode without a CIDR for a family is kube-proxy's no-op detector for
that family; the IR keeps mode ClusterCIDR and the CIDRs it has.

Node facts. kube-proxy probes some things at start-up rather than reading them from configuration: whether
the node's iptables supports ``--random-fully``, whether the nfacct counters could be created, whether
``net.netfilter.nf_conntrack_tcp_be_liberal`` is set. kube-proxy's unit tests also inject the literal mark
string ``"0x4000"`` where production prints the masquerade bit as ``0x00004000``. These are given by an
optional kspec document::

    apiVersion: kspec.dev/v1alpha1
    kind: NodeFacts
    randomFully: false      # iptables supports --random-fully (default true)    -> ProxyConfig.random_fully
    nfacct: true            # the nfacct counters are available (default true)   -> ProxyConfig.nfacct
    nfacctUnavailable: []   # counters that could not be created even so         -> ProxyConfig.nfacct_unavailable
                            #   (ct_state_invalid_dropped_pkts, localhost_nps_accepted_pkts; default none)
    tcpLiberal: false       # nf_conntrack_tcp_be_liberal is 1 (default: the      -> ProxyConfig.tcp_liberal
                            #   configuration's conntrack.tcpBeLiberal, else false)
    markLiteral: "0x4000"   # print the mark as this literal (default: from the   -> ProxyConfig.mark_literal
                            #   masquerade bit); a string, so quote it

Semantics follow kube-proxy (``shared/research/kube-proxy-iptables.md`` §3): addresses are parsed leniently
(``kspec.ingest.addresses``); invalid ``externalIPs`` and ``loadBalancerSourceRanges`` are dropped with a
warning, as kube-proxy skips them; values the API server would have rejected (a cluster IP that is not an
IP, an unknown protocol, a wrong apiVersion) are errors. All errors are collected and raised together as one
``KspecError``; nothing the input contains produces a traceback.

Things kube-proxy derives (which endpoints are local, per-family filtering) are left to the compiler: the IR
holds every address of both families. Services' selectors are not copied: with objects, the endpoints are
always given explicitly by the EndpointSlices (``ir.Service.selector`` None).
"""
from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kspec import consistency, ir
from kspec.diagnostics import Diagnostic, KspecError, Severity, decode
from kspec.ingest.addresses import parse_cidr_lenient, parse_ip_lenient
from kspec.ingest.yamlpos import PosList, PosMap, YamlSyntaxError, load_documents

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # the API server's default for sessionAffinityConfig.clientIP.timeoutSeconds

# kind -> the one apiVersion kspec reads it in (what `kubectl get -o yaml` prints today).
API_VERSIONS = {
    "Service": "v1",
    "EndpointSlice": "discovery.k8s.io/v1",
    "Node": "v1",
    "Pod": "v1",
    "KubeProxyConfiguration": "kubeproxy.config.k8s.io/v1alpha1",
    "NodeFacts": "kspec.dev/v1alpha1",
    # kubeadm keeps the KubeProxyConfiguration as text in the kube-system/kube-proxy ConfigMap.
    "ConfigMap": "v1",
}
NODE_FACTS_FIELDS = ("randomFully", "nfacct", "tcpLiberal", "markLiteral", "nfacctUnavailable")
NFACCT_COUNTERS = ("ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts")


STDIN = "<stdin>"  # the file name of objects read from standard input (a path of "-")


def load_k8s(paths: list[str], proxy_config: str | None = None) -> ir.Cluster:
    """Read Kubernetes object files (and optionally a separate KubeProxyConfiguration file) into a Cluster.

    Raises ``KspecError`` with every error found. Warnings (dropped invalid IPs, orphan EndpointSlices) are
    discarded; use ``load_k8s_with_diagnostics`` to get them.
    """
    cluster, _warnings = load_k8s_with_diagnostics(paths, proxy_config)
    return cluster


def load_k8s_with_diagnostics(paths: list[str], proxy_config: str | None = None, stdin: bytes | None = None
                              ) -> tuple[ir.Cluster, list[Diagnostic]]:
    """Like ``load_k8s``, also returning the warnings. A path ``-`` is ``stdin`` (named ``<stdin>``)."""
    reader = _Reader(stdin)
    for path in paths:
        reader.read_file(path)
    if proxy_config is not None:
        reader.read_file(proxy_config, proxy_config_file=True)
    name = os.path.splitext(os.path.basename(paths[0]))[0] if paths and paths[0] != "-" else "cluster"
    cluster = reader.build(name)
    names = [STDIN if path == "-" else path for path in [*paths, proxy_config]]
    diagnostics = _in_source_order(reader.diagnostics, names)
    if any(d.severity is Severity.ERROR for d in diagnostics):
        raise KspecError(diagnostics)
    return cluster, diagnostics


def _in_source_order(diagnostics: list[Diagnostic], paths: list[str | None]) -> list[Diagnostic]:
    """Diagnostics are found object by object, field by field; report them as they appear in the files."""
    def key(d: Diagnostic) -> tuple[int, int, int]:
        if d.span is None:
            return (-1, 0, 0)
        file_index = paths.index(d.span.file) if d.span.file in paths else len(paths)
        return (file_index, d.span.line, d.span.column)
    return sorted(diagnostics, key=key)


# ------------------------------------------------------------------------------------ field access


class _Invalid(Exception):
    """Raised inside an object's parser after an error diagnostic; the object is skipped."""


@dataclass
class _Obj:
    """The object being read: a label for messages ("Service ns1/svc1") and the diagnostics sink."""

    label: str
    diagnostics: list[Diagnostic]

    def error(self, span: ir.Span | None, message: str) -> None:
        self.diagnostics.append(Diagnostic(span, f"{self.label}: {message}"))

    def warn(self, span: ir.Span | None, message: str) -> None:
        self.diagnostics.append(Diagnostic(span, f"{self.label}: {message}", Severity.WARNING))

    def get(self, m: PosMap, key: str, kind: type | tuple[type, ...], path: str, *, required: bool = False,
            default: Any = None) -> Any:
        """``m[key]`` checked against ``kind``; a missing/null value gives ``default`` (or an error)."""
        value = m.get(key)
        if value is None:
            if required:
                self.error(m.span, f"missing required field {path}")
            return default
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, str))):
            self.error(m.span_of(key), f"{path} must be {_describe(kind)}, not {_describe_value(value)}")
            return default
        return value

    def map(self, m: PosMap, key: str, path: str, *, required: bool = False) -> PosMap:
        return self.get(m, key, PosMap, path, required=required, default=_empty_map(m))

    def list(self, m: PosMap, key: str, path: str) -> PosList:
        return self.get(m, key, PosList, path, default=_empty_list(m))

    def enum(self, m: PosMap, key: str, path: str, enum_type: type[enum.Enum], default: Any) -> Any:
        value = self.get(m, key, str, path)
        if value is None or value == "":
            return default
        try:
            return enum_type(value)
        except ValueError:
            allowed = ", ".join(e.value for e in enum_type)
            self.error(m.span_of(key), f'{path}: unsupported value "{value}" (expected one of {allowed})')
            return default


def _empty_map(parent: PosMap | PosList) -> PosMap:
    empty = PosMap()
    empty.span, empty.spans, empty.key_spans = parent.span, {}, {}
    return empty


def _empty_list(parent: PosMap) -> PosList:
    empty = PosList()
    empty.span, empty.spans = parent.span, []
    return empty


def _describe(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", PosMap: "a mapping", PosList: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names[k] for k in kinds)


def _describe_value(value: Any) -> str:
    if isinstance(value, (PosMap, PosList, str, int, bool)):
        return _describe(bool if isinstance(value, bool) else type(value))
    return "a number" if isinstance(value, float) else type(value).__name__


def _items(obj: _Obj, items: PosList, path: str) -> list[tuple[int, PosMap]]:
    """The mapping items of a list, reporting the others."""
    result = []
    for i, item in enumerate(items):
        if isinstance(item, PosMap):
            result.append((i, item))
        else:
            obj.error(items.span_at(i), f"{path}[{i}] must be a mapping, not {_describe_value(item)}")
    return result


# ------------------------------------------------------------------------------------------- reader


@dataclass
class _Slice:
    namespace: str
    name: str
    service: str
    endpoints: list[ir.Endpoint]
    span: ir.Span


@dataclass
class _Reader:
    stdin: bytes | None = None  # what a path "-" reads (once)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    services: dict[tuple[str, str], ir.Service] = field(default_factory=dict)
    slices: dict[tuple[str, str], _Slice] = field(default_factory=dict)
    nodes: dict[str, ir.Node] = field(default_factory=dict)
    pods: dict[tuple[str, str], ir.Pod] = field(default_factory=dict)
    proxy: tuple[PosMap, ProxySettings] | None = None
    facts: PosMap | None = None
    sources: dict[str, str] = field(default_factory=dict)
    proxy_configs_seen: int = 0

    def read_file(self, path: str, proxy_config_file: bool = False) -> None:
        if path == "-":
            path = STDIN
        try:
            if path == STDIN:
                if self.stdin is None:
                    raise OSError(0, "standard input was read already, or is not given")
                text, self.stdin = decode(self.stdin, path), None  # one read: a second "-" is an error
            else:
                with open(path, "rb") as f:
                    text = decode(f.read(), path)
        except OSError as err:
            self.diagnostics.append(Diagnostic(None, f"cannot read {path}: {err.strerror}"))
            return
        except KspecError as err:
            self.diagnostics += err.diagnostics
            return
        try:
            documents = [doc for doc in load_documents(text, path) if doc is not None]  # `---` alone: nothing
        except YamlSyntaxError as err:
            self.diagnostics.append(err.diagnostic)
            return
        self.sources[path] = text
        if not documents:  # an empty file is most likely the wrong file, not an empty cluster
            self.diagnostics.append(Diagnostic(ir.Span(path, 1, 1), f"{path} holds no Kubernetes objects"))
            return
        seen_before = self.proxy_configs_seen
        for doc in documents:
            self._document(doc, path)
        if proxy_config_file and self.proxy_configs_seen == seen_before:
            self.diagnostics.append(Diagnostic(ir.Span(path, 1, 1), f"{path}: no KubeProxyConfiguration found"))

    def _document(self, doc: Any, path: str) -> None:
        if not isinstance(doc, PosMap):
            span = getattr(doc, "span", ir.Span(path, 1, 1))
            self.diagnostics.append(
                Diagnostic(span, f"expected a Kubernetes object (a mapping), not {_describe_value(doc)}"))
            return
        kind = doc.get("kind")
        if isinstance(kind, str) and (kind == "List" or kind.endswith("List") and kind[:-4] in API_VERSIONS):
            self._list(doc, kind)
        else:
            self._object(doc)

    def _list(self, doc: PosMap, kind: str) -> None:
        obj = _Obj(kind, self.diagnostics)
        item_kind = None if kind == "List" else kind[:-4]
        self._check_api_version(obj, doc, "v1" if item_kind is None else API_VERSIONS[item_kind])
        for _, item in _items(obj, obj.list(doc, "items", "items"), "items"):
            if item_kind is not None:
                # The API server's typed lists (ServiceList, ...) leave kind and apiVersion off their items.
                item.setdefault("kind", item_kind)
                item.setdefault("apiVersion", API_VERSIONS[item_kind])
            self._object(item)

    def _object(self, doc: PosMap) -> None:
        kind = doc.get("kind")
        if not isinstance(kind, str) or kind == "":
            self.diagnostics.append(Diagnostic(doc.span, "missing required field kind"))
            return
        if kind not in API_VERSIONS:
            known = ", ".join(API_VERSIONS)
            self.diagnostics.append(
                Diagnostic(doc.span_of("kind"), f'unsupported kind "{kind}" (kspec reads {known} and List)'))
            return
        obj = _Obj(_object_label(kind, doc), self.diagnostics)
        if not self._check_api_version(obj, doc, API_VERSIONS[kind]):
            return
        try:
            _READERS[kind](self, obj, doc)
        except _Invalid:
            pass

    def _check_api_version(self, obj: _Obj, doc: PosMap, expected: str) -> bool:
        version = doc.get("apiVersion")
        if version == expected:
            return True
        if version is None:
            obj.error(doc.span, "missing required field apiVersion")
        else:
            obj.error(doc.span_of("apiVersion"), f'apiVersion must be "{expected}", not "{version}"')
        return False

    # ------------------------------------------------------------------------------ per kind

    def _read_Service(self, obj: _Obj, doc: PosMap) -> None:
        service = read_service(obj, doc)
        self._add(obj, self.services, (service.namespace, service.name), service, doc.span)

    def _read_EndpointSlice(self, obj: _Obj, doc: PosMap) -> None:
        eps = read_endpoint_slice(obj, doc)
        if eps is not None:
            self._add(obj, self.slices, (eps.namespace, eps.name), eps, doc.span)

    def _read_Node(self, obj: _Obj, doc: PosMap) -> None:
        node = read_node(obj, doc)
        self._add(obj, self.nodes, node.name, node, doc.span)

    def _read_Pod(self, obj: _Obj, doc: PosMap) -> None:
        pod = read_pod(obj, doc)
        if pod is not None:
            self._add(obj, self.pods, (pod.namespace, pod.name), pod, doc.span)

    def _read_KubeProxyConfiguration(self, obj: _Obj, doc: PosMap) -> None:
        self.proxy_configs_seen += 1
        if self.proxy is not None:
            obj.error(doc.span, f"more than one KubeProxyConfiguration (the first is at {self.proxy[0].span})")
            return
        self.proxy = (doc, read_proxy_settings(obj, doc))

    def _read_NodeFacts(self, obj: _Obj, doc: PosMap) -> None:
        if self.facts is not None:
            obj.error(doc.span, f"more than one NodeFacts (the first is at {self.facts.span})")
            return
        for key in doc:
            if key not in ("apiVersion", "kind", "metadata", *NODE_FACTS_FIELDS):
                obj.error(doc.span_of_key(key), f'unknown field "{key}" (expected {", ".join(NODE_FACTS_FIELDS)})')
        self.facts = doc

    def _read_ConfigMap(self, obj: _Obj, doc: PosMap) -> None:
        """Read the KubeProxyConfiguration held as text in a ConfigMap's data (kubeadm's ``config.conf``)."""
        data = obj.map(doc, "data", "data")
        found = False
        for key, text in data.items():
            if not isinstance(text, str) or "KubeProxyConfiguration" not in text:
                continue
            span = data.span_of(key)
            try:
                embedded = load_documents(text, span.file)
            except YamlSyntaxError as err:
                obj.error(span, f"data.{key}: {err.diagnostic.message}")
                continue
            for inner in embedded:
                if isinstance(inner, PosMap) and inner.get("kind") == "KubeProxyConfiguration":
                    found = True
                    self._object(_relocated(inner, span, self.sources.get(span.file, "")))
        if not found:
            obj.warn(doc.span, "holds no KubeProxyConfiguration; ignored")

    def _add(self, obj: _Obj, table: dict, key: Any, value: Any, span: ir.Span) -> None:
        if key in table:
            obj.error(span, f"defined twice (the first is at {table[key].span})")
        else:
            table[key] = value

    # ------------------------------------------------------------------------------- assembly

    def build(self, name: str) -> ir.Cluster:
        cluster = ir.Cluster(
            name=name,
            nodes=tuple(self.nodes.values()),
            proxy=self._proxy_config(),
            pods=tuple(self.pods.values()),
            services=self._joined_services(),
        )
        # The cluster-wide checks every front end runs; an object's own span locates its problem. Node
        # ports are the apiserver's to allocate (kube-proxy programs whatever it is given, and its own tests
        # give ports outside the default range): a warning here.
        for problem in consistency.problems(cluster):
            kind = type(problem.subject).__name__
            label = {"Node": "Node", "Pod": "Pod", "Service": "Service", "ServicePort": "Service port"}[kind]
            severity = Severity.WARNING if "node_port" in problem.field else Severity.ERROR
            self.diagnostics.append(Diagnostic(problem.subject.span, f"{label}: {problem.message}", severity))
        return cluster

    def _joined_services(self) -> tuple[ir.Service, ...]:
        endpoints: dict[tuple[str, str], list[ir.Endpoint]] = {key: [] for key in self.services}
        for eps in self.slices.values():
            key = (eps.namespace, eps.service)
            if key not in endpoints:
                label = f"EndpointSlice {eps.namespace}/{eps.name}"
                self.diagnostics.append(Diagnostic(
                    eps.span, f"{label}: no Service {eps.namespace}/{eps.service} was given; ignored",
                    Severity.WARNING))
                continue
            endpoints[key].extend(eps.endpoints)
        return tuple(svc if not endpoints[key] else _with_endpoints(svc, endpoints[key])
                     for key, svc in self.services.items())

    def _proxy_config(self) -> ir.ProxyConfig:
        settings = self.proxy[1] if self.proxy else ProxySettings()
        span = self.proxy[0].span if self.proxy else None
        facts = _read_facts(_Obj("NodeFacts", self.diagnostics), self.facts) if self.facts else {}
        return ir.ProxyConfig(
            cluster_cidrs=settings.cluster_cidrs,
            detect_local=settings.detect_local,
            masquerade_all=settings.masquerade_all,
            masquerade_bit=settings.masquerade_bit,
            localhost_node_ports=settings.localhost_node_ports,
            node_port_addresses=settings.node_port_addresses,
            node_port_primary=settings.node_port_primary,
            node_port_range=settings.port_range,
            lb_ip_mode_gate=settings.lb_ip_mode_gate,
            random_fully=facts.get("randomFully", True),
            nfacct=facts.get("nfacct", True),
            nfacct_unavailable=facts.get("nfacctUnavailable", ()),
            tcp_liberal=facts.get("tcpLiberal", settings.tcp_be_liberal),
            mark_literal=facts.get("markLiteral"),
            span=span,
        )



# kind -> the _Reader method that reads one object of it (the kinds of API_VERSIONS, each with its method).
_READERS: dict[str, Callable[[_Reader, _Obj, PosMap], None]] = {
    "Service": _Reader._read_Service,
    "EndpointSlice": _Reader._read_EndpointSlice,
    "Node": _Reader._read_Node,
    "Pod": _Reader._read_Pod,
    "KubeProxyConfiguration": _Reader._read_KubeProxyConfiguration,
    "NodeFacts": _Reader._read_NodeFacts,
    "ConfigMap": _Reader._read_ConfigMap,
}

def _relocated(value: Any, text_span: ir.Span, source: str) -> Any:
    """Move the spans of a document parsed from a YAML string value to where that string is in the file.

    A block scalar (``config.conf: |``) maps line for line: its content starts on the next line, indented.
    Other styles (the JSON ``"apiVersion: ...\\n..."``) cannot be mapped: every span becomes the string's.
    """
    lines = source.splitlines()
    indicator = lines[text_span.line - 1][text_span.column - 1:] if text_span.line <= len(lines) else ""
    if indicator[:1] in ("|", ">") and text_span.line < len(lines):
        content = lines[text_span.line]
        indent = len(content) - len(content.lstrip(" "))
        move = lambda span: ir.Span(span.file, span.line + text_span.line, span.column + indent,  # noqa: E731
                                    (span.end_line or span.line) + text_span.line,
                                    (span.end_column or span.column) + indent)
    else:
        move = lambda span: text_span  # noqa: E731
    return _move_spans(value, move)


def _move_spans(value: Any, move: Callable[[ir.Span], ir.Span]) -> Any:
    if isinstance(value, PosMap):
        value.span = move(value.span)
        value.spans = {k: move(v) for k, v in value.spans.items()}
        value.key_spans = {k: move(v) for k, v in value.key_spans.items()}
        for item in value.values():
            _move_spans(item, move)
    elif isinstance(value, PosList):
        value.span = move(value.span)
        value.spans = [move(v) for v in value.spans]
        for item in value:
            _move_spans(item, move)
    return value


def _with_endpoints(service: ir.Service, endpoints: list[ir.Endpoint]) -> ir.Service:
    return replace(service, endpoints=tuple(endpoints))


def _object_label(kind: str, doc: PosMap) -> str:
    meta = doc.get("metadata")
    if not isinstance(meta, PosMap) or not isinstance(meta.get("name"), str):
        return kind
    if kind in ("Node", "KubeProxyConfiguration", "NodeFacts"):  # cluster-scoped
        return f"{kind} {meta['name']}"
    namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else "default"
    return f"{kind} {namespace}/{meta['name']}"


def _metadata(obj: _Obj, doc: PosMap, namespaced: bool = True) -> tuple[str, str, PosMap]:
    meta = obj.map(doc, "metadata", "metadata", required=True)
    name = obj.get(meta, "name", str, "metadata.name", required=True)
    if not name:
        raise _Invalid
    # kubectl always prints the namespace; a hand-written manifest without one lands in "default".
    namespace = obj.get(meta, "namespace", str, "metadata.namespace", default="default") if namespaced else ""
    return namespace, name, meta


# ------------------------------------------------------------------------------------------ Service


def read_service(obj: _Obj, doc: PosMap) -> ir.Service:
    namespace, name, _ = _metadata(obj, doc)
    spec = obj.map(doc, "spec", "spec", required=True)
    svc_type = obj.enum(spec, "type", "spec.type", ir.ServiceType, ir.ServiceType.CLUSTER_IP)
    ports = tuple(_service_port(obj, i, port) for i, port in _items(obj, obj.list(spec, "ports", "spec.ports"),
                                                                      "spec.ports"))
    if svc_type is ir.ServiceType.EXTERNAL_NAME:
        # kube-proxy writes no rules for these; keep them so the verifier can say so.
        external_name = obj.get(spec, "externalName", str, "spec.externalName")
        return ir.Service(namespace, name, svc_type, ports=ports, external_name=external_name, span=doc.span)
    status = obj.map(doc, "status", "status")
    return ir.Service(
        namespace=namespace,
        name=name,
        type=svc_type,
        cluster_ips=_cluster_ips(obj, spec),
        ports=ports,
        external_ips=_external_ips(obj, spec),
        load_balancer_ingress=_ingress(obj, obj.map(status, "loadBalancer", "status.loadBalancer")),
        load_balancer_source_ranges=_source_ranges(obj, spec),
        external_traffic_policy=obj.enum(spec, "externalTrafficPolicy", "spec.externalTrafficPolicy",
                                         ir.TrafficPolicy, ir.TrafficPolicy.CLUSTER),
        internal_traffic_policy=obj.enum(spec, "internalTrafficPolicy", "spec.internalTrafficPolicy",
                                         ir.TrafficPolicy, ir.TrafficPolicy.CLUSTER),
        # The slices carry the hints the controller wrote for it (kspec.topology writes them only for .k).
        traffic_distribution=obj.get(spec, "trafficDistribution", str, "spec.trafficDistribution") or None,
        health_check_node_port=_port_number(obj, spec, "healthCheckNodePort", "spec.healthCheckNodePort"),
        session_affinity=_session_affinity(obj, spec),
        span=doc.span,
    )


def _cluster_ips(obj: _Obj, spec: PosMap) -> tuple[ir.IPAddress, ...]:
    """``clusterIPs`` (or the older ``clusterIP``); "None" (headless) and "" (unallocated) give ()."""
    values: list[Any]
    if spec.get("clusterIPs") is not None:
        values = obj.list(spec, "clusterIPs", "spec.clusterIPs")
        spans, path = values.spans, "spec.clusterIPs"
    else:
        single = obj.get(spec, "clusterIP", str, "spec.clusterIP")
        values, spans, path = ([single] if single else []), [spec.span_of("clusterIP")], "spec.clusterIP"
    ips = []
    for i, value in enumerate(values):
        where = path if path == "spec.clusterIP" else f"{path}[{i}]"
        if value in ("None", ""):
            return ()
        ip = parse_ip_lenient(value)
        if ip is None:
            obj.error(spans[i], f'{where}: "{value}" is not an IP address')
            continue
        ips.append(ip)
    return tuple(ips)


def _service_port(obj: _Obj, index: int, port: PosMap) -> ir.ServicePort:
    path = f"spec.ports[{index}]"
    target = obj.get(port, "targetPort", (int, str), f"{path}.targetPort")
    return ir.ServicePort(
        name=obj.get(port, "name", str, f"{path}.name", default=""),
        protocol=obj.enum(port, "protocol", f"{path}.protocol", ir.Protocol, ir.Protocol.TCP),
        port=_port_number(obj, port, "port", f"{path}.port", required=True),
        target_port=target,
        node_port=_port_number(obj, port, "nodePort", f"{path}.nodePort"),
        span=port.span,
    )


def _port_number(obj: _Obj, m: PosMap, key: str, path: str, required: bool = False) -> int:
    value = obj.get(m, key, int, path, required=required)
    if value is None:
        return 0  # absent (already reported if required)
    if not 0 <= value <= 65535 or (required and value == 0):
        obj.error(m.span_of(key), f"{path}: {value} is not a valid port number")
        return 0
    return value


def _external_ips(obj: _Obj, spec: PosMap) -> tuple[ir.IPAddress, ...]:
    # kube-proxy skips (and logs) externalIPs it cannot parse; the empty string silently.
    result = []
    values = obj.list(spec, "externalIPs", "spec.externalIPs")
    for i, value in enumerate(values):
        ip = parse_ip_lenient(value) if isinstance(value, str) else None
        if ip is not None:
            result.append(ip)
        elif not (isinstance(value, str) and value.strip() == ""):
            obj.warn(values.span_at(i), f'spec.externalIPs[{i}]: "{value}" is not an IP address; '
                                        "kube-proxy ignores it")
    return tuple(result)


def _source_ranges(obj: _Obj, spec: PosMap) -> tuple[ir.IPNetwork, ...]:
    # API validation lets whitespace padding through, so kube-proxy trims; what still fails to parse it skips.
    result = []
    values = obj.list(spec, "loadBalancerSourceRanges", "spec.loadBalancerSourceRanges")
    for i, value in enumerate(values):
        cidr = parse_cidr_lenient(value.strip()) if isinstance(value, str) else None
        if cidr is not None:
            result.append(cidr)
        else:
            obj.warn(values.span_at(i), f'spec.loadBalancerSourceRanges[{i}]: "{value}" is not a CIDR; '
                                        "kube-proxy ignores it")
    return tuple(result)


def _ingress(obj: _Obj, lb_status: PosMap) -> tuple[ir.LoadBalancerIngress, ...]:
    result = []
    entries = obj.list(lb_status, "ingress", "status.loadBalancer.ingress")
    for i, entry in _items(obj, entries, "status.loadBalancer.ingress"):
        path = f"status.loadBalancer.ingress[{i}]"
        text = obj.get(entry, "ip", str, f"{path}.ip", default="")
        if text == "":
            continue  # hostname-only entries: kube-proxy writes no rules for them
        ip = parse_ip_lenient(text)
        if ip is None:
            obj.error(entry.span_of("ip"), f'{path}.ip: "{text}" is not an IP address')
            continue
        mode = obj.enum(entry, "ipMode", f"{path}.ipMode", ir.IngressMode, None)
        result.append(ir.LoadBalancerIngress(ip, mode, span=entry.span))
    return tuple(result)


def _session_affinity(obj: _Obj, spec: PosMap) -> ir.SessionAffinity | None:
    affinity = obj.get(spec, "sessionAffinity", str, "spec.sessionAffinity", default="None")
    if affinity in ("None", ""):
        return None
    if affinity != "ClientIP":
        obj.error(spec.span_of("sessionAffinity"),
                  f'spec.sessionAffinity: unsupported value "{affinity}" (expected one of None, ClientIP)')
        return None
    config = obj.map(obj.map(spec, "sessionAffinityConfig", "spec.sessionAffinityConfig"), "clientIP",
                     "spec.sessionAffinityConfig.clientIP")
    path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
    timeout = obj.get(config, "timeoutSeconds", int, path, default=DEFAULT_AFFINITY_TIMEOUT)
    if not 0 < timeout <= 86400:  # the API server's bounds
        obj.error(config.span_of("timeoutSeconds"), f"{path}: {timeout} is not between 1 and 86400")
    return ir.SessionAffinity(timeout, span=spec.span_of("sessionAffinity"))


# ------------------------------------------------------------------------------------ EndpointSlice


def read_endpoint_slice(obj: _Obj, doc: PosMap) -> _Slice | None:
    namespace, name, meta = _metadata(obj, doc)
    labels = obj.map(meta, "labels", "metadata.labels")
    service = labels.get(SERVICE_NAME_LABEL)
    address_type = obj.get(doc, "addressType", str, "addressType", required=True)
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        if address_type is not None:
            obj.error(doc.span_of("addressType"),
                      f'addressType: unsupported value "{address_type}" (expected one of IPv4, IPv6, FQDN)')
        raise _Invalid
    if address_type == "FQDN":
        return None  # kube-proxy only handles IP slices
    ports = _slice_ports(obj, doc)
    endpoints = [_endpoint(obj, i, ep, ports, namespace)
                 for i, ep in _items(obj, obj.list(doc, "endpoints", "endpoints"), "endpoints")]
    if not isinstance(service, str) or service == "":
        # kube-proxy cannot tell which Service the slice belongs to and ignores it.
        obj.warn(meta.span, f"no {SERVICE_NAME_LABEL} label; kube-proxy ignores this EndpointSlice")
        return None
    return _Slice(namespace, name, service, [ep for ep in endpoints if ep is not None], doc.span)


def _slice_ports(obj: _Obj, doc: PosMap) -> tuple[ir.EndpointPort, ...]:
    result = []
    for i, port in _items(obj, obj.list(doc, "ports", "ports"), "ports"):
        number = obj.get(port, "port", int, f"ports[{i}].port", default=0)
        if number == 0:
            continue  # kube-proxy ignores ports without a number
        result.append(ir.EndpointPort(
            # The API server defaults a missing name to "" and protocol to TCP.
            name=obj.get(port, "name", str, f"ports[{i}].name", default=""),
            protocol=obj.enum(port, "protocol", f"ports[{i}].protocol", ir.Protocol, ir.Protocol.TCP),
            port=number,
            span=port.span,
        ))
    return tuple(result)


def _endpoint(obj: _Obj, index: int, ep: PosMap, ports: tuple[ir.EndpointPort, ...],
              namespace: str) -> ir.Endpoint | None:
    path = f"endpoints[{index}]"
    addresses = obj.list(ep, "addresses", f"{path}.addresses")
    if not addresses:
        obj.error(ep.span, f"{path}.addresses must hold at least one address")
        return None
    text = addresses[0]  # kube-proxy only looks at the first address
    ip = parse_ip_lenient(text) if isinstance(text, str) else None
    if ip is None:
        obj.error(addresses.span_at(0), f'{path}.addresses[0]: "{text}" is not an IP address')
        return None
    conditions = obj.map(ep, "conditions", f"{path}.conditions")
    return ir.Endpoint(
        ip=ip,
        ports=ports,
        node=obj.get(ep, "nodeName", str, f"{path}.nodeName"),
        # Unset conditions: ready and serving (older controllers never set them), not terminating.
        ready=obj.get(conditions, "ready", bool, f"{path}.conditions.ready", default=True),
        serving=obj.get(conditions, "serving", bool, f"{path}.conditions.serving", default=True),
        terminating=obj.get(conditions, "terminating", bool, f"{path}.conditions.terminating", default=False),
        pod=_target_pod(obj, ep, path, namespace),
        zone_hints=_hints(obj, ep, path, "forZones"),
        node_hints=_hints(obj, ep, path, "forNodes"),
        span=ep.span,
    )


def _hints(obj: _Obj, ep: PosMap, path: str, kind: str) -> tuple[str, ...]:
    """``hints.forZones`` / ``hints.forNodes``: the names the EndpointSlice controller hinted the endpoint for."""
    hints = obj.map(ep, "hints", f"{path}.hints")
    names = []
    for i, entry in _items(obj, obj.list(hints, kind, f"{path}.hints.{kind}"), f"{path}.hints.{kind}"):
        name = obj.get(entry, "name", str, f"{path}.hints.{kind}[{i}].name", required=True)
        if name is not None:
            names.append(name)
    return tuple(names)


def _target_pod(obj: _Obj, ep: PosMap, path: str, namespace: str) -> str | None:
    ref = obj.map(ep, "targetRef", f"{path}.targetRef")
    if ref.get("kind") != "Pod" or not isinstance(ref.get("name"), str):
        return None
    ref_namespace = obj.get(ref, "namespace", str, f"{path}.targetRef.namespace", default=namespace)
    return f"{ref_namespace}/{ref['name']}"


# --------------------------------------------------------------------------------------- Node, Pod


def read_node(obj: _Obj, doc: PosMap) -> ir.Node:
    _, name, _ = _metadata(obj, doc, namespaced=False)
    status = obj.map(doc, "status", "status")
    addresses = _items(obj, obj.list(status, "addresses", "status.addresses"), "status.addresses")
    ips = []
    # The first InternalIP of a family is the node's primary IP (as kube-proxy picks it), then ExternalIPs.
    for wanted in ("InternalIP", "ExternalIP"):
        for i, entry in addresses:
            if entry.get("type") != wanted:
                continue
            text = obj.get(entry, "address", str, f"status.addresses[{i}].address", required=True)
            ip = parse_ip_lenient(text) if text is not None else None
            if ip is None and text is not None:
                obj.error(entry.span_of("address"), f'status.addresses[{i}].address: "{text}" is not an IP address')
            elif ip is not None and ip not in ips:
                ips.append(ip)
    spec = obj.map(doc, "spec", "spec")
    labels = obj.map(obj.map(doc, "metadata", "metadata"), "labels", "metadata.labels")
    zone = labels.get("topology.kubernetes.io/zone")
    return ir.Node(name, tuple(ips), _pod_cidrs(obj, spec), zone=str(zone) if zone is not None else None,
                   span=doc.span)


def _pod_cidrs(obj: _Obj, spec: PosMap) -> tuple[ir.IPNetwork, ...]:
    if spec.get("podCIDRs") is not None:
        values, path = obj.list(spec, "podCIDRs", "spec.podCIDRs"), "spec.podCIDRs"
        entries = [(f"{path}[{i}]", v, values.span_at(i)) for i, v in enumerate(values)]
    else:
        single = obj.get(spec, "podCIDR", str, "spec.podCIDR")
        entries = [("spec.podCIDR", single, spec.span_of("podCIDR"))] if single else []
    result = []
    for where, value, span in entries:
        cidr = parse_cidr_lenient(value) if isinstance(value, str) else None
        if cidr is None:
            obj.error(span, f'{where}: "{value}" is not a CIDR')
        else:
            result.append(cidr)
    return tuple(result)


def read_pod(obj: _Obj, doc: PosMap) -> ir.Pod | None:
    namespace, name, meta = _metadata(obj, doc)
    spec = obj.map(doc, "spec", "spec")
    status = obj.map(doc, "status", "status")
    node = obj.get(spec, "nodeName", str, "spec.nodeName")
    ip_text = obj.get(status, "podIP", str, "status.podIP")
    if not node or not ip_text:
        return None  # not scheduled or not started: it cannot back a Service yet
    ip = parse_ip_lenient(ip_text)
    if ip is None:
        obj.error(status.span_of("podIP"), f'status.podIP: "{ip_text}" is not an IP address')
        return None
    labels = obj.map(meta, "labels", "metadata.labels")
    # The EndpointSlice controller's rule: serving = the Ready condition, ready = serving and not terminating.
    serving = any(isinstance(c, PosMap) and c.get("type") == "Ready" and c.get("status") == "True"
                  for c in obj.list(status, "conditions", "status.conditions"))
    terminating = meta.get("deletionTimestamp") is not None
    return ir.Pod(
        namespace=namespace, name=name, node=node, ip=ip,
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        ports=_container_ports(obj, spec),
        ready=serving and not terminating, serving=serving, terminating=terminating,
        span=doc.span,
    )


def _container_ports(obj: _Obj, spec: PosMap) -> tuple[ir.ContainerPort, ...]:
    result = []
    for c, container in _items(obj, obj.list(spec, "containers", "spec.containers"), "spec.containers"):
        path = f"spec.containers[{c}].ports"
        for p, port in _items(obj, obj.list(container, "ports", path), path):
            result.append(ir.ContainerPort(
                name=obj.get(port, "name", str, f"{path}[{p}].name", default=""),
                port=_port_number(obj, port, "containerPort", f"{path}[{p}].containerPort", required=True),
                protocol=obj.enum(port, "protocol", f"{path}[{p}].protocol", ir.Protocol, ir.Protocol.TCP),
                span=port.span,
            ))
    return tuple(result)


# -------------------------------------------------------------------------- KubeProxyConfiguration


@dataclass(frozen=True)
class ProxySettings:
    """What the KubeProxyConfiguration says (node facts are merged in later)."""

    cluster_cidrs: tuple[ir.IPNetwork, ...] = ()
    detect_local: ir.LocalDetect = ir.LocalDetect()
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_node_ports: bool = True
    node_port_addresses: tuple[ir.IPNetwork, ...] | None = None
    node_port_primary: bool = False
    port_range: tuple[int, int] = (30000, 32767)
    lb_ip_mode_gate: bool | None = None
    tcp_be_liberal: bool = False


_DETECT_LOCAL_MODES = {
    # kube-proxy's default when detectLocalMode is unset.
    "": ir.LocalDetectMode.CLUSTER_CIDR,
    "ClusterCIDR": ir.LocalDetectMode.CLUSTER_CIDR,
    "NodeCIDR": ir.LocalDetectMode.NODE_CIDR,
    "BridgeInterface": ir.LocalDetectMode.BRIDGE_INTERFACE,
    "InterfaceNamePrefix": ir.LocalDetectMode.INTERFACE_NAME_PREFIX,
}


def read_proxy_settings(obj: _Obj, doc: PosMap) -> ProxySettings:
    mode = obj.get(doc, "mode", str, "mode", default="")
    if mode not in ("", "iptables"):
        obj.error(doc.span_of("mode"), f'mode: kspec models the iptables mode, not "{mode}"')
    iptables = obj.map(doc, "iptables", "iptables")
    bit = obj.get(iptables, "masqueradeBit", int, "iptables.masqueradeBit", default=14)
    if not 0 <= bit <= 31:
        obj.error(iptables.span_of("masqueradeBit"), f"iptables.masqueradeBit: {bit} is not between 0 and 31")
        bit = 14
    gates = obj.map(doc, "featureGates", "featureGates")
    conntrack = obj.map(doc, "conntrack", "conntrack")
    return ProxySettings(
        cluster_cidrs=_cluster_cidrs(obj, doc),
        detect_local=_detect_local(obj, doc),
        masquerade_all=obj.get(iptables, "masqueradeAll", bool, "iptables.masqueradeAll", default=False),
        masquerade_bit=bit,
        localhost_node_ports=obj.get(iptables, "localhostNodePorts", bool, "iptables.localhostNodePorts",
                                     default=True),
        node_port_addresses=_node_port_addresses(obj, doc),
        node_port_primary=list(obj.list(doc, "nodePortAddresses", "nodePortAddresses")) == ["primary"],
        port_range=_port_range(obj, doc),
        lb_ip_mode_gate=obj.get(gates, "LoadBalancerIPMode", bool, "featureGates.LoadBalancerIPMode",
                                default=None),
        tcp_be_liberal=obj.get(conntrack, "tcpBeLiberal", bool, "conntrack.tcpBeLiberal", default=False),
    )


def _cluster_cidrs(obj: _Obj, doc: PosMap) -> tuple[ir.IPNetwork, ...]:
    # One CIDR per family, comma-separated (dual-stack); kube-proxy parses them with ParseCIDRSloppy.
    text = obj.get(doc, "clusterCIDR", str, "clusterCIDR", default="")
    result = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        cidr = parse_cidr_lenient(part)
        if cidr is None:
            obj.error(doc.span_of("clusterCIDR"), f'clusterCIDR: "{part}" is not a CIDR')
        else:
            result.append(cidr)
    return tuple(result)


def _detect_local(obj: _Obj, doc: PosMap) -> ir.LocalDetect:
    text = obj.get(doc, "detectLocalMode", str, "detectLocalMode", default="")
    mode = _DETECT_LOCAL_MODES.get(text)
    if mode is None:
        allowed = ", ".join(m for m in _DETECT_LOCAL_MODES if m)
        obj.error(doc.span_of("detectLocalMode"),
                  f'detectLocalMode: unsupported value "{text}" (expected one of {allowed})')
        return ir.LocalDetect()
    key = {ir.LocalDetectMode.BRIDGE_INTERFACE: "bridgeInterface",
           ir.LocalDetectMode.INTERFACE_NAME_PREFIX: "interfaceNamePrefix"}.get(mode)
    if key is None:
        return ir.LocalDetect(mode)
    detect = obj.map(doc, "detectLocal", "detectLocal")
    interface = obj.get(detect, key, str, f"detectLocal.{key}", default="")
    if interface == "":
        # kube-proxy's validation: the interface (prefix) must be given for these modes.
        span = detect.span if "detectLocal" in doc else doc.span_of("detectLocalMode")
        obj.error(span, f"detectLocal.{key} must be set when detectLocalMode is {text}")
    return ir.LocalDetect(mode, interface or None)


def _node_port_addresses(obj: _Obj, doc: PosMap) -> tuple[ir.IPNetwork, ...] | None:
    values = obj.list(doc, "nodePortAddresses", "nodePortAddresses")
    if list(values) == ["primary"]:
        return None  # each node's primary IPs: ProxySettings.node_port_primary
    result = []
    for i, value in enumerate(values):
        where = f"nodePortAddresses[{i}]"
        if value == "primary":
            obj.error(values.span_at(i), f'{where}: "primary" must be the only entry of nodePortAddresses')
            continue
        cidr = parse_cidr_lenient(value) if isinstance(value, str) else None
        if cidr is None:
            obj.error(values.span_at(i), f'{where}: "{value}" is not a CIDR')
        else:
            result.append(cidr)
    return tuple(result) or None  # empty: every local address, like unset


def _port_range(obj: _Obj, doc: PosMap) -> tuple[int, int]:
    """``portRange``: "first-last", "first+offset" or a single port; empty: the default NodePort range."""
    text = obj.get(doc, "portRange", str, "portRange", default="").strip()
    if text == "":
        return (30000, 32767)
    try:
        if "-" in text:
            first, last = (int(p) for p in text.split("-", 1))
        elif "+" in text:
            first, offset = (int(p) for p in text.split("+", 1))
            last = first + offset
        else:
            first = last = int(text)
    except ValueError:
        first, last = -1, -1
    if not 0 < first <= last <= 65535:
        obj.error(doc.span_of("portRange"), f'portRange: "{text}" is not a port range (like "30000-32767")')
        return (30000, 32767)
    return (first, last)


def _read_facts(obj: _Obj, doc: PosMap) -> dict[str, Any]:
    facts = {}
    for key in ("randomFully", "nfacct", "tcpLiberal"):
        value = obj.get(doc, key, bool, key)
        if value is not None:
            facts[key] = value
    mark = doc.get("markLiteral")
    if isinstance(mark, str):
        facts["markLiteral"] = mark
    elif mark is not None:
        # A bare 0x4000 is a YAML integer (16384): the literal must be written as a string.
        obj.error(doc.span_of("markLiteral"),
                  f'markLiteral must be a string, not {_describe_value(mark)} (quote it: "0x4000")')
    unavailable = obj.list(doc, "nfacctUnavailable", "nfacctUnavailable")
    for i, name in enumerate(unavailable):
        if name not in NFACCT_COUNTERS:
            obj.error(unavailable.span_at(i), f'nfacctUnavailable[{i}]: unknown counter "{name}" '
                                              f'(expected one of {", ".join(NFACCT_COUNTERS)})')
    if unavailable:
        facts["nfacctUnavailable"] = tuple(sorted({n for n in unavailable if n in NFACCT_COUNTERS}))
    return facts
