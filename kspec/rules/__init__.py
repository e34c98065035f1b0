"""Rule languages: what a node's rules are written in, read into a rule IR the verifier's model runs.

* ``iptables/``: ``iptables-save``/``iptables-restore`` text (``iptables_save``) and ``ipset save``
  (``ipset_save``) into the rule IR (``ruleset``: Ruleset -> Table -> Chain -> Rule), and the kernel's own
  checks of a whole ruleset (``validity``);
* ``nftables/``: ``nft list ruleset`` and its JSON form (issue 15; empty so far).
"""
