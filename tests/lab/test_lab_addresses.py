"""The lab's address plan is the model's: each node's local routing table, as the kernel holds it, names the
addresses and devices ``network.local_routes`` says (what ``-m addrtype`` and ``--limit-iface`` read)."""
from __future__ import annotations

import re

import pytest

from kspec import ir
from kspec.lab.netns import run
from kspec.lab.topology import Lab
from kspec.verifier.model.network import local_routes
from tests.verifier.test_kernel_faithful import scenario

pytestmark = pytest.mark.netns


def _kernel_local_routes(ns: str) -> dict[str, list[str]]:
    """Own address -> the devices of its local routes, in the order the kernel's lookups meet them."""
    found: dict[str, list[str]] = {}
    for line in run(["ip", "-n", ns, "-4", "route", "show", "table", "local"]).stdout.splitlines():
        hit = re.match(r"local (\S+) dev (\S+)", line)
        if hit and not hit.group(1).startswith("127."):
            found.setdefault(hit.group(1), []).append(hit.group(2))
    return found


@pytest.mark.parametrize("wiring", ["", "pod_wiring unnumbered "])
def test_local_routes_are_the_kernels(wiring: str):
    cluster, _ = scenario(wiring=wiring)
    lab = Lab(cluster, ir.IPFamily.V4)
    try:
        lab.build()
        for node in cluster.nodes:
            kernel = _kernel_local_routes(lab.nodes[node.name])
            model = local_routes(cluster, node, ir.IPFamily.V4)
            assert set(kernel) == {str(ip) for ip in model}, node.name
            for ip, device in model.items():
                devices = kernel[str(ip)]
                # One device: that one; several (None): the model does not say which the lookup finds.
                assert devices == [device] if device is not None else len(devices) > 1, (node.name, ip, devices)
    finally:
        lab.teardown()
