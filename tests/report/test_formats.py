"""Each report format checked by its real consumer: the SARIF 2.1.0 JSON schema, a JUnit XML parser
(junitparser), our own JSON schema for ``format_version``, GitHub's workflow-command syntax."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from urllib.parse import unquote

import jsonschema
import pytest
from junitparser import Failure, JUnitXml

from kspec import report
from kspec.cli import main
from kspec.report.jsonreport import schema as json_schema

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted(str(p.relative_to(REPO)) for p in (REPO / "specs").glob("*.k"))
SARIF_SCHEMA = json.loads((REPO / "tests/data/sarif/sarif-schema-2.1.0.json").read_text())


@pytest.fixture(scope="module")
def failing_spec(tmp_path_factory) -> str:
    """nodeport-cluster.k with its expected violation turned into a claim: one failing check with a trace."""
    text = (REPO / "specs/nodeport-cluster.k").read_text()
    assert "expect violated" in text
    path = tmp_path_factory.mktemp("spec") / "wrong.k"
    path.write_text(text.replace("expect violated", "expect holds"))
    return str(path)


def run(*args: str, cwd: Path = REPO) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    import os

    old = os.getcwd()
    os.chdir(cwd)
    try:
        code = main(list(args), out, err)
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def reports(tmp_path_factory, failing_spec) -> dict[str, Path]:
    """One run writing every file format at once, plus human on standard output."""
    folder = tmp_path_factory.mktemp("reports")
    paths = {name: folder / f"out.{name}" for name in ("json", "junit", "sarif", "github")}
    code, out, _ = run("verify", *SPECS, failing_spec, "--format", "human",
                       *[arg for name, path in paths.items() for arg in ("--format", f"{name}={path}")])
    assert code == 1
    assert "1 failure" in out.splitlines()[-1]
    paths["human"] = folder / "human.txt"
    paths["human"].write_text(out)
    return paths


def _span_of_failing(failing_spec: str) -> tuple[int, int]:
    lines = Path(failing_spec).read_text().splitlines()
    start = next(i for i, line in enumerate(lines, 1) if line.strip().startswith("check \"the echo server sees"))
    return start, 3


def test_json_matches_the_schema_of_its_format_version(reports) -> None:
    data = json.loads(reports["json"].read_text())
    assert data["format_version"] == "1.3"
    jsonschema.validate(data, json_schema(data["format_version"]))
    assert data["failures"] == 1
    failing = [r for r in data["results"] if not r["as_expected"]]
    assert failing[0]["counterexample"]["client_address"] == "10.240.0.5"
    assert all(r["location"]["end_line"] >= r["location"]["line"] for r in data["results"])


def test_json_schema_rejects_a_changed_shape(reports) -> None:
    data = json.loads(reports["json"].read_text())
    data["results"][0]["verdict"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_schema("1.3"))


def test_junit_has_one_testcase_per_spec_and_check(reports, failing_spec) -> None:
    xml = JUnitXml.fromfile(str(reports["junit"]))
    data = json.loads(reports["json"].read_text())
    cases = [(suite.name, case.name) for suite in xml for case in suite]
    assert cases == [(r["spec"], r["check"]) for r in data["results"]]
    assert len(set(cases)) == len(cases)
    failed = [(suite.name, case) for suite in xml for case in suite if not case.is_passed]
    assert len(failed) == 1
    suite_name, case = failed[0]
    assert suite_name == failing_spec
    failure = case.result[0]
    assert isinstance(failure, Failure) and failure.message == "violated (expected holds)"
    assert "client_address=10.240.0.5" in failure.text and "MASQUERADE" in failure.text
    assert case._elem.get("file") == failing_spec
    assert int(case._elem.get("line")) == _span_of_failing(failing_spec)[0]
    assert xml.tests == len(cases) and xml.failures == 1


def test_sarif_is_valid_2_1_0_with_span_related_locations_and_code_flow(reports, failing_spec) -> None:
    log = json.loads(reports["sarif"].read_text())
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(log)
    assert log["version"] == "2.1.0"
    [result] = log["runs"][0]["results"]
    region = result["locations"][0]["physicalLocation"]["region"]
    assert unquote(result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) == failing_spec
    assert (region["startLine"], region["startColumn"]) == _span_of_failing(failing_spec)
    assert region["endLine"] > region["startLine"]
    related = result["relatedLocations"]
    assert any("MASQUERADE" in r["message"]["text"] for r in related)
    assert all(r["physicalLocation"]["region"]["startLine"] >= 1 for r in related)
    flow = result["codeFlows"][0]["threadFlows"][0]["locations"]
    texts = [loc["location"]["message"]["text"] for loc in flow]
    assert texts[0].startswith("hop 1 node2") and any(t.startswith("hop 2 node1") for t in texts)
    assert "client_address=10.240.0.5" in texts[-1]
    rule_ids = {r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert result["ruleId"] in rule_ids


def test_sarif_of_a_passing_run_is_valid_and_empty() -> None:
    code, out, _ = run("verify", *SPECS, "--format", "sarif")
    assert code == 0
    log = json.loads(out)
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(log)
    assert log["runs"][0]["results"] == []


# GitHub's workflow command syntax: ::level key=value,key=value::message (values and message escaped).
_COMMAND = re.compile(r"^::(error|warning|notice)(?: ((?:[a-zA-Z]+=[^,:\n]*)(?:,[a-zA-Z]+=[^,:\n]*)*))?::(.*)$")


def _unescape(text: str) -> str:
    return text.replace("%0A", "\n").replace("%0D", "\r").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")


def test_github_annotations_parse_as_workflow_commands(reports, failing_spec) -> None:
    lines = reports["github"].read_text().splitlines()
    commands = [_COMMAND.match(line) for line in lines]
    assert all(commands), lines
    errors = [m for m in commands if m.group(1) == "error"]
    assert len(errors) == 1
    props = dict(p.split("=", 1) for p in errors[0].group(2).split(","))
    assert _unescape(props["file"]) == failing_spec
    assert int(props["line"]) == _span_of_failing(failing_spec)[0]
    message = _unescape(errors[0].group(3))
    assert "violated (expected holds)" in message and "client_address=10.240.0.5" in message
    assert commands[-1].group(1) == "notice" and "1 failure" in _unescape(commands[-1].group(3))


def test_human_report_keeps_the_vocabulary(reports) -> None:
    text = reports["human"].read_text()
    assert "client_address=10.240.0.5" in text and "src: 104.132.1.79 -> 10.240.0.5" in text
    assert "\033[" not in text  # not a terminal: no colour


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch, failing_spec) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = _Terminal()
    assert main(["verify", failing_spec], out, io.StringIO()) == 1
    assert "\033[1;31mviolated\033[0m" in out.getvalue()
    out = _Terminal()
    main(["verify", failing_spec, "--no-color"], out, io.StringIO())
    assert "\033[" not in out.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    out = _Terminal()
    main(["verify", failing_spec], out, io.StringIO())
    assert "\033[" not in out.getvalue()


def test_only_one_report_on_standard_output() -> None:
    code, _, err = run("verify", *SPECS, "--format", "json", "--format", "junit")
    assert code == 2 and "only one report can go to standard output" in err


def test_settings_from_pyproject(tmp_path, failing_spec) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.kspec]\ntimeout = 5\njobs = 2\nformats = ["junit=out.xml", "json"]\nallow-unknown = true\n')
    code, out, _ = run("verify", str(REPO / "specs/clusterip.k"), failing_spec, cwd=tmp_path)
    assert code == 1
    assert json.loads(out)["failures"] == 1
    assert JUnitXml.fromfile(str(tmp_path / "out.xml")).failures == 1
    # The command line wins over the file.
    code, out, _ = run("verify", str(REPO / "specs/clusterip.k"), "--format", "human", cwd=tmp_path)
    assert code == 0 and out.splitlines()[-1].endswith("0 failures")
    (tmp_path / "pyproject.toml").write_text('[tool.kspec]\njobs = "many"\n')
    code, _, err = run("verify", str(REPO / "specs/clusterip.k"), cwd=tmp_path)
    assert code == 2 and "jobs must be int" in err


def test_jobs_give_the_same_report_as_one_process(failing_spec) -> None:
    one = run("verify", *SPECS, failing_spec, "--format", "json")
    two = run("verify", *SPECS, failing_spec, "--format", "json", "--jobs", "2")
    assert one == two


def test_format_names_are_checked() -> None:
    with pytest.raises(ValueError):
        report.parse_format("xml")
    assert report.parse_format("junit=a.xml") == ("junit", "a.xml")


def test_json_carries_the_clients_data_after_an_answer() -> None:
    # Format 1.2: an answered handshake whose data is dropped (tests/verifier/test_kernel_faithful.py).
    from kspec import ir
    from kspec.verifier import verify
    from kspec.verifier.render import result_json
    from tests.verifier.test_kernel_faithful import _dump, scenario

    cluster, rules = scenario(node1=_dump(mangle="-A FORWARD -i veth+ -m conntrack --ctstate ESTABLISHED -j DROP"))
    [answered] = [r for r in verify(cluster, rules=rules, family=ir.IPFamily.V4) if r.check.name == "answered"]
    record = result_json("s.k", answered)
    answer = record["counterexample"]["answer"]
    assert answer["disposition"] == "answered" and answer["data"]["disposition"] == "dropped"
    jsonschema.validate({"format_version": "1.2", "results": [record], "summary": "", "failures": 1},
                        json_schema("1.2"))


def test_format_1_3_holds_the_clients_next_connection(tmp_path) -> None:
    # `assert sticky` without session affinity: the next connection may reach another pod; both are reported.
    spec = tmp_path / "sticky.k"
    spec.write_text("""cluster c {
  node node1 { ip 10.240.0.3  pod_cidr 10.244.1.0/24 }
  pod a on node1 { ip 10.244.1.5  labels { app = web } }
  pod b on node1 { ip 10.244.1.6  labels { app = web } }
  pod shop on node1 { ip 10.244.1.9 }
  service plain { cluster_ip 10.96.0.11  selector app = web  port 80 }
  client shop from pod shop
  check "sticky" { from shop  to plain via cluster_ip  assert sticky }
}
""")
    code, out, _ = run("verify", "--no-builtins", "--format", "json", str(spec))
    assert code == 1
    data = json.loads(out)
    jsonschema.validate(data, json_schema("1.3"))
    ce = data["results"][0]["counterexample"]
    assert ce["disposition"] == "delivered" and ce["next_connection"]["disposition"] == "delivered"
    assert ce["next_connection"]["pod"] != ce["pod"]
