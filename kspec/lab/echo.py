"""The lab's servers, run inside a namespace as ``ip netns exec NS python -m kspec.lab.echo CONFIG``.

``CONFIG`` is JSON:

* ``{"mode": "echo", "pod": "ns/name", "tcp": [8080], "udp": [53], "addr": "::"}``: the classic source-ip app
  (registry.k8s.io/echoserver): every TCP connection gets an HTTP answer, every UDP datagram a datagram,
  naming the peer address the pod saw (``client_address=...``) and the pod (``pod=ns/name``). It listens on
  ``addr`` (default ``0.0.0.0``; ``::`` in an IPv6 lab, IPv6 only, so no peer shows as ``::ffff:...``).
* ``{"mode": "http", "servers": [{"addr": "0.0.0.0", "port": 32122, "paths": {"/healthz": [503, "type",
  "body"]}}]}``: fixed HTTP answers per path (``"*"``: any path): kube-proxy's health-check node ports,
  its ``/healthz`` and its metrics server's ``/proxyMode``.

The server prints ``ready`` once every socket is bound. With ``"parent": PID`` it exits when that process
is gone, so a crashed kspec leaves no server running. Standard library only.
"""
from __future__ import annotations

import json
import os
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

REQUEST_TIMEOUT = 2.0  # seconds a connection may take to send its request


def echo_body(pod: str, peer: str, command: str = "GET", path: str = "/") -> str:
    name = pod.split("/")[-1]
    return (f"Hostname: {name}\n\nPod Information:\n\tpod={pod}\n\n"
            f"Server values:\n\tserver_version=kspec-lab\n\n"
            f"Request Information:\n\tclient_address={peer}\n\tmethod={command}\n\treal path={path}\n"
            f"\tquery=\n\trequest_version=1.1\n\trequest_scheme=http\n\n")


def parse_echo(text: str) -> tuple[str | None, str | None]:
    """(pod, client_address) from an echo answer."""
    pod = peer = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("pod="):
            pod = line[4:]
        elif line.startswith("client_address="):
            peer = line[15:]
    return pod, peer


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def _bound(server_class: type, addr: str, port: int, handler: type) -> socketserver.BaseServer:
    """``server_class`` listening on (addr, port), in addr's family (IPv6 only for an IPv6 address)."""
    if ":" not in addr:
        return server_class((addr, port), handler)

    class V6Only(server_class):
        address_family = socket.AF_INET6

        def server_bind(self) -> None:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            super().server_bind()

    return V6Only((addr, port), handler)


def _echo_tcp(pod: str, port: int, addr: str) -> socketserver.BaseServer:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(REQUEST_TIMEOUT)
            data = b""
            try:
                while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < 8192:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            first = data.split(b"\r\n", 1)[0].decode("latin-1").split()
            command, path = (first[0], first[1]) if len(first) >= 2 else ("GET", "/")
            body = echo_body(pod, self.client_address[0], command, path).encode()
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n").encode()
            try:
                self.request.sendall(head + body)
            except OSError:
                pass

    return _bound(_Server, addr, port, Handler)


def _echo_udp(pod: str, port: int, addr: str) -> socketserver.BaseServer:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            _data, sock = self.request
            sock.sendto(echo_body(pod, self.client_address[0]).encode(), self.client_address)

    server = _bound(socketserver.ThreadingUDPServer, addr, port, Handler)
    server.daemon_threads = True  # type: ignore[attr-defined]  # _bound returns the base type; this is a ThreadingMixIn
    return server


def _http(addr: str, port: int, paths: dict[str, list]) -> socketserver.BaseServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "kube-proxy"
        sys_version = ""
        timeout = REQUEST_TIMEOUT

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            answer = paths.get(self.path.split("?")[0]) or paths.get("*")
            status, ctype, body = answer if answer else (404, "text/plain", "404 page not found\n")
            data = body.encode()
            self.log_request(status)
            self.send_response_only(status)  # Go's net/http sends no Server header
            self.send_header("Date", self.date_time_string())
            self.send_header("Content-Type", ctype)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return _bound(_Server, addr, port, Handler)


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    servers: list[socketserver.BaseServer] = []
    if config["mode"] == "echo":
        addr = config.get("addr", "0.0.0.0")
        servers += [_echo_tcp(config["pod"], port, addr) for port in config.get("tcp", [])]
        servers += [_echo_udp(config["pod"], port, addr) for port in config.get("udp", [])]
    elif config["mode"] == "http":
        servers += [_http(s["addr"], s["port"], s["paths"]) for s in config["servers"]]
    else:
        print(f"unknown mode {config['mode']}", file=sys.stderr)
        return 2
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
    print("ready", flush=True)
    parent = config.get("parent")
    while True:
        time.sleep(0.5)
        if parent and (os.getppid() != parent):
            return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except OSError as exc:
        print(f"kspec.lab.echo: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(0)
