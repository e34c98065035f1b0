"""``kspec lab`` tells its progress probe by probe (issue 12): the CLI draws a bar from these calls when
stderr is a terminal, and stays silent otherwise."""
from __future__ import annotations

import io

import pytest

from kspec.cli import main
from kspec.grammar import load
from kspec.lab import run_lab
from tests.conftest import REPO

pytestmark = pytest.mark.netns


def test_the_lab_tells_each_probe():
    cluster, _ = load(str(REPO / "specs" / "clusterip.k"))
    heard = []
    report = run_lab(cluster, tick=lambda what, done, total: heard.append((what, done, total)))
    assert heard[0] == ("building the lab", 0, len(report.results))
    assert [done for _, done, _ in heard[1:]] == list(range(len(report.results)))
    assert [what for what, _, _ in heard[1:]] == [r.description for r in report.results]
    out, err = io.StringIO(), io.StringIO()
    assert main(["lab", str(REPO / "specs" / "clusterip.k")], out, err) == 0
    assert err.getvalue() == ""  # not a terminal: no bar
