"""Chain names, hashed exactly as kube-proxy hashes them.

kube-proxy names every per-service-port chain after the first 16 characters of
base32(sha256(service-port name + protocol)), and every endpoint chain after the same hash with the endpoint
string appended. Chains of one service port therefore share one suffix: KUBE-SVC-H, KUBE-SVL-H, KUBE-EXT-H,
KUBE-FW-H.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

# The chains kube-proxy owns in every sync, whatever the services are.
FILTER_FIXED = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL")
NAT_FIXED = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")
PER_SERVICE_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648
_PAIRS = [a + b for a in _BASE32 for b in _BASE32]  # every 10-bit group as its two characters


def _name(text: str) -> str:
    # The first 16 base32 characters encode exactly the first 10 bytes (80 bits) of the digest. Python's
    # base64.b32encode is a pure-Python loop, so the 80 bits are read off an integer, 10 at a time.
    bits = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    return (_PAIRS[bits >> 70] + _PAIRS[(bits >> 60) & 1023] + _PAIRS[(bits >> 50) & 1023]
            + _PAIRS[(bits >> 40) & 1023] + _PAIRS[(bits >> 30) & 1023] + _PAIRS[(bits >> 20) & 1023]
            + _PAIRS[(bits >> 10) & 1023] + _PAIRS[bits & 1023])


_hash = lru_cache(maxsize=None)(_name)  # service-port names recur (every node, every chain kind)


def port_hash(port_name: str, protocol: str) -> str:
    """The suffix shared by a service port's chains; ``port_name`` is ``ns/name[:port]``."""
    return _hash(port_name + protocol)


def sep_chain(port_name: str, protocol: str, endpoint: str) -> str:
    # Not through _hash's cache: every endpoint string is new, and the cache would only grow.
    return "KUBE-SEP-" + _name(port_name + protocol + endpoint)
