"""Lenient IP and CIDR parsing, the way kube-proxy parses them.

kube-proxy parses addresses with ``k8s.io/utils/net``'s ``ParseIPSloppy`` / ``ParseCIDRSloppy``: a frozen
copy of Go 1.16's ``net.ParseIP`` / ``net.ParseCIDR`` from before Go learned to reject leading zeros. Objects
stored in etcd before the API server tightened its validation may still hold such values, and kube-proxy
must keep handling them, so it reads leading zeros as *decimal* (``172.30.0.041`` is ``172.30.0.41``, not an
octal ``.33``) and prints the result canonically. Python's ``ipaddress`` rejects leading zeros, hence this
module.

Differences from ``ipaddress`` that come from the Go parser:

* IPv4 octets may have any number of leading zeros (``010.001.2.3``); each must still be <= 255.
* IPv6 groups may have more than four hex digits as long as the value fits 16 bits (``00001::``), and an
  embedded dotted-quad tail is parsed leniently too.
* IPv4-mapped IPv6 addresses (``::ffff:1.2.3.4``) are IPv4 addresses: Go stores every IPv4 address in that
  form and kube-proxy classifies and prints them as IPv4.
* Zones (``fe80::1%eth0``) and surrounding whitespace are rejected; callers that must trim (kube-proxy trims
  ``loadBalancerSourceRanges``) do so themselves.
* A CIDR's prefix length is decimal with leading zeros allowed (``/025``), and host bits are cleared
  (``10.0.0.5/8`` is ``10.0.0.0/8``), as ``net.ParseCIDR`` returns the masked network.
"""
from __future__ import annotations

import ipaddress
import re

from kspec.ir import IPAddress, IPNetwork

# [0-9] rather than \d: \d also matches non-ASCII digits, which Go rejects.
_IPV4 = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)")
_HEX_GROUP = re.compile(r"[0-9A-Fa-f]+")
_DECIMAL = re.compile(r"[0-9]+")


def parse_ip_lenient(text: str) -> IPAddress | None:
    """Parse an IPv4 or IPv6 address as ``ParseIPSloppy`` does; None when Go would return nil."""
    if not isinstance(text, str):
        return None
    if ":" in text:
        return _parse_ipv6(text)
    return _parse_ipv4(text)


def parse_cidr_lenient(text: str) -> IPNetwork | None:
    """Parse ``address/length`` as ``ParseCIDRSloppy`` does; None when Go would return an error."""
    if not isinstance(text, str) or "/" not in text:
        return None
    addr_text, _, length_text = text.partition("/")
    if not _DECIMAL.fullmatch(length_text):
        return None
    # Go decides the family from the address syntax, before the IPv4-mapped unwrapping ParseIP does.
    if ":" in addr_text:
        addr = _parse_ipv6(addr_text, unmap=False)
    else:
        addr = _parse_ipv4(addr_text)
    if addr is None:
        return None
    length = int(length_text)
    if length > addr.max_prefixlen:
        return None
    return ipaddress.ip_network((addr, length), strict=False)


def _parse_ipv4(text: str) -> ipaddress.IPv4Address | None:
    match = _IPV4.fullmatch(text)
    if match is None:
        return None
    octets = [int(group) for group in match.groups()]
    if any(octet > 255 for octet in octets):
        return None
    return ipaddress.IPv4Address(bytes(octets))


def _parse_ipv6(text: str, unmap: bool = True) -> IPAddress | None:
    if "%" in text:  # Go's ParseIP rejects zones; ipaddress would accept them
        return None
    head, sep, tail = text.rpartition(":")
    if "." in tail:
        # Rewrite a lenient dotted-quad tail as two hex groups so ipaddress accepts it.
        v4 = _parse_ipv4(tail)
        if v4 is None:
            return None
        high, low = int(v4) >> 16, int(v4) & 0xFFFF
        text = f"{head}{sep}{high:x}:{low:x}"
    groups = text.split(":")
    for i, group in enumerate(groups):
        if len(group) > 4:
            if not _HEX_GROUP.fullmatch(group) or int(group, 16) > 0xFFFF:
                return None
            groups[i] = f"{int(group, 16):x}"
    try:
        addr = ipaddress.IPv6Address(":".join(groups))
    except ValueError:
        return None
    if unmap and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr
