"""The one netfilter and cluster-network model both engines run: netfilter's rules of the road
(``netfilter``), the extension matches decided on values or Z3 terms alike (``matches``), the kernel's NAT
range picks (``natpick``), the cluster's addresses and routes (``network``), and a packet's way through
hooks, nodes and back (``walk``)."""
