"""The iptables-save parser's fast path (memoised match and target texts, cut at the last ' -j ') against its
full parser, on generated rule lines: options in any order, negations, quoted comments that hold ' -j ',
'-m' or escapes, targets in the middle, unknown words, the extension modules and targets of real nodes
(multiport, set, tcp flags, icmp, limit, physdev, conntrack beyond --ctstate, LOG, CT, CONNMARK, NAT ranges)
and unknown ones (Opaque). The fast path may decline a line (None) but must never build anything other than
what the full parser builds, nor accept a line the full parser rejects."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kspec.diagnostics import KspecError
from kspec.rules.iptables import ruleset as rs
from kspec.rules.iptables.iptables_save import RuleParser, _fast_rule, _LineError, parse_iptables_save, tokenize

COMMENTS = st.sampled_from([
    "ns/svc:p80", '"ns/svc:p80 cluster IP"', '"a -j KUBE-MARK-MASQ"', '"x -m tcp --dport 1"', '"tail -j"',
    '"ns/svc -> 10.0.0.1:80"', '""', '"q \\" -j Y"', '"glued"x', "two words",
])
ADDRESSES = st.sampled_from(["10.0.0.1", "10.0.0.0/8", "10.0.0.1/32", "fd00::1", "10.0.0.1/8",
                             "300.1.1.1", "host.example", "10.1.2.3,10.1.2.4"])
MATCHES = st.one_of(
    st.builds("{} {}".format, st.sampled_from(["-s", "-d", "! -s", "! -d"]), ADDRESSES),
    st.sampled_from(["-p tcp", "-p udp", "! -p sctp", "-i eth0", "! -i veth+", "-o lo", "! -o cni0"]),
    COMMENTS.map("-m comment --comment {}".format),
    st.sampled_from(["-m tcp --dport 80", "-m tcp -p tcp", "-m udp --dport 53:54", "-m tcp ! --dport 1",
                     "-m sctp --sport 9"]),
    st.sampled_from(["0.5000000000", "0.33333333349", "1.0000000000"]).map(
        "-m statistic --mode random --probability {}".format),
    st.sampled_from(["-m mark --mark 0x4000/0x4000", "-m mark ! --mark 0x8000/0x8000", "-m mark --mark 0x1"]),
    st.sampled_from(["-m addrtype --dst-type LOCAL", "-m addrtype ! --src-type LOCAL", "-m nfacct --nfacct-name ct",
                     "-m conntrack --ctstate INVALID", "-m conntrack ! --ctstate NEW,ESTABLISHED"]),
    st.sampled_from(["-m recent --name KUBE-SEP-X --set", "-m recent --name KUBE-SEP-X --rcheck --seconds 10800 "
                     "--reap", "-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask 255.255.255.255 "
                     "--rsource", "-m recent --update --hitcount 3 --rdest --mask 255.255.0.0"]),
    st.sampled_from([  # extension modules of Calico, Docker, Flannel, kube-router, Weave nodes
        "-p tcp -m multiport --dports 80,443", "-m multiport ! --sports 1000:2000,22",
        "-m multiport --destination-ports 8080", "-m multiport --ports 53",
        "-p icmp -m icmp --icmp-type 8", "-m icmp ! --icmp-type echo-request", "-m icmp --icmp-type 3/3",
        "-p ipv6-icmp -m icmp6 --icmpv6-type 128", "-p icmp --icmp-type any",
        "-p tcp --syn", "-m tcp --tcp-flags SYN,RST SYN", "-m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN",
        "-m tcp --tcp-option 2 --dport 80", "-m tcp ! --syn --sport 1:2",
        "-m limit --limit 3/min --limit-burst 10", "-m limit --limit 5/s",
        "-m hashlimit --hashlimit-upto 5/sec --hashlimit-mode srcip --hashlimit-name x",
        "-m set --match-set cali40all-ipam-pools src", "-m set ! --match-set s dst,dst --return-nomatch "
        "! --update-counters", "-m set --match-set KUBE-CLUSTER-IP dst,dst",
        "-m physdev --physdev-in veth+ --physdev-is-bridged", "-m physdev ! --physdev-is-in",
        "-m iprange --src-range 10.0.0.1-10.0.0.9", "-m iprange ! --dst-range 10.0.0.1",
        "-m connmark --mark 0x1/0x1", "-m connmark ! --mark 0x8000",
        "-m conntrack --ctstate DNAT --ctorigdst 10.96.0.10", "-m conntrack ! --ctorigdstport 53 --ctdir REPLY",
        "-m conntrack --ctstatus ASSURED --ctproto tcp", "-m state --state NEW",
        "-m addrtype --dst-type LOCAL --limit-iface-in", "-m addrtype --src-type LOCAL --dst-type LOCAL",
        "-m addrtype --dst-type LOCAL --src-type LOCAL", "-m addrtype ! --src-type LOCAL --limit-iface-out",
        "-m owner --uid-owner 0", "-m owner ! --socket-exists",
        "-m statistic --mode nth --every 3 --packet 1", "-m statistic --mode nth ! --every 2",
        "-m rpfilter --validmark --invert", "-m pkttype --pkt-type unicast", '-m frob ! --x 1 "a b"',
    ]),
)
NOISE = st.sampled_from([
    "--dport 80", "-m tcp --dport http", "-m statistic --mode nth --every 2", "-m statistic --mode random ! "
    "--probability 0.5", "-m statistic --mode random --probability x", "-m mark --mark z", "-m state --state NEW",
    "-m addrtype --dst-type NOPE", "-m recent --name X --rcheck --seconds 10 --reap", "-m frob --x 1", "!", "! !",
    "--comment loose", "junk", "-m comment ! --comment x", "-p", "-j Y", "--to-destination 1.2.3.4",
    "-m statistic --mode random --probability 0.5 --mode random --probability 1.0", "-m statistic",
    "-m statistic -m tcp --dport 80", "-p tcp -m statistic --mode random --probability 0.5 --dport 80",
    '-m comment --comment "a""b"', '-m comment --comment "a"b', "-m comment --comment a\\ b",
    "-m recent ! --rcheck --name X", "-m recent --name a --name b --set", "-m recent", "-m recent --set --rcheck",
    "-m recent --seconds x --set", "-m recent --set --name", "-m recent --set -m tcp --dport 80 --reap",
    "-m recent --remove --mask 300.0.0.0", "-m recent --set --mask fd00::",
    "-m multiport --dports 1,x", "-m multiport --dports", "-m multiport --dports 1,,2", "-m icmp --icmp-type bogus",
    "-m icmp --icmp-type echo", "-m tcp --tcp-flags SYN", "-m tcp --tcp-flags SYN,NOPE SYN", "--syn",
    "-m set --match-set", "-m set --return-nomatch", "-m set --match-set s sideways",
    "-m conntrack --ctstate NEW --ctstate INVALID", "-m conntrack --ctdir FOO", "-m conntrack ! --ctdir REPLY",
    "-m conntrack --ctstate NEW -m mark --mark 1 --ctorigsrc 10.0.0.1",
    "-m addrtype --dst-type LOCAL --dst-type LOCAL", "-m addrtype --limit-iface-in --limit-iface-out "
    "--src-type LOCAL", "-m addrtype --limit-iface-in", "-m limit ! --limit 1/s", "-m limit --limit 1/fortnight",
    "-m owner --uid-owner root", "-m frob", "-m frob ! -s 10.0.0.1", "-m frob --x -m tcp --dport 80",
    "-m statistic --mode nth", "-m statistic --mode nth --every 2 --packet 5", "-m physdev --physdev-in",
])
TARGETS = st.sampled_from([
    "-j KUBE-SVC-X", "-j KUBE-MARK-MASQ", "-j ACCEPT", "-j DROP", "-j RETURN", "-j REJECT",
    "-j REJECT --reject-with icmp-port-unreachable", "-j DNAT --to-destination 10.0.0.1:80",
    "-j DNAT --to-destination [fd00::1]:80", "-j MARK --or-mark 0x4000", "-j MARK --set-xmark 0x4000/0x4000",
    "-j MASQUERADE", '-j LOG --log-prefix "calico-drop: " --log-level 4', "-j LOG", "-j CT --notrack",
    "-j NOTRACK", "-j CT --zone 3", "-j CONNMARK --set-xmark 0x1/0xffffffff", "-j CONNMARK --restore-mark "
    "--nfmask 0xffffffff --ctmask 0xffffffff", "-j DNAT --to-destination 10.0.0.1-10.0.0.5:80-90",
    "-j SNAT --to-source 10.0.0.1:1024-2048 --persistent", "-j REDIRECT --to-ports 8080",
    "-j TCPMSS --clamp-mss-to-pmtu", "-j TRACE", "-j NFLOG --nflog-group 1", "-j NFQUEUE --queue-num 1",
])
ODD_TARGETS = st.sampled_from([
    "", "-j DNAT", "-j DNAT --to-destination 10.0.0.1:80-90", "-j MARK --or-mark 0x1/0x1",
    "-j MASQUERADE --random-fully", "-j LOG", "-g KUBE-SVC-X", "-j", "-j X Y", '-j "KUBE-SVC-X"',
    "-j LOG --log-level 9", "-j CONNMARK", "-j CONNMARK --save-mark --mask 0x1", "-j SET --add-set x src",
    "-j NFQUEUE --queue-num 1 -m mark --mark 1", "-j TCPMSS", "-j DNAT --to-destination 10.0.0.9-10.0.0.1",
    "-j CT --notrack --zone 1 --zone-orig 2", "-j REDIRECT --to-ports x",
])


@st.composite
def rule_lines(draw) -> str:
    """Mostly well-formed kube-proxy-like lines, a fifth of them with one odd word, target or order."""
    parts = draw(st.lists(MATCHES, max_size=6))
    odd = draw(st.integers(0, 9))
    if odd == 0:
        parts.insert(draw(st.integers(0, len(parts))), draw(NOISE))
    target = draw(ODD_TARGETS if odd == 1 else TARGETS)
    position = draw(st.integers(0, len(parts))) if odd == 2 else len(parts)  # a target mid-line
    if target:
        parts.insert(position, target)
    sep = "  " if odd == 3 else " "
    return sep.join(["-A", "KUBE-SEP-X", *parts])


def fast_parse(line: str, parser: RuleParser):
    """The fast path as the parser's line loop calls it (only for '-A CHAIN ' with a body)."""
    space = line.find(" ", 3)
    return _fast_rule(line, space + 1, parser) if space > 3 else None


def full_parse(line: str):
    """What the full parser builds, or None when it rejects the line."""
    try:
        matches, target, _ = RuleParser().parse(tokenize(line), 2)
    except _LineError:
        return None
    return matches, target


@given(rule_lines())
def test_fast_path_builds_what_the_full_parser_builds(line: str) -> None:
    full, parser = full_parse(line), RuleParser()
    for _ in ("cold", "warm"):  # the second time the line's texts are memoised
        fast = fast_parse(line, parser)
        assert fast is None or fast == full, (line, fast, full)


@given(rule_lines())
def test_strict_refuses_exactly_the_opaque_lines(line: str) -> None:
    """strict=True: the same rule when nothing is opaque, an error when a module or target is."""
    full = full_parse(line)
    try:
        matches, target, _ = RuleParser().parse(tokenize(line), 2, strict=True)
        strict = matches, target
    except _LineError:
        strict = None
    opaque = full is not None and (any(isinstance(m, rs.Opaque) for m in full[0])
                                   or isinstance(full[1], rs.OpaqueTarget))
    assert strict == (None if opaque else full), line


@given(st.lists(rule_lines(), min_size=2, max_size=8))
def test_memoised_texts_do_not_leak_between_lines(lines: list[str]) -> None:
    """One parser over many lines (as in a dump): a text memoised from one line answers only for itself."""
    parser = RuleParser()
    for line in lines:
        fast = fast_parse(line, parser)
        assert fast is None or fast == full_parse(line), line


def test_the_fast_path_is_taken_on_kube_proxy_lines() -> None:
    """Not vacuous: the common kube-proxy shapes go through the fast path."""
    parser = RuleParser()
    for line in [
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 '
        '--dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
        "-A KUBE-SVC-X -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-Y",
        "-A KUBE-SEP-Y -s 10.180.0.1 -j KUBE-MARK-MASQ",
        "-A KUBE-SEP-Y -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80",
        '-A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp '
        "--dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O",
    ]:
        fast = fast_parse(line, parser)
        assert fast is not None and fast == full_parse(line), line


# ------------------------------------------------------------------------------- whole texts, shared memo

CHAIN_NAMES = st.sampled_from(["KUBE-SEP-X", "KUBE-SVC-Y", '"KUBE-Q"', "KUBE-T\tAB", "KUBE-\u3000W"])


@st.composite
def restore_texts(draw) -> str:
    """A small nat table: declarations (some with odd names), rule lines into them."""
    names = draw(st.lists(CHAIN_NAMES, min_size=1, max_size=3, unique=True))
    lines = ["*nat"] + [f":{name} - [0:0]" for name in names]
    for _ in range(draw(st.integers(1, 5))):
        line = draw(rule_lines())
        lines.append(line.replace("KUBE-SEP-X", draw(st.sampled_from(names)), 1))
    return "\n".join(lines + ["COMMIT", ""])


def _slow(text: str) -> str:
    """The same text, every line made to take the full parser (counters on rules and declarations)."""
    out = []
    for line in text.splitlines():
        if line.startswith("-A "):
            line = "[0:0] " + line
        elif line.startswith(":"):
            line = line.replace(" - [0:0]", " - [1:1]")
        out.append(line)
    return "\n".join(out) + "\n"


def _outcome(text: str, memo=None):
    try:
        return parse_iptables_save(text, "t.rules", require_declared_jumps=False, memo=memo)
    except KspecError:
        return "error"


@given(restore_texts())
def test_whole_texts_parse_as_the_full_parser_reads_them(text: str) -> None:
    assert _outcome(text) == _outcome(_slow(text)), text


@given(st.lists(restore_texts(), min_size=2, max_size=4))
def test_a_shared_memo_does_not_carry_one_text_into_another(texts: list[str]) -> None:
    memo = RuleParser()
    for text in texts:
        assert _outcome(text, memo) == _outcome(text), text


def test_an_implicit_port_module_is_not_carried_between_texts() -> None:
    """Found in review: a cached 'implicit -m tcp' classification made a later text fail."""
    a = "*nat\n:C - [0:0]\n-A C -p tcp -m statistic --mode random --probability 0.5 --dport 80 -j C\nCOMMIT\n"
    b = ("*nat\n:C - [0:0]\n-A C -p tcp -m tcp -m statistic --mode random --probability 0.5 --dport 80 "
         "--probability 0.3 -j C\nCOMMIT\n")
    memo = RuleParser()
    assert _outcome(a, memo) != "error"
    assert _outcome(b, memo) == _outcome(b) != "error"


ADDRESS_TEXTS = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: a.exploded),
    st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
    st.builds("{}/{}".format, st.ip_addresses().map(str), st.sampled_from(["32", "128", "64", "8", "", "033"])),
    st.text(alphabet="0123456789abcdef:./%", max_size=24),
)


@given(ADDRESS_TEXTS)
def test_fast_address_values_are_ipaddress_values(text: str):
    """The parser builds addresses from inet_pton's bytes (IPv4 and IPv6); it must accept exactly what
    ipaddress accepts and build equal objects with the same attributes."""
    import ipaddress

    from kspec.rules.iptables.iptables_save import _address, _network

    try:
        want = ipaddress.ip_network(text, strict=False)
    except ValueError:
        want = None
    try:
        got = _network(text, 0)
    except _LineError:
        got = None
    assert got == want, text
    if got is not None:
        assert vars(got).keys() == vars(want).keys() and str(got) == str(want), text
        if got.prefixlen == got.max_prefixlen:  # a host network's hosts() is the host (others may be 2^120 long)
            assert list(got.hosts()) == list(want.hosts()), text
    if "/" not in text:
        try:
            want_address = ipaddress.ip_address(text)
        except ValueError:
            want_address = None
        try:
            got_address = _address(text)
        except ValueError:
            got_address = None
        assert got_address == want_address and str(got_address) == str(want_address), text
