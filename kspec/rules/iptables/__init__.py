"""iptables' rule language: ``iptables-save`` text, ``ipset save`` sets, and the rule IR both read into."""
