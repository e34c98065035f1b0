"""kspec refuses exactly the rulesets iptables-restore and the kernel refuse (kspec.rules.iptables.validity).

Each refused case has its exact diagnostics, through the parser and through ``kspec verify --rules`` (exit
2); each accepted case loads; kube-proxy's own rules are never refused; and, with root, every probe of
tests/validity_cases.py is restored in a throwaway namespace: kspec refuses it iff the kernel does.
"""
from __future__ import annotations

import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kspec.cli import main
from kspec.diagnostics import KspecError
from kspec.rules.iptables import ruleset as rs
from kspec.rules.iptables import validity
from kspec.rules.iptables.iptables_save import parse_iptables_save
from tests.conftest import REPO, corpus_cases
from tests.netns import iptables_restore, throwaway_netns
from tests.validity_cases import TARGETS, probes

SPEC = REPO / "specs" / "clusterip.k"  # any spec: the dump is refused before the spec's checks run
F = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
N = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
DEEP = 16  # user chains below INPUT: one too many for nf_tables
_NEED_TCP = "needs '-p tcp' on the same rule (the kernel refuses a TCP reset for packets that may not be TCP)"
_NEED_PORTS = ("to a port needs '-p tcp', '-p udp', '-p sctp' or '-p dccp' on the same rule (iptables-restore: "
               "Need TCP, UDP, SCTP or DCCP with port specification)")
_REJECT = "REJECT is only valid in the filter table (INPUT, FORWARD, OUTPUT, and chains they reach); here it is in"
_DNAT = "DNAT is only valid in nat PREROUTING and OUTPUT (and chains they reach); here it is in"
_LOOP = "the kernel refuses a loop that a built-in chain reaches"

# name -> (dump, its diagnostics as "line:column: message")
REFUSED = {
    "reject-in-nat-prerouting": (N + "-A PREROUTING -p tcp -j REJECT\nCOMMIT\n",
                                 [f"6:25: {_REJECT} nat PREROUTING"]),
    "reject-in-mangle-user-chain": ("*mangle\n:KUBE-X - [0:0]\n-A KUBE-X -j REJECT --reject-with "
                                    "icmp-host-prohibited\nCOMMIT\n",
                                    [f"3:14: {_REJECT} chain KUBE-X of the mangle table"]),
    "dnat-in-filter": (F + "-A INPUT -p tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n",
                       [f"5:20: {_DNAT} filter INPUT"]),
    "dnat-in-postrouting": (N + "-A POSTROUTING -p tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n",
                            [f"6:26: {_DNAT} nat POSTROUTING"]),
    "dnat-in-a-chain-postrouting-reaches": (
        N + ":KUBE-SEP-X - [0:0]\n-A PREROUTING -j KUBE-SEP-X\n-A POSTROUTING -g KUBE-SEP-X\n"
            "-A KUBE-SEP-X -p tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n",
        [f"9:25: {_DNAT} chain KUBE-SEP-X, which nat POSTROUTING reaches"]),
    "masquerade-in-prerouting": (N + "-A PREROUTING -j MASQUERADE\nCOMMIT\n",
                                 ["6:18: MASQUERADE is only valid in nat POSTROUTING (and chains it reaches); here "
                                  "it is in nat PREROUTING"]),
    "snat-in-a-chain-output-reaches": (N + ":X - [0:0]\n-A OUTPUT -j X\n-A X -j SNAT --to-source 10.0.0.1\nCOMMIT\n",
                                       ["8:9: SNAT is only valid in nat INPUT and POSTROUTING (and chains they "
                                        "reach); here it is in chain X, which nat OUTPUT reaches"]),
    "drop-in-nat": (N + ":X - [0:0]\n-A X -j DROP\nCOMMIT\n",
                    ["7:9: DROP is not valid in the nat table (iptables-restore: the nat table is not intended for "
                     "filtering); here it is in chain X of the nat table"]),
    "tcp-reset-without-p-tcp": (F + "-A INPUT -s 10.0.0.0/8 -j REJECT --reject-with tcp-reset\nCOMMIT\n",
                                [f"5:48: --reject-with tcp-reset {_NEED_TCP}"]),
    "tcp-reset-with-not-p-tcp": (F + "-A INPUT ! -p tcp -j REJECT --reject-with tcp-reset\nCOMMIT\n",
                                 [f"5:43: --reject-with tcp-reset {_NEED_TCP}"]),
    "tcp-rst-with-p-udp": (F + "-A INPUT -p udp -j REJECT --reject-with tcp-rst\nCOMMIT\n",
                           [f"5:41: --reject-with tcp-rst {_NEED_TCP}"]),
    "unknown-reject-type": (F + "-A INPUT -j REJECT --reject-with icmp-foo\nCOMMIT\n",
                            ["5:34: unknown reject type 'icmp-foo' (iptables-restore refuses it)"]),
    "ipv4-reject-type-in-ipv6-rules": (
        F + "-A INPUT -s fd00::/8 -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n",
        ["5:46: reject type 'icmp-host-prohibited' only exists for IPv4 (iptables), and these are IPv6 "
         "(ip6tables) rules (they hold IPv6 addresses)"]),
    "tcp-rst-in-ipv6-rules": (F + "-A INPUT -s fd00::/8 -p tcp -j REJECT --reject-with tcp-rst\nCOMMIT\n",
                              ["5:53: reject type 'tcp-rst' only exists for IPv4 (iptables), and these are IPv6 "
                               "(ip6tables) rules (they hold IPv6 addresses)"]),
    "ipv4-default-reject-type-in-ipv6-rules": (
        F + "-A INPUT -s fd00::/8 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n",
        ["5:46: reject type 'icmp-port-unreachable' only exists for IPv4 (iptables), and these are IPv6 "
         "(ip6tables) rules (they hold IPv6 addresses)"]),
    "self-loop": (F + ":KUBE-X - [0:0]\n-A INPUT -j KUBE-X\n-A KUBE-X -j KUBE-X\nCOMMIT\n",
                  [f"7:14: jump loop KUBE-X -> KUBE-X, reached from filter INPUT: {_LOOP}"]),
    "two-chain-loop": (F + ":A - [0:0]\n:B - [0:0]\n-A FORWARD -j A\n-A A -j B\n-A B -j A\nCOMMIT\n",
                       [f"9:9: jump loop A -> B -> A, reached from filter FORWARD: {_LOOP}"]),
    "goto-then-jump-loop": (F + ":A - [0:0]\n:B - [0:0]\n-A OUTPUT -j A\n-A A -g B\n-A B -j A\nCOMMIT\n",
                            [f"9:9: jump loop A -> B -> A, reached from filter OUTPUT: {_LOOP}"]),
    "undeclared-chain": (F + "-A INPUT -j KUBE-NOWHERE\nCOMMIT\n",
                         ["5:13: jump to undeclared chain 'KUBE-NOWHERE' in table 'filter'"]),
    "chain-of-another-table": (N + ":KUBE-X - [0:0]\nCOMMIT\n" + F + "-A INPUT -j KUBE-X\nCOMMIT\n",
                               ["12:13: jump to undeclared chain 'KUBE-X' in table 'filter'"]),
    "jump-to-a-built-in-chain": (F + ":X - [0:0]\n-A INPUT -j X\n-A X -j OUTPUT\nCOMMIT\n",
                                 ["7:9: jump to built-in chain 'OUTPUT': only user-defined chains can be jumped to "
                                  "(the kernel refuses it)"]),
    "too-deep": (F + "".join(f":C{i} - [0:0]\n" for i in range(1, DEEP + 1)) + "-A INPUT -j C1\n"
                 + "".join(f"-A C{i} -j C{i + 1}\n" for i in range(1, DEEP)) + "COMMIT\n",
                 ["36:11: chains nest too deep: filter INPUT -> " + " -> ".join(f"C{i}" for i in range(1, DEEP + 1))
                  + " puts C16 16 user chains below INPUT; the kernel (nf_tables) allows 15"]),
    "dnat-port-without-protocol": (N + "-A PREROUTING -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n",
                                   [f"6:40: DNAT {_NEED_PORTS}"]),
    "masquerade-ports-without-protocol": (N + "-A POSTROUTING -j MASQUERADE --to-ports 1000-2000\nCOMMIT\n",
                                          [f"6:41: MASQUERADE {_NEED_PORTS}"]),
    "dnat-port-with-icmpv6": (N + "-A PREROUTING -p ipv6-icmp -j DNAT --to-destination [fd00::1]:80\nCOMMIT\n",
                              [f"6:53: DNAT {_NEED_PORTS}"]),
}

ACCEPTED = {
    "reject-in-a-filter-chain": F + ":KUBE-X - [0:0]\n-A FORWARD -j KUBE-X\n-A KUBE-X -j REJECT\nCOMMIT\n",
    "dnat-in-a-nat-chain-nothing-reaches": N + ":X - [0:0]\n-A X -p tcp -j DNAT --to-destination 10.0.0.1:80\n"
                                               "COMMIT\n",
    "masquerade-in-a-chain-postrouting-reaches": N + ":X - [0:0]\n-A POSTROUTING -j X\n-A X -j MASQUERADE\n"
                                                     "COMMIT\n",
    "loop-nothing-reaches": F + ":A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -g A\nCOMMIT\n",
    "same-jump-twice": F + ":A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A A -j B\nCOMMIT\n",
    "return-in-a-built-in-chain": F + "-A INPUT -j RETURN\nCOMMIT\n",
    "fifteen-deep": F + "".join(f":C{i} - [0:0]\n" for i in range(1, 16)) + "-A INPUT -j C1\n"
                    + "".join(f"-A C{i} -g C{i + 1}\n" for i in range(1, 15)) + "COMMIT\n",
    "nat-policy-drop": "*nat\n:PREROUTING DROP [0:0]\nCOMMIT\n",
    "dnat-port-with-not-p-tcp": N + "-A PREROUTING ! -p tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n",
    "dnat-port-with-icmp-v4": N + "-A PREROUTING -p icmp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n",
    "dnat-without-port-or-protocol": N + "-A PREROUTING -j DNAT --to-destination 10.0.0.1\nCOMMIT\n",
    "tcp-reset-with-p-6": F + "-A INPUT -p 6 -j REJECT --reject-with tcp-reset\nCOMMIT\n",
    "port-unreach-in-ipv6": F + "-A INPUT -s fd00::/8 -j REJECT --reject-with port-unreach\nCOMMIT\n",
    "ipv6-reject-type-without-addresses": F + "-A INPUT -j REJECT --reject-with icmp6-adm-prohibited\nCOMMIT\n",
}


def _compact(file: str, expected: list[str]) -> list[str]:
    """``kspec --compact``'s lines for diagnostics written "line:column: message"."""
    return [f"{file}:{where}: error: {message}" for where, message in (e.split(": ", 1) for e in expected)]


def _refusal(text: str, file: str = "d.rules") -> list[str]:
    """The compact diagnostics parsing ``text`` gives ([] if it loads)."""
    try:
        parse_iptables_save(text, file)
    except KspecError as err:
        return str(err).splitlines()
    return []


@pytest.mark.parametrize("name", REFUSED)
def test_refused_with_position_and_reason(name: str):
    text, expected = REFUSED[name]
    assert _refusal(text) == _compact("d.rules", expected)


@pytest.mark.parametrize("name", REFUSED)
def test_cli_exits_2_with_the_positioned_message(name: str, tmp_path: Path):
    text, expected = REFUSED[name]
    dump = tmp_path / f"{name}.rules"
    dump.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    code = main(["--compact", "verify", "--rules", str(dump), "--node", "node1", str(SPEC)], out, err)
    assert code == 2
    assert err.getvalue().splitlines() == _compact(str(dump), expected)


def test_the_kspec_command_exits_2(tmp_path: Path):
    """The installed command, as a user runs it (the tests above call its main in-process)."""
    text, expected = REFUSED["dnat-in-a-chain-postrouting-reaches"]
    dump = tmp_path / "node1.rules"
    dump.write_text(text)
    run = subprocess.run([sys.executable, "-m", "kspec.cli", "verify", "--rules", str(dump), "--node", "node1",
                          str(SPEC)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.splitlines()[0] == _compact(str(dump), expected)[0]
    assert "-A KUBE-SEP-X -p tcp -j DNAT --to-destination 10.0.0.1:80" in run.stderr  # the snippet


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted(name: str):
    assert _refusal(ACCEPTED[name]) == []


def test_unreached_chains_are_checked_for_the_table_only():
    """A chain nothing reaches has no hooks (the kernel checks hooks through the chains a built-in chain
    reaches), but a target's table is checked wherever it stands."""
    assert _refusal(N + ":X - [0:0]\n-A X -j SNAT --to-source 10.0.0.1\n-A X -j MASQUERADE\nCOMMIT\n") == []
    [refused] = _refusal(F + ":X - [0:0]\n-A X -j MASQUERADE\nCOMMIT\n")
    assert refused.startswith("d.rules:6:9: error: MASQUERADE is only valid in nat POSTROUTING")


def test_errors_are_limited_and_in_file_order():
    text = N + "".join("-A PREROUTING -j REJECT\n" for _ in range(80)) + "COMMIT\n"
    lines = _refusal(text)
    assert len(lines) == 50 and lines[0].startswith("d.rules:6:18:") and lines[-1].startswith("d.rules:55:18:")


def test_family_is_taken_when_given():
    ruleset = parse_iptables_save(F + "-A INPUT -j REJECT --reject-with icmp6-adm-prohibited\nCOMMIT\n")
    assert validity.check_ruleset(ruleset, family=6) == []
    [diag] = validity.check_ruleset(ruleset, family=4)
    assert "only exists for IPv6 (ip6tables), and these are IPv4 (iptables) rules" in diag.message


def test_require_valid_checks_a_merged_ruleset():
    """kube-proxy's restore is parsed as a partial text and merged with its built-in jumps: the merge is what
    the kernel holds, so the merge is what must be valid."""
    from kspec.verifier.engines.tracer import kube_proxy_state

    restore = "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-X - [0:0]\n-A KUBE-SERVICES -j KUBE-X\n-A KUBE-X -j REJECT\nCOMMIT\n"
    merged = kube_proxy_state(restore, "node.rules")
    with pytest.raises(KspecError) as info:
        validity.require_valid(merged)
    assert str(info.value) == f"node.rules:5:14: error: {_REJECT} chain KUBE-X of the nat table"


# ------------------------------------------------------------------------------------------ kube-proxy


def _corpus_runs() -> dict[str, list[Path]]:
    """kube-proxy corpus dumps by test: the steps of one test (TestSyncProxyRulesRepeated__01..10) are syncs
    of one node in order, the partial ones only meaningful on top of the ones before."""
    runs: dict[str, list[Path]] = {}
    for case in corpus_cases("expected.iptables") + corpus_cases("rules.iptables"):
        for name in ("expected.iptables", "rules.iptables"):
            if (case / name).exists():
                runs.setdefault(f"{case.name.split('__')[0]}/{name}", []).append(case / name)
    return {key: sorted(paths) for key, paths in runs.items()}


@pytest.mark.parametrize("run", _corpus_runs(), ids=str)
def test_kube_proxy_corpus_is_never_refused(run: str):
    """Every dump of kube-proxy's conformance corpus as a node holds it: kube-proxy's built-in jumps, then
    each sync of the test restored (--noflush) on top of the syncs before it."""
    from kspec.verifier.engines.tracer import kube_proxy_state

    first, *rest = _corpus_runs()[run]
    state = kube_proxy_state(first.read_text(), str(first))
    assert validity.check_ruleset(state) == [], first
    for path in rest:
        sync = parse_iptables_save(path.read_text(), str(path), require_declared_jumps=False)
        state = state.restore(sync, flush_declared_builtins=False)
        assert validity.check_ruleset(state) == [], path


@pytest.mark.parametrize("spec", sorted((REPO / "specs").glob("*.k")) + [REPO / "tests/data/specs/ipv6-nodeport.k"],
                         ids=lambda p: p.stem)
def test_compiled_specs_are_never_refused(spec: Path):
    from kspec.compiler import compile_cluster
    from kspec.grammar import load
    from kspec.verifier.engines.tracer import kube_proxy_state

    cluster, _ = load(str(spec))
    for family in cluster.families():
        for node, text in compile_cluster(cluster, family).items():
            assert validity.check_ruleset(parse_iptables_save(text, node)) == [], node  # as restored alone
            assert validity.check_ruleset(kube_proxy_state(text, node)) == [], node  # with the built-in jumps


# ------------------------------------------------------------------------------------------ the kernel


def _comparable(probe) -> bool:
    """Whether kspec reads the probe's target at all (the IR may lack some measured targets)."""
    return probe.target is None or hasattr(rs, TARGETS[probe.target][2])


def _kernel_verdicts(family: int) -> list[tuple[object, bool, str]]:
    cases = [probe for probe in probes(family) if _comparable(probe)]
    with throwaway_netns() as ns:
        return [(probe, *iptables_restore(ns, probe.text, family == 6)) for probe in cases]


@pytest.mark.netns
def test_kspec_refuses_exactly_what_the_kernel_refuses():
    """Every probe of tests/validity_cases.py (the matrix of docs/iptables-validity.md), both families: the
    kernel's verdict against kspec's. One namespace per family, restored side by side."""
    with ThreadPoolExecutor(2) as pool:
        verdicts = [v for family in pool.map(_kernel_verdicts, (4, 6)) for v in family]
    wrong = []
    for probe, accepted, stderr in verdicts:
        refusal = _refusal(probe.text, "probe.rules")
        if bool(refusal) == accepted:
            said = refusal[0] if refusal else "accepted"
            wrong.append(f"IPv{probe.family} {probe.group} '{probe.label}': kernel "
                         f"{'accepts' if accepted else 'refuses (' + stderr.strip()[-120:] + ')'}, kspec: {said}")
    assert not wrong, f"{len(wrong)} of {len(verdicts)} probes disagree:\n" + "\n".join(wrong)
    assert len(verdicts) > 900
