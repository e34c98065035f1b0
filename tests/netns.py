"""Throwaway network namespaces, for tests (and benchmarks) that hand rules to the real kernel.

Everything runs inside a namespace made for the purpose and deleted afterwards, so the host's own rules are
never touched. Namespace names carry this process's id: concurrent test runs on one machine never collide,
and a run can check that it left none of its own behind (``leftover_namespaces``).

Two facts about iptables 1.8 (nf_tables backend) shape the helpers:

* ``iptables-restore --test`` only parses: it accepts jumps to chains that do not exist and ``-m nfacct``
  names that were never created. Only a real restore (into the throwaway namespace) checks those, so
  ``iptables_restore`` can do either.
* A real restore of a rule with ``-m nfacct --nfacct-name N`` fails ("RULE_APPEND failed (No such file or
  directory)") unless the counter N exists in that namespace: kube-proxy only writes such rules after
  creating the counters, so the helpers create every counter the text names, first.
"""
from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from kspec.lab.netns import tool_path

PREFIX = "kspec-test-"
_serial = itertools.count()
_NFACCT_NAME = re.compile(r"--nfacct-name +(\S+)")  # iptables-save prints two spaces


def skip_reason() -> str | None:
    """Why kernel tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (ip netns add, iptables in a network namespace)"
    missing = [tool for tool in ("ip", "iptables-restore", "ip6tables-restore", "iptables-save")
               if shutil.which(tool, path=tool_path()) is None]
    if missing:
        return f"missing {', '.join(missing)} (Debian: apt-get install iproute2 iptables; scripts/test does it)"
    return None


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, env={**os.environ, "PATH": tool_path()})


def namespaces() -> list[str]:
    """Names of the network namespaces ``ip netns`` knows."""
    result = _run(["ip", "netns", "list"])
    # Lines look like "name" or "name (id: 3)".
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def own_prefix(prefix: str = PREFIX) -> str:
    """The name prefix of the namespaces this process creates."""
    return f"{prefix}{os.getpid()}-"


def leftover_namespaces(prefix: str = PREFIX) -> list[str]:
    """This process's namespaces that still exist."""
    return [name for name in namespaces() if name.startswith(own_prefix(prefix))]


@contextmanager
def throwaway_netns(prefix: str = PREFIX) -> Iterator[str]:
    """A new, empty network namespace, yielded by name and deleted on the way out, whatever happens inside."""
    name = f"{own_prefix(prefix)}{next(_serial)}-{secrets.token_hex(3)}"
    created = _run(["ip", "netns", "add", name])
    if created.returncode != 0:
        raise RuntimeError(f"ip netns add {name} failed: {created.stderr.strip()}")
    try:
        yield name
    finally:
        _delete(name)


def _delete(name: str) -> None:
    result = _run(["ip", "netns", "delete", name])
    if result.returncode != 0 and name in namespaces():
        raise RuntimeError(f"could not delete network namespace {name}: {result.stderr.strip()}")


def nfacct_names(text: str) -> list[str]:
    """The nfacct counters a restore text refers to, in first-use order."""
    return list(dict.fromkeys(_NFACCT_NAME.findall(text)))


def ensure_nfacct(ns: str, names: list[str]) -> None:
    """Create the named nfacct counters in ``ns`` unless they exist (counters are per namespace)."""
    if not names:
        return
    if shutil.which("nfacct", path=tool_path()) is None:
        raise RuntimeError("the rules use -m nfacct but the nfacct tool is missing (Debian: apt-get install nfacct)")
    listed = _run(["ip", "netns", "exec", ns, "nfacct", "list"]).stdout
    for name in names:
        if f"= {name};" in listed:
            continue
        result = _run(["ip", "netns", "exec", ns, "nfacct", "add", name])
        if result.returncode != 0:
            raise RuntimeError(f"nfacct add {name} in {ns} failed: {result.stderr.strip()}")


def iptables_restore(ns: str, text: str, ipv6: bool = False, *, test: bool = False,
                     noflush: bool = False) -> tuple[bool, str]:
    """Feed ``text`` to (ip6)iptables-restore inside ``ns``; (ok, stderr).

    ``test`` only parses (see the module doc for what that misses); otherwise the rules are committed to
    the namespace. ``noflush`` keeps chains the text does not declare, as kube-proxy's restores do.
    """
    ensure_nfacct(ns, nfacct_names(text))
    args = ["ip", "netns", "exec", ns, "ip6tables-restore" if ipv6 else "iptables-restore"]
    if test:
        args.append("--test")
    if noflush:
        args.append("--noflush")
    result = _run(args, stdin=text)
    return result.returncode == 0, result.stderr


def iptables_restore_test(ns: str, text: str, ipv6: bool = False) -> tuple[bool, str]:
    """``iptables-restore --test`` (or ip6tables-restore) of ``text`` inside ``ns``; (ok, stderr)."""
    return iptables_restore(ns, text, ipv6, test=True)


def root_ruleset() -> str:
    """The host's (root namespace's) iptables and ip6tables rules, minus what changes by itself.

    iptables-save stamps each table with the time ("# Generated by ... on <date>") and prints packet/byte
    counters that live traffic moves; both are dropped so equal rules compare byte-identical.
    """
    parts = []
    for tool in ("iptables-save", "ip6tables-save"):
        result = _run([tool])
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr.strip()}")
        lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
        parts.append("\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in lines))
    return "\n".join(parts)
