"""Lenient address parsing: what kube-proxy's ParseIPSloppy / ParseCIDRSloppy accept and how they read it."""
from __future__ import annotations

import ipaddress

import pytest

from kspec.ingest.addresses import parse_cidr_lenient, parse_ip_lenient


@pytest.mark.parametrize("text, expected", [
    ("172.30.0.041", "172.30.0.41"),  # leading zeros are decimal, not octal
    ("1.2.3.004", "1.2.3.4"),
    ("192.168.099.022", "192.168.99.22"),
    ("010.180.00.001", "10.180.0.1"),
    ("0000000001.2.3.4", "1.2.3.4"),
    ("2001:db8::01", "2001:db8::1"),
    ("2001:0db8:0000::0001", "2001:db8::1"),
    ("00001::", "1::"),  # Go allows more than 4 hex digits while the group fits 16 bits
    ("::ffff:1.2.3.4", "1.2.3.4"),  # IPv4-mapped: an IPv4 address to Go and kube-proxy
    ("::ffff:001.002.3.4", "1.2.3.4"),
    ("::1.2.3.4", "::102:304"),  # IPv4-compatible (not mapped) stays IPv6
    ("fd00:10:180::1", "fd00:10:180::1"),
])
def test_lenient_ips(text, expected):
    assert parse_ip_lenient(text) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("text", [
    "", " 1.2.3.4", "1.2.3.4 ", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.-4", "a.b.c.d", "1.2.3.٤",
    "10000::", "fe80::1%eth0", "1:2:3:4:5:6:7:8:9", "::ffff:1.2.3.256", "None", "1.2.3.4/32",
])
def test_invalid_ips(text):
    assert parse_ip_lenient(text) is None


@pytest.mark.parametrize("text, expected", [
    ("203.0.113.000/025", "203.0.113.0/25"),
    ("10.0.0.5/8", "10.0.0.0/8"),  # host bits cleared, as net.ParseCIDR returns the masked network
    ("10.0.0.0/08", "10.0.0.0/8"),
    ("0.0.0.0/0", "0.0.0.0/0"),
    ("fd00:10::1/64", "fd00:10::/64"),
    ("2001:db8::/0128", "2001:db8::/128"),
])
def test_lenient_cidrs(text, expected):
    assert parse_cidr_lenient(text) == ipaddress.ip_network(expected)


@pytest.mark.parametrize("text", [
    "10.0.0.0", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/ 8", " 10.0.0.0/8",
    "10.0.0.0/8/8", "primary", "",
])
def test_invalid_cidrs(text):
    assert parse_cidr_lenient(text) is None


def test_non_strings_are_invalid():
    assert parse_ip_lenient(None) is None  # type: ignore[arg-type]
    assert parse_cidr_lenient(17) is None  # type: ignore[arg-type]
