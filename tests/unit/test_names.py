"""Chain-name hashing: kube-proxy's rule is base32(sha256(name)) cut to 16 characters; kspec computes the
same 16 characters from 10 digest bytes. Both must agree on any input."""
from __future__ import annotations

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from kspec.compiler.names import port_hash, sep_chain


def reference(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


@given(st.text(min_size=0, max_size=80))
def test_hash_equals_the_reference_encoding(text):
    assert port_hash(text, "") == reference(text)


def test_known_names_from_the_kube_proxy_corpus():
    assert port_hash("ns1/svc1:p80", "tcp") == "XPGD46QRK7WJZT7O"
    assert port_hash("ns1/svc1", "tcp") == "AQI2S6QIMU7PVVRP"
    assert sep_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"
