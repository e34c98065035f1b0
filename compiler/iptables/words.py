"""Small builders for the words of a rule, shared by every rule module."""
from __future__ import annotations

from kspec import ir
from kspec.compiler.nodeview import ServicePortInfo


def comment(text: str) -> tuple[str, ...]:
    # kube-proxy puts the quotes into the string itself; there is no other escaping.
    return ("-m", "comment", "--comment", f'"{text}"' if " " in text else text)


def proto(info: ServicePortInfo) -> tuple[str, ...]:
    return ("-m", info.protocol, "-p", info.protocol)


def dest_port(info: ServicePortInfo, ip: ir.IPAddress, port: int) -> tuple[str, ...]:
    """``-m P -p P -d IP --dport PORT``: the destination key of a service rule."""
    return proto(info) + ("-d", str(ip), "--dport", str(port))


def endpoint_text(ip: ir.IPAddress, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
