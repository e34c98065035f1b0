"""The pictures, checked by a real browser: ``kspec verify --format html=FILE`` and ``kspec trace --format svg``
loaded in headless Chromium (installed by the test command), which runs the page's own check: no scripting
error, nothing drawn outside its frame, the packet's path drawn (arrows of some length)."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kspec.cli import main
from kspec.report.picture import page

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (scripts/test installs Debian's)")
SCREENSHOTS = Path("/tmp/kspec-screenshots")  # kept after the run, for people to look at


@pytest.fixture(scope="module")
def failing_spec(tmp_path_factory) -> Path:
    """nodeport-cluster.k with its expected violation turned into a claim: a counterexample to draw."""
    text = (REPO / "specs/nodeport-cluster.k").read_text()
    path = tmp_path_factory.mktemp("spec") / "wrong.k"
    path.write_text(text.replace("expect violated", "expect holds"))
    return path


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(args), out, err), out.getvalue(), err.getvalue()


def _browser(html: Path, name: str) -> str:
    """What the page's own check found (``errors=N overflow=N arrows=N``), and a screenshot of it."""
    SCREENSHOTS.mkdir(exist_ok=True)
    base = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--window-size=1400,1000"]
    dom = subprocess.run([*base, "--virtual-time-budget=5000", "--dump-dom", html.as_uri()], capture_output=True,
                         text=True, timeout=120)
    subprocess.run([*base, f"--screenshot={SCREENSHOTS / name}.png", html.as_uri()], capture_output=True,
                   timeout=120)
    found = re.search(r'data-kspec-check="([^"]*)"', dom.stdout)
    assert found, dom.stdout[-2000:] + dom.stderr[-2000:]
    return found.group(1)


def _counts(check: str) -> dict[str, int]:
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", check)}


def test_the_html_report_holds_every_verdict_and_draws_the_counterexample(failing_spec, tmp_path):
    target = tmp_path / "report.html"
    code, _, _ = _run("verify", str(failing_spec), "--format", f"html={target}")
    assert code == 1
    text = target.read_text()
    assert text.count('class="badge"') >= 4 and "violated" in text
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="kspec-way"' in text
    assert 'class="hop-arrow way"' in text and "client_address=" in text
    assert "<script src" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # self-contained


@needs_browser
def test_the_html_report_loads_in_a_browser_without_errors_or_overflow(failing_spec, tmp_path):
    target = tmp_path / "report.html"
    _run("verify", str(failing_spec), "--format", f"html={target}")
    counts = _counts(_browser(target, "verify-report"))
    assert counts["errors"] == 0 and counts["overflow"] == 0, counts
    assert counts["arrows"] >= 3, counts  # outside -> node, node -> node, into the pod (and the answer)
    assert (SCREENSHOTS / "verify-report.png").stat().st_size > 10_000


def test_trace_draws_each_branch_as_svg(tmp_path):
    code, out, err = _run("trace", "specs/nodeport-cluster.k", "--from", "internet", "--to", "10.240.0.5:30080",
                          "--format", "svg")
    assert code == 0, err
    root = ET.fromstring(out)  # well-formed, the drawing alone on standard output
    arrows = [el for el in root.iter("{http://www.w3.org/2000/svg}path") if "hop-arrow" in el.get("class", "")]
    assert len(arrows) >= 3
    assert "packet 104.132.1.79:40000" in err  # the header went to standard error


@needs_browser
def test_the_trace_svg_loads_in_a_browser(tmp_path):
    _, out, _ = _run("trace", "specs/nodeport-cluster.k", "--from", "internet", "--to", "10.240.0.5:30080",
                     "--format", "svg")
    target = tmp_path / "trace.html"
    target.write_text(page(f'<div class="drawing">{out}</div>', title="kspec trace"))
    counts = _counts(_browser(target, "trace"))
    assert counts == {"errors": 0, "overflow": 0, "arrows": counts["arrows"]} and counts["arrows"] >= 3, counts


def test_the_page_check_can_fail(tmp_path):
    # The browser check is no formality: a drawing with text outside its frame is counted.
    bad = ('<svg xmlns="http://www.w3.org/2000/svg" class="kspec-way" viewBox="0 0 100 50" width="100" '
           'height="50"><text x="80" y="20">far too long for this frame</text></svg>')
    target = tmp_path / "bad.html"
    target.write_text(page(f'<div class="drawing">{bad}</div>'))
    if CHROMIUM is None:
        pytest.skip("no chromium (scripts/test installs Debian's)")
    assert _counts(_browser(target, "bad"))["overflow"] >= 1
