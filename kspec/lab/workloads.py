"""What runs inside the lab: echo servers in endpoint pods, kube-proxy's HTTP endpoints on nodes, and the
load balancer's health-check poll.

Servers are ``kspec.lab.echo`` subprocesses started with ``ip netns exec``; the poll runs in a thread that
entered the load balancer's namespace.
"""
from __future__ import annotations

import http.client
import json
import os
import select
import subprocess
import sys
import time
from typing import IO

import kspec
from kspec import ir
from kspec.compiler.healthcheck import healthy_nodes, healthz, local_endpoint_counts
from kspec.lab.netns import LabError, call_in_ns, tool_path
from kspec.lab.topology import Lab
from kspec.verifier.model.network import listening_ports

READY_TIMEOUT = 15.0  # seconds for a server to bind its sockets
HEALTH_TIMEOUT = 1.0  # seconds per health-check request
PROXY_HEALTHZ_PORT = 10256  # kube-proxy's --healthz-bind-address
METRICS_PORT = 10249  # kube-proxy's --metrics-bind-address (127.0.0.1), serves /proxyMode


def pod_ports(cluster: ir.Cluster, family: ir.IPFamily = ir.IPFamily.V4) -> dict[str, dict[str, set[int]]]:
    """For each pod of ``family``: the TCP and UDP ports its echo server listens on (endpoint ports and
    container ports): the network model's ``listening_ports``, so that the two agree."""

    return listening_ports(cluster, family)


def node_answers(cluster: ir.Cluster, node: str, family: ir.IPFamily = ir.IPFamily.V4) -> list[dict]:
    """The HTTP servers kube-proxy runs on ``node``: one per health-check node port, its own /healthz and
    /livez, and /proxyMode on the metrics port (kube-proxy's default 127.0.0.1 in either family)."""
    counts = local_endpoint_counts(cluster, node, family)
    anywhere = "::" if family is ir.IPFamily.V6 else "0.0.0.0"
    servers = []
    for svc in cluster.services:
        if svc.key in counts and svc.health_check_node_port:
            status, body = healthz(svc, counts[svc.key])
            servers.append({"addr": anywhere, "port": svc.health_check_node_port,
                            "paths": {"*": [status, "application/json", body]}})
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    proxy = json.dumps({"lastUpdated": now, "currentTime": now, "nodeEligible": True})
    taken = {s["port"] for s in servers}
    if PROXY_HEALTHZ_PORT not in taken:
        servers.append({"addr": anywhere, "port": PROXY_HEALTHZ_PORT,
                        "paths": {"/healthz": [200, "application/json", proxy],
                                  "/livez": [200, "application/json", proxy]}})
    if METRICS_PORT not in taken:
        servers.append({"addr": "127.0.0.1", "port": METRICS_PORT,
                        "paths": {"/proxyMode": [200, "text/plain; charset=utf-8", "iptables"]}})
    return servers


def _pipes(proc: subprocess.Popen[str]) -> tuple[IO[str], IO[str]]:
    """The server's stdout and stderr (opened as pipes by ``start_servers``)."""
    if proc.stdout is None or proc.stderr is None:
        raise LabError("a lab server was started without pipes")
    return proc.stdout, proc.stderr


def start_servers(lab: Lab, keep: bool = False) -> None:
    """Every server, started in parallel, then waited for until each has bound its sockets."""
    start = time.monotonic()
    configs: list[tuple[str, str, dict]] = []
    anywhere = "::" if lab.family is ir.IPFamily.V6 else "0.0.0.0"
    for key, ports in pod_ports(lab.cluster, lab.family).items():
        if ports["tcp"] or ports["udp"]:
            configs.append((f"echo server of {key}", lab.pods[key],
                            {"mode": "echo", "pod": key, "tcp": sorted(ports["tcp"]), "udp": sorted(ports["udp"]),
                             "addr": anywhere}))
    for node in lab.cluster.nodes:
        configs.append((f"kube-proxy endpoints on {node.name}", lab.nodes[node.name],
                        {"mode": "http", "servers": node_answers(lab.cluster, node.name, lab.family)}))
    started = []
    for what, ns, config in configs:
        if not keep:
            config["parent"] = os.getpid()
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "kspec.lab.echo", json.dumps(config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "PATH": tool_path(), "PYTHONPATH": _package_root()},
            start_new_session=True)  # Ctrl-C reaches kspec only; kspec stops the servers itself
        lab.processes.append(proc)
        started.append((what, proc))
    deadline = time.monotonic() + READY_TIMEOUT
    for what, proc in started:
        remaining = max(0.0, deadline - time.monotonic())
        stdout, stderr = _pipes(proc)
        ready, _, _ = select.select([stdout], [], [], remaining)
        line = stdout.readline() if ready else ""
        if line.strip() != "ready":
            proc.kill()
            error = stderr.read() if proc.poll() is not None else ""
            raise LabError(f"the {what} did not start within {READY_TIMEOUT:g}s: "
                           f"{error.strip() or line.strip() or 'no output'}")
        stdout.close()
        stderr.close()
    lab.timings["servers"] = time.monotonic() - start


def _package_root() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(kspec.__file__)))
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)


# --------------------------------------------------------------------------- load balancer health checks


def http_get(host: str, port: int, path: str, timeout: float = HEALTH_TIMEOUT) -> tuple[int | None, str]:
    """(status, body), or (None, error) when the connection fails."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def poll_health(lab: Lab) -> dict[str, dict[str, tuple[int | None, str]]]:
    """From the load balancer's namespace (or the router's without one): ``/healthz`` on every node's
    health-check node port of every Service that has one: {service: {node: (status, body)}}."""
    ns = lab.lb or lab.net
    todo = [(svc, node) for svc in lab.cluster.services if svc.health_check_node_port for node in lab.cluster.nodes]

    def body() -> dict[str, dict[str, tuple[int | None, str]]]:
        answers: dict[str, dict[str, tuple[int | None, str]]] = {}
        for svc, node in todo:
            ip = str(node.primary_ip(lab.family))
            answers.setdefault(svc.key, {})[node.name] = http_get(ip, svc.health_check_node_port, "/healthz")
        return answers

    return call_in_ns(ns, body, timeout=5 + len(todo) * (HEALTH_TIMEOUT + 0.5))


def health_mismatches(lab: Lab, answers: dict[str, dict[str, tuple[int | None, str]]]) -> list[str]:
    """Where the healthy set the load balancer sees differs from the model's ``healthy_nodes``, or an
    answer differs from what kube-proxy would say."""
    problems = []
    for svc in lab.cluster.services:
        if svc.key not in answers:
            continue
        polled = answers[svc.key]
        healthy = {node for node, (status, _) in polled.items() if status == 200}
        model = set(healthy_nodes(lab.cluster, svc, lab.family))
        if healthy != model:
            problems.append(f"{svc.key}: the load balancer's health checks pass on {sorted(healthy)}, the model "
                            f"says {sorted(model)}")
        counts = {n.name: local_endpoint_counts(lab.cluster, n.name, lab.family).get(svc.key, 0)
                  for n in lab.cluster.nodes}
        for node, (status, text) in polled.items():
            want = healthz(svc, counts[node])
            if (status, text) != want:
                problems.append(f"{svc.key} /healthz on {node}: got {status} {text!r}, kube-proxy answers "
                                f"{want[0]} {want[1]!r}")
    return problems


def proxy_mode(lab: Lab, node: str) -> tuple[int | None, str]:
    """``/proxyMode`` on the node's metrics port, asked from inside the node."""
    return call_in_ns(lab.nodes[node], lambda: http_get("127.0.0.1", METRICS_PORT, "/proxyMode"), timeout=5)
