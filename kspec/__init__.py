"""kspec: what will kube-proxy do to this packet, and which source IP will my pod see?

Pipeline: ``kspec.grammar`` (.k files) or ``kspec.ingest.k8s`` (Kubernetes objects) -> ``kspec.ir`` ->
``kspec.compiler`` (iptables-restore text per node) -> ``kspec.verifier`` (rules -> Z3, properties).
See ARCHITECTURE.md.
"""
__version__ = "0.1.0"
