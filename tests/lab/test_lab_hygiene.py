"""The lab stays inside its namespaces: no link to the root namespace, root rules and routes unchanged,
nothing left behind (also after an error or an interrupt), stale labs are cleaned by prefix."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kspec.families import as_ipv6
from kspec.grammar import load
from kspec.lab import run_lab
from kspec.lab.netns import PREFIX, LabError, cleanup, lab_namespaces, run
from kspec.lab.topology import Lab
from tests.netns import leftover_namespaces, root_ruleset

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]


def _root_network() -> str:
    """The root namespace's rules, routes, policy rules and interfaces."""
    parts = [root_ruleset()]
    for args in (["ip", "route", "show", "table", "all"], ["ip", "-6", "route", "show", "table", "all"],
                 ["ip", "rule"], ["ip", "-6", "rule"], ["ip", "-o", "link"]):
        text = run(args, check=False).stdout
        parts.append(re.sub(r"link/\S+ \S+ brd \S+|qlen \d+|state \S+|expires \S+", "", text))  # stable fields
    return "\n".join(parts)


def _cluster(name: str = "loadbalancer-local"):
    return load(str(REPO / "specs" / f"{name}.k"))[0]


@pytest.mark.parametrize("family", ["IPv4", "IPv6"])
def test_root_namespace_untouched_and_nothing_left(family: str):
    before = _root_network()
    cluster = _cluster() if family == "IPv4" else as_ipv6(_cluster())
    report = run_lab(cluster)
    assert report.results
    assert _root_network() == before
    assert leftover_namespaces(PREFIX) == []


def test_every_link_stays_between_lab_namespaces():
    lab = Lab(_cluster())
    try:
        lab.build()
        for ns in lab.all_namespaces():
            for line in run(["ip", "-n", ns, "-o", "-d", "link"]).stdout.splitlines():
                if "link/loopback" in line or re.search(r"\\\s+bridge ", line):
                    continue
                if re.match(r"\d+: outside(-end)?@outside", line):  # the router's stand-in for the outside
                    assert "link-netns" not in line, line
                    continue
                # anything else is a veth whose peer lives in another namespace of this lab
                peer = re.search(r"link-netns (\S+)", line)
                assert peer and peer.group(1).startswith(lab.prefix), (ns, line)
    finally:
        lab.teardown()
    assert leftover_namespaces(PREFIX) == []


def test_a_failed_build_tears_down(monkeypatch):
    def broken(self):
        raise LabError("boom")

    monkeypatch.setattr(Lab, "load_rules", broken)
    with pytest.raises(LabError, match="boom"):
        run_lab(_cluster())
    assert leftover_namespaces(PREFIX) == []


def _spawn_lab(*extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kspec.cli", "lab", "-v", *extra, str(REPO / "specs" / "nodeport-local.k")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_probing(proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "probe" in line or not line:
            return


def test_ctrl_c_tears_down():
    proc = _spawn_lab()
    _wait_for_probing(proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert [ns for ns in lab_namespaces() if ns.startswith(f"{PREFIX}{proc.pid}-")] == []


def test_sigterm_tears_down_and_exits_143():
    proc = _spawn_lab()
    _wait_for_probing(proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "terminated" in err
    assert [ns for ns in lab_namespaces() if ns.startswith(f"{PREFIX}{proc.pid}-")] == []


def test_keep_then_cleanup_of_the_stale_lab():
    proc = _spawn_lab("--keep")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert "kspec lab --cleanup" in out
    kept = [ns for ns in lab_namespaces() if ns.startswith(f"{PREFIX}{proc.pid}-")]
    assert kept, "--keep left nothing up"
    servers = [int(pid) for ns in kept for pid in run(["ip", "netns", "pids", ns]).stdout.split()]
    assert servers, "--keep stopped the servers"
    deleted, _live, failed = cleanup()
    assert set(kept) <= set(deleted) and not failed
    assert [ns for ns in lab_namespaces() if ns.startswith(f"{PREFIX}{proc.pid}-")] == []
    time.sleep(0.2)
    assert not [pid for pid in servers if os.path.exists(f"/proc/{pid}") and
                "kspec.lab.echo" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]


def test_cleanup_spares_running_labs():
    lab = Lab(_cluster())
    try:
        lab.build()
        deleted, live, _failed = cleanup()  # this process is alive: its lab is not stale
        assert set(lab.created) <= set(live) and not set(lab.created) & set(deleted)
        assert set(lab.created) <= set(lab_namespaces())
    finally:
        lab.teardown()


def test_without_root_says_so_in_one_line_and_exits_2():
    script = ("import os, sys; os.geteuid = lambda: 1000; from kspec.cli import main; "
              f"sys.exit(main(['lab', {str(REPO / 'specs' / 'clusterip.k')!r}]))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "root" in result.stderr


def _cli_lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kspec.cli", "lab", *args], capture_output=True, text=True,
                          check=False, timeout=120)


def test_an_ipv6_spec_gets_an_ipv6_lab_from_the_cli():
    result = _cli_lab(str(REPO / "tests" / "data" / "specs" / "ipv6-nodeport.k"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2/2 probes agree" in result.stdout and "client_address=fd00:240::5" in result.stdout
    assert leftover_namespaces(PREFIX) == []


def test_a_family_the_spec_lacks_is_bad_input():
    result = _cli_lab("--family", "ipv6", str(REPO / "specs" / "clusterip.k"))
    assert result.returncode == 2
    assert "has no IPv6 node or Service address" in result.stderr


@pytest.mark.session_hygiene
def test_session_left_no_lab_namespace_behind():
    assert leftover_namespaces(PREFIX) == []
