"""One (spec, check) verdict as every report format reads it: ``Outcome``, built once from the verifier's
``CheckResult`` (``outcome``), and the one-line summary of many."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kspec.verifier.render import counterexample_text, result_json, result_line


@dataclass(frozen=True)
class Outcome:
    """One (spec, check) verdict, in plain data (picklable: ``--jobs`` builds them in worker processes)."""

    spec: str
    record: dict  # verifier.render.result_json
    text: str  # the human verdict line and, when there is one, the counterexample trace
    span: tuple[str, int, int, int | None, int | None] | None = None  # file, line, column, end line, end column
    allow_unknown: bool = field(default=False, compare=False)
    scene: dict | None = field(default=None, compare=False)  # report.picture.scene, for drawings
    trace: str = ""  # the counterexample trace alone (empty without one)

    @property
    def check(self) -> str:
        return self.record["check"]

    @property
    def verdict(self) -> str:
        return self.record["verdict"]

    @property
    def failed(self) -> bool:
        if self.record["as_expected"]:
            return False
        return not (self.allow_unknown and self.verdict == "unknown")


def outcome(spec: str, result, allow_unknown: bool = False, scene: dict | None = None) -> Outcome:
    """``scene``: the cluster as ``report.picture`` draws it (the counterexample's client is added here)."""

    text = result_line(spec, result)
    trace = ""
    if result.counterexample is not None:
        trace = counterexample_text(result.counterexample)
        text += "\n" + trace
        if scene is not None:
            client = result.counterexample.instance.client
            scene = {**scene, "client": {"name": client.name, "kind": client.kind.value,
                                         "ip": None if client.ip is None else str(client.ip), "node": client.node}}
    s = result.check.span
    span = None if s is None else (s.file, s.line, s.column, s.end_line, s.end_column)
    return Outcome(spec, result_json(spec, result), text, span, allow_unknown, scene, trace)


def outcomes(spec: str, results: Iterable, allow_unknown: bool = False, scene: dict | None = None) -> list[Outcome]:
    return [outcome(spec, r, allow_unknown, scene) for r in results]


def summary_line(outs: list[Outcome]) -> str:
    counts = {v: sum(o.verdict == v for o in outs) for v in ("proved", "violated", "unknown")}
    expected = sum(o.verdict == "violated" and o.record["as_expected"] for o in outs)
    failures = sum(o.failed for o in outs)
    violated = f"{counts['violated']} violated" + (f" ({expected} expected)" if expected else "")
    return (f"{len(outs)} checks: {counts['proved']} proved, {violated}, {counts['unknown']} unknown - "
            f"{failures} failure{'s' if failures != 1 else ''}")
