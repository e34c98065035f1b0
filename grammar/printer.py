"""ir.Cluster -> canonical .k text (`kspec fmt`).

The contract: for every cluster the parser produces, ``parse_text(format_cluster(c)) == c``. Defaults are left
out, so a formatted spec only says what differs from Kubernetes' and kube-proxy's defaults. Services with a
selector print the selector (the endpoints are recomputed on parsing); others print their endpoints.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from kspec import ir

from .comments import Trivia, attach, key
from .to_ir import DEFAULT_NAMESPACE

INDENT = "  "
_BARE_VALUE = re.compile(r"[A-Za-z0-9_.-]+")
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def format_cluster(cluster: ir.Cluster, source: str | None = None) -> str:
    """The canonical text of ``cluster``; with ``source`` (the spec it was read from), its comments too."""
    own = _own(cluster)
    proxy = cluster.proxy if own(cluster.proxy) else ir.ProxyConfig()
    nodes = [node for node in cluster.nodes if own(node)]
    pods = [pod for pod in cluster.pods if own(pod)]
    services = [svc for svc in cluster.services if own(svc)]
    items = [proxy, *nodes, *pods, *services, *cluster.clients, *cluster.load_balancers, *cluster.checks]
    trivia = attach(source, cluster, items) if source is not None else Trivia()
    sections: list[Sequence[tuple[object, str]]] = [
        [("objects", _objects(cluster.objects))],
        [("cluster_cidr", _cluster_cidr(proxy))],
        [(proxy, _proxy(proxy))],
        [(node, _node(node)) for node in nodes],
        *_grouped((pod, _pod(pod)) for pod in pods),
        *_grouped((svc, _service(svc)) for svc in services),
        [(client, _client(client, cluster.pods)) for client in cluster.clients],
        [(lb, _load_balancer(lb)) for lb in cluster.load_balancers],
        *([(check, _check(check))] for check in cluster.checks),
    ]
    # Sections are separated by a blank line; one-line entries (nodes, clients; pods and Services when they
    # fit on one line) sit together.
    blocks = ["\n".join(_indent(_commented(trivia, item, entry, _width(section))) for item, entry in section
                        if entry)
              for section in sections]
    body = "\n\n".join(block for block in blocks if block)
    printed = {key(item) for section in sections for item, entry in section if entry}
    unprinted = [line for filed in (*trivia.leading, *trivia.trailing) if filed not in printed  # `proxy { }`
                 for line in trivia.leading.get(filed, []) + [trivia.trailing.get(filed, "")] if line]
    footer = list(dict.fromkeys(unprinted)) + trivia.footer
    if footer:
        body += ("\n\n" if body else "") + "\n".join(INDENT + line for line in footer)
    name = _name(cluster.name)
    text = f"cluster {name} {{\n{body}\n}}\n" if body else f"cluster {name} {{\n}}\n"
    after = "\n".join(trivia.after) + "\n" if trivia.after else ""
    return "".join(line + "\n" for line in trivia.header) + text + after


def _grouped(entries) -> list[list[tuple[object, str]]]:
    """Sections of entries: consecutive one-line entries share one, each longer entry has its own."""
    sections: list[list[tuple[object, str]]] = []
    for item, text in entries:
        if "\n" not in text and sections and "\n" not in sections[-1][-1][1]:
            sections[-1].append((item, text))
        else:
            sections.append([(item, text)])
    return sections


def _width(section: Sequence[tuple[object, str]]) -> int:
    """The column the section's comments after one-line entries line up at (as gofmt aligns them)."""
    return max((len(text) for _, text in section if "\n" not in text), default=0)


def _commented(trivia: Trivia, item: object, text: str, width: int = 0) -> str:
    """``text`` with the comments above ``item`` and the one after its last line (a one-line entry's at
    ``width``, so that a section's comments line up)."""
    above = trivia.leading.get(key(item), [])
    after = trivia.trailing.get(key(item))
    if after:
        pad = width - len(text) if "\n" not in text else 0
        text = f"{text}{' ' * max(pad, 0)}  {after}"
    return "\n".join([*above, text])


def _own(cluster: ir.Cluster):
    """Whether an item was written in the spec itself, not brought by Kubernetes objects (its ``objects``,
    or ``--k8s``), which fmt leaves where they are."""
    if cluster.span is None:
        return lambda item: True
    return lambda item: item.span is None or item.span.file == cluster.span.file


def _objects(paths: tuple[str, ...]) -> str:
    return f"objects {', '.join(quote(path) for path in paths)}" if paths else ""


def _indent(text: str, depth: int = 1) -> str:
    return "\n".join(INDENT * depth + line if line else line for line in text.split("\n"))


def _block(head: str, lines: list[str]) -> str:
    if not lines:
        return f"{head} {{ }}"
    if len(lines) == 1 and "\n" not in lines[0]:
        return f"{head} {{ {lines[0]} }}"
    return f"{head} {{\n" + "\n".join(INDENT + line for line in lines) + "\n}"


def _list(values) -> str:
    return ", ".join(str(v) for v in values)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _qname(key: str) -> str:
    namespace, _, name = key.partition("/")
    return _name(name) if namespace == DEFAULT_NAMESPACE else f"{_name(namespace)}/{_name(name)}"


def _name(text: str, reserved: frozenset[str] = frozenset()) -> str:
    """A name bare where the grammar reads it so, else quoted (a leading digit; a word the grammar gives a
    meaning at that place, ``reserved``)."""
    return text if _BARE_NAME.fullmatch(text) and text not in reserved else quote(text)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{k} = {v if _BARE_VALUE.fullmatch(v) else quote(v)}" for k, v in pairs)


def _bool(value: bool) -> str:
    return "true" if value else "false"


# ------------------------------------------------------------------------------------------ cluster


def _cluster_cidr(proxy: ir.ProxyConfig) -> str:
    return f"cluster_cidr {_list(proxy.cluster_cidrs)}" if proxy.cluster_cidrs else ""


def _proxy(proxy: ir.ProxyConfig) -> str:
    default = ir.ProxyConfig()
    lines = []
    for name in ("masquerade_bit", "large_cluster_threshold"):
        if getattr(proxy, name) != getattr(default, name):
            lines.append(f"{name} {getattr(proxy, name)}")
    if proxy.masquerade_all != default.masquerade_all:
        lines.append(f"masquerade_all {_bool(proxy.masquerade_all)}")
    if proxy.detect_local != default.detect_local:
        lines.append(f"detect_local {_detect_local(proxy.detect_local)}")
    if proxy.localhost_node_ports != default.localhost_node_ports:
        lines.append(f"localhost_node_ports {_bool(proxy.localhost_node_ports)}")
    if proxy.node_port_addresses is not None:
        lines.append(f"node_port_addresses {_list(proxy.node_port_addresses)}")
    if proxy.node_port_primary:
        lines.append("node_port_addresses primary")
    if proxy.node_port_range != default.node_port_range:
        lines.append("node_port_range {}-{}".format(*proxy.node_port_range))
    for name in ("random_fully", "nfacct", "tcp_liberal", "lb_ip_mode_gate"):
        if getattr(proxy, name) != getattr(default, name):
            lines.append(f"{name} {_bool(getattr(proxy, name))}")
    if proxy.nfacct_unavailable:
        lines.append(f"nfacct_unavailable {_list(proxy.nfacct_unavailable)}")
    if proxy.mark_literal is not None:
        lines.append(f"mark {quote(proxy.mark_literal)}")
    return _block("proxy", lines) if lines else ""


_DETECT_WORDS = {
    ir.LocalDetectMode.CLUSTER_CIDR: "cluster_cidr",
    ir.LocalDetectMode.NODE_CIDR: "node_cidr",
    ir.LocalDetectMode.NONE: "none",
    ir.LocalDetectMode.BRIDGE_INTERFACE: "bridge",
    ir.LocalDetectMode.INTERFACE_NAME_PREFIX: "interface_prefix",
}


def _detect_local(detect: ir.LocalDetect) -> str:
    word = _DETECT_WORDS[detect.mode]
    return f"{word} {detect.interface}" if detect.interface is not None else word


def _node(node: ir.Node) -> str:
    settings = [f"ip {_list(node.ips)}"]
    if node.pod_cidrs:
        settings.append(f"pod_cidr {_list(node.pod_cidrs)}")
    if node.pod_wiring is not ir.PodWiring.GATEWAY:
        settings.append(f"pod_wiring {node.pod_wiring.value}")
    if node.zone is not None:
        settings.append(f"zone {_name(node.zone)}")
    return f"node {_name(node.name)} {{ {'  '.join(settings)} }}"


def _conditions(ready: bool, serving: bool, terminating: bool) -> list[str]:
    """The fewest `[not] ready|serving|terminating` words that parse back to these three flags."""
    words = ["terminating"] if terminating else []
    implied_ready = not terminating
    if ready != implied_ready:
        words.append("ready" if ready else "not ready")
    implied_serving = True if terminating else ready
    if serving != implied_serving:
        words.append("serving" if serving else "not serving")
    return words


def _ports(ports) -> str:
    entries = [(f"{_name(p.name)} = " if p.name else "") + f"{p.port}/{p.protocol.lower}" for p in ports]
    return f"ports {{ {', '.join(entries)} }}" if entries else "ports { }"


def _pod(pod: ir.Pod) -> str:
    lines = [f"ip {pod.ip}"]
    if pod.labels:
        lines.append(f"labels {{ {_labels(pod.labels)} }}")
    if pod.ports:
        lines.append(_ports(pod.ports))
    lines += _conditions(pod.ready, pod.serving, pod.terminating)
    return _block(f"pod {_qname(pod.key)} on {_name(pod.node)}", lines)


# ----------------------------------------------------------------------------------------- services


def _service(svc: ir.Service) -> str:
    lines = []
    if svc.type is not ir.ServiceType.CLUSTER_IP:
        lines.append(f"type {svc.type.value}")
    if svc.cluster_ips:
        lines.append(f"cluster_ip {_list(svc.cluster_ips)}")
    elif svc.type is not ir.ServiceType.EXTERNAL_NAME:
        lines.append("cluster_ip None")
    if svc.external_name is not None:
        lines.append(f"external_name {_name(svc.external_name)}")
    if svc.selector is not None:
        lines.append(f"selector {_labels(svc.selector)}")
    lines += [_service_port(port) for port in svc.ports]
    if svc.external_ips:
        lines.append(f"external_ips {_list(svc.external_ips)}")
    for ingress in svc.load_balancer_ingress:
        mode = f" ip_mode {ingress.mode.value.lower()}" if ingress.mode else ""
        lines.append(f"load_balancer_ingress {ingress.ip}{mode}")
    if svc.load_balancer_source_ranges:
        lines.append(f"load_balancer_source_ranges {_list(svc.load_balancer_source_ranges)}")
    if svc.external_traffic_policy is not ir.TrafficPolicy.CLUSTER:
        lines.append(f"external_traffic_policy {svc.external_traffic_policy.value}")
    if svc.internal_traffic_policy is not ir.TrafficPolicy.CLUSTER:
        lines.append(f"internal_traffic_policy {svc.internal_traffic_policy.value}")
    if svc.traffic_distribution is not None:
        lines.append(f"traffic_distribution {svc.traffic_distribution}")
    if svc.health_check_node_port:
        lines.append(f"health_check_node_port {svc.health_check_node_port}")
    if svc.session_affinity is not None:
        timeout = svc.session_affinity.timeout_seconds
        lines.append("session_affinity ClientIP" + (f" timeout {timeout}" if timeout != 10800 else ""))
    if svc.selector is None and svc.endpoints:
        lines.append(_block("endpoints", [_endpoint(ep) for ep in svc.endpoints]))
    body = [line for text in lines for line in text.split("\n")]
    return _block(f"service {_qname(svc.key)}", body)


def _service_port(port: ir.ServicePort) -> str:
    text = "port " + (f"{_name(port.name)} " if port.name else "") + str(port.port)
    if port.target_port is not None:
        target = port.target_port
        text += f" -> {_name(target) if isinstance(target, str) else target}"
    text += f"/{port.protocol.lower}"
    if port.node_port:
        text += f" node_port {port.node_port}"
    return text


def _endpoint(ep: ir.Endpoint) -> str:
    words = [str(ep.ip)]
    if ep.node is not None:
        words.append(f"on {_name(ep.node)}")
    if ep.pod is not None:
        words.append(f"pod {_qname(ep.pod)}")
    words.append(_ports(ep.ports))
    words += _conditions(ep.ready, ep.serving, ep.terminating)
    if ep.zone_hints:
        words.append(f"zone_hints {', '.join(map(_name, ep.zone_hints))}")
    if ep.node_hints:
        words.append(f"node_hints {', '.join(map(_name, ep.node_hints))}")
    return " ".join(words)


# ---------------------------------------------------------------------------- clients, load balancers


def _client(client: ir.Client, pods: tuple[ir.Pod, ...]) -> str:
    head = f"client {_name(client.name)}"
    if client.kind is ir.ClientKind.EXTERNAL:
        return f"{head} {{ ip {client.ip}  external }}"
    if client.kind is ir.ClientKind.NODE:
        return f"{head} on node {_name(client.node or '')}" + (f" ip {client.ip}" if client.ip is not None else "") \
            + (f" uid {client.uid}" if client.uid else "") + (f" gid {client.gid}" if client.gid else "")
    pod = next((p for p in pods if p.ip == client.ip and p.node == client.node), None)
    if pod is not None:
        return f"{head} from pod {_qname(pod.key)}"
    return f"{head} {{ ip {client.ip}  pod on {_name(client.node or '')} }}"


def _load_balancer(lb: ir.LoadBalancer) -> str:
    style = "vip" if lb.style is ir.LoadBalancerStyle.VIP_KEPT else "nodeport"
    health = "on" if lb.respects_health_check else "off"
    return f"load_balancer {_name(lb.name)} {{ style {style}  health_check {health} }}"


# ------------------------------------------------------------------------------------------ checks


def _check(check: ir.Check) -> str:
    dest = check.destination
    to = f"to {_qname(dest.service)}" + (f":{_name(dest.port)}" if dest.port else "") + f" via {dest.via.value}"
    if dest.via is ir.Via.NODE_PORT:
        to += f" on {_name(dest.node, _ANY)}" if dest.node else " on any node"
    lines = [
        f"from {', '.join(_name(c, _ALL) for c in check.clients)}" if check.clients else "from all",
        to,
        f"assert {format_prop(check.prop)}",
        f"expect {check.expect.value}",
    ]
    return _block(f"check {quote(check.name)}", lines)


_ALL, _ANY = frozenset({"all"}), frozenset({"any"})  # `from all`, `on any node`: keywords there

# Binding strength: implies (1) < or (2) < and (3) < not (4) < atoms (5).
_ATOMS = {
    ir.Delivered: "delivered",
    ir.Answered: "answered",
    ir.Dropped: "dropped",
    ir.Rejected: "rejected",
    ir.SourceIsClient: "source == client",
    ir.SourceInNodes: "source in nodes",
    ir.StaysOnNode: "stays on node",
    ir.Sticky: "sticky",
}


def format_prop(prop: ir.Prop, weakest: int = 1) -> str:
    """Print ``prop``, parenthesised if it binds looser than ``weakest`` (keeps the tree's shape)."""
    text, strength = _prop(prop)
    return text if strength >= weakest else f"({text})"


def _prop(prop: ir.Prop) -> tuple[str, int]:
    if type(prop) in _ATOMS:
        return _ATOMS[type(prop)], 5
    if isinstance(prop, ir.EndpointIn):
        return f"endpoint in {{{', '.join(_qname(p) for p in prop.pods)}}}", 5
    if isinstance(prop, ir.Not):
        return f"not {format_prop(prop.operand, 4)}", 4
    if isinstance(prop, ir.And):
        return f"{format_prop(prop.left, 3)} and {format_prop(prop.right, 4)}", 3
    if isinstance(prop, ir.Or):
        return f"{format_prop(prop.left, 2)} or {format_prop(prop.right, 3)}", 2
    if isinstance(prop, ir.Implies):
        return f"{format_prop(prop.left, 2)} implies {format_prop(prop.right, 1)}", 1
    raise TypeError(f"not a property: {prop!r}")
