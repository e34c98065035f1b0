"""The small rulesets whose acceptance by iptables-restore / ip6tables-restore was measured on the kernel.

One table, two users: scripts/measure_iptables_validity.py restores each probe and writes what happened
(docs/iptables-validity.md), and tests/ingest/test_validity.py checks that kspec refuses exactly the probes
the kernel refuses. A probe is one or two ``*table ... COMMIT`` blocks, restored without --noflush (the
table is replaced), so probes do not depend on each other.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

BUILTINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}

# target -> (IPv4 rule body, IPv6 rule body, the kspec.rules.iptables.ruleset class kspec reads it into). The options are
# the least each target needs; a target whose class the IR lacks is measured but not compared.
TARGETS = {
    "ACCEPT": ("-j ACCEPT", "-j ACCEPT", "Accept"),
    "DROP": ("-j DROP", "-j DROP", "Drop"),
    "REJECT": ("-j REJECT", "-j REJECT", "Reject"),
    "RETURN": ("-j RETURN", "-j RETURN", "Return"),
    "DNAT": ("-j DNAT --to-destination 10.0.0.1", "-j DNAT --to-destination fd00::1", "Dnat"),
    "SNAT": ("-j SNAT --to-source 10.0.0.1", "-j SNAT --to-source fd00::1", "Snat"),
    "MASQUERADE": ("-j MASQUERADE", "-j MASQUERADE", "Masquerade"),
    "MARK": ("-j MARK --set-xmark 0x1/0xffffffff", "-j MARK --set-xmark 0x1/0xffffffff", "MarkTarget"),
    "REDIRECT": ("-p tcp -j REDIRECT --to-ports 8080", "-p tcp -j REDIRECT --to-ports 8080", "Redirect"),
    "LOG": ("-j LOG", "-j LOG", "Log"),
    "CT": ("-j CT --notrack", "-j CT --notrack", "CtTarget"),
    "NOTRACK": ("-j NOTRACK", "-j NOTRACK", "CtTarget"),
    "TCPMSS": ("-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",) * 2 + ("TcpMss",),
    "CONNMARK": ("-j CONNMARK --set-xmark 0x1/0xffffffff",) * 2 + ("ConnmarkTarget",),
    "NFLOG": ("-j NFLOG", "-j NFLOG", "Nflog"),
}
REJECT_TYPES = {
    4: ("icmp-net-unreachable", "net-unreach", "icmp-host-unreachable", "host-unreach", "icmp-proto-unreachable",
        "proto-unreach", "icmp-port-unreachable", "port-unreach", "icmp-net-prohibited", "net-prohib",
        "icmp-host-prohibited", "host-prohib", "tcp-reset", "tcp-rst", "icmp-admin-prohibited", "admin-prohib"),
    6: ("icmp6-no-route", "no-route", "icmp6-adm-prohibited", "adm-prohibited", "icmp6-addr-unreachable",
        "addr-unreach", "icmp6-port-unreachable", "port-unreach", "tcp-reset", "tcp-rst", "icmp6-policy-fail",
        "policy-fail", "icmp6-reject-route", "reject-route"),
}


@dataclass(frozen=True)
class Probe:
    family: int  # 4: iptables-restore, 6: ip6tables-restore
    group: str  # matrix, reject-with, structure, nat-port, tcpmss
    label: str  # what the probe is, e.g. "DNAT nat POSTROUTING -j U"
    text: str
    target: str | None = None  # matrix probes: the target (whose IR class may be missing)


def table(name: str, chains: list[str], rules: list[str], policies: dict[str, str] | None = None) -> str:
    """A restore block: the table's built-in chains (policy ACCEPT unless given), the user chains, the rules."""
    policies = policies or {}
    head = [f":{c} {policies.get(c, 'ACCEPT')} [0:0]" for c in BUILTINS[name]]
    return "\n".join([f"*{name}", *head, *[f":{c} - [0:0]" for c in chains], *rules, "COMMIT", ""])


def anchor(family: int) -> str:
    """A source match that tells the family (kspec infers a ruleset's family from its addresses)."""
    return "-s 10.0.0.0/8 " if family == 4 else "-s fd00::/8 "


def probes(family: int) -> Iterator[Probe]:
    yield from matrix(family)
    yield from reject_types(family)
    yield from structure(family)
    yield from nat_ports(family)
    yield from tcpmss(family)
    yield from addrtypes(family)


def matrix(family: int) -> Iterator[Probe]:
    """Each target in each built-in chain; in a user chain that only it reaches, by -j and by -g; and in a
    user chain nothing reaches."""
    for target, (v4, v6, _) in TARGETS.items():
        body = v4 if family == 4 else v6
        for name, chains in BUILTINS.items():
            for chain in chains:
                yield Probe(family, "matrix", f"{target} {name} {chain}", table(name, [], [f"-A {chain} {body}"]),
                            target)
                for how in ("-j", "-g"):
                    yield Probe(family, "matrix", f"{target} {name} {chain} {how} U",
                                table(name, ["U"], [f"-A {chain} {how} U", f"-A U {body}"]), target)
            yield Probe(family, "matrix", f"{target} {name} unreached U", table(name, ["U"], [f"-A U {body}"]),
                        target)


def reject_types(family: int) -> Iterator[Probe]:
    src = anchor(family)
    known = REJECT_TYPES[4] + tuple(t for t in REJECT_TYPES[6] if t not in REJECT_TYPES[4])
    for kind in known + ("icmp-foo",):
        tcp = "-p tcp " if kind in ("tcp-reset", "tcp-rst") else ""
        yield Probe(family, "reject-with", f"{kind} {tcp.strip()}".strip(),
                    table("filter", [], [f"-A INPUT {src}{tcp}-j REJECT --reject-with {kind}"]))
    for proto in ("! -p tcp ", "-p udp ", "", "-p 6 ", "-p TCP "):
        yield Probe(family, "reject-with", f"tcp-reset {proto.strip() or 'no -p'}",
                    table("filter", [], [f"-A INPUT {src}{proto}-j REJECT --reject-with tcp-reset"]))
    # The kernel checks the rule itself: a jump only TCP takes does not make the chain's rules TCP-only.
    yield Probe(family, "reject-with", "tcp-reset in U, INPUT -p tcp -j U", table(
        "filter", ["U"], ["-A INPUT -p tcp -j U", f"-A U {src}-j REJECT --reject-with tcp-reset"]))
    yield Probe(family, "reject-with", "tcp-reset, no -p, in unreached U", table(
        "filter", ["U"], [f"-A U {src}-j REJECT --reject-with tcp-reset"]))


def structure(family: int) -> Iterator[Probe]:
    for name, hook in (("filter", "INPUT"), ("nat", "PREROUTING")):
        yield from loops(family, name, hook)
        other = BUILTINS[name][-1]
        for label, chains, rules in (
                (f"{hook} -j NOPE (undeclared)", [], [f"-A {hook} -j NOPE"]),
                ("U -j NOPE (undeclared), U unreached", ["U"], ["-A U -j NOPE"]),
                (f"{hook} -j RETURN", [], [f"-A {hook} -j RETURN"]),
                (f"U -j {other} (a built-in chain)", ["U"], [f"-A {hook} -j U", f"-A U -j {other}"]),
                (f"{hook} -j {other} (a built-in chain)", [], [f"-A {hook} -j {other}"])):
            yield Probe(family, "structure", f"{name}: {label}", table(name, chains, rules))
    yield Probe(family, "structure", "filter: INPUT -j KUBE-X, KUBE-X declared in nat only",
                table("nat", ["KUBE-X"], []) + table("filter", [], ["-A INPUT -j KUBE-X"]))
    yield Probe(family, "structure", "nat: policy PREROUTING DROP", table("nat", [], [], {"PREROUTING": "DROP"}))
    yield from depths(family)


def loops(family: int, name: str, hook: str) -> Iterator[Probe]:
    for label, chains, rules in (
            ("U -j U, U unreached", ["U"], ["-A U -j U"]),
            (f"U -j U, {hook} -j U", ["U"], [f"-A {hook} -j U", "-A U -j U"]),
            ("U -g U, U unreached", ["U"], ["-A U -g U"]),
            (f"U -g U, {hook} -j U", ["U"], [f"-A {hook} -j U", "-A U -g U"]),
            ("A -j B, B -j A, unreached", ["A", "B"], ["-A A -j B", "-A B -j A"]),
            (f"A -j B, B -j A, {hook} -j A", ["A", "B"], [f"-A {hook} -j A", "-A A -j B", "-A B -j A"]),
            (f"A -g B, B -j A, {hook} -j A", ["A", "B"], [f"-A {hook} -j A", "-A A -g B", "-A B -j A"]),
            (f"A -j B, B -j C, C -j A, {hook} -j A", ["A", "B", "C"],
             [f"-A {hook} -j A", "-A A -j B", "-A B -j C", "-A C -j A"]),
            (f"A -j B twice, B -j C, {hook} -j A (no loop)", ["A", "B", "C"],
             [f"-A {hook} -j A", "-A A -j B", "-A A -j B", "-A B -j C", "-A C -j RETURN"])):
        yield Probe(family, "structure", f"{name}: {label}", table(name, chains, rules))


def depths(family: int) -> Iterator[Probe]:
    """How many user chains may nest below a built-in chain (nf_tables counts every jump and goto)."""
    for depth in (14, 15, 16, 17):
        chains = [f"C{i}" for i in range(1, depth + 1)]
        for how in ("-j", "-g"):
            rules = ["-A INPUT -j C1", *[f"-A C{i} {how} C{i + 1}" for i in range(1, depth)]]
            yield Probe(family, "structure", f"filter: INPUT -j C1 {how} ... C{depth} ({depth} deep)",
                        table("filter", chains, rules))
    longest = [f"-A C{i} -j C{i + 1}" for i in range(1, 15)] + ["-A C15 -j X"]
    chains = [f"C{i}" for i in range(1, 16)] + ["X"]
    yield Probe(family, "structure", "filter: INPUT -j X, INPUT -j C1 ... C15 -j X (X 2 and 16 deep)",
                table("filter", chains, ["-A INPUT -j X", "-A INPUT -j C1", *longest]))
    yield Probe(family, "structure", "filter: 20 deep, unreached", table(
        "filter", [f"C{i}" for i in range(1, 21)], [f"-A C{i} -j C{i + 1}" for i in range(1, 20)]))


def nat_ports(family: int) -> Iterator[Probe]:
    """A NAT target given a port, under each kind of -p."""
    v4, src = family == 4, anchor(family)
    dnat, snat = ("10.0.0.1:80", "10.0.0.1:1000") if v4 else ("[fd00::1]:80", "[fd00::1]:1000")
    icmp = "icmp" if v4 else "ipv6-icmp"
    for proto in ("-p tcp ", "-p udp ", "-p sctp ", "", "! -p tcp ", f"-p {icmp} ", "-p 6 "):
        what = proto.strip() or "no -p"
        for label, rule in (
                ("DNAT to a port", f"-A PREROUTING {proto}-j DNAT --to-destination {dnat}"),
                ("SNAT to a port", f"-A POSTROUTING {proto}-j SNAT --to-source {snat}"),
                ("MASQUERADE --to-ports", f"-A POSTROUTING {src}{proto}-j MASQUERADE --to-ports 1000-2000"),
                ("REDIRECT --to-ports", f"-A PREROUTING {src}{proto}-j REDIRECT --to-ports 8080")):
            yield Probe(family, "nat-port", f"{label}, {what}", table("nat", [], [rule]),
                        "REDIRECT" if label.startswith("REDIRECT") else None)
    yield Probe(family, "nat-port", "DNAT without a port, no -p", table(
        "nat", [], [f"-A PREROUTING -j DNAT --to-destination {dnat.rsplit(':', 1)[0].strip('[]')}"]))


def tcpmss(family: int) -> Iterator[Probe]:
    """TCPMSS without the SYN match iptables-legacy wants, and --set-mss where clamping is refused."""
    for label, rule in (("--clamp-mss-to-pmtu, -p tcp only, FORWARD", "-A FORWARD -p tcp -j TCPMSS "
                                                                       "--clamp-mss-to-pmtu"),
                        ("--clamp-mss-to-pmtu, no -p, FORWARD", "-A FORWARD -j TCPMSS --clamp-mss-to-pmtu"),
                        ("--set-mss 1400, INPUT", "-A INPUT -p tcp -j TCPMSS --set-mss 1400")):
        yield Probe(family, "tcpmss", label, table("filter", [], [rule]), "TCPMSS")


ADDRTYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE", "UNREACHABLE",
             "PROHIBIT", "THROW", "NAT", "XRESOLVE")


def addrtypes(family: int) -> Iterator[Probe]:
    """Every address type (IPv6 has fewer route types), and --limit-iface-in/out from every hook (mangle
    has all five), directly and through a user chain."""
    src = anchor(family)
    for kind in ADDRTYPES:
        yield Probe(family, "addrtype", f"--dst-type {kind}",
                    table("filter", [], [f"-A INPUT {src}-m addrtype --dst-type {kind} -j ACCEPT"]))
    yield Probe(family, "addrtype", "--src-type UNICAST,BROADCAST",
                table("filter", [], [f"-A INPUT {src}-m addrtype --src-type UNICAST,BROADCAST -j ACCEPT"]))
    for limit in ("--limit-iface-in", "--limit-iface-out"):
        rule = f"{src}-m addrtype --dst-type LOCAL {limit} -j ACCEPT"
        for chain in BUILTINS["mangle"]:
            yield Probe(family, "addrtype", f"{limit} mangle {chain}", table("mangle", [], [f"-A {chain} {rule}"]))
            yield Probe(family, "addrtype", f"{limit} mangle {chain} -j U",
                        table("mangle", ["U"], [f"-A {chain} -j U", f"-A U {rule}"]))
        yield Probe(family, "addrtype", f"{limit} mangle unreached U", table("mangle", ["U"], [f"-A U {rule}"]))
