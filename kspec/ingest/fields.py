"""Field access for one Kubernetes object being read: each value checked against the type the API gives
it, every problem a positioned diagnostic naming the object ("Service ns1/svc1: spec.ports[0].port must be
an integer"), a missing or mistyped value its default."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from kspec import ir
from kspec.diagnostics import Diagnostic, Severity
from kspec.ingest.yamlpos import PosList, PosMap


class Invalid(Exception):
    """Raised inside an object's parser after an error diagnostic; the object is skipped."""


@dataclass
class Fields:
    """The object being read: a label for messages ("Service ns1/svc1") and the diagnostics sink."""

    label: str
    diagnostics: list[Diagnostic]

    def error(self, span: ir.Span | None, message: str) -> None:
        self.diagnostics.append(Diagnostic(span, f"{self.label}: {message}"))

    def warn(self, span: ir.Span | None, message: str) -> None:
        self.diagnostics.append(Diagnostic(span, f"{self.label}: {message}", Severity.WARNING))

    def get(self, m: PosMap, key: str, kind: type | tuple[type, ...], path: str, *, required: bool = False,
            default: Any = None) -> Any:
        """``m[key]`` checked against ``kind``; a missing/null value gives ``default`` (or an error)."""
        value = m.get(key)
        if value is None:
            if required:
                self.error(m.span, f"missing required field {path}")
            return default
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, str))):
            self.error(m.span_of(key), f"{path} must be {describe(kind)}, not {describe_value(value)}")
            return default
        return value

    def map(self, m: PosMap, key: str, path: str, *, required: bool = False) -> PosMap:
        return self.get(m, key, PosMap, path, required=required, default=empty_map(m))

    def list(self, m: PosMap, key: str, path: str) -> PosList:
        return self.get(m, key, PosList, path, default=empty_list(m))

    def enum(self, m: PosMap, key: str, path: str, enum_type: type[enum.Enum], default: Any) -> Any:
        value = self.get(m, key, str, path)
        if value is None or value == "":
            return default
        try:
            return enum_type(value)
        except ValueError:
            allowed = ", ".join(e.value for e in enum_type)
            self.error(m.span_of(key), f'{path}: unsupported value "{value}" (expected one of {allowed})')
            return default


def empty_map(parent: PosMap | PosList) -> PosMap:
    empty = PosMap()
    empty.span, empty.spans, empty.key_spans = parent.span, {}, {}
    return empty


def empty_list(parent: PosMap) -> PosList:
    empty = PosList()
    empty.span, empty.spans = parent.span, []
    return empty


def describe(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", PosMap: "a mapping", PosList: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names[k] for k in kinds)


def describe_value(value: Any) -> str:
    if isinstance(value, (PosMap, PosList, str, int, bool)):
        return describe(bool if isinstance(value, bool) else type(value))
    return "a number" if isinstance(value, float) else type(value).__name__


def items(obj: Fields, items: PosList, path: str) -> list[tuple[int, PosMap]]:
    """The mapping items of a list, reporting the others."""
    result = []
    for i, item in enumerate(items):
        if isinstance(item, PosMap):
            result.append((i, item))
        else:
            obj.error(items.span_at(i), f"{path}[{i}] must be a mapping, not {describe_value(item)}")
    return result
