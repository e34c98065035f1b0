"""Verdicts and counterexample traces as text and JSON, in one vocabulary: disposition, hops (nodes), steps
(rule lines in iptables-save syntax with file:line), rewrites as ``field: old -> new``, and the pod's view
``client_address=...``."""
from __future__ import annotations

from kspec.verifier.model.network import Disposition, Fate
from kspec.verifier.properties import CheckResult, Counterexample, Verdict

# 1.1: the answer of a round trip, the security table; 1.2: the client's data after it; 1.3: the client's next
# connection (`assert sticky`)
FORMAT_VERSION = "1.3"


def step_lines(fate: Fate) -> list[str]:
    lines = []
    for number, hop in enumerate(fate.hops, 1):
        lines.append(f"  {number}. {hop.node}" + (f"  ({hop.route})" if hop.route else ""))
        for step in hop.steps:
            text = step.rule.text if step.rule is not None and step.rule.text else f"{step.table} {step.chain}"
            where = f"  [{step.rule.origin}]" if step.rule is not None and step.rule.origin else ""
            lines.append(f"     {step.table:<6} {text}{where}")
            if step.note:
                lines.append(f"            {step.note}")
    return lines


def ending(fate: Fate, seen: str) -> str:
    if fate.disposition is Disposition.DELIVERED:
        return f"  => DELIVERED to {fate.pod.key} on {fate.node}, client_address={seen}"
    if fate.disposition is Disposition.ANSWERED:
        return f"  => ANSWERED on {fate.node}"
    return f"  => {fate.disposition.value.upper()}: {fate.reason}"


def answer_lines(fate: Fate) -> list[str]:
    """The pod's answer of a round trip, hop by hop (nothing when the check did not ask for it)."""
    if fate.reply is None:
        return []
    lines = ["  answer:"] + step_lines(fate.reply) + [ending(fate.reply, "")]
    data = fate.reply.reply
    if data is not None:  # the client's data after a TCP handshake
        lines += ["  then the client's data:"] + step_lines(data) + [ending(data, "").replace(", client_address=", "")]
    return lines


def counterexample_text(ce: Counterexample) -> str:
    fate = ce.fate
    source = f"[{ce.src}]:{ce.sport}" if ":" in ce.src else f"{ce.src}:{ce.sport}"  # IPv6 in brackets
    head = (f"  packet  {source} -> {fate.hops[0].node if fate.hops else '?'}  "
            f"({ce.instance.description})")
    lines = [head] + step_lines(fate) + [ending(fate, ce.seen)] + answer_lines(fate)
    if fate.then is not None:  # `assert sticky`: the client's next connection
        lines += ["  the client's next connection (another source port):"] + step_lines(fate.then) \
            + [ending(fate.then, "").replace(", client_address=", "")]
    return "\n".join(lines)


def result_line(spec: str, result: CheckResult) -> str:
    check = result.check
    where = f"{check.span}" if check.span else spec
    expected = "as expected" if result.as_expected else f"expected {check.expect.value}"
    line = f"{where}: {result.verdict.value}: {check.name}  [{expected}]"
    if result.verdict is Verdict.UNKNOWN and result.reason:
        line += f"\n  reason: {result.reason}"
    if result.replay_error:
        line += ("\n  INTERNAL ERROR: this counterexample does not replay in the concrete tracer (a bug in "
                 f"kspec's model, please report it): {result.replay_error}")
    return line


def result_json(spec: str, result: CheckResult) -> dict:
    check = result.check
    record = {
        "spec": spec,
        "check": check.name,
        "location": None if check.span is None else
        {"file": check.span.file, "line": check.span.line, "column": check.span.column},
        "verdict": result.verdict.value,
        "expect": check.expect.value,
        "as_expected": result.as_expected,
        "instances": result.instances,
        "reason": result.reason or None,
        "replay_error": result.replay_error or None,
    }
    ce = result.counterexample
    if ce is not None:
        fate = ce.fate
        record["counterexample"] = {
            "packet": {"src": ce.src, "sport": ce.sport, "instance": ce.instance.description},
            "disposition": fate.disposition.value,
            "pod": fate.pod.key if fate.pod else None,
            "client_address": ce.seen if fate.pod else None,
            "hops": hops_json(fate),
            "answer": None if fate.reply is None else {
                "disposition": fate.reply.disposition.value, "reason": fate.reply.reason or None,
                "hops": hops_json(fate.reply),
                **({} if fate.reply.reply is None else {"data": {
                    "disposition": fate.reply.reply.disposition.value, "reason": fate.reply.reply.reason or None,
                    "hops": hops_json(fate.reply.reply)}})},
        }
        if fate.then is not None:
            record["counterexample"]["next_connection"] = {
                "disposition": fate.then.disposition.value, "pod": fate.then.pod.key if fate.then.pod else None,
                "reason": fate.then.reason or None, "hops": hops_json(fate.then)}
    return record


def hops_json(fate: Fate) -> list[dict]:
    """A fate's hops and steps as plain data, from either engine: each step's rule and what it rewrote (the
    concrete tracer keeps its rewrites on the hop's packet; a chain policy's note is no rewrite)."""
    return [{"node": hop.node, "route": hop.route, "steps": _steps_json(hop)} for hop in fate.hops]


def _steps_json(hop) -> list[dict]:
    rewrites: dict[int, list[str]] = {}
    for rewrite in getattr(hop.packet, "rewrites", ()) or ():
        rewrites.setdefault(id(rewrite.step), []).append(str(rewrite))
    steps = []
    for step in hop.steps:
        rule = step.rule
        note = "; ".join(rewrites.get(id(step), [])) or ("" if step.note.startswith("policy") else step.note)
        steps.append({"table": step.table, "chain": step.chain, "rule": rule.text if rule is not None else None,
                      "origin": str(rule.origin) if rule is not None and rule.origin else None,
                      "rewrite": note or None})
    return steps


def journey_text(number: int, total: int, journey: Fate) -> str:
    """One branch of ``kspec trace`` (a fate of the concrete engine): hops, rule lines with their origin,
    rewrites, and the ending; then the pod's answer, the same way."""
    answered = f", {journey.reply.disposition.value.upper()}" if journey.reply is not None else ""
    lines = [f"branch {number}/{total}: {journey.disposition.value.upper()}{answered}"] + _legs_text(journey)
    if journey.reply is not None:
        lines += ["  answer:"] + _legs_text(journey.reply)
        if journey.reply.reply is not None:
            lines += ["  then the client's data:"] + _legs_text(journey.reply.reply)
    return "\n".join(lines)


def _legs_text(journey: Fate) -> list[str]:
    lines = []
    for number, hop in enumerate((h for h in journey.hops if h.packet is not None), 1):
        pkt = hop.packet  # a tracer.ConcretePacket: its rewrites and branches on this node
        extra = f"  [{', '.join(pkt.branches)}]" if pkt.branches else ""
        lines.append(f"  {number}. {hop.node}{extra}")
        rewrites: dict[int, list] = {}
        for rewrite in pkt.rewrites:
            rewrites.setdefault(id(rewrite.step), []).append(rewrite)
        for step in hop.steps:
            if step.rule is not None and step.rule.text:
                text = step.rule.text
            else:  # a chain's policy, or conntrack undoing NAT in the rules' place
                text = step.note if step.note.startswith("conntrack") else f"policy of {step.chain}"
            origin = f"  [{step.origin}]" if step.origin is not None else ""
            lines.append(f"     {step.table:<6} {text}{origin}")
            for rewrite in rewrites.get(id(step), ()):
                lines.append(f"            {_rewrite_text(rewrite)}")
    src = journey.packet.src_value
    if journey.disposition is Disposition.DELIVERED:
        lines.append(f"  => DELIVERED to {journey.pod.key} on {journey.node}, client_address={src}")
    elif journey.disposition is Disposition.ANSWERED:
        lines.append(f"  => ANSWERED on {journey.node}, from {src}")
    else:
        reason = f": {journey.reason}" if journey.reason else ""
        lines.append(f"  => {journey.disposition.value.upper()}{reason}")
    return lines


def _rewrite_text(rewrite) -> str:
    if rewrite.field == "mark":  # marks read best in hex, as iptables prints them
        return f"mark: {int(rewrite.old):#x} -> {int(rewrite.new):#x}"
    return str(rewrite)
