"""The lab's network: one namespace per node, pod, external client, the network between nodes and the cloud
load balancer, wired exactly as ``verifier/model/network.py`` models the cluster.

Address plan (all host addresses /32 or /128, all links point to point or one bridge, so nothing depends on
subnets the spec does not state):

* ``net``: the network between the nodes and the router to the outside. A bridge ``br0`` joins every node's
  ``eth0`` (and the load balancer's); the namespace itself routes for external clients, each behind its own
  veth ``c<i>``. Its address ``router`` is one no spec address collides with (IPv4 link-local, IPv6
  unique-local; in IPv6 also on every ``c<i>``, as neighbour discovery answers only for the link's own).
* node: ``eth0`` on ``br0`` with the node's addresses (of the lab's family, as everything here); routes to
  the other nodes' addresses and, via them, their pod CIDRs; ``unreachable`` for its own pod CIDR (an
  address no pod has answers "no route", as the model says); default via the router. Per pod a veth named
  as ``ClusterNetwork.pod_iface`` names it (``veth<index in cluster.pods>``, or ``<prefix><index>`` with
  ``detect_local interface_prefix``) holding the pod gateway (pod CIDR + 1, the same host address on every
  veth, as cni0 holds it), so that MASQUERADE towards a local pod picks the gateway and towards other nodes
  the node IP, as the model's MASQUERADE does. With ``detect_local bridge NAME`` the veths are enslaved to a
  bridge NAME holding the gateway instead.
* pod: ``eth0`` with the pod IP, default via the gateway.
* external client: ``eth0`` with its IP, default via the router.
* ``lb``: ``eth0`` on ``br0``; forwards a VIP (routing, no NAT) to the node the probe names.

Nothing is created in, moved through or routed to the root namespace: veths are created directly inside
their namespaces (``ip link add ... netns A type veth peer ... netns B``).

A lab is IPv4 or IPv6 (``Lab.family``), as kube-proxy runs one proxier per family: the other family's
addresses are left out. IPv6 differs only where the kernel does: duplicate address detection is off (an
address would otherwise stay tentative for a second), forwarding is ``net/ipv6/conf/all/forwarding``, ICMPv6
is rate-limited by ``net/ipv6/icmp/ratelimit``, and the rules load with ``ip6tables-restore``.
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kspec import ir
from kspec.compiler import compile_cluster
from kspec.compiler.context import NodeContext
from kspec.compiler.iptables.basechains import base_rules
from kspec.lab.netns import (
    PREFIX,
    LabError,
    call_in_ns,
    delete_namespaces,
    in_ns,
    iptables,
    lab_namespaces,
    run,
    tool_path,
    write_sysctls,
)
from kspec.verifier.model.network import UNNUMBERED_V6_HOP, pod_gateway, pod_veth

_NFACCT_NAME = re.compile(r"--nfacct-name +(\S+)")  # iptables-save prints two spaces

_serial = iter(range(1, 1 << 30))


def _external_ip(client: ir.Client) -> ir.IPAddress:
    # The lab takes only the external clients that have an address; the check keeps that visible to types.
    if client.ip is None:
        raise LabError(f"external client {client.name} has no address")
    return client.ip


# ---------------------------------------------------------------------------------------- topology

# The router's standing rule (a probe's load-balancer source filter goes before it). A router without a route
# would answer with an ICMP too, but ip_error() rate-limits those per source (net.ipv4.route.error_burst/
# error_cost, global sysctls the lab must not change), so after five tries they would look like silent drops.
# REJECT's ICMP obeys the per-namespace ICMP rate limits, which the lab turns off.
_OUTSIDE_RULE = "-A FORWARD -o outside -j REJECT --reject-with {unreachable}"
_VERSION = {ir.IPFamily.V4: 4, ir.IPFamily.V6: 6}
_NO_ROUTE_ICMP = {ir.IPFamily.V4: "icmp-net-unreachable", ir.IPFamily.V6: "icmp6-no-route"}
_FREE_RANGE = {ir.IPFamily.V4: "169.254.253.0/24", ir.IPFamily.V6: "fd6b:7370:6563::/120"}  # fd "kspec"

_FEATURES = (
    ("--random-fully", "MASQUERADE --random-fully needs NF_NAT with fully random port allocation (Linux >= 3.13, "
                       "iptables >= 1.6.2); kube-proxy only writes it where the node has it: set `random_fully "
                       "false` in the spec's proxy block for this kernel"),
    ("-m nfacct", "-m nfacct needs the kernel's nfnetlink_acct (CONFIG_NETFILTER_XT_MATCH_NFACCT) and the "
                  "counters created first; set `nfacct false` in the spec's proxy block for this kernel"),
    ("-m statistic", "-m statistic (CONFIG_NETFILTER_XT_MATCH_STATISTIC) picks endpoints at random"),
    ("-m recent", "-m recent (CONFIG_NETFILTER_XT_MATCH_RECENT) implements session affinity"),
    ("-m addrtype", "-m addrtype (CONFIG_NETFILTER_XT_MATCH_ADDRTYPE) matches node-local addresses"),
    ("-j MASQUERADE", "MASQUERADE needs CONFIG_NF_NAT_MASQUERADE"),
    ("-j REJECT", "REJECT needs CONFIG_IP_NF_TARGET_REJECT"),
)


def _feature_hint(text: str, error: str) -> str:
    """Which kernel feature a failed restore most likely lacks (the rules are not rewritten to avoid it)."""
    line = re.search(r"line:? (\d+)", error)
    culprit = text.splitlines()[int(line.group(1)) - 1] if line and int(line.group(1)) <= len(text.splitlines()) \
        else text
    needs = [why for word, why in _FEATURES if word in culprit]
    return ("; " + "; ".join(needs)) if needs and culprit is not text else ""



def _slug(text: str, limit: int = 24) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")[:limit] or "x"


def _pick_free(cluster: ir.Cluster, count: int, family: ir.IPFamily) -> list[ir.IPAddress]:
    """Addresses for the router and the load balancer that nothing in the spec uses (IPv4 link-local, IPv6
    unique local)."""
    version = _VERSION[family]
    used_nets: list[ir.IPNetwork] = list(c for c in cluster.proxy.cluster_cidrs if c.version == version)
    used: set[ir.IPAddress] = set()
    for node in cluster.nodes:
        used |= {ip for ip in node.ips if ip.version == version}
        used_nets += [c for c in node.pod_cidrs if c.version == version]
    used |= {p.ip for p in cluster.pods if p.ip.version == version}
    used |= {c.ip for c in cluster.clients if c.ip is not None and c.ip.version == version}
    for svc in cluster.services:
        used |= {ip for ip in svc.cluster_ips + svc.external_ips if ip.version == version}
        used |= {i.ip for i in svc.load_balancer_ingress if i.ip.version == version}
    picked = []
    for candidate in ipaddress.ip_network(_FREE_RANGE[family]).hosts():
        if candidate in used or any(candidate in net for net in used_nets):
            continue
        picked.append(candidate)
        if len(picked) == count:
            return picked
    raise LabError("no free link-local address for the lab's router")


@dataclass
class Lab:
    """A built (or buildable) lab for one cluster."""

    cluster: ir.Cluster
    family: ir.IPFamily = ir.IPFamily.V4
    run_id: str = field(default_factory=lambda: f"{os.getpid()}-{next(_serial)}{secrets.token_hex(1)}")
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> namespace
    pods: dict[str, str] = field(default_factory=dict)  # pod key -> namespace
    clients: dict[str, str] = field(default_factory=dict)  # external client name -> namespace
    net: str = ""
    lb: str | None = None
    router_ip: ir.IPAddress | None = None
    lb_ip: ir.IPAddress | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    vip_routes: set[ir.IPAddress] = field(default_factory=set)
    lb_filter: bool = False  # the router drops sources a node-port-style LB would refuse (this probe)
    rules: dict[str, str] | None = None  # node name -> a dump to load as given, instead of compiling
    ipsets: dict[str, str] | None = None  # node name -> its 'ipset save', restored before its dump

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.run_id}-"

    def name(self, role: str) -> str:
        return f"{self.prefix}{role}"

    def all_namespaces(self) -> list[str]:
        return list(self.created)

    def ips(self, addresses) -> list[ir.IPAddress]:
        """Those of ``addresses`` (addresses or networks) in the lab's family."""
        return [a for a in addresses if a.version == _VERSION[self.family]]

    def host(self, ip: ir.IPAddress) -> str:
        return f"{ip}/{ip.max_prefixlen}"

    def ip_cmd(self, ns: str) -> list[str]:
        """``ip`` for namespace ``ns``, in the lab's family (``route add default`` needs to know it)."""
        return ["ip", "-6" if self.family is ir.IPFamily.V6 else "-4", "-n", ns]

    def iptables(self, tool: str = "iptables") -> str:
        return iptables(self.family, tool)

    # ----------------------------------------------------------------------------------- build

    def build(self) -> None:
        """Namespaces, links, addresses, routes and sysctls (rules and servers come later)."""
        start = time.monotonic()
        for node in self.cluster.nodes:
            if node.primary_ip(self.family) is None:
                raise LabError(f"node {node.name} has no {self.family.value} address; an {self.family.value} lab "
                               "needs one on every node")
        externals = self._name_namespaces()
        every = [self.net, *self.nodes.values(), *self.pods.values(), *self.clients.values()]
        if self.lb:
            every.append(self.lb)
        self._create(every, externals)
        per_ns: dict[str, list[str]] = {ns: ["link set lo up"] for ns in every}
        sysctls: dict[str, dict[str, str]] = {ns: {} for ns in every}
        self._wire_router(per_ns, sysctls, externals)
        for node in self.cluster.nodes:
            self._wire_node(node, per_ns, sysctls)
        for client in externals:
            per_ns[self.clients[client.name]] += [
                "link set eth0 up", f"addr add {self.host(_external_ip(client))} dev eth0",
                f"route add default via {self.router_ip} dev eth0 onlink"]
        self._configure(every, per_ns, sysctls)
        self.timings["topology"] = time.monotonic() - start

    def _name_namespaces(self) -> list[ir.Client]:
        """Pick the router's and LB's addresses and name every namespace; returns the external clients the lab
        wires (those with an address of its family)."""
        cluster = self.cluster
        self.router_ip, self.lb_ip = _pick_free(cluster, 2, self.family)
        self.net = self.name("net")
        self.nodes = {n.name: self.name(f"n{i}-{_slug(n.name)}") for i, n in enumerate(cluster.nodes)}
        self.pods = {p.key: self.name(f"p{i}-{_slug(p.name)}") for i, p in enumerate(cluster.pods)}
        externals = [c for c in cluster.clients if c.kind is ir.ClientKind.EXTERNAL and c.ip is not None
                     and self.ips([c.ip])]
        self.clients = {c.name: self.name(f"c{i}-{_slug(c.name)}") for i, c in enumerate(externals)}
        wants_lb = bool(cluster.load_balancers) or any(s.load_balancer_ingress for s in cluster.services)
        self.lb = self.name("lb") if wants_lb else None
        return externals

    def _create(self, every: list[str], externals: list[ir.Client]) -> None:
        """Every namespace and every veth in one ``ip -batch`` (ends created inside their namespaces)."""
        batch = [f"netns add {ns}" for ns in every]
        for i, node in enumerate(self.cluster.nodes):
            batch.append(f"link add eth0 netns {self.nodes[node.name]} type veth peer name n{i} netns {self.net}")
        for i, pod in enumerate(self.cluster.pods):
            if pod.node not in self.nodes:
                raise LabError(f"pod {pod.key} is on unknown node {pod.node}")
            batch.append(f"link add {self.pod_iface(i)} netns {self.nodes[pod.node]} type veth peer name eth0 "
                         f"netns {self.pods[pod.key]}")
        for i, client in enumerate(externals):
            batch.append(f"link add eth0 netns {self.clients[client.name]} type veth peer name c{i} netns {self.net}")
        if self.lb:
            batch.append(f"link add eth0 netns {self.lb} type veth peer name lb netns {self.net}")
        # Record the names before creating them: a failure half-way still tears down what exists.
        self.created = every
        result = run(["ip", "-batch", "-"], stdin="\n".join(batch) + "\n", check=False)
        if result.returncode != 0:
            raise LabError(f"creating namespaces and links failed: {result.stderr.strip()}")
        if self.family is ir.IPFamily.V6:  # before any link is up: no address may sit tentative through DAD
            for ns in every:
                write_sysctls(ns, {f"net/ipv6/conf/{iface}/accept_dad": "0" for iface in self._ifaces(ns, "ipv6")})

    def _wire_router(self, per_ns: dict[str, list[str]], sysctls: dict[str, dict[str, str]],
                     externals: list[ir.Client]) -> None:
        """The network between nodes (a bridge), the router for external clients, and the load balancer."""
        host, router, lb_ip = self.host, self.router_ip, self.lb_ip
        if router is None or lb_ip is None:
            raise LabError("the router's and the load balancer's addresses are picked before the wiring")
        net = per_ns[self.net]
        net += ["link add br0 type bridge", "link set br0 up", f"addr add {host(router)} dev br0",
                # "The rest of the world": whatever leaves the cluster is refused there with an ICMP net
                # unreachable (see _OUTSIDE_RULES), so a "no route" fate is observable per try.
                "link add outside type veth peer name outside-end", "link set outside-end up", "link set outside up",
                "route add default dev outside"]
        for i, node in enumerate(self.cluster.nodes):
            net += [f"link set n{i} master br0", f"link set n{i} up"]
            net += [f"route add {host(ip)} dev br0" for ip in self.ips(node.ips)]
        for i, client in enumerate(externals):
            net += [f"link set c{i} up", f"route add {host(_external_ip(client))} dev c{i}"]
            if self.family is ir.IPFamily.V6:  # neighbour discovery answers only for the link's own addresses
                net.append(f"addr add {host(router)} dev c{i}")
        if self.lb:
            net += ["link set lb master br0", "link set lb up", f"route add {host(lb_ip)} dev br0"]
            lb = per_ns[self.lb]
            lb += ["link set eth0 up", f"addr add {host(lb_ip)} dev eth0",
                   f"route add default via {router} dev eth0 onlink"]
            lb += [f"route add {host(ip)} dev eth0" for node in self.cluster.nodes for ip in self.ips(node.ips)]
            sysctls[self.lb] |= self._forwarding("eth0")
        sysctls[self.net] |= self._forwarding("br0")

    def _wire_node(self, node: ir.Node, per_ns: dict[str, list[str]], sysctls: dict[str, dict[str, str]]) -> None:
        """One node: its eth0 and routes to the other nodes and their pod CIDRs, its pods' veths (or bridge)
        and the pods' own ends, and its sysctls."""
        cluster, family, host, ips = self.cluster, self.family, self.host, self.ips
        detect = cluster.proxy.detect_local
        bridge = detect.interface if detect.mode is ir.LocalDetectMode.BRIDGE_INTERFACE and detect.interface else None
        ns = self.nodes[node.name]
        cmds = per_ns[ns]
        cmds.append("link set eth0 up")
        cmds += [f"addr add {host(ip)} dev eth0" for ip in ips(node.ips)]
        for other in cluster.nodes:
            if other.name == node.name:
                continue
            cmds += [f"route add {host(ip)} dev eth0" for ip in ips(other.ips)]
            via = other.primary_ip(family)
            cmds += [f"route add {cidr} via {via} dev eth0 onlink" for cidr in ips(other.pod_cidrs)]
        cmds.append(f"route add default via {self.router_ip} dev eth0 onlink")
        gateway = self.gateway(node)
        cmds += [f"route add unreachable {cidr}" for cidr in ips(node.pod_cidrs)]
        if bridge:
            cmds += [f"link add {bridge} type bridge", f"link set {bridge} up"]
            if gateway:
                cmds.append(f"addr add {host(gateway)} dev {bridge}")
        for i, pod in enumerate(cluster.pods):
            if pod.node != node.name or not ips([pod.ip]):  # a pod of the other family stays unwired
                continue
            iface = self.pod_iface(i)
            if bridge:
                cmds += [f"link set {iface} master {bridge}", f"link set {iface} up"]
                cmds.append(f"route add {host(pod.ip)} dev {bridge}")
            else:
                cmds.append(f"link set {iface} up")
                if gateway:
                    cmds.append(f"addr add {host(gateway)} dev {iface}")
                elif family is ir.IPFamily.V6:  # unnumbered: only a link-local next hop, as Calico's
                    cmds.append(f"addr add {UNNUMBERED_V6_HOP}/64 dev {iface}")
                else:  # unnumbered: the host side answers ARP for everything (Calico's proxy_arp)
                    sysctls[ns][f"net/ipv4/conf/{iface}/proxy_arp"] = "1"
                cmds.append(f"route add {host(pod.ip)} dev {iface}")
            pod_cmds = per_ns[self.pods[pod.key]]
            pod_cmds += ["link set eth0 up", f"addr add {host(pod.ip)} dev eth0"]
            if gateway:
                pod_cmds.append(f"route add default via {gateway} dev eth0 onlink")
            elif family is ir.IPFamily.V6 and not bridge:
                pod_cmds.append(f"route add default via {UNNUMBERED_V6_HOP} dev eth0")
            else:
                pod_cmds.append("route add default dev eth0")
        values = self._forwarding()
        if NodeContext(node, family, cluster.proxy, False).localhost_node_ports:
            values["net/ipv4/conf/all/route_localnet"] = "1"  # as kube-proxy sets it
        if cluster.proxy.tcp_liberal:
            values["net/netfilter/nf_conntrack_tcp_be_liberal"] = "1"
        sysctls[ns] |= values

    def _configure(self, every: list[str], per_ns: dict[str, list[str]],
                   sysctls: dict[str, dict[str, str]]) -> None:
        """Run each namespace's ``ip`` commands, load the router's rules and write every namespace's sysctls."""
        for ns, cmds in per_ns.items():
            result = run([*self.ip_cmd(ns), "-batch", "-"], stdin="\n".join(cmds) + "\n", check=False)
            if result.returncode != 0:
                raise LabError(f"configuring {ns} failed: {result.stderr.strip()}")
        made = in_ns(self.net, [self.iptables("iptables-restore")], stdin=self._router_rules(), check=False)
        if made.returncode != 0:
            raise LabError(f"the router's stand-in for the outside world did not load: {made.stderr.strip()}")
        for ns in every:
            # Reverse-path filtering off everywhere: the lab routes asymmetrically (VIP in via the LB, out
            # via the router), as cloud networks do.
            values = {"net/ipv4/conf/all/rp_filter": "0", "net/ipv4/conf/default/rp_filter": "0",
                      # ICMP errors are how REJECT and "no route" show; the kernel's rate limits (per peer, and
                      # a global budget) would turn later tries into silent drops. Masks without the error types
                      # exempt them from both.
                      "net/ipv4/icmp_ratemask": "0"}
            if self.family is ir.IPFamily.V6:  # ICMPv6 types 1 (unreachable) and 3 (time exceeded) exempt
                values["net/ipv6/icmp/ratelimit"] = "0"
                if os.path.exists("/proc/sys/net/ipv6/icmp/ratemask"):  # newer kernels only
                    values["net/ipv6/icmp/ratemask"] = "0,2,4-127"
            values |= {f"net/ipv4/conf/{iface}/rp_filter": "0" for iface in self._ifaces(ns)}
            write_sysctls(ns, values | sysctls[ns])

    def _ifaces(self, ns: str, version: str = "ipv4") -> list[str]:
        return call_in_ns(ns, lambda: os.listdir(f"/proc/sys/net/{version}/conf"), timeout=10)

    def _forwarding(self, *ifaces: str) -> dict[str, str]:
        """Routing on, and (IPv4) no redirects out of ``ifaces``: the lab's routes are host routes on one
        bridge, and a redirect would teach a node a shortcut the model does not have."""
        if self.family is ir.IPFamily.V6:
            return {"net/ipv6/conf/all/forwarding": "1"}
        values = {"net/ipv4/ip_forward": "1"}
        if ifaces:
            values |= {"net/ipv4/conf/all/send_redirects": "0"}
            values |= {f"net/ipv4/conf/{iface}/send_redirects": "0" for iface in ifaces}
        return values

    def pod_iface(self, index: int) -> str:
        """The node-side name of pod ``index``'s veth: what ``ClusterNetwork.pod_iface`` assumes."""

        name = pod_veth(self.cluster, index)
        if len(name) > 15:
            raise LabError(f"interface name {name} is longer than the kernel's 15 characters")
        return name

    def gateway(self, node: ir.Node) -> ir.IPAddress | None:
        """The host side's address towards the pods: the network model's, so that MASQUERADE agrees."""

        return pod_gateway(node, self.family)

    # ------------------------------------------------------------------------------------ rules

    def load_rules(self) -> None:
        """Each node's compiled ruleset, exactly as emitted, then kube-proxy's jumps from the built-in chains;
        or, with ``rules``, each node's dump exactly as given (a whole ``iptables-save``: nothing added).

        As kube-proxy does, the nfacct counters the rules name are created first (they are per namespace).
        A rule the kernel refuses is reported with the kernel feature it needs, never rewritten.
        """

        start = time.monotonic()
        dumps = self.rules or {}
        texts = dumps if set(dumps) >= {n.name for n in self.cluster.nodes} else \
            {**compile_cluster(self.cluster, self.family), **dumps}
        for node in self.cluster.nodes:
            ns = self.nodes[node.name]
            text = texts[node.name]
            counters = list(dict.fromkeys(_NFACCT_NAME.findall(text)))
            if counters:
                if shutil.which("nfacct", path=tool_path()) is None:
                    raise LabError(f"the rules of {node.name} use -m nfacct ({', '.join(counters)}) but the nfacct "
                                   "tool is missing (Debian: apt-get install nfacct); kube-proxy creates these "
                                   "counters before writing such rules")
                for counter in counters:
                    made = in_ns(ns, ["nfacct", "add", counter], check=False)
                    if made.returncode != 0:
                        raise LabError(f"nfacct add {counter} in {node.name}'s namespace failed: "
                                       f"{made.stderr.strip()} (the kernel needs nfnetlink_acct)")
            if node.name in dumps:  # a dump is the whole state of its tables: they are replaced, not added to
                self._restore_sets(node.name, ns)
                self._restore(node.name, ns, text, "dump", noflush=False)
                continue
            self._restore(node.name, ns, text, "compiled rules")
            local = NodeContext(node, self.family, self.cluster.proxy, False)
            self._restore(node.name, ns, base_rules(local.localhost_node_ports), "kube-proxy's jumps")
        self.timings["rules"] = time.monotonic() - start

    def reload(self, dumps: dict[str, str]) -> None:
        """Replace the rules of the nodes ``dumps`` names (each a whole ``iptables-save``), e.g. to try many
        rulesets on one built lab."""
        self.rules = {**(self.rules or {}), **dumps}
        for name, text in dumps.items():
            self._restore(name, self.nodes[name], text, "dump", noflush=False)

    def _restore_sets(self, node: str, ns: str) -> None:
        """The node's ipsets (per network namespace, like its rules), before the rules that name them."""
        text = (self.ipsets or {}).get(node)
        if not text:
            return
        if shutil.which("ipset", path=tool_path()) is None:
            raise LabError(f"{node}'s rules use ipsets but the ipset tool is missing (Debian: apt-get install ipset)")
        result = in_ns(ns, ["ipset", "restore", "-exist"], stdin=text, check=False)
        if result.returncode != 0:
            raise LabError(f"ipset restore of {node}'s sets failed: {result.stderr.strip()}")

    def _restore(self, node: str, ns: str, text: str, what: str, noflush: bool = True) -> None:
        flags = ["--noflush"] if noflush else []
        result = in_ns(ns, [self.iptables("iptables-restore"), *flags], stdin=text, check=False)
        if result.returncode == 0:
            return
        error = result.stderr.strip()
        raise LabError(f"iptables-restore of {node}'s {what} failed: {error}" + _feature_hint(text, error))

    # ------------------------------------------------------------------------- per-probe routing

    def route_vip(self, vip: ir.IPAddress, entry_node: str | None, through_lb: bool) -> None:
        """Steer ``vip`` (a LoadBalancer ingress IP or an external IP) from the router to ``entry_node``:
        through the load balancer namespace (``through_lb``) or straight; no entry node: the LB drops it."""
        via_node = self.cluster.node(entry_node).primary_ip(self.family) if entry_node else None
        net, dest = self.ip_cmd(self.net), self.host(vip)
        if through_lb and self.lb:
            run([*net, "route", "replace", dest, "via", str(self.lb_ip), "dev", "br0", "onlink"])
            if via_node is None:
                run([*self.ip_cmd(self.lb), "route", "replace", "blackhole", dest])
            else:
                run([*self.ip_cmd(self.lb), "route", "replace", dest, "via", str(via_node), "dev", "eth0", "onlink"])
        elif via_node is not None:
            run([*net, "route", "replace", dest, "via", str(via_node), "dev", "br0", "onlink"])
        else:
            run([*net, "route", "replace", "blackhole", dest])
        self.vip_routes.add(vip)

    def unroute_vips(self) -> None:
        """The router forgets every VIP again (traffic from inside the cluster must not reach the LB), and any
        source filter a node-port-style load balancer had."""
        for vip in sorted(self.vip_routes):
            run([*self.ip_cmd(self.net), "route", "del", self.host(vip)], check=False)
        self.vip_routes.clear()
        if self.lb_filter:
            in_ns(self.net, [self.iptables("iptables-restore")], stdin=self._router_rules(), check=False)
            self.lb_filter = False

    def refuse_sources(self, dst: ir.IPAddress, dport: int, proto: str, admitted) -> None:
        """A load balancer that rewrites to nodeIP:nodePort enforces loadBalancerSourceRanges itself: the
        router (the lab's stand-in for it on that path) drops other sources for this probe's destination."""
        match = f"-d {self.host(dst)} -p {proto} -m {proto} --dport {dport}"
        lines = [f"-A FORWARD {match} -s {net} -j ACCEPT" for net in self.ips(admitted)]
        lines.append(f"-A FORWARD {match} -j DROP")
        in_ns(self.net, [self.iptables("iptables-restore")], stdin=self._router_rules(lines))
        self.lb_filter = True

    def _router_rules(self, before: Sequence[str] = ()) -> str:
        """The router's filter table: ``before`` (a probe's source filter), then the outside world's REJECT
        (restored whole each time: without it, traffic leaving the cluster would loop until its TTL ran out)."""
        outside = _OUTSIDE_RULE.format(unreachable=_NO_ROUTE_ICMP[self.family])
        return "\n".join(["*filter", ":FORWARD ACCEPT [0:0]", *before, outside, "COMMIT"]) + "\n"

    # --------------------------------------------------------------------------------- teardown

    def stop_processes(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.processes.clear()

    def teardown(self) -> list[str]:
        """Everything the lab made goes; the namespaces that could not be deleted (normally none)."""
        start = time.monotonic()
        self.stop_processes()
        existing = set(lab_namespaces())
        failed = delete_namespaces([ns for ns in self.created if ns in existing])
        self.timings["teardown"] = time.monotonic() - start
        return failed

    def teardown_command(self) -> str:
        return f"kspec lab --cleanup   # or: for ns in $(ip netns list | grep -o '^{self.prefix}\\S*'); " \
               "do ip netns pids $ns | xargs -r kill; ip netns delete $ns; done"
