"""The lab's namespace toolkit: commands run inside a namespace, Python run inside one, sysctls written
there, and the lab's namespaces found and removed. Everything here acts only on namespaces named with
``PREFIX`` (the lab's own) or on the one namespace a caller names; nothing touches the root namespace.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import TypeVar

from kspec import ir

PREFIX = "kspec-lab-"
NETNS_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
COMMAND_TIMEOUT = 20.0  # seconds, for every ip/iptables/nfacct/conntrack command
_NAME_PID = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")
T = TypeVar("T")


class LabError(RuntimeError):
    """The lab could not be built or driven (the message says which step and why)."""


def tool_path() -> str:
    # iproute2 and iptables live in /usr/sbin, which a non-login environment may leave off PATH.
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def iptables(family: ir.IPFamily, tool: str = "iptables") -> str:
    """``iptables``, ``iptables-restore``... of the family (``ip6tables...`` for IPv6)."""
    return tool.replace("iptables", "ip6tables", 1) if family is ir.IPFamily.V6 else tool


def requirements(family: ir.IPFamily = ir.IPFamily.V4) -> str | None:
    """Why the lab cannot run here (one line), or None."""
    if os.geteuid() != 0:
        return "kspec lab needs root (it creates network namespaces and loads iptables rules into them)"
    tools = ["ip"] + [iptables(family, tool) for tool in ("iptables-restore", "iptables-save", "iptables")]
    missing = [tool for tool in tools if shutil.which(tool, path=tool_path()) is None]
    if missing:
        return f"kspec lab needs `ip netns` and iptables: missing {', '.join(missing)} (Debian: apt-get install " \
               "iproute2 iptables)"
    probe = run(["ip", "netns", "list"], check=False)
    if probe.returncode != 0:
        return f"kspec lab needs `ip netns`: {probe.stderr.strip() or 'ip netns list failed'}"
    return None


def run(args: list[str], stdin: str | None = None, check: bool = True,
        timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run a command with a timeout; ``check``: a failure raises LabError naming the command."""
    try:
        result = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "PATH": tool_path()})
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(args)}` did not finish within {timeout:g}s") from exc
    if check and result.returncode != 0:
        raise LabError(f"`{' '.join(args)}` failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def in_ns(ns: str, args: list[str], stdin: str | None = None, check: bool = True,
          timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``args`` run inside namespace ``ns`` (``ip netns exec``); never in the root namespace."""
    if not ns.startswith(PREFIX):
        raise LabError(f"refusing to run {args[0]} outside the lab's namespaces ({ns})")
    return run(["ip", "netns", "exec", ns, *args], stdin, check, timeout)


# ------------------------------------------------------------------ running Python code in a namespace

_libc = ctypes.CDLL(None, use_errno=True)


def call_in_ns(ns: str, fn: Callable[[], T], timeout: float = 60.0) -> T:
    """``fn()`` run in a new thread that has entered ``ns`` (setns(2) changes only the calling thread's
    namespace, so the caller stays where it is). Sockets ``fn`` creates belong to ``ns``."""
    if not ns.startswith(PREFIX):
        raise LabError(f"refusing to enter a namespace outside the lab ({ns})")
    box: dict[str, object] = {}

    def body() -> None:
        try:
            fd = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {ns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"netns {ns}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise LabError(f"work inside {ns} did not finish within {timeout:g}s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def write_sysctls(ns: str, values: dict[str, str]) -> None:
    """Write ``/proc/sys`` keys (``net/ipv4/ip_forward``...) as seen from inside ``ns``."""
    def body() -> None:
        for key, value in values.items():
            try:
                with open(f"/proc/sys/{key}", "w", encoding="ascii") as handle:
                    handle.write(value)
            except OSError as exc:
                raise LabError(f"cannot set {key.replace('/', '.')}={value} in {ns}: {exc.strerror}") from exc
    call_in_ns(ns, body, timeout=10)


# ------------------------------------------------------------------------------------ namespaces


def lab_namespaces() -> list[str]:
    result = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    return [name for name in names if name.startswith(PREFIX)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_namespace_processes(ns: str) -> None:
    """End the processes the lab started inside ``ns`` (servers), by pid."""
    listed = run(["ip", "netns", "pids", ns], check=False).stdout.split()
    for text in listed:
        try:
            os.kill(int(text), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def delete_namespaces(names: list[str]) -> list[str]:
    """Delete namespaces (their processes first); the names that could not be deleted."""
    failed = []
    for ns in names:
        if not ns.startswith(PREFIX):
            continue
        kill_namespace_processes(ns)
        result = run(["ip", "netns", "delete", ns], check=False)
        if result.returncode != 0 and os.path.exists(os.path.join(NETNS_DIR, ns)):
            failed.append(ns)
    return failed


def cleanup(include_live: bool = False) -> tuple[list[str], list[str], list[str]]:
    """Remove labs left behind: (deleted, kept because their creator still runs, failed).

    A lab's namespace names carry the creating process's id; a lab whose creator is gone (a crash, or a
    ``--keep`` run) is stale. ``include_live`` removes running labs too.
    """
    stale, live = [], []
    for ns in lab_namespaces():
        match = _NAME_PID.match(ns)
        owner = int(match.group(1)) if match else None
        if include_live or owner is None or not _pid_alive(owner):
            stale.append(ns)
        else:
            live.append(ns)
    failed = delete_namespaces(stale)
    return [ns for ns in stale if ns not in failed], live, failed
