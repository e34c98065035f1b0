"""The printer: ``parse(format(c)) == c`` for what the parser produces, and formatting is idempotent."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kspec import ir
from kspec.grammar import format_cluster, load, parse_text
from kspec.grammar.printer import format_prop

REPO = Path(__file__).resolve().parents[2]
FILES = sorted((REPO / "specs").glob("*.k")) + [Path(__file__).with_name("everything.k")]


def reparse(cluster: ir.Cluster) -> ir.Cluster:
    return parse_text(format_cluster(cluster), "formatted.k")[0]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_round_trip(path: Path) -> None:
    cluster, _ = load(path)
    assert reparse(cluster) == cluster


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_formatting_is_idempotent(path: Path) -> None:
    text = format_cluster(load(path)[0])
    assert format_cluster(parse_text(text, "formatted.k")[0]) == text


def test_canonical_text_of_a_small_cluster() -> None:
    cluster, _ = parse_text("""
        cluster   demo {   # a comment
          service  default/web { selector app=web  cluster_ip 10.0.0.1  port 80 -> 8080 }
          node n1 { pod_cidr 10.244.1.0/24 ip 10.240.0.3 }
          pod web on n1 { labels { app = web } ip 10.244.1.5 }
        }""", "demo.k")
    assert format_cluster(cluster) == """\
cluster demo {
  node n1 { ip 10.240.0.3  pod_cidr 10.244.1.0/24 }

  pod web on n1 {
    ip 10.244.1.5
    labels { app = web }
  }

  service web {
    cluster_ip 10.0.0.1
    selector app = web
    port 80 -> 8080/tcp
  }
}
"""


def test_defaults_are_left_out() -> None:
    assert format_cluster(ir.Cluster("empty")) == "cluster empty {\n}\n"


# ------------------------------------------------------------------------------------------- Hypothesis

_atoms = st.sampled_from([ir.Delivered(), ir.Dropped(), ir.Rejected(), ir.SourceIsClient(),
                          ir.SourceInNodes(), ir.StaysOnNode(), ir.EndpointIn(("default/p",))])
props = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.builds(ir.Not, inner),
        st.builds(ir.And, inner, inner),
        st.builds(ir.Or, inner, inner),
        st.builds(ir.Implies, inner, inner),
    ),
    max_leaves=12,
)
label_values = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=12)

BASE = ir.Cluster(
    "h",
    nodes=(ir.Node("n", (ipaddress.ip_address("10.240.0.3"),)),),
    pods=(ir.Pod("default", "p", "n", ipaddress.ip_address("10.244.1.5"), labels=(("app", "x"),)),),
    services=(ir.Service("default", "s", cluster_ips=(ipaddress.ip_address("10.0.0.1"),),
                         ports=(ir.ServicePort("", ir.Protocol.TCP, 80),), selector=(("app", "x"),)),),
)


@settings(max_examples=150, deadline=None)
@given(props, st.sampled_from(list(ir.Expectation)))
def test_properties_round_trip_with_their_shape(prop: ir.Prop, expect: ir.Expectation) -> None:
    check = ir.Check("c", (), ir.Destination("default/s"), prop, expect)
    cluster = ir.Cluster("h", nodes=BASE.nodes, pods=BASE.pods, services=BASE.services, checks=(check,))
    again = reparse(cluster)
    assert again.checks == (check,), format_prop(prop)


@settings(max_examples=100, deadline=None)
@given(st.booleans(), st.booleans(), st.booleans(), label_values)
def test_pod_conditions_and_label_values_round_trip(ready: bool, serving: bool, terminating: bool,
                                                   value: str) -> None:
    pod = ir.Pod("default", "p", "n", BASE.pods[0].ip, labels=(("app", value),), ready=ready,
                 serving=serving, terminating=terminating)
    cluster = ir.Cluster("h", nodes=BASE.nodes, pods=(pod,))
    assert reparse(cluster) == cluster
