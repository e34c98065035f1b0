"""The lab's pure parts, without namespaces: echo answers, agreement rules, kernel-feature hints."""
from __future__ import annotations

import ipaddress

from kspec import ir
from kspec.lab.echo import echo_body, parse_echo
from kspec.lab.probe import (
    DELIVERED,
    DROPPED,
    HOST,
    NO_ROUTE,
    OTHER,
    PORT,
    REFUSED,
    REJECTED,
    Try,
    _icmp6_errors,
    _icmp_errors,
    _with_icmp,
)
from kspec.lab.report import ProbeResult
from kspec.lab.topology import _feature_hint
from kspec.verifier.model.network import Disposition
from kspec.verifier.predict import Outcome
from kspec.verifier.properties import Target

TARGET = Target(ipaddress.ip_address("10.96.0.10"), 80, ir.Protocol.TCP, None, None, "default/echo:80")
A = Outcome(Disposition.DELIVERED, "default/a", "10.244.1.7")
B = Outcome(Disposition.DELIVERED, "default/b", "10.244.1.7")


def _result(predicted, tries, pinned=False):
    return ProbeResult("c", "client", "client -> echo", TARGET, frozenset(predicted), list(tries), pinned=pinned)


def test_echo_answer_names_pod_and_peer():
    assert parse_echo(echo_body("default/source-ip-app", "10.240.0.5")) == ("default/source-ip-app", "10.240.0.5")
    assert "client_address=10.240.0.5" in echo_body("default/x", "10.240.0.5")


def test_every_endpoint_of_a_random_choice_must_be_seen():
    a, b = Try(1, DELIVERED, "default/a", "10.244.1.7"), Try(2, DELIVERED, "default/b", "10.244.1.7")
    assert _result({A, B}, [a, b]).agree
    assert _result({A, B}, [a, a]).missing == [B]
    assert _result({A, B}, [a, a], pinned=True).agree  # session affinity sticks to one


def test_an_unpredicted_outcome_disagrees():
    result = _result({A}, [Try(1, DELIVERED, "default/a", "10.244.1.7"), Try(2, DROPPED)])
    assert not result.agree and result.unexpected == [Outcome(Disposition.DROPPED)]


def test_tcp_tells_reject_from_host_and_udp_cannot():
    assert _result({Outcome(Disposition.REJECTED)}, [Try(1, REJECTED)]).agree
    assert not _result({Outcome(Disposition.REJECTED)}, [Try(1, HOST)]).agree
    assert _result({Outcome(Disposition.REJECTED)}, [Try(1, REFUSED)]).agree
    assert _result({Outcome(Disposition.HOST)}, [Try(1, REFUSED)]).agree


def test_unknown_prediction_never_agrees():
    assert not _result({Outcome(Disposition.UNKNOWN)}, [Try(1, DROPPED)]).agree


def test_a_probe_the_model_says_unknown_for_is_shown_not_judged():
    from kspec.lab.report import LabReport

    unknown = _result({Outcome(Disposition.UNKNOWN)}, [Try(1, DROPPED)])
    wrong = _result({Outcome(Disposition.REJECTED)}, [Try(1, DROPPED)])
    assert LabReport("s", [unknown]).agree and not LabReport("s", [unknown, wrong]).agree
    text = LabReport("s", [unknown]).text()
    assert "0/0 probes agree with the model (1 more the model says unknown for: not judged)" in text


def test_a_refused_rule_names_the_kernel_feature():
    text = "*nat\n:KUBE-POSTROUTING - [0:0]\n-A KUBE-POSTROUTING -j MASQUERADE --random-fully\nCOMMIT\n"
    hint = _feature_hint(text, "iptables-restore: line 3 failed")
    assert "--random-fully" in hint and "random_fully false" in hint
    assert _feature_hint(text, "something else") == ""


class _RawICMPv6:
    """What a raw ICMPv6 socket hands over: ICMPv6 header on, the sender as recvfrom's address."""

    def __init__(self, *messages: tuple[bytes, str]):
        self.messages = list(messages)

    def recvfrom(self, _size: int):
        if not self.messages:
            raise BlockingIOError
        return self.messages.pop(0)


TARGET6 = ipaddress.ip_address("fd00::10").packed


def _icmp6(kind: int, code: int, next_header: int, sport: int, dst: bytes = TARGET6) -> bytes:
    inner_ipv6 = bytes(6) + bytes([next_header]) + bytes(17) + dst  # 40 bytes: next header at 6, dst at 24
    return bytes([kind, code]) + bytes(6) + inner_ipv6 + sport.to_bytes(2, "big") + bytes(18)


def test_icmpv6_errors_are_read_by_the_source_port_they_quote():
    raw = _RawICMPv6((_icmp6(1, 4, 6, 40001), ("fd00::1", 0, 0, 0)), (_icmp6(1, 0, 6, 40002), ("fd00::2", 0, 0, 0)),
                     (_icmp6(1, 4, 17, 40003), ("fd00::3", 0, 0, 0)), (_icmp6(128, 0, 6, 40004), ("fd00::4", 0, 0, 0)),
                     (_icmp6(3, 0, 6, 40005), ("fd00::5", 0, 0, 0)), (_icmp6(1, 4, 6, 40006)[:50], ("fd00::6", 0, 0, 0)),
                     (_icmp6(1, 0, 6, 40007, bytes(16)), ("fd00::7", 0, 0, 0)))
    found = _icmp6_errors(raw, "tcp", TARGET6)
    assert found == {40001: (PORT, "ICMPv6 port unreachable", "fd00::1"),
                     40002: (OTHER, "ICMPv6 unreachable code 0", "fd00::2"),
                     40005: (OTHER, "time exceeded", "fd00::5")}  # not UDP's, an echo request, a cut packet,
    # nor one quoting a packet to another address (the client's reset to a misrouted answer)


class _RawICMP:
    """What a raw IPv4 ICMP socket hands over: the IP header first."""

    def __init__(self, *packets: bytes):
        self.packets = list(packets)

    def recv(self, _size: int) -> bytes:
        if not self.packets:
            raise BlockingIOError
        return self.packets.pop(0)


TARGET = ipaddress.ip_address("10.96.0.10").packed


def _icmp4(kind: int, code: int, protocol: int, sport: int, sender: str, dst: bytes = TARGET) -> bytes:
    outer = bytes([0x45]) + bytes(11) + ipaddress.IPv4Address(sender).packed + bytes(4)
    inner = bytes([0x45]) + bytes(8) + bytes([protocol]) + bytes(6) + dst  # protocol at 9, dst at 16
    return outer + bytes([kind, code]) + bytes(6) + inner + sport.to_bytes(2, "big") + bytes(6)


def test_icmp_errors_are_read_by_the_source_port_they_quote():
    raw = _RawICMP(_icmp4(3, 3, 6, 40001, "10.0.0.1"), _icmp4(3, 0, 6, 40002, "10.0.0.2"),
                   _icmp4(11, 0, 6, 40003, "10.0.0.3"), _icmp4(3, 3, 17, 40004, "10.0.0.4"),
                   _icmp4(8, 0, 6, 40005, "10.0.0.5"), _icmp4(3, 0, 6, 40006, "10.0.0.6", bytes(4)))
    assert _icmp_errors(raw, "tcp", TARGET) == {40001: (PORT, "ICMP port unreachable", "10.0.0.1"),
                                        40002: (OTHER, "ICMP unreachable code 0", "10.0.0.2"),
                                        40003: (OTHER, "time exceeded", "10.0.0.3")}


def test_a_port_unreachable_the_socket_missed_is_the_verdict():
    icmp = (PORT, "ICMPv6 port unreachable", "fd00::1")
    assert _with_icmp(Try(1, DROPPED, detail="no answer"), icmp, "tcp").result == REJECTED
    assert _with_icmp(Try(1, DROPPED, detail="no answer"), icmp, "udp").result == REFUSED
    assert _with_icmp(Try(1, DROPPED), (OTHER, "ICMPv6 unreachable code 0", "fd00::1"), "tcp").result == NO_ROUTE
    assert _with_icmp(Try(1, DROPPED), None, "tcp").result == DROPPED


def test_a_reject_in_the_senders_own_output_chain_is_eperm_with_the_icmp():
    eperm = Try(1, DROPPED, detail="EPERM: dropped by netfilter on the way out")
    assert _with_icmp(eperm, (PORT, "ICMP port unreachable", "10.0.0.1"), "tcp").result == REJECTED
    assert _with_icmp(eperm, None, "tcp").result == DROPPED  # a DROP there: no ICMP
    assert _with_icmp(Try(1, REFUSED), None, "tcp").result == HOST  # a reset: a host answered
    assert _with_icmp(Try(1, REFUSED), (PORT, "ICMP port unreachable", "10.0.0.1"), "tcp").result == REJECTED
