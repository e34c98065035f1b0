"""Hypothesis's ``hypothesis`` entry point: ``st.from_type(kspec.ir.Cluster)`` (and Node, Pod, Service).

Kept apart from ``kspec.strategies`` and lazy (``st.deferred``): Hypothesis runs this hook while it is being
imported, possibly because ``kspec.strategies`` itself is importing it.
"""
from __future__ import annotations


def _hypothesis_setup_hook() -> None:
    import importlib

    from hypothesis import strategies as st

    from kspec import ir

    def lazy(build):
        return st.deferred(lambda: build(importlib.import_module("kspec.strategies")))

    st.register_type_strategy(ir.Cluster, lazy(lambda ks: ks.clusters()))
    st.register_type_strategy(ir.Node, lazy(lambda ks: ks.nodes(1, 1).map(lambda nodes: nodes[0])))
    st.register_type_strategy(ir.Pod, lazy(lambda ks: ks.nodes(1, 1).flatmap(lambda n: ks.pods(n, 1, 1))
                                           .map(lambda pods: pods[0])))
    st.register_type_strategy(ir.Service, lazy(lambda ks: ks.services()))
    st.register_type_strategy(ir.ServiceType, lazy(lambda ks: st.sampled_from(ks.ALL_TYPES)))
