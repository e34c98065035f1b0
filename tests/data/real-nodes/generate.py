"""Regenerates the real-node corpus: ``<cni>/nodeN.rules`` (and ``nodeN.ipsets``) for the cluster in cluster.k.

Run as root from the repository's root: ``.venv/bin/python tests/data/real-nodes/generate.py [CNI...]``.

For every node it composes what is in the kernel when kube-proxy (iptables mode) runs beside a CNI: kube-proxy's
rules as kspec compiles them (``kspec compile --node``) with kube-proxy's jumps from the built-in chains
(``basechains.base_rules()``), plus the CNI's chains, rules, ipsets and its jumps at the place in each built-in
chain where that CNI puts them (see README.md for the upstream sources of each layout). The composition is loaded
into a throwaway network namespace (``ipset restore``, then ``iptables-restore``) and what is kept is what the
kernel gives back: ``iptables-save`` and ``ipset save`` of that namespace. So the files are real dumps, in the
tools' own rendering, and the kernel accepted every rule in them.

Each CNI is a function of the node returning a ``Layout``: its user chains with their rules, the rules it puts
before and after kube-proxy's jumps in each built-in chain (``-A`` specs without the ``-A CHAIN`` part), built-in
chain policies it changes, and its ipsets (``ipset restore`` input). Rules are written the way the CNI's own
code writes them (long options, unnormalised marks...): iptables-save normalises them.
"""
from __future__ import annotations

import base64
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from kspec.compiler import compile_cluster  # noqa: E402
from kspec.compiler.iptables.basechains import base_rules  # noqa: E402
from kspec.grammar import load  # noqa: E402
from tests.netns import _run, iptables_restore, throwaway_netns  # noqa: E402

NS_PREFIX = "kspec-test-corpus-"
TABLES = ("raw", "mangle", "nat", "filter")
BUILTIN = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}

CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/12"      # kube-apiserver's default --service-cluster-ip-range; 10.96.0.10 is in it
NODE_PORT_RANGE = "30000:32767"
NODES = {
    "node0": {"ip": "10.240.0.10", "pod_cidr": "10.244.0.0/24", "pods": [("default", "web", "10.244.0.10")]},
    "node1": {"ip": "10.240.0.11", "pod_cidr": "10.244.1.0/24", "pods": [("default", "client", "10.244.1.10")]},
}
ALL_PODS = [pod for node in NODES.values() for pod in node["pods"]]
# The NetworkPolicy of cluster.k's comment: default/allow-web-http selects app=web, Ingress only, TCP 8080 from
# anywhere. Enforced in iptables by Calico, kube-router and Weave (Cilium enforces it in eBPF).
POLICY_NS, POLICY_NAME, POLICY_PORT = "default", "allow-web-http", "8080"
POLICY_TARGETS = [("default", "web", "10.244.0.10")]
NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


@dataclass
class Layout:
    chains: dict[str, dict[str, list[str]]] = field(default_factory=dict)   # table -> chain -> rule specs
    before: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (table, builtin) -> specs
    after: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    policies: dict[tuple[str, str], str] = field(default_factory=dict)
    ipsets: str = ""

    def chain(self, table: str, name: str, *rules: str) -> None:
        self.chains.setdefault(table, {}).setdefault(name, []).extend(rules)

    def first(self, table: str, builtin: str, *rules: str) -> None:
        self.before.setdefault((table, builtin), []).extend(rules)

    def last(self, table: str, builtin: str, *rules: str) -> None:
        self.after.setdefault((table, builtin), []).extend(rules)


def _sets(*sets: tuple[str, str, list[str]]) -> str:
    """``ipset restore`` input: (create line options, name, entries)."""
    lines = []
    for create, name, entries in sets:
        lines.append(f"create {name} {create}")
        lines.extend(f"add {name} {entry}" for entry in entries)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- Calico

def _calico_hashes(chain: str, specs: list[str]) -> list[str]:
    """Felix's rule hashes: SHA-224 chained over the chain name and each rule as rendered with a HASH
    placeholder, URL-safe base64, 16 characters (felix/generictables RuleHashes)."""
    digest = hashlib.sha224(chain.encode()).digest()
    out = []
    for spec in specs:
        digest = hashlib.sha224(digest + f"-A {chain} HASH {spec}".encode()).digest()
        out.append(base64.urlsafe_b64encode(digest).decode().rstrip("=")[:16])
    return out


def _cali(chain: str, specs: list[str]) -> list[str]:
    """Felix prefixes every rule with its hash comment."""
    return [f'-m comment --comment "cali:{h}" {spec}' for h, spec in zip(_calico_hashes(chain, specs), specs)]


def _calico_iface(namespace: str, pod: str) -> str:
    return "cali" + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def _calico_limited(prefix: str, suffix: str, max_len: int = 28) -> str:
    """libcalico-go hashutils.GetLengthLimitedID."""
    if len(prefix) + len(suffix) > max_len or (len(prefix) + len(suffix) == max_len and suffix[:1] == "_"):
        digest = base64.urlsafe_b64encode(hashlib.sha256(suffix.encode()).digest()).decode().rstrip("=")
        return prefix + "_" + digest[: max_len - 1 - len(prefix)]
    return prefix + suffix


def calico(node: str) -> Layout:
    """Calico (felix, iptables data plane) v3.2x, IPIP mode, calico-ipam pool 10.244.0.0/16 with natOutgoing."""
    lay = Layout()
    accept, passm, scratch0 = 0x10000, 0x20000, 0x40000
    allmarks = 0xF0000
    profiles = ("kns.default", "ksa.default.default")
    policy_chain = _calico_limited("cali-pi-", f"{POLICY_NS}/knp.{POLICY_NS}.{POLICY_NAME}")

    def add(table: str, chain: str, specs: list[str]) -> None:
        lay.chain(table, chain, *_cali(chain, specs))

    # raw
    add("raw", "cali-PREROUTING", [
        f"--jump MARK --set-mark 0/{allmarks:#x}",
        f"--in-interface cali+ --jump MARK --set-mark {scratch0:#x}/{scratch0:#x}",
        f"-m mark --mark {scratch0:#x}/{scratch0:#x} --jump cali-rpf-skip",
        f"-m mark --mark {scratch0:#x}/{scratch0:#x} -m rpfilter --invert --validmark --jump DROP",
        f"-m mark --mark 0/{scratch0:#x} --jump cali-from-host-endpoint",
        f"-m mark --mark {accept:#x}/{accept:#x} --jump ACCEPT",
    ])
    add("raw", "cali-OUTPUT", [
        f"--jump MARK --set-mark 0/{allmarks:#x}",
        "--jump cali-to-host-endpoint",
        f"-m mark --mark {accept:#x}/{accept:#x} --jump ACCEPT",
    ])
    for chain in ("cali-rpf-skip", "cali-from-host-endpoint", "cali-to-host-endpoint"):
        lay.chain("raw", chain)
    # mangle
    add("mangle", "cali-PREROUTING", [
        "-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
        f"-m mark --mark {accept:#x}/{accept:#x} --jump ACCEPT",
        "--jump cali-from-host-endpoint",
        f'-m comment --comment "Host endpoint policy accepted packet." -m mark --mark {accept:#x}/{accept:#x} '
        "--jump ACCEPT",
    ])
    add("mangle", "cali-POSTROUTING", [
        f"-m mark --mark {accept:#x}/{accept:#x} --jump RETURN",
        f"--jump MARK --set-mark 0/{allmarks:#x}",
        "-m conntrack --ctstate DNAT --jump cali-to-host-endpoint",
        f'-m comment --comment "Host endpoint policy accepted packet." -m mark --mark {accept:#x}/{accept:#x} '
        "--jump RETURN",
    ])
    for chain in ("cali-from-host-endpoint", "cali-to-host-endpoint"):
        lay.chain("mangle", chain)
    # nat
    add("nat", "cali-PREROUTING", ["--jump cali-fip-dnat"])
    add("nat", "cali-OUTPUT", ["--jump cali-fip-dnat"])
    add("nat", "cali-POSTROUTING", [
        "--jump cali-fip-snat",
        "--jump cali-nat-outgoing",
        "--out-interface tunl0 -m addrtype ! --src-type LOCAL --limit-iface-out -m addrtype --src-type LOCAL "
        "--jump MASQUERADE --random-fully",
    ])
    add("nat", "cali-nat-outgoing", [
        "-m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst "
        "--jump MASQUERADE --random-fully",
    ])
    for chain in ("cali-fip-dnat", "cali-fip-snat"):
        lay.chain("nat", chain)
    # filter: static chains
    add("filter", "cali-FORWARD", [
        f"--jump MARK --set-mark 0/{allmarks & ~accept:#x}",
        f"-m mark --mark 0/{accept:#x} --jump cali-from-hep-forward",
        "--in-interface cali+ --jump cali-from-wl-dispatch",
        "--out-interface cali+ --jump cali-to-wl-dispatch",
        "--jump cali-to-hep-forward",
        "--jump cali-cidr-block",
    ])
    add("filter", "cali-INPUT", [
        '-m comment --comment "Allow IPIP packets from Calico hosts" -p 4 -m set --match-set cali40all-hosts-net src '
        "-m addrtype --dst-type LOCAL --jump ACCEPT",
        '-m comment --comment "Drop IPIP packets from non-Calico hosts" -p 4 --jump DROP',
        "--in-interface cali+ --goto cali-wl-to-host",
        f"-m mark --mark {accept:#x}/{accept:#x} --jump ACCEPT",
        f"--jump MARK --set-mark 0/{allmarks:#x}",
        "--jump cali-from-host-endpoint",
        f'-m comment --comment "Host endpoint policy accepted packet." -m mark --mark {accept:#x}/{accept:#x} '
        "--jump ACCEPT",
    ])
    add("filter", "cali-OUTPUT", [
        f"-m mark --mark {accept:#x}/{accept:#x} --jump ACCEPT",
        "--out-interface cali+ --jump RETURN",
        '-m comment --comment "Allow IPIP packets to other Calico hosts" -p 4 -m set --match-set cali40all-hosts-net '
        "dst -m addrtype --src-type LOCAL --jump ACCEPT",
        f"--jump MARK --set-mark 0/{allmarks:#x}",
        "-m conntrack ! --ctstate DNAT --jump cali-to-host-endpoint",
        f'-m comment --comment "Host endpoint policy accepted packet." -m mark --mark {accept:#x}/{accept:#x} '
        "--jump ACCEPT",
    ])
    add("filter", "cali-wl-to-host", [
        "--jump cali-from-wl-dispatch",
        '-m comment --comment "Configured DefaultEndpointToHostAction" --jump ACCEPT',
    ])
    for chain in ("cali-from-hep-forward", "cali-to-hep-forward", "cali-cidr-block", "cali-from-host-endpoint",
                  "cali-to-host-endpoint"):
        lay.chain("filter", chain)
    # filter: per-workload chains and their dispatch
    pods = NODES[node]["pods"]
    from_dispatch, to_dispatch = [], []
    uses_policy = False
    for namespace, pod, _ip in pods:
        iface = _calico_iface(namespace, pod)
        from_dispatch.append(f"--in-interface {iface} --goto cali-fw-{iface}")
        to_dispatch.append(f"--out-interface {iface} --goto cali-tw-{iface}")
        conntrack = ["-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
                     "-m conntrack --ctstate INVALID --jump DROP",
                     f"--jump MARK --set-mark 0/{accept | passm:#x}"]
        tiers = []
        if (namespace, pod) in {(n, p) for n, p, _ in POLICY_TARGETS}:
            uses_policy = True
            tiers = [
                f'-m comment --comment "Start of tier default" --jump MARK --set-mark 0/{passm:#x}',
                f"-m mark --mark 0/{passm:#x} --jump {policy_chain}",
                f'-m comment --comment "Return if policy accepted" -m mark --mark {accept:#x}/{accept:#x} '
                "--jump RETURN",
                f'-m comment --comment "Drop if no policies passed packet" -m mark --mark 0/{passm:#x} --jump DROP',
            ]

        def profile_rules(prefix: str) -> list[str]:
            rules = []
            for profile in profiles:
                rules += [f"--jump {_calico_limited(prefix, profile)}",
                          f'-m comment --comment "Return if profile accepted" -m mark --mark {accept:#x}/{accept:#x} '
                          "--jump RETURN"]
            return rules + ['-m comment --comment "Drop if no profiles matched" --jump DROP']

        add("filter", f"cali-tw-{iface}", conntrack + tiers + profile_rules("cali-pri-"))
        add("filter", f"cali-fw-{iface}", conntrack + [
            '-m comment --comment "Drop VXLAN encapped packets originating in workloads" -p 17 '
            "-m multiport --destination-ports 4789 --jump DROP",
            '-m comment --comment "Drop IPinIP encapped packets originating in workloads" -p 4 --jump DROP',
        ] + profile_rules("cali-pro-"))
    unknown = '-m comment --comment "Unknown interface" --jump DROP'
    add("filter", "cali-from-wl-dispatch", from_dispatch + [unknown])
    add("filter", "cali-to-wl-dispatch", to_dispatch + [unknown])
    # profiles: the namespace's allows everything both ways; the service account's has no rules
    for prefix in ("cali-pri-", "cali-pro-"):
        add("filter", _calico_limited(prefix, "kns.default"), [
            f"--jump MARK --set-mark {accept:#x}/{accept:#x}",
            f"-m mark --mark {accept:#x}/{accept:#x} --jump RETURN",
        ])
        lay.chain("filter", _calico_limited(prefix, "ksa.default.default"))
    if uses_policy:  # felix programs a policy chain only where a local endpoint references it
        add("filter", policy_chain, [
            f"-p tcp -m multiport --destination-ports {POLICY_PORT} --jump MARK --set-mark {accept:#x}/{accept:#x}",
            f"-m mark --mark {accept:#x}/{accept:#x} --jump RETURN",
        ])
    # jumps from the built-in chains: inserted at the top (ChainInsertMode=insert), one rule each
    for table, builtin, target in [("raw", "PREROUTING", "cali-PREROUTING"), ("raw", "OUTPUT", "cali-OUTPUT"),
                                   ("mangle", "PREROUTING", "cali-PREROUTING"),
                                   ("mangle", "POSTROUTING", "cali-POSTROUTING"),
                                   ("nat", "PREROUTING", "cali-PREROUTING"), ("nat", "OUTPUT", "cali-OUTPUT"),
                                   ("nat", "POSTROUTING", "cali-POSTROUTING"),
                                   ("filter", "INPUT", "cali-INPUT"), ("filter", "FORWARD", "cali-FORWARD"),
                                   ("filter", "OUTPUT", "cali-OUTPUT")]:
        lay.first(table, builtin, *_cali(builtin, [f"--jump {target}"]))
    # ...and the rules felix appends to the end of FORWARD (StaticFilterForwardAppendRules)
    lay.last("filter", "FORWARD", *_cali("FORWARD", [
        f'-m comment --comment "Policy explicitly accepted packet." -m mark --mark {accept:#x}/{accept:#x} '
        "--jump ACCEPT",
        f"--jump MARK --set-mark {accept:#x}/{accept:#x}",
    ]))
    net = "hash:net family inet hashsize 1024 maxelem 1048576"
    lay.ipsets = _sets((net, "cali40all-ipam-pools", [CLUSTER_CIDR]),
                       (net, "cali40masq-ipam-pools", [CLUSTER_CIDR]),
                       (net, "cali40all-hosts-net", [n["ip"] for n in NODES.values()]))
    return lay


# ------------------------------------------------------------------------------------------------ flannel

def _flannel(lay: Layout, node: str) -> None:
    pod_cidr = NODES[node]["pod_cidr"]
    masq = '-m comment --comment "flanneld masq"'
    lay.chain("nat", "FLANNEL-POSTRTG",
              f"-m mark --mark 0x4000/0x4000 {masq} -j RETURN",
              f"-s {pod_cidr} -d {CLUSTER_CIDR} {masq} -j RETURN",
              f"-s {CLUSTER_CIDR} -d {pod_cidr} {masq} -j RETURN",
              f"! -s {CLUSTER_CIDR} -d {pod_cidr} {masq} -j RETURN",
              f"-s {CLUSTER_CIDR} ! -d 224.0.0.0/4 {masq} -j MASQUERADE --random-fully",
              f"! -s {CLUSTER_CIDR} -d {CLUSTER_CIDR} {masq} -j MASQUERADE --random-fully")
    fwd = '-m comment --comment "flanneld forward"'
    lay.chain("filter", "FLANNEL-FWD", f"-s {CLUSTER_CIDR} {fwd} -j ACCEPT", f"-d {CLUSTER_CIDR} {fwd} -j ACCEPT")
    # flanneld appends its jumps (-A), so they come after kube-proxy's prepended ones
    lay.last("nat", "POSTROUTING", f"{masq} -j FLANNEL-POSTRTG")
    lay.last("filter", "FORWARD", f"{fwd} -j FLANNEL-FWD")


def flannel(node: str) -> Layout:
    """flanneld (vxlan backend, flannel.1; pods on the cni0 bridge) with ipMasq, iptables traffic manager."""
    lay = Layout()
    _flannel(lay, node)
    return lay


# ------------------------------------------------------------------------------------------------- docker

def docker(node: str) -> Layout:
    """dockerd 28 with its default bridge docker0 (172.17.0.0/16) and one container publishing 5000/tcp, on a
    node whose pods use flannel (docker's FORWARD policy DROP needs a CNI that accepts pod traffic)."""
    lay = Layout()
    container = "172.17.0.2"
    # raw: direct-routing protection for the published container port
    lay.first("raw", "PREROUTING", f"-d {container}/32 ! -i docker0 -j DROP")
    # filter: FORWARD policy DROP; DOCKER-USER then DOCKER-FORWARD at the top of FORWARD (EnsureJumpRule)
    lay.policies[("filter", "FORWARD")] = "DROP"
    lay.chain("filter", "DOCKER",
              f"-d {container}/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 5000 -j ACCEPT",
              "! -i docker0 -o docker0 -j DROP")
    lay.chain("filter", "DOCKER-BRIDGE", "-o docker0 -j DOCKER")
    lay.chain("filter", "DOCKER-CT", "-o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    lay.chain("filter", "DOCKER-FORWARD",
              "-j DOCKER-CT", "-j DOCKER-ISOLATION-STAGE-1", "-j DOCKER-BRIDGE", "-i docker0 -j ACCEPT")
    lay.chain("filter", "DOCKER-ISOLATION-STAGE-1", "-i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2")
    lay.chain("filter", "DOCKER-ISOLATION-STAGE-2", "-o docker0 -j DROP")
    lay.chain("filter", "DOCKER-USER", "-j RETURN")
    # dockerd started at boot, before kube-proxy: kube-proxy's prepended jumps end up above docker's
    lay.last("filter", "FORWARD", "-j DOCKER-USER", "-j DOCKER-FORWARD")
    # nat
    lay.chain("nat", "DOCKER", "-i docker0 -j RETURN",
              f"! -i docker0 -p tcp -m tcp --dport 5000 -j DNAT --to-destination {container}:5000")
    lay.last("nat", "PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER")
    lay.last("nat", "OUTPUT", "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER")
    lay.last("nat", "POSTROUTING", "-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE")
    _flannel(lay, node)
    return lay


# ------------------------------------------------------------------------------------------------- cilium

def _cilium_router_ip(node: str) -> str:
    # cilium_host's address (the CiliumInternalIP), allocated from the node's pod CIDR
    return NODES[node]["pod_cidr"].rsplit(".", 1)[0] + ".201"


def cilium(node: str) -> Layout:
    """cilium-agent 1.16+ beside kube-proxy (kubeProxyReplacement=false): tunnel routing (vxlan), iptables
    masquerading, L7/DNS proxy via TPROXY (no BPF TPROXY), kubernetes IPAM with the node's pod CIDR."""
    lay = Layout()
    alloc = NODES[node]["pod_cidr"]
    router = _cilium_router_ip(node)
    to_proxy = "0x00000200/0x00000f00"          # MagicMarkIsToProxy / MagicMarkHostMask
    proxy_reply = "0x00000a00/0xfffffeff"       # MagicMarkIsProxy / MagicMarkProxyNoIDMask
    l7_upstream = "0x00000800/0x00000e00"       # MagicMarkIsProxyEPID / MagicMarkProxyMask
    from_proxy = "0x00000a00/0x00000e00"        # MagicMarkIsProxy / MagicMarkProxyMask
    dns_port = 37451
    port_mark = (int.from_bytes(dns_port.to_bytes(2, "big"), "little") << 16) | 0x200
    # raw
    lay.chain("raw", "CILIUM_PRE_raw",
              f'-m mark --mark {to_proxy} -m comment --comment "cilium: NOTRACK for proxy traffic" -j CT --notrack')
    lay.chain("raw", "CILIUM_OUTPUT_raw", *[
        f'-o {dev} -m mark --mark {mark} -m comment --comment "cilium: NOTRACK for {what}" -j CT --notrack'
        for mark, what in ((proxy_reply, "proxy return traffic"), (l7_upstream, "L7 proxy upstream traffic"))
        for dev in ("lxc+", "cilium_host")])
    # mangle
    lay.chain("mangle", "CILIUM_PRE_mangle",
              "-m socket --transparent -m mark ! --mark 0x00000e00/0x00000f00 -m mark ! --mark 0x00000800/0x00000f00 "
              '-m comment --comment "cilium: any->pod redirect proxied traffic to host proxy" '
              "-j MARK --set-mark 0x00000200",
              *[f"-p {proto} -m mark --mark {port_mark:#x} "
                '-m comment --comment "cilium: TPROXY to host cilium-dns-egress proxy" '
                f"-j TPROXY --tproxy-mark 0x200 --on-ip 127.0.0.1 --on-port {dns_port}" for proto in ("tcp", "udp")])
    lay.chain("mangle", "CILIUM_POST_mangle")
    # nat
    lay.chain("nat", "CILIUM_PRE_nat")
    lay.chain("nat", "CILIUM_OUTPUT_nat")
    lay.chain("nat", "CILIUM_POST_nat",
              f'! -d {alloc} -s {alloc} ! -o cilium_+ -m comment --comment "cilium masquerade non-cluster" '
              "-j MASQUERADE",
              f'-m mark --mark {from_proxy} -m comment --comment "exclude proxy return traffic from masquerade" '
              "-j ACCEPT",
              f'! -s {alloc} ! -d {alloc} -o cilium_host -m comment --comment "cilium host->cluster masquerade" '
              f"-j SNAT --to-source {router}",
              '-s 127.0.0.1 -o cilium_host -m comment --comment "cilium host->cluster from 127.0.0.1 masquerade" '
              f"-j SNAT --to-source {router}",
              "-m mark --mark 0x00000f00/0x00000f00 -o cilium_host -m conntrack --ctstate DNAT "
              f'-m comment --comment "hairpin traffic that originated from a local pod" -j SNAT --to-source {router}')
    # filter
    lay.chain("filter", "CILIUM_INPUT",
              f'-m mark --mark {to_proxy} -m comment --comment "cilium: ACCEPT for proxy traffic" -j ACCEPT')
    lay.chain("filter", "CILIUM_OUTPUT",
              f'-m mark --mark {from_proxy} -m comment --comment "cilium: ACCEPT for proxy traffic" -j ACCEPT',
              f'-m mark --mark {l7_upstream} -m comment --comment "cilium: ACCEPT for l7 proxy upstream traffic" '
              "-j ACCEPT",
              "-m mark ! --mark 0x00000e00/0x00000f00 -m mark ! --mark 0x00000d00/0x00000f00 "
              "-m mark ! --mark 0x00000400/0x00000f00 -m mark ! --mark 0x00000a00/0x00000e00 "
              "-m mark ! --mark 0x00000800/0x00000e00 -m mark ! --mark 0x00000f00/0x00000f00 "
              '-m comment --comment "cilium: host->any mark as from host" -j MARK --set-xmark 0x00000c00/0x00000f00')
    lay.chain("filter", "CILIUM_FORWARD",
              '-o cilium_host -m comment --comment "cilium: any->cluster on cilium_host forward accept" -j ACCEPT',
              '-i cilium_host -m comment --comment "cilium: cluster->any on cilium_host forward accept (nodeport)" '
              "-j ACCEPT",
              '-i lxc+ -m comment --comment "cilium: cluster->any on lxc+ forward accept" -j ACCEPT',
              '-i cilium_net -m comment --comment "cilium: cluster->any on cilium_net forward accept (nodeport)" '
              "-j ACCEPT")
    # feeders, inserted at the top (PrependIptablesChains, the default)
    for chain, table, hook in [("CILIUM_INPUT", "filter", "INPUT"), ("CILIUM_OUTPUT", "filter", "OUTPUT"),
                               ("CILIUM_OUTPUT_raw", "raw", "OUTPUT"), ("CILIUM_POST_nat", "nat", "POSTROUTING"),
                               ("CILIUM_OUTPUT_nat", "nat", "OUTPUT"), ("CILIUM_PRE_nat", "nat", "PREROUTING"),
                               ("CILIUM_POST_mangle", "mangle", "POSTROUTING"),
                               ("CILIUM_PRE_mangle", "mangle", "PREROUTING"), ("CILIUM_PRE_raw", "raw", "PREROUTING"),
                               ("CILIUM_FORWARD", "filter", "FORWARD")]:
        lay.first(table, hook, f'-m comment --comment "cilium-feeder: {chain}" -j {chain}')
    return lay


# -------------------------------------------------------------------------------------------- AWS VPC CNI

def aws_vpc_cni(node: str) -> Layout:
    """amazon-vpc-cni-k8s (aws-node) 1.x, IPv4, AWS_VPC_K8S_CNI_EXTERNALSNAT=false, randomizeSNAT=prng, node
    port support on, VPC CIDRs 10.240.0.0/16 (nodes) and 10.244.0.0/16 (pods, a secondary CIDR)."""
    lay = Layout()
    vpc_cidrs = ["10.240.0.0/16", CLUSTER_CIDR]
    mark = "0x80"
    # each CIDR RETURN is inserted at position 1, so the last CIDR comes first
    lay.chain("nat", "AWS-SNAT-CHAIN-0",
              *[f'-d {cidr} -m comment --comment "AWS SNAT CHAIN" -j RETURN' for cidr in reversed(vpc_cidrs)],
              '! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL '
              f"-j SNAT --to-source {NODES[node]['ip']} --random-fully")
    lay.chain("nat", "AWS-CONNMARK-CHAIN-0",
              *[f'-d {cidr} -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j RETURN'
                for cidr in reversed(vpc_cidrs)],
              f'-m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark {mark}/{mark}')
    lay.last("nat", "PREROUTING",
             '-i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0',
             f'-m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --mask {mark}')
    lay.last("nat", "POSTROUTING", '-m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0')
    lay.last("mangle", "PREROUTING",
             '-m comment --comment "AWS, primary ENI" -i eth0 -m addrtype --dst-type LOCAL --limit-iface-in '
             f"-j CONNMARK --set-mark {mark}/{mark}",
             f'-m comment --comment "AWS, primary ENI" -i eni+ -j CONNMARK --restore-mark --mask {mark}',
             f'-m comment --comment "AWS, primary ENI" -i vlan+ -j CONNMARK --restore-mark --mask {mark}')
    return lay


# -------------------------------------------------------------------------------------------- kube-router

KR_SYNC_VERSION = "1764547200123456789"   # the sync's start in UnixNano, part of every per-sync chain name


def _kr_hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def _kr_uuid(chain: str, spec: list[str]) -> list[str]:
    """kube-router's positioned rules carry ' - <uuid>' in their comment (ensureTopLevelChains)."""
    uuid = _kr_hash(chain + "".join(spec))
    out = list(spec)
    index = out.index("--comment") + 1
    out[index] = out[index] + " - " + uuid
    return out


def _spec(words: list[str]) -> str:
    return " ".join(f'"{w}"' if " " in w else w for w in words)


def kube_router(node: str) -> Layout:
    """kube-router v2.11 with --run-router --run-firewall --run-service-proxy=false beside kube-proxy: pods on
    kube-bridge, node interface eth0, pod egress masquerading, iptables network policy controller."""
    lay = Layout()
    top = {"INPUT": "KUBE-ROUTER-INPUT", "FORWARD": "KUBE-ROUTER-FORWARD", "OUTPUT": "KUBE-ROUTER-OUTPUT"}
    tail, common, default = "KUBE-NWPLCY-TAIL", "KUBE-NWPLCY-COMMON", "KUBE-NWPLCY-DEFAULT"
    # KUBE-ROUTER-INPUT's positioned RETURN rules
    lay.chain("filter", top["INPUT"], *[_spec(_kr_uuid(top["INPUT"], words)) for words in [
        ["-m", "comment", "--comment", "allow traffic to primary/secondary cluster IP range", "-d", SERVICE_CIDR,
         "-j", "RETURN"],
        *[["-p", proto, "-m", "comment", "--comment", f"allow LOCAL {proto.upper()} traffic to node ports",
           "-m", "addrtype", "--dst-type", "LOCAL", "-m", "multiport", "--dports", NODE_PORT_RANGE, "-j", "RETURN"]
          for proto in ("tcp", "udp", "sctp")],
    ]])
    lay.chain("filter", top["FORWARD"])
    lay.chain("filter", top["OUTPUT"])
    lay.chain("filter", common,
              '-m comment --comment "rule to drop invalid state for pod" -m conntrack --ctstate INVALID -j DROP',
              '-m comment --comment "rule for stateful firewall for pod" -m conntrack --ctstate RELATED,ESTABLISHED '
              "-j ACCEPT",
              '-m comment --comment "allow icmp echo requests" -p icmp --icmp-type echo-request -j ACCEPT',
              '-m comment --comment "allow icmp destination unreachable messages" -p icmp '
              "--icmp-type destination-unreachable -j ACCEPT",
              '-m comment --comment "allow icmp time exceeded messages" -p icmp --icmp-type time-exceeded -j ACCEPT')
    lay.chain("filter", default,
              '-j MARK -m comment --comment "rule to mark traffic matching a network policy" '
              "--set-xmark 0x10000/0x10000")
    lay.chain("filter", tail, '-m comment --comment "accept netpol-ok" -m mark --mark 0x20000/0x20000 -j ACCEPT')
    # the network policy's chain (on every node) and its target-pods ipset
    policy_chain = "KUBE-NWPLCY-" + _kr_hash(POLICY_NS + POLICY_NAME + KR_SYNC_VERSION + "IPv4")
    dst_set = "KUBE-DST-" + _kr_hash(POLICY_NS + POLICY_NAME + "IPv4")
    match = (f'-m comment --comment "{POLICY_NS}/{POLICY_NAME} ingress any" -m set --match-set {dst_set} dst '
             f"-p TCP --dport {POLICY_PORT}")
    lay.chain("filter", policy_chain, f"{match} -j MARK --set-xmark 0x10000/0x10000",
              f"{match} -m mark --mark 0x10000/0x10000 -j RETURN")
    # a firewall chain per local pod, and the jumps into it
    for namespace, pod, ip in NODES[node]["pods"]:
        fw = "KUBE-POD-FW-" + _kr_hash(namespace + pod + KR_SYNC_VERSION)
        targeted = (namespace, pod, ip) in POLICY_TARGETS
        inserted = []  # written with -I 1, so the last written comes first
        if targeted:
            inserted.append(f'-d {ip} -m comment --comment "{POLICY_NS}/{POLICY_NAME} policy" -j {policy_chain}')
        else:
            inserted.append(f'-d {ip} -m comment --comment "default ingress" -j {default}')
        inserted.append(f'-s {ip} -m comment --comment "default egress" -j {default}')
        inserted.append(f'-m comment --comment "from local node" -m addrtype --src-type LOCAL -d {ip} -j ACCEPT')
        inserted.append(f'-m comment --comment "common netpol rules" -j {common}')
        lay.chain("filter", fw, *reversed(inserted))
        lay.chain("filter", fw,
                  f'-m comment --comment "{namespace}/{pod} log-drop" -m mark ! --mark 0x10000/0x10000 '
                  "-j NFLOG --nflog-group 100 -m limit --limit 10/minute --limit-burst 10",
                  f'-m comment --comment "{namespace}/{pod} reject" -m mark ! --mark 0x10000/0x10000 -j REJECT',
                  "-j MARK --set-mark 0/0x10000",
                  '-m comment --comment "set netpol-ok mark" -j MARK --set-mark 0x20000/0x20000')
        jump_in = f'-m comment --comment "{namespace}/{pod} in" -d {ip} -j {fw}'
        jump_out = f'-m comment --comment "{namespace}/{pod} out" -s {ip} -j {fw}'
        lay.chain("filter", top["FORWARD"], jump_in)
        lay.chain("filter", top["OUTPUT"], jump_in)
        lay.chain("filter", top["FORWARD"], f"-m physdev --physdev-is-bridged {jump_in}")
        for chain in ("INPUT", "FORWARD", "OUTPUT"):
            lay.chain("filter", top[chain], jump_out)
        lay.chain("filter", top["FORWARD"], f"-m physdev --physdev-is-bridged {jump_out}")
    for chain in top.values():
        lay.chain("filter", chain,
                  '-m comment --comment "rule to explicitly handle traffic for network policies ACCEPT/REJECT '
                  f'decision" -j {tail}',
                  '-m comment --comment "rule to explicitly ACCEPT traffic that comply to network policies" '
                  "-m mark --mark 0x20000/0x20000 -j ACCEPT")
    # jumps from the built-in chains, kept at position 1 on every sync...
    for builtin, chain in top.items():
        lay.first("filter", builtin,
                  _spec(_kr_uuid(builtin, ["-m", "comment", "--comment", "kube-router netpol", "-j", chain])))
    # ...then the routing controller's FORWARD accepts, each inserted at position 1 (so in reverse order)
    lay.first("filter", "FORWARD",
              '-m comment --comment "allow outbound node port traffic on node interface with which node ip is '
              'associated" -o eth0 -j ACCEPT',
              '-m comment --comment "allow inbound traffic to pods" -o kube-bridge -j ACCEPT',
              '-m comment --comment "allow outbound traffic from pods" -i kube-bridge -j ACCEPT')
    # pod egress masquerading, appended to POSTROUTING
    lay.last("nat", "POSTROUTING",
             "-m set --match-set kube-router-pod-subnets src -m set ! --match-set kube-router-pod-subnets dst "
             "-m set ! --match-set kube-router-node-ips dst -j MASQUERADE --random-fully")
    lay.ipsets = _sets(
        ("hash:ip family inet hashsize 1024 maxelem 65536 timeout 0", dst_set,
         [f"{ip} timeout 0" for _, _, ip in POLICY_TARGETS]),
        ("hash:net family inet hashsize 1024 maxelem 65536 timeout 0", "kube-router-pod-subnets",
         [f"{n['pod_cidr']} timeout 0" for n in NODES.values()]),
        ("hash:ip family inet hashsize 1024 maxelem 65536 timeout 0", "kube-router-node-ips",
         [f"{n['ip']} timeout 0" for n in NODES.values()]))
    return lay


# -------------------------------------------------------------------------------------------------- weave

WEAVE_SYMBOLS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789(){}[]+=_$%^!*|/?.;:@#~"


def _weave_short(text: str) -> str:
    """weave-npc's shortName: the SHA-1 of the text in base 85, least significant digit first."""
    value, out = int.from_bytes(hashlib.sha1(text.encode()).digest(), "big"), ""
    while value > 0:
        value, digit = divmod(value, len(WEAVE_SYMBOLS))
        out += WEAVE_SYMBOLS[digit]
    return "weave-" + out


def weave(node: str) -> Layout:
    """Weave Net 2.8 (weave-kube: weaver with --expect-npc and --no-masq-local, weave-npc), fastdp with the
    weave bridge and vethwe-bridge, IPALLOC_RANGE=10.244.0.0/16, the bridge exposed (weave expose)."""
    lay = Layout()
    bridge = "weave"
    # weaver's forward rules, kept at the top of FORWARD (ensureRulesAtTop)
    note = "\"NOTE: this must go before '-j KUBE-FORWARD'\""
    lay.first("filter", "FORWARD",
              f"-i {bridge} -m comment --comment {note} -j WEAVE-NPC-EGRESS",
              f"-o {bridge} -m comment --comment {note} -j WEAVE-NPC",
              f"-o {bridge} -m state --state NEW -j NFLOG --nflog-group 86",
              f"-o {bridge} -j DROP",
              f"-i {bridge} ! -o {bridge} -j ACCEPT",
              f"-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    lay.last("filter", "INPUT",
             "-p tcp --dst 127.0.0.1 --dport 6784 -m addrtype ! --src-type LOCAL "
             '-m conntrack ! --ctstate RELATED,ESTABLISHED -m comment --comment "Block non-local access to Weave Net '
             'control port" -j DROP',
             f"-i {bridge} -j WEAVE-NPC-EGRESS")
    # weave-npc's static chains
    lay.chain("filter", "WEAVE-NPC",
              "-m state --state RELATED,ESTABLISHED -j ACCEPT",
              "-d 224.0.0.0/4 -j ACCEPT",
              "-m physdev --physdev-is-bridged --physdev-out=vethwe-bridge -j ACCEPT",
              "-m state --state NEW -j WEAVE-NPC-DEFAULT",
              "-m state --state NEW -j WEAVE-NPC-INGRESS")
    lay.chain("filter", "WEAVE-NPC-EGRESS-ACCEPT", "-j MARK --set-xmark 0x40000/0x40000")
    lay.chain("filter", "WEAVE-NPC-EGRESS",
              "-m state --state RELATED,ESTABLISHED -j ACCEPT",
              "-m physdev --physdev-is-bridged --physdev-in=vethwe-bridge -j RETURN",
              "-m addrtype --dst-type LOCAL -j RETURN",
              "-d 224.0.0.0/4 -j RETURN",
              "-m state --state NEW -j WEAVE-NPC-EGRESS-DEFAULT",
              "-m state --state NEW -m mark ! --mark 0x40000/0x40000 -j WEAVE-NPC-EGRESS-CUSTOM")
    lay.chain("filter", "WEAVE-NPC-EGRESS-CUSTOM")
    # per namespace: default-allow sets (pods no policy selects) and their bypass rules
    ipsets = []
    for namespace in NAMESPACES:
        ingress, egress = _weave_short("ingress-default-allow:" + namespace), _weave_short(
            "egress-default-allow:" + namespace)
        pods = [(n, p, ip) for n, p, ip in ALL_PODS if n == namespace]
        pod_entry = lambda n, p, ip: f'{ip} comment "namespace: {n}, pod: {p}"'  # noqa: E731
        ipsets += [("hash:ip family inet hashsize 1024 maxelem 65536 comment", ingress,
                    [pod_entry(*pod) for pod in pods if pod not in POLICY_TARGETS]),
                   ("hash:ip family inet hashsize 1024 maxelem 65536 comment", egress,
                    [pod_entry(*pod) for pod in pods]),
                   ("hash:ip family inet hashsize 1024 maxelem 65536 comment", _weave_short(namespace + ":"),
                    [pod_entry(*pod) for pod in pods])]
        lay.chain("filter", "WEAVE-NPC-DEFAULT",
                  f"-m set --match-set {ingress} dst -j ACCEPT -m comment --comment "
                  f'"DefaultAllow ingress isolation for namespace: {namespace}"')
        lay.chain("filter", "WEAVE-NPC-EGRESS-DEFAULT", *[
            f"-m set --match-set {egress} src -j {target} -m comment --comment "
            f'"DefaultAllow egress isolation for namespace: {namespace}"' for target in ("WEAVE-NPC-EGRESS-ACCEPT",
                                                                                        "RETURN")])
    # the network policy: its target selector's set, and the ingress rule
    target = _weave_short(f"{POLICY_NS}:app=web")
    ipsets.append(("hash:ip family inet hashsize 1024 maxelem 65536 comment", target,
                   [f'{ip} comment "namespace: {n}, pod: {p}"' for n, p, ip in POLICY_TARGETS]))
    lay.chain("filter", "WEAVE-NPC-INGRESS",
              f"-p TCP -m set --match-set {target} dst --dport {POLICY_PORT} -m comment --comment "
              f'"anywhere -> pods: namespace: {POLICY_NS}, selector: app=web (ingress)" -j ACCEPT')
    # nat: masquerading of the exposed range, except to locally allocated ranges (--no-masq-local)
    lay.chain("nat", "WEAVE",
              '-m set --match-set weaver-no-masq-local dst -m comment --comment "Prevent SNAT to locally running '
              'containers" -j RETURN',
              f"-s {CLUSTER_CIDR} -d 224.0.0.0/4 -j RETURN",
              f"-d {CLUSTER_CIDR} ! -s {CLUSTER_CIDR} -j MASQUERADE",
              f"-s {CLUSTER_CIDR} ! -d {CLUSTER_CIDR} -j MASQUERADE")
    lay.last("nat", "POSTROUTING", "-j WEAVE")
    ipsets.append(("hash:net family inet hashsize 1024 maxelem 65536 comment", "weaver-no-masq-local",
                   [NODES[node]["pod_cidr"]]))
    # the canary chains weaver watches to notice a flush of its rules
    for table in ("mangle", "nat", "filter"):
        lay.chain(table, "WEAVE-CANARY")
    lay.ipsets = _sets(*ipsets)
    return lay


CNIS = {"calico": calico, "flannel": flannel, "cilium": cilium, "docker": docker, "aws-vpc-cni": aws_vpc_cni,
        "kube-router": kube_router, "weave": weave}


# ----------------------------------------------------------------------------------------------- composing

def _parse_restore(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """table -> (chain declarations, -A lines) of an iptables-restore text."""
    tables: dict[str, tuple[list[str], list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], ([], []))
        elif line.startswith(":"):
            current[0].append(line)
        elif line.startswith("-A "):
            current[1].append(line)
    return tables


def compose(kube_proxy: str, lay: Layout) -> str:
    kube = _parse_restore(kube_proxy)
    jumps = _parse_restore(base_rules())
    out = []
    for table in TABLES:
        decls, rules = [], []
        for builtin in BUILTIN[table]:
            decls.append(f":{builtin} {lay.policies.get((table, builtin), 'ACCEPT')} [0:0]")
            kube_jumps = [r for r in jumps.get(table, ([], []))[1] if r.split()[1] == builtin]
            rules += [f"-A {builtin} {spec}" for spec in lay.before.get((table, builtin), [])]
            rules += kube_jumps
            rules += [f"-A {builtin} {spec}" for spec in lay.after.get((table, builtin), [])]
        kube_decls, kube_rules = kube.get(table, ([], []))
        decls += kube_decls
        rules += kube_rules
        for chain, specs in lay.chains.get(table, {}).items():
            decls.append(f":{chain} - [0:0]")
            rules += [f"-A {chain} {spec}" for spec in specs]
        if len(decls) == len(BUILTIN[table]) and not rules:
            continue
        out.append(f"*{table}\n" + "\n".join(decls + rules) + "\nCOMMIT\n")
    return "".join(out)


def _exec(ns: str, *args: str, stdin: str | None = None) -> str:
    result = _run(["ip", "netns", "exec", ns, *args], stdin=stdin)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed in {ns}: {result.stderr.strip()}")
    return result.stdout


def generate(cni: str) -> None:
    cluster, _ = load(str(HERE / "cluster.k"))
    texts = compile_cluster(cluster)
    outdir = HERE / cni
    outdir.mkdir(exist_ok=True)
    for node in NODES:
        lay = CNIS[cni](node)
        text = compose(texts[node], lay)
        with throwaway_netns(NS_PREFIX) as ns:
            if lay.ipsets:
                _exec(ns, "ipset", "restore", stdin=lay.ipsets)
            ok, stderr = iptables_restore(ns, text)
            if not ok:
                raise RuntimeError(f"{cni}/{node}: iptables-restore refused the rules:\n{stderr}\n{text}")
            (outdir / f"{node}.rules").write_text(_exec(ns, "iptables-save"))
            if lay.ipsets:
                (outdir / f"{node}.ipsets").write_text(_exec(ns, "ipset", "save"))
            else:
                (outdir / f"{node}.ipsets").unlink(missing_ok=True)
        print(f"{cni}/{node}: {sum(1 for line in text.splitlines() if line.startswith('-A'))} rules")


def main(argv: list[str]) -> int:
    for cni in argv or list(CNIS):
        generate(cni)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
