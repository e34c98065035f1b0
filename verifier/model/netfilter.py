"""Netfilter's rules of the road, in one place: both engines (the Z3 model in ``encode``/``network`` and the
concrete tracer) read them from here, so that they cannot drift.

* which tables each hook runs, in the kernel's priority order (raw -300, conntrack -200, mangle -150,
  nat's DNAT -100, filter 0, security 50, nat's SNAT 100);
* what the conntrack match sees in a table: nothing is tracked yet in raw (the packet meets conntrack after
  raw), so ``--ctstate`` sees INVALID there, and NEW (plus the virtual DNAT/SNAT states) afterwards;
* which status bits (``--ctstatus``) a connection has for each of its packets;
* the nat table sees only a connection's first packet: a packet a node sends to itself comes back through
  ``lo`` already NATed, so its PREROUTING and INPUT skip nat;
* protocol names and numbers (``-p 17`` is ``-p udp``).

Where a packet is routed and which address source NAT picks are facts of the cluster network, so they live
in ``network.ClusterNetwork`` (``route``, ``nat_source``); the order in which a packet meets hooks, routes and
nodes is ``walk``, which both engines run.
"""
from __future__ import annotations

from dataclasses import dataclass

from kspec.rules.iptables import ruleset as rs

# How a table's walk of a packet ends (both engines).
ACCEPT, DROP, REJECT, UNKNOWN = "accept", "drop", "reject", "unknown"

# Tables per hook, in priority order. A table without the hook's chain is skipped.
HOOK_TABLES: dict[str, tuple[str, ...]] = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "security", "nat"),
    "FORWARD": ("mangle", "filter", "security"),
    "OUTPUT": ("raw", "mangle", "nat", "filter", "security"),
    "POSTROUTING": ("mangle", "nat"),
}

# Hooks where the kernel knows the outgoing interface (the routing decision was made before them). Before
# it (PREROUTING, INPUT) `-o` sees no interface, the empty name, as `-i` does for a packet the node sent.
HOOKS_WITH_OUT = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})


def tracked_in(table: str, looped: bool = False, attached: bool = False) -> bool:
    """Whether conntrack has seen the packet when ``table`` runs (raw runs first; a looped-back packet was
    tracked on its way out). ``attached``: an error the node itself sends about a connection (a REJECT's ICMP
    error) carries that connection from its birth (nf_ct_attach), so even raw OUTPUT sees it RELATED, with
    its mark; the kernel agrees (tests/verifier/test_kernel_faithful.py, "reject ... raw OUTPUT")."""
    return looped or attached or table != "raw"


def tables_of(hook: str, looped: bool = False) -> tuple[str, ...]:
    """The tables ``hook`` runs; ``looped``: for a packet a node sent to itself, on its way back in."""
    tables = HOOK_TABLES[hook]
    return tuple(t for t in tables if t != "nat") if looped else tables


def ct_states(tracked: bool, dnat: bool, snat: bool = False, *, untracked: bool = False,
              established: bool = False, related: bool = False, invalid: bool = False,
              nat_states: frozenset = frozenset()) -> frozenset[rs.CtState]:
    """The states ``-m conntrack --ctstate`` sees: INVALID before conntrack has seen the packet (``tracked``
    False: the raw table) and for a TCP reply of a connection this node never saw; UNTRACKED after ``-j CT
    --notrack``; ESTABLISHED for a reply of a known connection, with the connection's virtual SNAT/DNAT
    states (``nat_states``); RELATED likewise for an ICMP error about a known connection; else NEW, with the
    DNAT/SNAT done to this first packet so far."""
    if untracked:
        return _UNTRACKED
    if not tracked or invalid:
        return _INVALID
    if established:
        return frozenset({rs.CtState.RELATED if related else rs.CtState.ESTABLISHED}) | nat_states
    states = {rs.CtState.NEW}
    if dnat:
        states.add(rs.CtState.DNAT)
    if snat:
        states.add(rs.CtState.SNAT)
    return frozenset(states)


def ct_status(pkt) -> frozenset[rs.CtStatus]:
    """The status bits ``-m conntrack --ctstatus`` sees of the packet's connection, where conntrack has seen
    the packet. A first packet's entry is unconfirmed until it leaves POSTROUTING or INPUT (``pkt.confirmed``
    once it comes back in through ``lo``); conntrack sets SEEN_REPLY on the first answer before any table but
    raw sees it, and ASSURED on the TCP packet after the handshake's answer (the client's data is walked after
    its ACK); an ICMP error shows the status of the connection it is about (``pkt.master``, as the walk
    found it on that node). EXPECTED belongs to helpers' connections, never modelled ones. The kernel agrees
    (tests/verifier/test_kernel_faithful.py, "ctstatus")."""
    if pkt.related:
        return pkt.master
    if pkt.established:
        return ANSWERED_LATER if pkt.data else _ANSWERED
    return _CONFIRMED if pkt.confirmed else frozenset()


def state_match(match: rs.Conntrack, states: frozenset[rs.CtState]) -> bool:
    """``-m conntrack --ctstate`` / ``-m state --state`` (the older module has no virtual NAT states)."""
    if match.module != "conntrack":
        states = states - _NAT_STATES
    return (not states.isdisjoint(match.states)) != match.negated


_CONFIRMED = frozenset({rs.CtStatus.CONFIRMED})
_ANSWERED = _CONFIRMED | {rs.CtStatus.SEEN_REPLY}
ANSWERED_LATER = _ANSWERED | {rs.CtStatus.ASSURED}  # a TCP connection once the client's data follows
_INVALID = frozenset({rs.CtState.INVALID})
_UNTRACKED = frozenset({rs.CtState.UNTRACKED})
_NAT_STATES = frozenset({rs.CtState.SNAT, rs.CtState.DNAT})

# /etc/protocols' names for the numbers a rule may use instead (iptables accepts either, and aliases).
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "icmp6": 58,
                    "udplite": 136, "esp": 50, "ah": 51, "gre": 47}


def protocol_matches(rule_protocol: str, packet_protocol: str) -> bool:
    """``-p NAME|NUMBER`` (not negated) against a packet's protocol name; ``all`` and 0 match every packet."""
    if rule_protocol in ("all", "0", packet_protocol):
        return True
    number = PROTOCOL_NUMBERS.get(packet_protocol)
    return number is not None and (rule_protocol == str(number) or PROTOCOL_NUMBERS.get(rule_protocol) == number)


@dataclass(frozen=True, slots=True)
class Connection:
    """What one node's conntrack holds of a connection, for its replies: the NAT to undo. Addresses and ports
    are whatever the engine uses (Python values in the tracer, Z3 terms where the model is symbolic).

    A reply of a connection the node holds is ESTABLISHED and never meets the nat table's rules; at nat's
    place in each hook conntrack undoes the NAT instead: source NAT at PREROUTING or OUTPUT (the reply's
    destination becomes the original source), destination NAT at POSTROUTING or INPUT (its source becomes
    the original destination)."""

    undo_snat: tuple | None = None  # (address, port) the reply's destination becomes
    undo_dnat: tuple | None = None  # (address, port) the reply's source becomes
    mark: int = 0  # the connection's mark (CONNMARK), as the first packet left it
    # The client's later packets (original direction) get the first packet's NAT again, at the same places:
    snat_to: tuple | None = None  # (address, port) their source becomes
    dnat_to: tuple | None = None  # (address, port) their destination becomes
    random_sport: bool = False  # the SNAT's port is the kernel's random pick (natpick)
    status: frozenset = frozenset({rs.CtStatus.CONFIRMED})  # its --ctstatus bits now (a forwarded first packet's)

    @property
    def nat_states(self) -> frozenset[rs.CtState]:
        states = set()
        if self.undo_snat is not None:
            states.add(rs.CtState.SNAT)
        if self.undo_dnat is not None:
            states.add(rs.CtState.DNAT)
        return frozenset(states)


# Where conntrack undoes each kind of NAT on a reply: at nat's place in these hooks (the kernel's
# destination manip hooks, PREROUTING and OUTPUT, and its source manip hooks). A node's own reply to a
# connection SNATed in nat INPUT gets its destination back in OUTPUT, and is routed by it.
UNDO_SNAT_HOOKS = frozenset({"PREROUTING", "OUTPUT"})
UNDO_DNAT_HOOKS = frozenset({"POSTROUTING", "INPUT"})
# ... and where it does the NAT again for the client's later packets, as nat did for the first one.
REDO_DNAT_HOOKS = frozenset({"PREROUTING", "OUTPUT"})
REDO_SNAT_HOOKS = frozenset({"POSTROUTING", "INPUT"})
