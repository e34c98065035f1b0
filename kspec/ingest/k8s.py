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

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kspec import consistency, ir
from kspec.diagnostics import Diagnostic, KspecError, Severity, decode
from kspec.ingest.fields import Fields, Invalid, describe_value, items
from kspec.ingest.kinds import (
    ProxySettings,
    SliceRead,
    read_endpoint_slice,
    read_facts,
    read_node,
    read_pod,
    read_proxy_settings,
    read_service,
)
from kspec.ingest.yamlpos import PosList, PosMap, YamlSyntaxError, load_documents

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


# ------------------------------------------------------------------------------------------- reader


@dataclass
class _Reader:
    stdin: bytes | None = None  # what a path "-" reads (once)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    services: dict[tuple[str, str], ir.Service] = field(default_factory=dict)
    slices: dict[tuple[str, str], SliceRead] = field(default_factory=dict)
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
                Diagnostic(span, f"expected a Kubernetes object (a mapping), not {describe_value(doc)}"))
            return
        kind = doc.get("kind")
        if isinstance(kind, str) and (kind == "List" or kind.endswith("List") and kind[:-4] in API_VERSIONS):
            self._list(doc, kind)
        else:
            self._object(doc)

    def _list(self, doc: PosMap, kind: str) -> None:
        obj = Fields(kind, self.diagnostics)
        item_kind = None if kind == "List" else kind[:-4]
        self._check_api_version(obj, doc, "v1" if item_kind is None else API_VERSIONS[item_kind])
        for _, item in items(obj, obj.list(doc, "items", "items"), "items"):
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
        obj = Fields(_object_label(kind, doc), self.diagnostics)
        if not self._check_api_version(obj, doc, API_VERSIONS[kind]):
            return
        try:
            _READERS[kind](self, obj, doc)
        except Invalid:
            pass

    def _check_api_version(self, obj: Fields, doc: PosMap, expected: str) -> bool:
        version = doc.get("apiVersion")
        if version == expected:
            return True
        if version is None:
            obj.error(doc.span, "missing required field apiVersion")
        else:
            obj.error(doc.span_of("apiVersion"), f'apiVersion must be "{expected}", not "{version}"')
        return False

    # ------------------------------------------------------------------------------ per kind

    def _read_Service(self, obj: Fields, doc: PosMap) -> None:
        service = read_service(obj, doc)
        self._add(obj, self.services, (service.namespace, service.name), service, doc.span)

    def _read_EndpointSlice(self, obj: Fields, doc: PosMap) -> None:
        eps = read_endpoint_slice(obj, doc)
        if eps is not None:
            self._add(obj, self.slices, (eps.namespace, eps.name), eps, doc.span)

    def _read_Node(self, obj: Fields, doc: PosMap) -> None:
        node = read_node(obj, doc)
        self._add(obj, self.nodes, node.name, node, doc.span)

    def _read_Pod(self, obj: Fields, doc: PosMap) -> None:
        pod = read_pod(obj, doc)
        if pod is not None:
            self._add(obj, self.pods, (pod.namespace, pod.name), pod, doc.span)

    def _read_KubeProxyConfiguration(self, obj: Fields, doc: PosMap) -> None:
        self.proxy_configs_seen += 1
        if self.proxy is not None:
            obj.error(doc.span, f"more than one KubeProxyConfiguration (the first is at {self.proxy[0].span})")
            return
        self.proxy = (doc, read_proxy_settings(obj, doc))

    def _read_NodeFacts(self, obj: Fields, doc: PosMap) -> None:
        if self.facts is not None:
            obj.error(doc.span, f"more than one NodeFacts (the first is at {self.facts.span})")
            return
        for key in doc:
            if key not in ("apiVersion", "kind", "metadata", *NODE_FACTS_FIELDS):
                obj.error(doc.span_of_key(key), f'unknown field "{key}" (expected {", ".join(NODE_FACTS_FIELDS)})')
        self.facts = doc

    def _read_ConfigMap(self, obj: Fields, doc: PosMap) -> None:
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

    def _add(self, obj: Fields, table: dict, key: Any, value: Any, span: ir.Span) -> None:
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
        facts = read_facts(Fields("NodeFacts", self.diagnostics), self.facts) if self.facts else {}
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
_READERS: dict[str, Callable[[_Reader, Fields, PosMap], None]] = {
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


