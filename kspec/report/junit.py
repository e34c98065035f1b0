"""The JUnit XML report: one <testsuite> per spec, one <testcase> per (spec, check).

A verdict other than the expected one is a <failure> whose text is the verdict line and the counterexample
trace; an expected violation keeps its trace in <system-out>. ``file`` and ``line`` point at the check.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import groupby


def render_junit(outs) -> str:
    root = ET.Element("testsuites", name="kspec verify", tests=str(len(outs)),
                      failures=str(sum(o.failed for o in outs)), errors="0",
                      skipped=str(sum(not o.failed and o.verdict == "unknown" for o in outs)), time="0")
    for spec, grouped in groupby(outs, key=lambda o: o.spec):
        group = list(grouped)
        suite = ET.SubElement(root, "testsuite", name=spec, tests=str(len(group)),
                              failures=str(sum(o.failed for o in group)), errors="0",
                              skipped=str(sum(not o.failed and o.verdict == "unknown" for o in group)), time="0")
        for out in group:
            attrs = {"name": out.check, "classname": _classname(spec), "time": "0"}
            if out.span is not None:
                attrs["file"], attrs["line"] = out.span[0], str(out.span[1])
            case = ET.SubElement(suite, "testcase", attrs)
            expect = out.record["expect"]
            if out.failed:
                failure = ET.SubElement(case, "failure", message=f"{out.verdict} (expected {expect})",
                                        type=out.verdict)
                failure.text = out.text
            elif out.verdict == "unknown":
                ET.SubElement(case, "skipped", message=out.record.get("reason") or "unknown")
            elif out.trace:
                ET.SubElement(case, "system-out").text = out.text
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _classname(spec: str) -> str:
    name = spec[:-2] if spec.endswith(".k") else spec
    return name.replace("/", ".").replace("\\", ".").lstrip(".")
