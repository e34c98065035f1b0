"""The nftables backend (kube-proxy's nftables mode): IR -> the ``nft -f`` transaction its proxier writes.

Empty so far (issue 15). It will read the same per-node view as ``compiler/iptables`` (``compiler.nodeview``,
``compiler.context``, ``compiler.names`` for the hashed chain names) and write ``kspec.rules.nftables``'s
text, so the two backends differ only where kube-proxy's two proxiers do.
"""
