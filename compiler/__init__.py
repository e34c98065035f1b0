"""IR -> the rules kube-proxy programs on each node, one backend per proxy mode.

The backend-neutral half is kube-proxy's view of the cluster from one node: which service ports it
programs and which endpoints each may pick (``nodeview``), nodePortAddresses (``nodeportaddresses``), chain
name hashing (``names``), what ``/healthz`` answers (``healthcheck``), the node's facts (``context``).
A backend turns that view into one rule language:

* ``iptables/``: iptables mode, the ``iptables-restore`` input (``compile_node``, ``compile_cluster``);
* ``nftables/``: nftables mode, the ``nft -f`` transaction (issue 15; empty so far).
"""
from __future__ import annotations

from kspec.compiler.iptables import FULL_SYNC, SyncState, compile_cluster, compile_node, service_ports
from kspec.compiler.iptables.basechains import base_rules

__all__ = ["FULL_SYNC", "SyncState", "base_rules", "compile_cluster", "compile_node", "service_ports"]
