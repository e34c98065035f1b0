"""``kspec diff`` for CI: JUnit XML (one test case per destination compared, failed where the two sides
differ or were not compared exactly) and GitHub workflow commands (an annotation per difference). Both
read the plain data of ``verifier.diff.result_json``."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from kspec import __version__ as version
from kspec.report.github import _data, _prop
from kspec.report.sarif import SCHEMA, _origin_location, _span_location, _step_message


def _ends(fates: list[dict]) -> str:
    def one(fate: dict) -> str:
        text = fate["disposition"].upper()
        if fate["pod"]:
            text += f" to {fate['pod']}, client_address={fate['client_address']}"
        elif fate["reason"]:
            text += f": {fate['reason']}"
        return text

    return "; ".join(one(f) for f in fates) or "no fate"


def difference_text(data: dict, difference: dict) -> str:
    packet = difference["packet"]
    lines = [f"packet {packet['src']}:{packet['sport']}"
             + (f" (every source in {difference['region']})" if difference.get("region") else "")]
    for side, fates in zip(data["sides"], (difference["before"], difference["after"])):
        lines.append(f"{side}: {_ends(fates)}")
    return "\n".join(lines)


def render_diff_junit(data: dict) -> str:
    differing = {d["destination"]: d for d in data["differences"]}
    unknown = {u["destination"]: u["reason"] for u in data["unknown"]}
    failures = len(differing) + len(unknown) + len(data["only_before"]) + len(data["only_after"])
    total = len(data["destinations"]) + len(data["only_before"]) + len(data["only_after"])
    root = ET.Element("testsuites", name="kspec diff", tests=str(total), failures=str(failures), errors="0")
    suite = ET.SubElement(root, "testsuite", name=" vs ".join(data["sides"]), tests=str(total),
                          failures=str(failures), errors="0")
    for where in data["destinations"]:
        case = ET.SubElement(suite, "testcase", name=where, classname="kspec.diff")
        if where in differing:
            ET.SubElement(case, "failure", message="the two sides treat these packets differently",
                          type="difference").text = difference_text(data, differing[where])
        elif where in unknown:
            ET.SubElement(case, "failure", message="not compared exactly", type="unknown").text = unknown[where]
    for side, only in ((data["sides"][0], data["only_before"]), (data["sides"][1], data["only_after"])):
        for where in only:
            case = ET.SubElement(suite, "testcase", name=where, classname="kspec.diff")
            ET.SubElement(case, "failure", message=f"only in {side}", type="one side only")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_diff_github(data: dict) -> str:
    lines = [f"::error title={_prop('kspec diff: ' + d['destination'])}::{_data(difference_text(data, d))}"
             for d in data["differences"]]
    for u in data["unknown"]:
        title = _prop("kspec diff: " + u["destination"])
        lines.append(f"::warning title={title}::{_data('not compared exactly: ' + u['reason'])}")
    summary = (f"{data['compared']} destinations compared: {len(data['differences'])} differences, "
               f"{len(data['unknown'])} unknown")
    lines.append(f"::notice title=kspec diff::{_data(summary)}")
    return "\n".join(lines) + "\n"


def render_diff_sarif(data: dict, spans: dict) -> str:
    """SARIF 2.1.0: a result per difference at its Service in the spec (``spans``: "ns/name" -> span tuple),
    each side's way a thread of one code flow."""


    results: list[dict[str, Any]] = []
    for d in data["differences"]:
        result: dict[str, Any] = {"ruleId": "diff", "level": "error",
                  "message": {"text": f"{d['destination']}: {difference_text(data, d)}".replace("\n", "; ")}}
        span = spans.get(d.get("service") or "")
        if span is not None:
            result["locations"] = [_span_location(span)]
        threads: list[dict[str, Any]] = []
        for side, fates in zip(data["sides"], (d["before"], d["after"])):
            for fate in fates:
                flow: list[dict[str, Any]] = []
                for number, hop in enumerate(fate["hops"], 1):
                    for step in hop["steps"]:
                        location = dict(_origin_location(step.get("origin")) or {})
                        location["message"] = {"text": f"{side}: {_step_message(number, hop, step)}"}
                        flow.append({"location": location, "nestingLevel": number - 1,
                                     "executionOrder": len(flow) + 1})
                if flow:
                    threads.append({"message": {"text": f"{side}: {fate['disposition']}"}, "locations": flow})
        if threads:
            result["codeFlows"] = [{"message": {"text": d["destination"]}, "threadFlows": threads}]
        results.append(result)
    document = {"$schema": SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "kspec", "version": version, "rules": [
            {"id": "diff", "name": "Difference", "shortDescription": {"text": "packets the two sides treat "
                                                                               "differently"}}]}},
        "results": results, "columnKind": "unicodeCodePoints"}]}
    return json.dumps(document, indent=2) + "\n"

