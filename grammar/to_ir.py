"""Syntax tree -> IR draft.

The transformer builds ``ir`` nodes bottom-up, each with the Span lark recorded for it, and checks what can be
checked locally: literal values (IPs, CIDRs, port numbers), settings given twice, and rules about one
object alone (a NodePort on a ClusterIP service). Everything that needs the whole cluster (names, selectors,
CIDR ownership) is left to ``resolve``, so the draft also carries the references it saw with their spans.

A value that fails its check becomes ``None`` in the draft; resolve skips such values, so one typo yields one
diagnostic, not a cascade.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lark import Token, Transformer, Tree, v_args

from kspec import ir
from kspec.diagnostics import Diagnostic

DEFAULT_NAMESPACE = "default"

# Blocks in which a keyword may appear more than once; every other repeated keyword is an error.
_REPEATABLE = {"port", "load_balancer_ingress"}
_QUOTED_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # any DNS label (or subdomain) and what NAME allows


@dataclass(frozen=True)
class Item:
    """One `keyword value` line of a block; ``key`` is the keyword as written, for messages."""

    key: str
    value: Any
    span: ir.Span
    at: tuple[ir.Span, ...] = ()  # where each value was written (one span per element of a list)


@dataclass(frozen=True)
class QName:
    namespace: str
    name: str
    span: ir.Span

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Ref:
    """A use of a name, checked by resolve: kind is node, pod, client or service."""

    kind: str
    name: str
    span: ir.Span


@dataclass
class Draft:
    cluster: ir.Cluster
    diagnostics: list[Diagnostic]
    refs: list[Ref]
    # Index in cluster.clients -> the pod a `client NAME from pod NS/NAME` names (its IP and node come later).
    client_pods: dict[int, QName]
    # (id(ir node), field name) -> where that field's value was written, for precise messages in resolve.
    spans: dict[tuple[int, str], ir.Span] = field(default_factory=dict)
    # Whether the spec wrote `proxy { }` or `cluster_cidr` (else Kubernetes objects may bring their own).
    proxy_written: bool = False
    object_spans: dict[str, ir.Span] = field(default_factory=dict)  # an `objects` file -> where it is named

    def span_of(self, node: Any, field_name: str, index: int | None = None) -> ir.Span | None:
        """Where ``node.field_name`` (or its ``index``-th element) was written; else the node's own span."""
        key = field_name if index is None else f"{field_name}#{index}"
        return self.spans.get((id(node), key)) or self.spans.get((id(node), field_name)) or node.span


def to_draft(tree: Tree, filename: str) -> Draft:
    return ToIR(filename).transform(tree)


def conditions(items: list[Item]) -> tuple[bool, bool, bool]:
    """(ready, serving, terminating) from `[not] ready|serving|terminating` flags, Kubernetes style:
    a terminating endpoint is not ready but (by default) still serving; otherwise serving follows ready."""
    given = {item.key: item.value for item in items}
    terminating = given.get("terminating", False)
    ready = given.get("ready", not terminating)
    serving = given.get("serving", True if terminating else ready)
    return ready, serving, terminating


def unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


# Factories of transformer methods, one per family of similar grammar rules.
def _detect(mode: ir.LocalDetectMode) -> Callable[[Any, Any, list[Any]], Any]:
    """A transformer method reading one ``detect_local`` form."""
    def method(self, meta, children):
        interface = str(children[0]) if children else None
        return Item("detect_local", ir.LocalDetect(mode, interface), self._span(meta))
    return method


def _flag(key: str) -> Callable[[Any, Any, list[Any]], Any]:
    """A transformer method reading one boolean proxy setting."""
    def method(self, meta, children):
        return Item(key, children[0], self._span(meta))
    return method


def _atom(cls: Callable[..., Any]) -> Callable[[Any, Any, list[Any]], Any]:
    """A transformer method building a property without operands."""
    def method(self, meta, children):
        return cls(span=self._span(meta))
    return method


def _binary(cls: Callable[..., Any]) -> Callable[[Any, Any, list[Any]], Any]:
    """A transformer method building a property of two operands."""
    def method(self, meta, children):
        left, right = (c for c in children if not isinstance(c, Token))
        return cls(left, right, span=self._span(meta))
    return method


@v_args(meta=True)
class ToIR(Transformer):
    def __init__(self, filename: str):
        super().__init__()
        self.filename = filename
        self.diagnostics: list[Diagnostic] = []
        self.refs: list[Ref] = []
        self.spans: dict[tuple[int, str], ir.Span] = {}
        self.object_spans: dict[str, ir.Span] = {}  # an `objects` file -> where the spec names it

    # ------------------------------------------------------------------------------------- helpers

    def _span(self, meta) -> ir.Span:
        return ir.Span(self.filename, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, tok: Token) -> ir.Span:
        # A token from the parser always has a position; lark types it optional for hand-made tokens.
        return ir.Span(self.filename, tok.line or 1, tok.column or 1, tok.end_line, tok.end_column)

    def _error(self, span: ir.Span | None, message: str, *notes: str) -> None:
        self.diagnostics.append(Diagnostic(span, message, notes=notes))

    def _ref(self, kind: str, name: str, span: ir.Span) -> None:
        self.refs.append(Ref(kind, name, span))

    def _remember(self, node: Any, field_name: str, span: ir.Span) -> None:
        self.spans[(id(node), field_name)] = span

    def _int(self, tok: Token, low: int, high: int, what: str) -> int | None:
        text = str(tok)
        value = int(text) if len(text) <= 12 else None  # no 4300-digit int() on absurd input
        if value is None or not low <= value <= high:
            shown = text if len(text) <= 20 else text[:20] + "..."
            self._error(self._tspan(tok), f"{what} {shown} is out of range ({low}-{high})")
            return None
        return value

    def _port(self, tok: Token, what: str = "port") -> int | None:
        return self._int(tok, 1, 65535, what)

    def _ip(self, tok: Token) -> ir.IPAddress | None:
        try:
            return ipaddress.ip_address(str(tok))
        except ValueError:
            kind = "IPv4" if tok.type == "IPV4" else "IPv6"
            self._error(self._tspan(tok), f"invalid {kind} address {str(tok)!r}")
            return None

    def _cidr(self, tok: Token) -> ir.IPNetwork | None:
        try:
            return ipaddress.ip_network(str(tok))
        except ValueError as exc:
            reason = "host bits are set" if "host bits" in str(exc) else "not a valid network"
            self._error(self._tspan(tok), f"invalid CIDR {str(tok)!r}: {reason}")
            return None

    def _values(self, key: str, meta, toks: list[Token], parse) -> Item:
        """An Item holding the well-formed values of ``toks`` (the others are reported), with their spans."""
        pairs = [(value, self._tspan(tok)) for tok in toks if (value := parse(tok)) is not None]
        return Item(key, tuple(v for v, _ in pairs), self._span(meta), tuple(s for _, s in pairs))

    def _remember_items(self, node: Any, settings: dict[str, list[Item]]) -> None:
        for key, items in settings.items():
            first = items[0]
            self._remember(node, key, first.at[0] if first.at else first.span)
            for index, span in enumerate(first.at):
                self._remember(node, f"{key}#{index}", span)

    def _settings(self, items: list[Item], what: str = "") -> dict[str, list[Item]]:
        """Group a block's lines by keyword, reporting keywords given twice."""
        grouped: dict[str, list[Item]] = {}
        for item in items:
            seen = grouped.setdefault(item.key, [])
            if seen and item.key not in _REPEATABLE:
                first = seen[0].span
                self._error(item.span, f"{what}'{item.key}' is given twice",
                            f"first given at {first.line}:{first.column}")
                continue
            seen.append(item)
        return grouped

    @staticmethod
    def _get(settings: dict[str, list[Item]], key: str, default: Any = None) -> Any:
        items = settings.get(key)
        return items[0].value if items else default

    # -------------------------------------------------------------------------------------- values

    def true(self, meta, children):
        return True

    def false(self, meta, children):
        return False

    def protocol(self, meta, children):
        return ir.Protocol(str(children[0]).upper())

    def name(self, meta, children):
        """A name as the handlers take it: a NAME token, a quoted one unquoted (where it was written)."""
        tok = children[0]
        if tok.type != "STRING":
            return tok
        text = unquote(tok)
        if not _QUOTED_NAME.fullmatch(text):
            self._error(self._tspan(tok), f"{tok} is not a name: a name holds letters, digits, '_', '.' and '-' "
                                          "(and starts with a letter, a digit or '_')")
        return Token.new_borrow_pos("NAME", text, tok)

    def qname(self, meta, children):
        names = [str(c) for c in children]
        namespace = names[0] if len(names) == 2 else DEFAULT_NAMESPACE
        return QName(namespace, names[-1], self._span(meta))

    def label(self, meta, children):
        key, value = children
        text = unquote(value) if value.type == "STRING" else str(value)
        return Item(str(key), text, self._span(meta))

    def _labels(self, labels: list[Item]) -> tuple[tuple[str, str], ...]:
        """Labels are a map: sorted by key (so the IR does not depend on the order written), keys unique."""
        unique = self._settings(labels, "label ")  # reports a key given twice
        return tuple(sorted((key, items[0].value) for key, items in unique.items()))

    def port_entry(self, meta, children):
        name = str(children[0]) if children[0].type == "NAME" else ""
        number = next(c for c in children if isinstance(c, Token) and c.type == "INT")
        protocol = next((c for c in children if isinstance(c, ir.Protocol)), ir.Protocol.TCP)
        return Item("port", (name, self._port(number), protocol), self._span(meta))

    def _port_entries(self, entries: list[Item], make) -> tuple:
        seen: dict[tuple[str, ir.Protocol], Item] = {}
        result = []
        for entry in entries:
            name, number, protocol = entry.value
            if name and (name, protocol) in seen:
                self._error(entry.span, f"port name '{name}' is used twice")
            seen[(name, protocol)] = entry
            result.append(make(name=name, protocol=protocol, port=number, span=entry.span))
        return tuple(result)

    # ------------------------------------------------------------------------------------- cluster

    def start(self, meta, children):
        name, *items = children
        settings = self._settings([i for i in items if i.key in ("cluster_cidr", "proxy")])
        proxy = self._get(settings, "proxy", ir.ProxyConfig())
        cidrs = self._get(settings, "cluster_cidr", ())
        proxy = dataclasses.replace(proxy, cluster_cidrs=cidrs)
        if settings and proxy.span is None:  # only cluster_cidr: the proxy settings are still the spec's
            proxy = dataclasses.replace(proxy, span=next(iter(settings.values()))[0].span)

        def of(kind: str) -> list[Any]:
            return [item.value for item in items if item.key == kind]

        clients = of("client")
        client_pods = {i: pod for i, (_, pod) in enumerate(clients) if pod is not None}
        cluster = ir.Cluster(
            name=str(name), nodes=tuple(of("node")), proxy=proxy, pods=tuple(of("pod")),
            services=tuple(of("service")), clients=tuple(c for c, _ in clients),
            load_balancers=tuple(of("load_balancer")), checks=tuple(of("check")), span=self._span(meta),
            objects=tuple(path for paths in of("objects") for path in paths))
        return Draft(cluster, self.diagnostics, self.refs, client_pods, self.spans, proxy_written=bool(settings),
                     object_spans=self.object_spans)

    def objects(self, meta, children):
        paths = tuple(unquote(tok) for tok in children)
        for path, tok in zip(paths, children):
            self.object_spans.setdefault(path, self._tspan(tok))
        return Item("objects", paths, self._span(meta))

    def cluster_cidr(self, meta, children):
        return self._values("cluster_cidr", meta, children, self._cidr)

    # --------------------------------------------------------------------------------------- proxy

    def proxy(self, meta, children):
        s = self._settings(children)
        default = ir.ProxyConfig()
        values = {key: self._get(s, key, getattr(default, key)) for key in _PROXY_FIELDS}
        values["detect_local"] = self._get(s, "detect_local", default.detect_local)
        values["mark_literal"] = self._get(s, "mark", None)
        values["node_port_primary"] = self._get(s, "node_port_primary", False)
        if "node_port_primary" in s and "node_port_addresses" in s:
            self._error(s["node_port_primary"][0].span, "node_port_addresses is given twice (primary, and CIDRs)")
        return Item("proxy", ir.ProxyConfig(**values, span=self._span(meta)), self._span(meta))

    def masquerade_bit(self, meta, children):
        bit = self._int(children[0], 0, 31, "masquerade_bit")
        return Item("masquerade_bit", 14 if bit is None else bit, self._span(meta))

    def large_cluster_threshold(self, meta, children):
        value = self._int(children[0], 0, 10**9, "large_cluster_threshold")
        return Item("large_cluster_threshold", 1000 if value is None else value, self._span(meta))

    def node_port_addresses(self, meta, children):
        return self._values("node_port_addresses", meta, children, self._cidr)

    def node_port_primary(self, meta, children):
        return Item("node_port_primary", True, self._span(meta))

    def node_port_range(self, meta, children):
        low, high = (self._port(tok) for tok in children)
        if low is None or high is None:
            return Item("node_port_range", ir.ProxyConfig().node_port_range, self._span(meta))
        if low > high:
            self._error(self._span(meta), f"node_port_range {low}-{high} is empty")
        return Item("node_port_range", (low, high), self._span(meta))

    def nfacct_unavailable(self, meta, children):
        return Item("nfacct_unavailable", tuple(str(c) for c in children), self._span(meta))

    def mark(self, meta, children):
        return Item("mark", unquote(children[0]), self._span(meta))


    detect_cluster_cidr = _detect(ir.LocalDetectMode.CLUSTER_CIDR)
    detect_node_cidr = _detect(ir.LocalDetectMode.NODE_CIDR)
    detect_none = _detect(ir.LocalDetectMode.NONE)
    detect_bridge = _detect(ir.LocalDetectMode.BRIDGE_INTERFACE)
    detect_interface_prefix = _detect(ir.LocalDetectMode.INTERFACE_NAME_PREFIX)


    masquerade_all = _flag("masquerade_all")
    localhost_node_ports = _flag("localhost_node_ports")
    random_fully = _flag("random_fully")
    nfacct = _flag("nfacct")
    tcp_liberal = _flag("tcp_liberal")
    lb_ip_mode_gate = _flag("lb_ip_mode_gate")

    # --------------------------------------------------------------------------------- nodes, pods

    def node(self, meta, children):
        name, *items = children
        s = self._settings(items)
        span = self._span(meta)
        ips = self._get(s, "ip", ())
        if "ip" not in s:
            self._error(self._tspan(name), f"node {name} has no ip")
        node = ir.Node(str(name), ips, self._get(s, "pod_cidr", ()),
                       self._get(s, "pod_wiring", ir.PodWiring.GATEWAY), zone=self._get(s, "zone"), span=span)
        self._remember_items(node, s)
        self._remember(node, "name", self._tspan(name))
        return Item("node", node, span)

    def node_ips(self, meta, children):
        return self._values("ip", meta, children, self._ip)

    def pod_cidrs(self, meta, children):
        return self._values("pod_cidr", meta, children, self._cidr)

    def node_zone(self, meta, children):
        return Item("zone", str(children[0]), self._span(meta))

    def zone_hints(self, meta, children):
        return Item("zone_hints", tuple(str(c) for c in children), self._span(meta))

    def node_hints(self, meta, children):
        return Item("node_hints", tuple(str(c) for c in children), self._span(meta))

    def pod_wiring_gateway(self, meta, children):
        return Item("pod_wiring", ir.PodWiring.GATEWAY, self._span(meta))

    def pod_wiring_unnumbered(self, meta, children):
        return Item("pod_wiring", ir.PodWiring.UNNUMBERED, self._span(meta))

    def pod(self, meta, children):
        qname, node, *items = children
        span = self._span(meta)
        self._ref("node", str(node), self._tspan(node))
        s = self._settings(items)
        if "ip" not in s:
            self._error(qname.span, f"pod {qname.key} has no ip")
        ready, serving, terminating = conditions([i for i in items if i.key in _CONDITIONS])
        pod = ir.Pod(qname.namespace, qname.name, str(node), self._get(s, "ip"),
                     labels=self._get(s, "labels", ()), ports=self._get(s, "ports", ()),
                     ready=ready, serving=serving, terminating=terminating, span=span)
        self._remember_items(pod, s)
        self._remember(pod, "name", qname.span)
        return Item("pod", pod, span)

    def pod_ip(self, meta, children):
        return Item("ip", self._ip(children[0]), self._span(meta), (self._tspan(children[0]),))

    def labels(self, meta, children):
        return Item("labels", self._labels(children), self._span(meta))

    def container_ports(self, meta, children):
        return Item("ports", self._port_entries(children, ir.ContainerPort), self._span(meta))

    def condition_on(self, meta, children):
        return Item(str(children[0]), True, self._span(meta))

    def condition_off(self, meta, children):
        return Item(str(children[-1]), False, self._span(meta))

    # ------------------------------------------------------------------------------------ services

    def service(self, meta, children):
        qname, *items = children
        s = self._settings(items)
        span = self._span(meta)
        service = ir.Service(
            qname.namespace, qname.name,
            type=self._get(s, "type", ir.ServiceType.CLUSTER_IP),
            cluster_ips=self._get(s, "cluster_ip", ()),
            ports=tuple(item.value for item in s.get("port", ())),
            selector=self._get(s, "selector"),
            endpoints=self._get(s, "endpoints", ()),
            external_ips=self._get(s, "external_ips", ()),
            load_balancer_ingress=tuple(item.value for item in s.get("load_balancer_ingress", ())),
            load_balancer_source_ranges=self._get(s, "load_balancer_source_ranges", ()),
            external_traffic_policy=self._get(s, "external_traffic_policy", ir.TrafficPolicy.CLUSTER),
            internal_traffic_policy=self._get(s, "internal_traffic_policy", ir.TrafficPolicy.CLUSTER),
            traffic_distribution=self._get(s, "traffic_distribution"),
            health_check_node_port=self._get(s, "health_check_node_port", 0),
            session_affinity=self._get(s, "session_affinity"),
            external_name=self._get(s, "external_name"),
            span=span,
        )
        self._remember_items(service, s)
        self._remember(service, "name", qname.span)
        self._check_service(service, s, qname)
        return Item("service", service, span)

    def _check_service(self, svc: ir.Service, s: dict[str, list[Item]], qname: QName) -> None:
        """Rules about one Service alone (the API server's validation, in short)."""
        def at(key: str) -> ir.Span:
            return s[key][0].span if key in s else qname.span

        kind = svc.type.value
        if svc.type is ir.ServiceType.EXTERNAL_NAME:
            if svc.external_name is None:
                self._error(qname.span, f"ExternalName service {svc.key} needs an external_name")
            if "cluster_ip" in s and svc.cluster_ips:
                self._error(at("cluster_ip"), "an ExternalName service has no cluster_ip")
        else:
            if "cluster_ip" not in s:
                self._error(qname.span, f"service {svc.key} has no cluster_ip",
                            "write `cluster_ip None` for a headless service")
            elif not svc.cluster_ips and s["cluster_ip"][0].at and svc.type is not ir.ServiceType.CLUSTER_IP:
                self._error(at("cluster_ip"), f"a headless service must be type ClusterIP, not {kind}")
            if svc.external_name is not None:
                self._error(at("external_name"), f"external_name needs type ExternalName, not {kind}")
        if svc.selector is not None and "endpoints" in s:
            self._error(at("endpoints"), "a service has either a selector or endpoints, not both")
        no_node_ports = svc.type in (ir.ServiceType.CLUSTER_IP, ir.ServiceType.EXTERNAL_NAME)
        for port in svc.ports:
            if port.node_port and no_node_ports:
                self._error(self.spans.get((id(port), "node_port"), port.span),
                            f"node_port on a {kind} service", "use type NodePort or LoadBalancer")
        if svc.health_check_node_port and not (svc.type is ir.ServiceType.LOAD_BALANCER
                                               and svc.external_traffic_policy is ir.TrafficPolicy.LOCAL):
            self._error(at("health_check_node_port"),
                        "health_check_node_port needs type LoadBalancer and external_traffic_policy Local")
        self._check_port_names(svc)

    def _check_port_names(self, svc: ir.Service) -> None:
        seen: set[str] = set()
        for port in svc.ports:
            if len(svc.ports) > 1 and not port.name:
                self._error(port.span, "a service with several ports must name each of them")
            elif port.name in seen:
                self._error(port.span, f"port name '{port.name}' is used twice")
            seen.add(port.name)

    def service_type(self, meta, children):
        return Item("type", ir.ServiceType(str(children[0])), self._span(meta))

    def cluster_ip(self, meta, children):
        return self._values("cluster_ip", meta, children, self._ip)

    def headless(self, meta, children):
        # `at` is set (unlike a list of only malformed IPs), which is how _check_service tells them apart.
        return Item("cluster_ip", (), self._span(meta), (self._span(meta),))

    def selector(self, meta, children):
        return Item("selector", self._labels(children), self._span(meta))

    def endpoints(self, meta, children):
        return Item("endpoints", tuple(children), self._span(meta))

    def endpoint(self, meta, children):
        ip_tok, *items = children
        s = self._settings(items)
        ready, serving, terminating = conditions([i for i in items if i.key in _CONDITIONS])
        pod = self._get(s, "pod")
        # Ports left out: resolve derives them from the service's ports (marked by None until then).
        endpoint = ir.Endpoint(self._ip(ip_tok), self._get(s, "ports"), node=self._get(s, "on"),
                               ready=ready, serving=serving, terminating=terminating,
                               pod=pod.key if pod else None, zone_hints=self._get(s, "zone_hints", ()),
                               node_hints=self._get(s, "node_hints", ()), span=self._span(meta))
        return endpoint

    def endpoint_node(self, meta, children):
        self._ref("node", str(children[0]), self._tspan(children[0]))
        return Item("on", str(children[0]), self._span(meta))

    def endpoint_pod(self, meta, children):
        self._ref("pod", children[0].key, children[0].span)
        return Item("pod", children[0], self._span(meta))

    def endpoint_ports(self, meta, children):
        return Item("ports", self._port_entries(children, ir.EndpointPort), self._span(meta))

    def service_port(self, meta, children):
        name = str(children[0]) if children[0].type == "NAME" else ""
        numbers = [c for c in children if isinstance(c, Token) and c.type == "INT"]
        target = next((c for c in children if isinstance(c, Item)), None)
        protocol = next((c for c in children if isinstance(c, ir.Protocol)), ir.Protocol.TCP)
        node_port = self._port(numbers[1], "node_port") if len(numbers) > 1 else 0
        port = ir.ServicePort(name, protocol, self._port(numbers[0]),
                              target_port=target.value if target else None,
                              node_port=node_port, span=self._span(meta))
        if len(numbers) > 1:
            self._remember(port, "node_port", self._tspan(numbers[1]))
        return Item("port", port, self._span(meta))

    def target_port(self, meta, children):
        tok = children[0]
        value = self._port(tok, "target port") if tok.type == "INT" else str(tok)
        return Item("target", value, self._span(meta))

    def external_ips(self, meta, children):
        return self._values("external_ips", meta, children, self._ip)

    def load_balancer_ingress(self, meta, children):
        mode = children[1] if len(children) > 1 else None
        span = self._span(meta)
        return Item("load_balancer_ingress", ir.LoadBalancerIngress(self._ip(children[0]), mode, span=span), span)

    def mode_vip(self, meta, children):
        return ir.IngressMode.VIP

    def mode_proxy(self, meta, children):
        return ir.IngressMode.PROXY

    def load_balancer_source_ranges(self, meta, children):
        return self._values("load_balancer_source_ranges", meta, children, self._cidr)

    def external_traffic_policy(self, meta, children):
        return Item("external_traffic_policy", ir.TrafficPolicy(str(children[0])), self._span(meta))

    def internal_traffic_policy(self, meta, children):
        return Item("internal_traffic_policy", ir.TrafficPolicy(str(children[0])), self._span(meta))

    def traffic_distribution(self, meta, children):
        return Item("traffic_distribution", str(children[0]), self._span(meta))

    def health_check_node_port(self, meta, children):
        value = self._port(children[0], "health_check_node_port")
        return Item("health_check_node_port", value or 0, self._span(meta))

    def session_affinity(self, meta, children):
        span = self._span(meta)
        if not children:
            return Item("session_affinity", ir.SessionAffinity(span=span), span)
        timeout = self._int(children[0], 1, 86400, "session affinity timeout")
        return Item("session_affinity", ir.SessionAffinity(timeout or 10800, span=span), span)

    def no_session_affinity(self, meta, children):
        return Item("session_affinity", None, self._span(meta))

    def external_name(self, meta, children):
        tok = children[0]
        return Item("external_name", unquote(tok) if tok.type == "STRING" else str(tok), self._span(meta))

    # ---------------------------------------------------------------------- clients, load balancer

    def client(self, meta, children):
        name, *items = children
        s = self._settings(items)
        span = self._span(meta)
        kinds = [key for key in ("external", "pod") if key in s]
        if len(kinds) != 1:
            self._error(self._tspan(name), f"client {name} needs exactly one of `external` or `pod on NODE`")
        ip = self._get(s, "ip")
        if "external" in s and "ip" not in s:
            self._error(self._tspan(name), f"external client {name} has no ip")
        kind = ir.ClientKind.POD if kinds == ["pod"] else ir.ClientKind.EXTERNAL
        client = ir.Client(str(name), kind, ip=ip, node=self._get(s, "pod"), span=span)
        self._remember(client, "name", self._tspan(name))
        return Item("client", (client, None), span)

    def client_ip(self, meta, children):
        return Item("ip", self._ip(children[0]), self._span(meta))

    def client_uid(self, meta, children):
        return Item("uid", self._int(children[0], 0, ir.MAX_ID, "uid") or 0, self._span(meta))

    def client_gid(self, meta, children):
        return Item("gid", self._int(children[0], 0, ir.MAX_ID, "gid") or 0, self._span(meta))

    def client_external(self, meta, children):
        return Item("external", True, self._span(meta))

    def client_pod_on(self, meta, children):
        self._ref("node", str(children[0]), self._tspan(children[0]))
        return Item("pod", str(children[0]), self._span(meta))

    def client_from_pod(self, meta, children):
        name, pod = children
        span = self._span(meta)
        self._ref("pod", pod.key, pod.span)
        client = ir.Client(str(name), ir.ClientKind.POD, span=span)
        self._remember(client, "name", self._tspan(name))
        return Item("client", (client, pod), span)

    def client_on_node(self, meta, children):
        name, node, *rest = children
        ids = {item.key: item.value for item in rest if isinstance(item, Item)}
        ip = [child for child in rest if not isinstance(child, Item)]
        span = self._span(meta)
        self._ref("node", str(node), self._tspan(node))
        client = ir.Client(str(name), ir.ClientKind.NODE, ip=self._ip(ip[0]) if ip else None,
                           node=str(node), span=span, uid=ids.get("uid", 0), gid=ids.get("gid", 0))
        self._remember(client, "name", self._tspan(name))
        return Item("client", (client, None), span)

    def load_balancer(self, meta, children):
        name, *items = children
        s = self._settings(items)
        span = self._span(meta)
        lb = ir.LoadBalancer(str(name), self._get(s, "style", ir.LoadBalancerStyle.VIP_KEPT),
                             self._get(s, "health_check", True), span=span)
        self._remember(lb, "name", self._tspan(name))
        return Item("load_balancer", lb, span)

    def lb_style_vip(self, meta, children):
        return Item("style", ir.LoadBalancerStyle.VIP_KEPT, self._span(meta))

    def lb_style_nodeport(self, meta, children):
        return Item("style", ir.LoadBalancerStyle.NODE_PORT, self._span(meta))

    lb_health_check = _flag("health_check")

    # -------------------------------------------------------------------------------------- checks

    def check(self, meta, children):
        name, *items = children
        s = self._settings(items)
        span = self._span(meta)
        for key, what in (("to", "a destination (`to SERVICE via ...`)"), ("assert", "a property (`assert ...`)")):
            if key not in s:
                self._error(self._tspan(name), f"check {name} needs {what}")
        destination = self._get(s, "to") or ir.Destination("")
        check = ir.Check(unquote(name), self._get(s, "from", ()), destination,
                         self._get(s, "assert") or ir.Delivered(),
                         self._get(s, "expect", ir.Expectation.HOLDS), span=span)
        self._remember(check, "name", self._tspan(name))
        return Item("check", check, span)

    def check_from(self, meta, children):
        for tok in children:
            self._ref("client", str(tok), self._tspan(tok))
        return Item("from", tuple(str(tok) for tok in children), self._span(meta))

    def check_from_all(self, meta, children):
        return Item("from", (), self._span(meta))

    def check_to(self, meta, children):
        service, *rest = children
        via, node = rest[-1]
        port = rest[0] if len(rest) == 2 else None
        self._ref("service", service.key, service.span)
        destination = ir.Destination(service.key, via, str(port) if port else None,
                                     str(node) if node else None, span=self._span(meta))
        if port is not None:
            self._remember(destination, "port", self._tspan(port))
        return Item("to", destination, self._span(meta))

    def via_cluster_ip(self, meta, children):
        return ir.Via.CLUSTER_IP, None

    def via_node_port_any(self, meta, children):
        return ir.Via.NODE_PORT, None

    def via_node_port_on(self, meta, children):
        self._ref("node", str(children[0]), self._tspan(children[0]))
        return ir.Via.NODE_PORT, children[0]

    def via_load_balancer(self, meta, children):
        return ir.Via.LOAD_BALANCER, None

    def via_external_ip(self, meta, children):
        return ir.Via.EXTERNAL_IP, None

    def check_assert(self, meta, children):
        return Item("assert", children[0], self._span(meta))

    def expect_holds(self, meta, children):
        return Item("expect", ir.Expectation.HOLDS, self._span(meta))

    def expect_violated(self, meta, children):
        return Item("expect", ir.Expectation.VIOLATED, self._span(meta))

    # ---------------------------------------------------------------------------------- properties


    delivered = _atom(ir.Delivered)
    answered = _atom(ir.Answered)
    dropped = _atom(ir.Dropped)
    rejected = _atom(ir.Rejected)
    source_is_client = _atom(ir.SourceIsClient)
    source_in_nodes = _atom(ir.SourceInNodes)
    stays_on_node = _atom(ir.StaysOnNode)
    sticky = _atom(ir.Sticky)

    def endpoint_in(self, meta, children):
        for pod in children:
            self._ref("pod", pod.key, pod.span)
        return ir.EndpointIn(tuple(pod.key for pod in children), span=self._span(meta))


    implies = _binary(ir.Implies)
    or_ = _binary(ir.Or)
    and_ = _binary(ir.And)

    def not_(self, meta, children):
        operand = next(c for c in children if not isinstance(c, Token))
        return ir.Not(operand, span=self._span(meta))


_CONDITIONS = ("ready", "serving", "terminating")
_PROXY_FIELDS = ("masquerade_all", "masquerade_bit", "localhost_node_ports", "node_port_addresses",
                 "node_port_range", "large_cluster_threshold", "random_fully", "nfacct", "nfacct_unavailable",
                 "tcp_liberal", "lb_ip_mode_gate")

