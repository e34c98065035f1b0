"""kube-proxy releases kspec compiles for (``--kube-proxy-version``), and where iptables mode changed between
them: ``docs/kube-proxy-releases.md`` is the table, with the upstream change of each row. The compiler asks
``at_least(proxy, ...)`` where a row changes rules or fates; tests pin each row on both sides.
"""
from __future__ import annotations

import dataclasses

from kspec import ir
from kspec.diagnostics import Diagnostic, KspecError
from kspec.topology import with_controller_hints

OLDEST, NEWEST = (1, 28), (1, 36)
SUPPORTED = tuple((1, minor) for minor in range(OLDEST[1], NEWEST[1] + 1))
CORPUS = (1, 34)  # the release kube-proxy's unit-test corpus (shared/conformance/kube-proxy) behaves as

# Rows of docs/kube-proxy-releases.md that kspec keys by release: the first release with the new behaviour.
EXTERNALLY_ACCESSIBLE_CLUSTER_IP = (1, 29)  # row 2: ClusterIP + externalIPs honours externalTrafficPolicy
LB_IP_MODE_ALPHA, LB_IP_MODE_BETA = (1, 29), (1, 30)  # row 4
TCP_LIBERAL_SKIPS_INVALID_DROP = (1, 29)  # row 8a
NFACCT_COUNTERS = (1, 31)  # rows 7b and 8a
NODE_PORT_PRIMARY = (1, 31)  # row 6a
NON_TERMINATING_DUPLICATE_WINS = (1, 36)  # row 1
ZONE_HINTS = (1, 31)  # row 8b: hints honoured without the topology annotation (kspec does not model it)
NODE_HINTS = (1, 34)  # row 8c: PreferSameNode's node hints (beta, on by default)
ZERO_SOURCE_RANGE_OPENS = (1, 34)  # row 3: a /0 in loadBalancerSourceRanges empties the family's list


def topology_hints(proxy: ir.ProxyConfig) -> frozenset[str]:
    """Which EndpointSlice hints this release honours: "zone", "node" (before 1.31 zone hints need the
    Service's topology annotation, which kspec takes as absent)."""
    return frozenset(kind for kind, release in (("zone", ZONE_HINTS), ("node", NODE_HINTS))
                     if at_least(proxy, release))


def text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def parse(value: str) -> tuple[int, int]:
    """A release as ``--kube-proxy-version`` takes it: ``1.31`` (a patch, ``1.31.2``, is the same rules)."""
    parts = value.strip().lstrip("v").split(".")
    try:
        version = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        raise KspecError([Diagnostic(None, f"--kube-proxy-version: '{value}' is not a release like 1.31")]) from None
    if version not in SUPPORTED:
        raise KspecError([Diagnostic(None, f"--kube-proxy-version: {text(version)} is not supported (kspec "
                                           f"compiles {text(OLDEST)} to {text(NEWEST)})")])
    return version


def at_least(proxy: ir.ProxyConfig, release: tuple[int, int]) -> bool:
    return proxy.kube_proxy_version >= release


def lb_ip_mode(proxy: ir.ProxyConfig) -> bool:
    """Whether kube-proxy honours a load balancer ingress's ipMode (LoadBalancerIPMode: no such field before
    1.29; alpha, off by default, in 1.29; beta, on, from 1.30; GA in 1.32, where only an emulated older
    version can still turn it off, as kube-proxy's own tests do: an explicit gate is honoured)."""
    if not at_least(proxy, LB_IP_MODE_ALPHA):
        return False
    gate = proxy.lb_ip_mode_gate
    return gate if gate is not None else at_least(proxy, LB_IP_MODE_BETA)


def with_release(cluster: ir.Cluster, value: str | None) -> ir.Cluster:
    """``cluster`` as kube-proxy ``value`` (None: as the cluster says) programs it; refused where that release
    would refuse its configuration."""
    proxy = cluster.proxy
    if value is not None:
        proxy = dataclasses.replace(proxy, kube_proxy_version=parse(value))
    if proxy.node_port_primary and not at_least(proxy, NODE_PORT_PRIMARY):
        raise KspecError([Diagnostic(proxy.span, f'nodePortAddresses "primary" needs kube-proxy '
                                                 f'{text(NODE_PORT_PRIMARY)} or later (this is '
                                                 f'{text(proxy.kube_proxy_version)})')])

    cluster = dataclasses.replace(cluster, proxy=proxy) if proxy is not cluster.proxy else cluster
    return with_controller_hints(cluster)  # the controller of that release writes the hints
