"""Small clusters for the lab's differential test, drawn as ``.k`` text (so the front end resolves selectors
and defaults exactly as for a hand-written spec).

1-3 nodes, 1-3 pods (each maybe an endpoint, maybe not ready or terminating), one Service of a random type,
protocol and traffic policies (sometimes session affinity, external IPs, source ranges, ipMode Proxy), a cloud
load balancer (VIP or node-port style, with or without health checks) for LoadBalancer Services, and checks
from an external client, from every pod and from a node: every probe kind the lab sends.
"""
from __future__ import annotations

from hypothesis import strategies as st

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")


@st.composite
def lab_specs(draw) -> str:
    n_nodes = draw(st.integers(1, 3))
    n_pods = draw(st.integers(1, 3))
    svc_type = draw(st.sampled_from(SERVICE_TYPES))
    protocol = draw(st.sampled_from(("tcp", "udp")))
    external = svc_type != "ClusterIP"
    etp = draw(st.sampled_from(("Cluster", "Local"))) if external else "Cluster"
    itp = draw(st.sampled_from(("Cluster", "Local")))
    affinity = draw(st.booleans()) and draw(st.booleans())  # a quarter of the time
    masquerade_all = draw(st.booleans()) and draw(st.booleans())
    localhost = draw(st.booleans())
    detect = draw(st.sampled_from(("cluster_cidr", "node_cidr", "interface_prefix veth", "none")))
    lb_health = draw(st.booleans())
    lb_style = draw(st.sampled_from(("vip", "vip", "nodeport")))
    ip_mode = draw(st.sampled_from(("", "", " ip_mode proxy")))
    source_ranges = draw(st.sampled_from(("", "", "192.0.2.0/24", "198.18.0.0/15")))
    external_ip = draw(st.booleans()) and draw(st.booleans())
    node_client = draw(st.booleans())

    lines = ["cluster lab {", "  cluster_cidr 10.244.0.0/16", "  proxy {",
             f"    masquerade_all {'true' if masquerade_all else 'false'}",
             f"    localhost_node_ports {'true' if localhost else 'false'}",
             f"    detect_local {detect}", "  }"]
    for i in range(n_nodes):
        lines.append(f"  node node{i} {{ ip 10.240.0.{10 + i}  pod_cidr 10.244.{i + 1}.0/24 }}")
    endpoints = 0
    for j in range(n_pods):
        node = draw(st.integers(0, n_nodes - 1))
        serves = draw(st.booleans())
        endpoints += serves
        ready = draw(st.sampled_from(("",) * 8 + ("  not ready", "  not ready  terminating",
                                                   "  not ready  not serving  terminating")))
        label = "labels { app = echo }" if serves else "labels { app = other }"
        lines.append(f"  pod pod{j} on node{node} {{ ip 10.244.{node + 1}.{10 + j}  {label}{ready} }}")
    lines += ["  service echo {", f"    type {svc_type}", "    cluster_ip 10.96.0.10", "    selector app = echo"]
    port = f"    port 80 -> 8080/{protocol}"
    if external:
        port += " node_port 30080"
    lines.append(port)
    if svc_type == "LoadBalancer":
        lines.append(f"    load_balancer_ingress 203.0.113.10{ip_mode}")
        if source_ranges:
            lines.append(f"    load_balancer_source_ranges {source_ranges}")
    if external_ip:
        lines.append("    external_ips 198.51.100.20")
    if external:
        lines.append(f"    external_traffic_policy {etp}")
        if etp == "Local" and svc_type == "LoadBalancer":
            lines.append("    health_check_node_port 32000")
    lines.append(f"    internal_traffic_policy {itp}")
    if affinity:
        lines.append("    session_affinity client_ip")
    lines.append("  }")
    lines.append("  client internet { ip 192.0.2.7  external }")
    for j in range(n_pods):
        lines.append(f"  client c{j} from pod pod{j}")
    if node_client:
        lines.append("  client host on node node0")
    if svc_type == "LoadBalancer":
        lines.append(f"  load_balancer cloud {{ style {lb_style}  health_check {'on' if lb_health else 'off'} }}")
    inside = ", ".join([f"c{j}" for j in range(n_pods)] + (["host"] if node_client else []))
    lines += ["  check \"inside\" {", f"    from {inside}", "    to echo via cluster_ip", "    assert delivered",
              "  }"]
    if external:
        lines += ["  check \"node port\" {", "    from internet", "    to echo via node_port", "    assert delivered",
                  "  }"]
    if external_ip:
        lines += ["  check \"external IP\" {", f"    from internet, {inside}", "    to echo via external_ip",
                  "    assert delivered", "  }"]
    if svc_type == "LoadBalancer":
        lines += ["  check \"load balancer\" {", "    from internet", "    to echo via load_balancer",
                  "    assert delivered", "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"
