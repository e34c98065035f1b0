"""nftables' rule language: ``nft list ruleset`` text and ``nft -j list ruleset`` JSON (the schema libnftables
documents) into a rule IR for the verifier's model. Empty so far (issue 15); positioned errors and
``unknown`` for what it does not model, as ``kspec.rules.iptables`` has them.
"""
