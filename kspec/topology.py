"""The topology hints the EndpointSlice controller writes for a Service's ``trafficDistribution``.

kube-proxy only reads hints (``compiler.nodeview.topology_mode``); the controller writes them. Where kspec
makes a Service's endpoints itself (a ``.k`` Service with a selector), it writes the hints as the controller
of the cluster's release would (kubernetes ``endpointslice/trafficdist``; its test table is
``tests/data/kube-proxy-helpers/trafficdist-hints.json``):

* PreferClose (from 1.31, when ServiceTrafficDistribution is on by default), PreferSameZone and
  PreferSameNode (from 1.34, PreferSameTrafficDistribution on by default): every *ready* endpoint gets
  ``forZones = [its node's zone]`` when the node has a zone; PreferSameNode also ``forNodes = [its node]``.
* Before 1.33, PreferClose gave an endpoint without a zone the dummy zone ``""``.
* Otherwise (unset, or not yet in that release): no hints.

Endpoints given explicitly (``endpoints { ... }``, or EndpointSlice objects) keep the hints they carry: those
are slices as written. The ``service.kubernetes.io/topology-mode`` annotation, which takes precedence in the
controller, is not modelled.
"""
from __future__ import annotations

import dataclasses

from kspec import ir

DISTRIBUTIONS = ("PreferClose", "PreferSameZone", "PreferSameNode")
PREFER_CLOSE = (1, 31)  # ServiceTrafficDistribution beta, on by default
PREFER_SAME = (1, 34)  # PreferSameTrafficDistribution beta, on by default
NO_DUMMY_ZONE = (1, 33)  # kubernetes commit 19952a2b7bd5 (PreferSameZone/PreferSameNode) dropped the "" zone


def with_controller_hints(cluster: ir.Cluster) -> ir.Cluster:
    """``cluster`` with each selector Service's endpoints hinted as the controller writes them."""
    release = cluster.proxy.kube_proxy_version
    zones = {node.name: node.zone for node in cluster.nodes}
    services = tuple(_hinted(svc, zones, release) if svc.selector is not None else svc for svc in cluster.services)
    if all(new is old for new, old in zip(services, cluster.services)):
        return cluster
    return dataclasses.replace(cluster, services=services)


def _hinted(svc: ir.Service, zones: dict[str, str | None], release: tuple[int, int]) -> ir.Service:
    endpoints = tuple(dataclasses.replace(ep, zone_hints=zh, node_hints=nh)
                      if (zh, nh) != (ep.zone_hints, ep.node_hints) else ep
                      for ep in svc.endpoints for zh, nh in [hints(svc.traffic_distribution, ep, zones, release)])
    return svc if endpoints == svc.endpoints else dataclasses.replace(svc, endpoints=endpoints)


def hints(distribution: str | None, ep: ir.Endpoint, zones: dict[str, str | None], release: tuple[int, int]
          ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(forZones, forNodes) of one endpoint: cleared when no distribution is in effect; an endpoint that is
    not ready keeps what it had (the controller touches only ready ones)."""
    if not _in_effect(distribution, release):
        return (), ()
    if not ep.ready:
        return ep.zone_hints, ep.node_hints
    zone = zones.get(ep.node) if ep.node else None
    for_zones = (zone,) if zone else ("",) if release < NO_DUMMY_ZONE else ()
    for_nodes = (ep.node,) if distribution == "PreferSameNode" and ep.node else ()
    return for_zones, for_nodes


def _in_effect(distribution: str | None, release: tuple[int, int]) -> bool:
    if distribution == "PreferClose":
        return release >= PREFER_CLOSE
    return distribution in ("PreferSameZone", "PreferSameNode") and release >= PREFER_SAME
