"""Lab tests: real namespaces, real rules, real traffic. Each run's report is printed in full when it fails."""
from __future__ import annotations

import pytest

from kspec.lab.report import LabReport


def assert_agrees(report: LabReport) -> None:
    """Fail with the whole report (table, both traces of every disagreement) unless kernel and model agree."""
    if not report.agree:
        pytest.fail("the kernel disagrees with the model\n" + report.text(), pytrace=False)
