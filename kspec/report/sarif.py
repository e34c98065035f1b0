"""SARIF 2.1.0 for code scanning: a result per failing check, at the check's span; the rule lines the
counterexample crossed are related locations, and its hops are a code flow (one thread flow location per
rule step, in order)."""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from kspec import __version__ as version

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_ORIGIN = re.compile(r"^(?P<file>.*):(?P<line>\d+)$")


def _uri(path: str) -> str:
    return quote(path.replace("\\", "/"), safe="/._-~")


def _rule_id(check: str) -> str:
    if check.startswith("builtin: "):
        kind = check[len("builtin: "):].split(":")[0]
        return "builtin/" + re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")[:60]
    return "check"


def _span_location(span) -> dict:
    file, line, column, end_line, end_column = span
    region = {"startLine": line, "startColumn": column}
    if end_line:
        region["endLine"] = end_line
    if end_column:
        region["endColumn"] = end_column
    return {"physicalLocation": {"artifactLocation": {"uri": _uri(file)}, "region": region}}


def _origin_location(origin: str | None) -> dict | None:
    match = _ORIGIN.match(origin or "")
    if not match:
        return None
    return {"physicalLocation": {"artifactLocation": {"uri": _uri(match["file"])},
                                 "region": {"startLine": int(match["line"])}}}


def _step_message(number: int, hop: dict, step: dict) -> str:
    text = f"hop {number} {hop['node']}: {step['table']} {step['chain']}"
    if step.get("rule"):
        text += f": {step['rule']}"
    if step.get("rewrite"):
        text += f" ({step['rewrite']})"
    return text


def _result(out) -> dict:
    record = out.record
    level = "warning" if out.verdict == "unknown" else "error"
    message = f"{out.check}: {out.verdict} (expected {record['expect']})"
    ce = record.get("counterexample")
    if record.get("reason"):
        message += f". Reason: {record['reason']}"
    if ce:
        seen = f", client_address={ce['client_address']}" if ce.get("client_address") else ""
        message += (f". Counterexample: {ce['packet']['instance']}, source {ce['packet']['src']}: "
                    f"{ce['disposition']}{' to ' + ce['pod'] if ce.get('pod') else ''}{seen}")
    result: dict = {"ruleId": _rule_id(out.check), "level": level, "message": {"text": message}}
    if out.span is not None:
        result["locations"] = [_span_location(out.span)]
    if ce:
        related: list[dict[str, Any]] = []
        flow: list[dict[str, Any]] = []
        seen_ids: dict[str, int] = {}
        for number, hop in enumerate(ce["hops"], 1):
            for step in hop["steps"]:
                location = _origin_location(step.get("origin"))
                text = _step_message(number, hop, step)
                if location is not None and step["origin"] not in seen_ids:
                    seen_ids[step["origin"]] = len(related)
                    related.append({"id": len(related), **location, "message": {"text": step.get("rule") or text}})
                flow_location = dict(location or {})
                flow_location["message"] = {"text": text}
                flow.append({"location": flow_location, "nestingLevel": number - 1,
                             "executionOrder": len(flow) + 1})
        end = {"message": {"text": f"=> {ce['disposition'].upper()}"
                                   + (f" to {ce['pod']}" if ce.get("pod") else "")
                                   + (f", client_address={ce['client_address']}" if ce.get("client_address") else "")}}
        if out.span is not None:
            end.update(_span_location(out.span))
        flow.append({"location": end, "executionOrder": len(flow) + 1})
        if related:
            result["relatedLocations"] = related
        result["codeFlows"] = [{"message": {"text": ce["packet"]["instance"]},
                                "threadFlows": [{"locations": flow}]}]
    result["properties"] = {"spec": out.spec, "verdict": out.verdict, "expect": record["expect"]}
    return result


def document(outs) -> dict:
    failing = [o for o in outs if o.failed]
    rule_ids = sorted({_rule_id(o.check) for o in outs})
    rules = [{"id": rid, "name": "UserCheck" if rid == "check" else rid.split("/", 1)[1],
              "shortDescription": {"text": "a check written in the spec" if rid == "check"
                                   else "a built-in kspec property: " + rid.split("/", 1)[1].replace("-", " ")}}
             for rid in rule_ids]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "kspec", "version": version, "rules": rules,
                                "informationUri": "https://kubernetes.io/docs/tutorials/services/source-ip/"}},
            "results": [_result(o) for o in failing],
            "columnKind": "unicodeCodePoints",
        }],
    }


def render_sarif(outs) -> str:
    return json.dumps(document(outs), indent=2) + "\n"
