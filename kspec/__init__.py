"""kspec: what will kube-proxy do to this packet, and which source IP will my pod see?

Pipeline: ``kspec.grammar`` (.k files) or ``kspec.ingest`` (Kubernetes objects, the corpus) -> ``kspec.ir`` ->
``kspec.compiler`` (a backend per proxy mode: rules per node) -> ``kspec.rules`` (rule languages -> rule IR)
-> ``kspec.verifier`` (``model``: netfilter and the cluster network; ``engines``: Z3 and concrete; verdicts)
-> ``kspec.report``; ``kspec.lab`` runs the kernel as the third engine. See ARCHITECTURE.md.
"""
__version__ = "0.1.0"
