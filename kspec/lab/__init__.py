"""``kspec lab``: build the spec's cluster out of network namespaces, load each node's compiled rules, send
real traffic and compare what the kernel did with what the verifier predicted.

Start at ``run_lab``. ``topology`` builds and tears down the namespaces (and loads the rules),
``workloads`` starts the echo and kube-proxy servers and polls health checks, ``probe`` sends the traffic,
``report`` compares and renders. Needs root, iproute2 and iptables; everything happens inside namespaces
named ``kspec-lab-<pid>-<run>-...``; the root namespace is never touched.

Choices the kernel forced, and limits:

* Probes run in-process: a thread enters the client's namespace with setns(2) (only that thread moves), so
  a batch of tries costs microseconds, not a Python start-up. Servers are ``ip netns exec`` subprocesses.
* ICMP carries "rejected" and "no route", so ICMP rate limiting is off inside the lab
  (``net.ipv4.icmp_ratemask=0`` per namespace), and the router refuses traffic leaving the cluster with a
  REJECT of its own rather than by lacking a route (ip_error()'s ICMP is rate-limited by global sysctls).
  An endpoint IP no pod has still meets the node's ``unreachable`` route: after five quick tries those
  ICMPs are rate-limited and show as drops.
* UDP: REJECT and a closed port on a node send the same ICMP port unreachable, so a refused UDP try agrees
  with either prediction. TCP tells them apart (RST vs ICMP).
* A VIP or external IP is routed to the probe's entry node (through the load balancer namespace for a
  LoadBalancer VIP) only while an external client probes it; from inside the cluster an uncaught VIP leaves
  the cluster, as the model has it. A ``style nodeport`` load balancer is not a NAT box here: the client
  connects to the node IP and node port the model's Target names.
* With session affinity every try from one client sticks to one endpoint: one predicted endpoint seen is
  enough.
* One family per lab, as kube-proxy runs one proxier per family: IPv4 when the spec has it, else IPv6
  (``family=`` picks). Pods, clients and Services of the other family are left out.
"""
from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable

from kspec import ir
from kspec.lab import workloads
from kspec.lab.netns import LabError, call_in_ns, in_ns, tool_path
from kspec.lab.netns import cleanup as clean
from kspec.lab.netns import requirements as check
from kspec.lab.probe import CONNECT_TIMEOUT, send_batch
from kspec.lab.report import LabReport, ProbeResult
from kspec.lab.topology import Lab
from kspec.verifier import node_models
from kspec.verifier.model.network import ClusterNetwork, with_endpoint_pods
from kspec.verifier.model.walk import Disposition
from kspec.verifier.predict import probes
from kspec.verifier.properties import Verifier

__all__ = ["run_lab", "LabUnavailable", "requirements", "cleanup", "PREFIX"]

PREFIX = "kspec-lab-"
MAX_TRIES = 90  # per probe, over all batches
BATCH_CAP = 30
UNDELIVERED_TRIES = 3  # tries when the model predicts no delivery (each costs a connect timeout at most)
# When the model predicts only deliveries, a try waits past TCP's first two SYN retransmissions (1 s, then 2 s
# later): a SYN the kernel loses once under load (a conntrack insert clash between simultaneous tries) then
# still counts as what it is, a delivery, not as a drop. The wait costs time only when the kernel disagrees.
PATIENT_CONNECT_TIMEOUT = 3.5


class LabUnavailable(RuntimeError):
    """The lab cannot run on this host (not root, no ip netns...)."""


def requirements(family: ir.IPFamily = ir.IPFamily.V4) -> str | None:
    return check(family)


def cleanup(include_live: bool = False):
    return clean(include_live)


def predictions(cluster: ir.Cluster, family: ir.IPFamily = ir.IPFamily.V4, rules: dict[str, str] | None = None,
                ipsets: dict[str, str] | None = None):
    """The model's prediction for every probe the lab can send (``verifier.predict.probes``)."""

    models = node_models(cluster, family, rules, ipsets)
    return probes(cluster, Verifier(cluster, ClusterNetwork(cluster, models, family)))


def run_lab(cluster: ir.Cluster, keep: bool = False, spec: str = "",
            progress: Callable[[str], None] | None = None, family: ir.IPFamily | None = None,
            rules: dict[str, str] | None = None, ipsets: dict[str, str] | None = None,
            tick: Callable[[str, int, int], None] | None = None):
    """Build, probe, compare, tear down (unless ``keep``; always on error or Ctrl-C). A LabReport.
    ``family``: which of the cluster's families the lab builds (IPv4 when it has both, as ``kspec compile``).
    ``rules``: node name -> a whole ``iptables-save`` dump of the family, loaded exactly as given and
    verified in place of the compiled rules; ``ipsets``: node name -> its ``ipset save`` (for ``-m set``).
    ``tick(what, done, total)`` hears of each step (a progress bar), ``progress`` what the lab is doing."""

    cluster = with_endpoint_pods(cluster)  # endpoints without Pod objects are pods the lab builds and serves
    family = family or cluster.families()[0]
    reason = requirements(family)
    if reason:
        raise LabUnavailable(reason)
    say = progress or (lambda _msg: None)
    report = LabReport(spec or cluster.name)
    if family not in cluster.families():
        raise LabError(f"this spec has no {family.value} nodes or Services to build a lab of")
    planned = predictions(cluster, family, rules, ipsets)
    lab = Lab(cluster, family, rules=rules, ipsets=ipsets)
    started = time.monotonic()
    torn_down = False
    try:
        say(f"building {len(cluster.nodes)} nodes, {len(cluster.pods)} pods in namespaces {lab.prefix}*")
        if tick:
            tick("building the lab", 0, len(planned))
        lab.build()
        lab.load_rules()
        workloads.start_servers(lab, keep=keep)
        report.timings["build"] = time.monotonic() - started
        if not rules:  # a dump's rules may well block kube-proxy's own ports: not ours to judge
            _check_node_endpoints(lab, report)
        probes_started = time.monotonic()
        for done, planned_probe in enumerate(planned):
            check, inst, predicted = planned_probe.check, planned_probe.instance, planned_probe.outcomes
            say(f"probe {inst.description}")
            if tick:
                tick(inst.description, done, len(planned))
            report.results.append(_probe(lab, check, inst, predicted))
        if report.results:
            report.timings["probes"] = time.monotonic() - probes_started
            report.timings["per probe"] = report.timings["probes"] / len(report.results)
        if keep:
            report.kept = lab.teardown_command()
            torn_down = True  # deliberately left up
    finally:
        if not torn_down:
            lab.teardown()
            report.timings["teardown"] = lab.timings.get("teardown", 0.0)
    report.notes += lab.notes
    return report


def _check_node_endpoints(lab, report) -> None:
    """kube-proxy's own endpoints on every node, and the load balancer's health checks against the model."""

    for node in lab.cluster.nodes:
        status, body = workloads.proxy_mode(lab, node.name)
        if (status, body) != (200, "iptables"):
            report.problems.append(f"/proxyMode on {node.name}: got {status} {body!r}, expected 200 'iptables'")
    if any(svc.health_check_node_port for svc in lab.cluster.services):
        answers = workloads.poll_health(lab)
        report.problems += workloads.health_mismatches(lab, answers)
        for key, per_node in answers.items():
            shown = ", ".join(f"{node} {status}" for node, (status, _) in per_node.items())
            report.notes.append(f"health checks of {key} from the load balancer: {shown}")


def _probe(lab, check: ir.Check, inst, predicted):
    start = time.monotonic()
    ns, src = _client_end(lab, inst.client)
    target = inst.target
    _steer(lab, inst.client, target)
    _flush_conntrack(lab)
    svc = next((s for s in lab.cluster.services if target.service_port.startswith(s.key + ":")), None)
    result = ProbeResult(check.name, inst.client.name, inst.description, target, predicted, [], inst.fates,
                         pinned=svc is not None and svc.session_affinity is not None)
    if ns is None:
        raise LabError(f"client {inst.client.name} has no namespace in the lab")
    wanted = {o for o in predicted if o.disposition is Disposition.DELIVERED}
    batch = min(BATCH_CAP, max(6, 6 * len(wanted))) if wanted else UNDELIVERED_TRIES
    proto = target.protocol.lower
    if proto not in ("tcp", "udp"):
        raise LabError(f"{inst.description}: the lab sends TCP and UDP, not {target.protocol.value}")
    owner = (inst.client.uid, inst.client.gid)
    only_delivery = bool(wanted) and wanted == set(predicted)
    timeout = PATIENT_CONNECT_TIMEOUT if only_delivery else CONNECT_TIMEOUT
    for _ in range(MAX_TRIES // batch if wanted else 1):
        result.tries += call_in_ns(ns, lambda: send_batch(proto, str(src), str(target.dst), target.dport, batch,
                                                          connect_timeout=timeout, owner=owner))
        if not wanted or not result.missing or result.unexpected:
            break
    if not result.agree:
        result.kernel_trace = _kernel_trace(lab, ns, src, target, proto, owner)
    result.seconds = time.monotonic() - start
    return result


def _client_end(lab, client: ir.Client):
    """(namespace, source address) a client's connections start from."""
    if client.kind is ir.ClientKind.POD:
        pod = next((p for p in lab.cluster.pods if p.ip == client.ip or p.key == client.name), None)
        return (lab.pods.get(pod.key), pod.ip) if pod else (None, None)
    if client.kind is ir.ClientKind.NODE:
        node = lab.cluster.node(client.node)
        return lab.nodes[node.name], lab.cluster.client_address(client, lab.family)
    return lab.clients.get(client.name), client.ip


def _steer(lab, client: ir.Client, target) -> None:
    """The router's route for the probe's VIP: to the load balancer (or straight to the entry node for an
    external IP) for external clients only; from inside the cluster a VIP kube-proxy does not catch leaves
    the cluster, as the model has it."""
    lab.unroute_vips()
    node_ips = {ip for node in lab.cluster.nodes for ip in node.ips}
    if client.kind is not ir.ClientKind.EXTERNAL:
        return
    if target.lb_source_ranges:  # a node-port-style LB: it filters sources before the node sees them
        lab.refuse_sources(target.dst, target.dport, target.protocol.lower, target.lb_source_ranges)
    if target.load_balancer is not None and target.dst not in node_ips:
        lb_style = lab.cluster.load_balancers[0].style if lab.cluster.load_balancers else ir.LoadBalancerStyle.VIP_KEPT
        lab.route_vip(target.dst, target.entry_node, through_lb=lb_style is ir.LoadBalancerStyle.VIP_KEPT)
    elif target.entry_node is not None and target.dst not in node_ips:
        lab.route_vip(target.dst, target.entry_node, through_lb=False)


def _flush_conntrack(lab) -> None:
    if shutil.which("conntrack", path=tool_path()) is None:
        if "conntrack" not in " ".join(lab.notes):
            lab.notes.append("conntrack tool missing: connection tracking state is not flushed between probes")
        return
    for ns in lab.nodes.values():
        in_ns(ns, ["conntrack", "-F", "-f", lab.family.value.lower()], check=False)


def _kernel_trace(lab, ns: str, src, target, proto: str, owner: tuple[int, int] = (0, 0)) -> str:
    """Rerun a few tries with zeroed counters: the rules that counted packets, and conntrack, per node."""


    _flush_conntrack(lab)
    for node_ns in lab.nodes.values():
        for table in ("raw", "mangle", "filter", "nat", "security"):
            in_ns(node_ns, [lab.iptables(), "-t", table, "-Z"], check=False)
    tries = call_in_ns(ns, lambda: send_batch(proto, str(src), str(target.dst), target.dport, 3, owner=owner))
    lines = ["rerun: " + "; ".join(map(str, tries))]
    for name, node_ns in lab.nodes.items():
        saved = in_ns(node_ns, [lab.iptables("iptables-save"), "-c"], check=False).stdout
        table = ""
        for line in saved.splitlines():
            if line.startswith("*"):
                table = line[1:]
            match = re.match(r"\[(\d+):(\d+)\] (-A .*)", line)
            if match and int(match.group(1)) > 0:
                lines.append(f"{name} {table:<6} [{match.group(1)} pkts] {match.group(3)}")
        tracked = in_ns(node_ns, ["conntrack", "-L", "-f", lab.family.value.lower()], check=False).stdout.strip()
        lines += [f"{name} conntrack {entry}" for entry in tracked.splitlines()]
    return "\n".join(lines)
