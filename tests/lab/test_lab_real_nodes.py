"""The real-node corpus in the lab: each CNI's dumps (and ipsets) loaded exactly as given into the nodes'
namespaces, real traffic for every check, and the kernel's outcome must be what kspec predicts (paths kspec
cannot follow exactly are predicted unknown and left out: the report shows them, they cannot agree)."""
from __future__ import annotations

import pytest

from kspec.grammar import load
from kspec.lab import run_lab
from kspec.verifier.model.network import Disposition
from tests.verifier.test_real_node_verdicts import CNIS, CORPUS, UNKNOWN_AT, dumps

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("cni", [c for c in CNIS if c not in UNKNOWN_AT])
def test_kernel_agrees_on_real_node_dumps(cni: str):
    cluster, _ = load(str(CORPUS / "cluster.k"))
    rules, sets = dumps(cni)
    report = run_lab(cluster, spec=f"real-nodes/{cni}", rules={n: p.read_text() for n, p in rules.items()},
                     ipsets={n: p.read_text() for n, p in sets.items()})
    assert report.results, "no probes"
    if not report.agree:
        pytest.fail(f"the kernel disagrees with the model on {cni}\n{report.text()}", pytrace=False)


@pytest.mark.parametrize("cni", sorted(UNKNOWN_AT))
def test_unknown_paths_still_load_and_the_known_ones_agree(cni: str):
    cluster, _ = load(str(CORPUS / "cluster.k"))
    rules, sets = dumps(cni)
    report = run_lab(cluster, spec=f"real-nodes/{cni}", rules={n: p.read_text() for n, p in rules.items()},
                     ipsets={n: p.read_text() for n, p in sets.items()})
    known = [r for r in report.results if not any(o.disposition is Disposition.UNKNOWN for o in r.predicted)]
    assert all(r.agree for r in known), report.text()
