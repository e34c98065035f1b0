"""The iptables-save / iptables-restore parser (kspec.rules.iptables.iptables_save) and the rule IR."""
from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from kspec.diagnostics import KspecError, Severity
from kspec.rules.iptables import ruleset as rs
from kspec.rules.iptables.iptables_save import RuleParser, _fast_rule, parse_iptables_save, tokenize
from tests.conftest import CORPUS, corpus_cases
from tests.netns import iptables_restore, skip_reason, throwaway_netns

DUMPS = corpus_cases("expected.iptables") + corpus_cases("rules.iptables")


def _files() -> list[Path]:
    return [f for case in DUMPS for f in (case / "expected.iptables", case / "rules.iptables") if f.exists()]


def _rule(line: str, table: str = "filter", chains: str = "X Y") -> rs.Rule:
    decl = "".join(f":{c} - [0:0]\n" for c in chains.split())
    ruleset = parse_iptables_save(f"*{table}\n{decl}{line}\nCOMMIT\n", "t")
    return next(iter(ruleset.rules()))


# ------------------------------------------------------------------------------------------ corpus


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.parent.name)
def test_corpus_dump_parses(path: Path):
    text = path.read_text()
    partial = "Repeated__0" in path.parent.name or "LargeCluster" in path.parent.name  # partial syncs
    warnings = []
    ruleset = parse_iptables_save(text, str(path), require_declared_jumps=not partial, warnings=warnings)
    rule_lines = [line for line in text.splitlines() if line.startswith("-A ")]
    rules = list(ruleset.rules())
    assert len(rules) == len(rule_lines)
    assert sorted(r.text for r in rules) == sorted(rule_lines)
    assert all(r.origin.file == str(path) and text.splitlines()[r.origin.line - 1] == r.text for r in rules)
    # only TestTracePacket's fake-iptables jump rules carry unquoted multi-word comments
    assert all(w.severity is Severity.WARNING and "unquoted comment" in w.message for w in warnings)
    assert bool(warnings) == (path.name == "rules.iptables")


def test_fast_path_agrees_with_full_parser():
    """Every corpus rule line: the fast path either declines or builds exactly what the full parser builds."""
    if not DUMPS:
        pytest.skip(f"corpus not found at {CORPUS}")
    fast, full, lines, used = RuleParser(), RuleParser(), 0, 0
    for path in _files():
        for line in path.read_text().splitlines():
            if line.startswith("-A "):
                got = _fast_rule(line, line.index(" ", 3) + 1, fast)
                matches, target, _ = full.parse(tokenize(line), 2)
                assert got is None or got == (matches, target), line
                lines += 1
                used += got is not None
    assert used > 0.9 * lines  # the fast path is actually used


# ------------------------------------------------------------------------------------------ tokenizer


def test_tokenizer_quotes_and_escapes():
    assert tokenize('-A X -m comment --comment "a b" -j Y') == ["-A", "X", "-m", "comment", "--comment", "a b",
                                                                  "-j", "Y"]
    assert tokenize(r'-A X --comment "a \"q\" \\ z" -j Y')[3] == r'a "q" \ z'
    assert tokenize('-A X --comment pre"a b"post') == ["-A", "X", "--comment", "prea bpost"]
    assert tokenize('--comment ""') == ["--comment", ""]


# ------------------------------------------------------------------------------------------ canonical IR


def test_kube_proxy_text_and_iptables_save_text_are_the_same_rule():
    kube = _rule('-A X -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 '
                 '! -s 10.0.0.0/8 -j Y')
    save = _rule('-A X ! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" '
                 '-m tcp --dport 80 -j Y')
    assert kube == save
    assert kube.matches == (
        rs.Source(ipaddress.ip_network("10.0.0.0/8"), negated=True),
        rs.Destination(ipaddress.ip_network("172.30.0.41/32")),
        rs.Protocol("tcp"),
        rs.Comment("ns1/svc1:p80 cluster IP"),
        rs.Port(rs.PortDir.DPORT, 80, 80, "tcp"),
    )
    assert kube.target == rs.Jump("Y") and kube.text != save.text


@pytest.mark.parametrize("spelling,value,mask", [
    ("--or-mark 0x4000", 0x4000, 0x4000),
    ("--set-xmark 0x4000/0x4000", 0x4000, 0x4000),
    ("--xor-mark 0x4000", 0x4000, 0),
    ("--set-xmark 0x4000/0x0", 0x4000, 0),
    ("--and-mark 0x10", 0, 0xFFFFFFEF),
    ("--set-mark 0x10/0x30", 0x10, 0x30),
    ("--set-mark 0x10", 0x10, 0xFFFFFFFF),
])
def test_mark_target_spellings(spelling: str, value: int, mask: int):
    target = _rule(f"-A KUBE-MARK-MASQ -j MARK {spelling}", "nat", "KUBE-MARK-MASQ").target
    assert target == rs.MarkTarget(value, mask)
    assert rs.MarkTarget(0x4000, 0x4000).apply(0x1) == 0x4001
    assert rs.MarkTarget(0x4000, 0).apply(0x4001) == 0x1


def test_targets_and_defaults():
    assert _rule("-A X -j REJECT --reject-with icmp-port-unreachable").target == rs.Reject()
    assert _rule("-A X -p tcp -j REJECT --reject-with tcp-reset").target == rs.Reject("tcp-reset")
    nat = "KUBE-SEP-A POSTROUTING"
    assert _rule("-A KUBE-SEP-A -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80", "nat", nat).target == \
        rs.Dnat(ipaddress.ip_address("10.180.0.1"), 80)
    dnat6 = _rule("-A KUBE-SEP-A -p tcp -j DNAT --to-destination [fd00:10:180::1]:80", "nat", nat).target
    assert dnat6 == rs.Dnat(ipaddress.ip_address("fd00:10:180::1"), 80)
    assert dnat6.text() == "[fd00:10:180::1]:80"
    assert _rule("-A POSTROUTING -p tcp -j MASQUERADE --random-fully --to-ports 100-200", "nat", nat).target == \
        rs.Masquerade(random_fully=True, to_ports=(100, 200))
    assert _rule("-A POSTROUTING -j SNAT --to-source 1.2.3.4", "nat", nat).target == \
        rs.Snat(ipaddress.ip_address("1.2.3.4"))
    empty = _rule('-A X -m comment --comment "other traffic to ns5/svc5:p80 will be dropped"')
    assert empty.target == rs.Empty() and empty.comment.startswith("other traffic")
    assert _rule("-A X -g Y").target == rs.Goto("Y")
    assert _rule("-A X -j RETURN").target == rs.Return()


def test_matches():
    rule = _rule("-A X -i veth+ ! -o eth0 -m addrtype ! --src-type LOCAL --dst-type LOCAL,UNICAST "
                 "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m mark ! --mark 0x4000/0x4000 "
                 "-m nfacct --nfacct-name ct_state_invalid_dropped_pkts -m udp -p udp --sport 5:7 -j Y")
    assert rule.matches == (
        rs.InInterface("veth+"), rs.OutInterface("eth0", negated=True), rs.Protocol("udp"),
        rs.AddrType(rs.AddrDir.SRC, (rs.AddrKind.LOCAL,), negated=True),
        rs.AddrType(rs.AddrDir.DST, (rs.AddrKind.LOCAL, rs.AddrKind.UNICAST)),
        rs.Conntrack(frozenset({rs.CtState.RELATED, rs.CtState.ESTABLISHED, rs.CtState.DNAT}), negated=True),
        rs.MarkMatch(0x4000, 0x4000, negated=True),
        rs.Nfacct("ct_state_invalid_dropped_pkts"),
        rs.Port(rs.PortDir.SPORT, 5, 7, "udp"),
    )
    assert rs.InInterface("veth+").matches("veth123") and not rs.InInterface("veth+").matches("eth0")


def test_statistic_and_recent_kernel_canonical_forms():
    kube = _rule("-A X -m comment --comment c -m recent --name KUBE-SEP-A --rcheck --seconds 10800 --reap "
                 "-m statistic --mode random --probability 0.3333333333 -j Y")
    save = _rule("-A X -m comment --comment c -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-A "
                 "--mask 255.255.255.255 --rsource -m statistic --mode random --probability 0.33333333349 -j Y")
    assert kube == save
    recent, statistic = kube.matches[1:]
    assert recent == rs.Recent("KUBE-SEP-A", rs.RecentMode.RCHECK, seconds=10800, reap=True)
    assert abs(statistic.probability - 1 / 3) < 1e-9


def test_implicit_protocol_module():
    assert _rule("-A X -p tcp --dport 80 -j Y") == _rule("-A X -p tcp -m tcp --dport 80 -j Y")


# ------------------------------------------------------------------------------------------ file structure


def test_save_file_structure():
    text = """# Generated by iptables-save v1.8.9 (nf_tables) on Thu Nov 26 03:20:45 2026
*filter
:INPUT DROP [12:345]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
-N B
[3:180] -A INPUT -j A
-A A -j ACCEPT
-I A -j B
-I A 2 -j RETURN
-A B -j DROP
-X OLD
COMMIT
# Completed on Thu Nov 26 03:20:45 2026
*nat
-A PREROUTING -j ACCEPT
-P POSTROUTING DROP
COMMIT
"""
    ruleset = parse_iptables_save(text, "dump")
    flt = ruleset.table("filter")
    assert [c.name for c in flt.chains] == ["INPUT", "FORWARD", "OUTPUT", "A", "B"]
    assert flt.chain("INPUT").policy is rs.Policy.DROP and flt.chain("A").policy is None
    assert [r.target for r in flt.chain("A").rules] == [rs.Jump("B"), rs.Return(), rs.Accept()]
    assert flt.chain("INPUT").rules[0].origin == rs.Origin("dump", 8)
    assert flt.deleted == ("OLD",)
    nat = ruleset.table("nat")
    assert nat.chain("PREROUTING").declared is None and nat.chain("POSTROUTING").policy is rs.Policy.DROP


def test_restore_merge_semantics():
    base = parse_iptables_save("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-OLD - [0:0]\n"
                               ":KEEP - [0:0]\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -j KUBE-OLD\n"
                               "-A KEEP -j RETURN\nCOMMIT\n")
    restore = parse_iptables_save("*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-OLD - [0:0]\n-A KUBE-SERVICES -j ACCEPT\n"
                                  "-A PREROUTING -j RETURN\n-X KUBE-OLD\nCOMMIT\n")
    merged = base.restore(restore).table("nat")
    assert [c.name for c in merged.chains] == ["PREROUTING", "KUBE-SERVICES", "KEEP"]
    assert [r.target for r in merged.chain("KUBE-SERVICES").rules] == [rs.Accept()]  # declared: replaced
    assert [r.target for r in merged.chain("PREROUTING").rules] == [rs.Jump("KUBE-SERVICES"), rs.Return()]
    assert merged.chain("KEEP").rules[0].target == rs.Return()  # not mentioned: kept
    redeclared = parse_iptables_save("*nat\n:PREROUTING - [0:0]\n-A PREROUTING -j RETURN\nCOMMIT\n")
    assert len(base.restore(redeclared).chain("nat", "PREROUTING").rules) == 1
    assert len(base.restore(redeclared, flush_declared_builtins=False).chain("nat", "PREROUTING").rules) == 2


# ------------------------------------------------------------------------------------------ errors


def _error(text: str, **kwargs) -> str:
    with pytest.raises(KspecError) as info:
        parse_iptables_save(text, "f.rules", **kwargs)
    return str(info.value)


def test_unsupported_match_is_an_error_with_position():
    msg = _error("*filter\n:X - [0:0]\n-A X -m tcp -p tcp --foo 1 -j ACCEPT\nCOMMIT\n")
    assert msg == "f.rules:3:20: error: unsupported match '--foo'"


def test_errors_are_collected_not_skipped():
    msg = _error("*filter\n:X - [0:0]\n-A X -m multiport --dports 1,x -j ACCEPT\n-A X -j LOG --log-level 9\n"
                 "-A X -p tcp --tcp-flags SYN,FOO SYN -j ACCEPT\n-A X -m statistic --mode nth -j ACCEPT\n"
                 "-A Y -j ACCEPT\n-A X -j NOWHERE\n-D X 1\nCOMMIT\n")
    lines = msg.splitlines()
    assert "f.rules:3:28: error: invalid port 'x' (service names are not supported)" in lines
    assert any(line.startswith("f.rules:4:25: error: invalid log level '9'") for line in lines)
    assert any(line.startswith("f.rules:5:25: error: unknown TCP flag 'FOO'") for line in lines)
    assert "f.rules:6:26: error: statistic --mode nth needs --every" in lines
    assert "f.rules:7:4: error: chain 'Y' is not declared in table 'filter'" in lines
    assert "f.rules:8:9: error: jump to undeclared chain 'NOWHERE' in table 'filter'" in lines
    assert "f.rules:9:1: error: unsupported command '-D'" in lines


def test_a_shared_memo_parses_as_a_fresh_parser_does():
    """The nodes of a cluster are parsed with one RuleParser: same rulesets, same origins, objects shared, and
    a bad line in a later text is still reported where it is (failures are never memoised)."""
    base = _files()[0].read_text()
    other = base.replace("10.180.0.1", "10.180.0.201")  # a node whose endpoint differs
    bad = "*filter\n:X - [0:0]\n-A X -m tcp -p tcp --dport 80 -j ACCEPT\n-A X -m tcp -p tcp --foo 1 -j ACCEPT\nCOMMIT\n"
    memo = RuleParser()
    kwargs = dict(require_declared_jumps=False)
    first, second = (parse_iptables_save(t, "n.rules", memo=memo, **kwargs) for t in (base, other))
    assert first == parse_iptables_save(base, "n.rules", **kwargs)
    alone = parse_iptables_save(other, "n.rules", **kwargs)
    assert second == alone
    assert [r.origin for r in second.rules()] == [r.origin for r in alone.rules()]
    fast = [(a, b) for a, b in zip(first.rules(), second.rules())
            if a.text == b.text and a.matches and _fast_rule(a.text, a.text.index(" ", 3) + 1, RuleParser())]
    assert fast and all(a.matches is b.matches for a, b in fast)  # the fast path's texts: parsed once, shared
    parse_iptables_save(bad.replace("--foo 1 ", ""), "ok.rules", memo=memo)
    with pytest.raises(KspecError) as info:
        parse_iptables_save(bad, "f.rules", memo=memo)
    assert str(info.value) == "f.rules:4:20: error: unsupported match '--foo'"


def test_structure_errors():
    assert "has no COMMIT" in _error("*filter\n:X - [0:0]\n")
    assert "outside a '*table' block" in _error(":X - [0:0]\n")
    assert "unsupported table 'bogus'" in _error("*bogus\nCOMMIT\n")
    assert "needs a value" in _error("*filter\n:X - [0:0]\n-A X -s\nCOMMIT\n")
    assert "invalid address '10.0.0.300'" in _error("*filter\n:X - [0:0]\n-A X -s 10.0.0.300\nCOMMIT\n")


# ------------------------------------------------------------------------------------------ a real dump


@pytest.fixture
def netns():
    """A throwaway network namespace (never the root namespace's iptables), deleted whatever happens."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with throwaway_netns() as name:
        yield name


def _save(ns: str, *flags: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "iptables-save", *flags], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.netns
def test_real_iptables_save_dump_equals_kube_proxy_text(netns: str):
    source = CORPUS / "cases" / "TestOverallIPTablesRules" / "expected.iptables"
    if not source.exists():
        pytest.skip(f"corpus not found at {CORPUS}")
    text = source.read_text()
    ok, err = iptables_restore(netns, text, noflush=True)  # creates the nfacct counters first
    assert ok, err
    dump = _save(netns)
    assert "# Generated by" in dump and "-d 172.30.0.41/32" in dump and "--set-xmark 0x4000/0x4000" in dump
    ours, kernels = parse_iptables_save(text, "kube-proxy"), parse_iptables_save(dump, "iptables-save")
    for table in ours.tables:
        for chain in table.chains:
            assert kernels.chain(table.name, chain.name).rules == chain.rules, chain.name
    assert parse_iptables_save(_save(netns, "-c"), "iptables-save -c") == kernels
