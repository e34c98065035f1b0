"""Predicted vs observed, per probe: agreement, the table, and both traces where they differ."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from kspec.lab.probe import DELIVERED, DROPPED, HOST, NO_ROUTE, REFUSED, REJECTED, Try
from kspec.verifier.model.walk import Disposition, Fate
from kspec.verifier.predict import Outcome, fate_outcome
from kspec.verifier.properties import Target
from kspec.verifier.render import step_lines

_DISPOSITION = {DROPPED: Disposition.DROPPED, REJECTED: Disposition.REJECTED, HOST: Disposition.HOST,
                NO_ROUTE: Disposition.NO_ROUTE}


def observed_outcome(attempt: Try) -> Outcome | str:
    """The model's vocabulary for one try; a string where the kernel's answer has no single equivalent."""
    if attempt.result == DELIVERED:
        return Outcome(Disposition.DELIVERED, attempt.pod, attempt.client_address)
    if attempt.result in _DISPOSITION:
        return Outcome(_DISPOSITION[attempt.result])
    return attempt.result  # "refused" (UDP: rejected or host) or "error"


def _matches(seen: Outcome | str, predicted: frozenset[Outcome]) -> bool:
    if isinstance(seen, Outcome):
        return seen in predicted
    if seen == REFUSED:
        return any(o.disposition in (Disposition.REJECTED, Disposition.HOST) for o in predicted)
    return False


@dataclass
class ProbeResult:
    check: str
    client: str
    description: str
    target: Target
    predicted: frozenset[Outcome]
    tries: list[Try]
    fates: tuple[Fate, ...] = ()
    pinned: bool = False  # session affinity: every try from this client goes to one endpoint
    kernel_trace: str = ""
    seconds: float = 0.0

    @property
    def observed(self) -> Counter:
        return Counter(observed_outcome(t) for t in self.tries)

    @property
    def unexpected(self) -> list[Outcome | str]:
        """Observed outcomes the model does not predict."""
        return [seen for seen in self.observed if not _matches(seen, self.predicted)]

    @property
    def missing(self) -> list[Outcome]:
        """Predicted deliveries never observed (with session affinity: none of them observed)."""
        wanted = [o for o in self.predicted if o.disposition is Disposition.DELIVERED]
        seen = set(self.observed)
        if self.pinned:
            return [] if any(o in seen for o in wanted) else wanted
        return [o for o in wanted if o not in seen]

    @property
    def unknown(self) -> bool:
        """The model does not know what some path of this probe comes to (it names the rule or the loop): the
        kernel's behaviour is shown, not judged."""
        return any(o.disposition is Disposition.UNKNOWN for o in self.predicted)

    @property
    def agree(self) -> bool:
        if self.unknown or not self.predicted:
            return False
        return bool(self.tries) and not self.unexpected and not self.missing

    def predicted_text(self) -> str:
        return ", ".join(sorted(str(o) for o in self.predicted)) or "(nothing)"

    def observed_text(self) -> str:
        return ", ".join(f"{seen} x{count}" for seen, count in
                         sorted(self.observed.items(), key=lambda item: str(item[0]))) or "(no tries)"

    def traces(self) -> str:
        """Both sides of a disagreement: the model's paths and what the kernel did."""

        lines = [f"probe {self.description}  [{self.check}]", "  predicted (model):"]
        for fate in self.fates:
            outcome = fate_outcome(fate)
            if outcome is None:
                continue
            lines += ["    " + line for line in step_lines(fate)]
            lines.append(f"    => {outcome}" + (f"  ({fate.reason})" if fate.reason and outcome.pod is None else ""))
        lines.append("  observed (kernel):")
        lines += [f"    {t}" for t in self.tries]
        if self.unexpected:
            lines.append(f"    not predicted: {', '.join(map(str, self.unexpected))}")
        if self.missing:
            lines.append(f"    predicted, never seen: {', '.join(map(str, self.missing))}")
        if self.kernel_trace:
            lines.append("  kernel rule counters and conntrack during a rerun:")
            lines += ["    " + line for line in self.kernel_trace.splitlines()]
        return "\n".join(lines)


@dataclass
class LabReport:
    spec: str
    results: list[ProbeResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # lab-level disagreements (health checks, proxyMode)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    kept: str | None = None  # teardown command when --keep

    @property
    def agree(self) -> bool:
        """No judged probe disagrees (a probe the model says ``unknown`` for is not judged)."""
        return not self.problems and all(r.agree or r.unknown for r in self.results)

    def table(self) -> str:
        rows = [("probe", "predicted", "observed", "agree")]
        for r in self.results:
            verdict = "yes" if r.agree else "-" if r.unknown else "NO"
            rows.append((r.description, r.predicted_text(), r.observed_text(), verdict))
        widths = [min(max(len(row[i]) for row in rows), cap) for i, cap in enumerate((70, 60, 70, 5))]
        lines = []
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths)]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)

    def text(self) -> str:
        agreed = sum(r.agree for r in self.results)
        unknown = sum(r.unknown for r in self.results)
        out = [f"== {self.spec}", self.table()]
        out += [f"note: {note}" for note in self.notes]
        out += [f"DISAGREE: {problem}" for problem in self.problems]
        for r in self.results:
            if not r.agree:
                out.append(r.traces())
        t = self.timings
        timing = ", ".join(f"{k} {v:.2f}s" for k, v in t.items())
        out.append(f"{agreed}/{len(self.results) - unknown} probes agree with the model"
                   + (f" ({unknown} more the model says unknown for: not judged)" if unknown else "")
                   + (f", {len(self.problems)} other disagreement(s)" if self.problems else "")
                   + (f" ({timing})" if timing else ""))
        if self.kept:
            out.append(f"lab kept; tear down with: {self.kept}")
        return "\n".join(out)
