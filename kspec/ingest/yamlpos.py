"""YAML (and JSON, which is YAML) read into plain dicts and lists that remember where each value was written.

``yaml.compose`` keeps line/column marks on every node; ``yaml.load`` throws them away. The loaders want
both: ordinary ``dict``/``list`` access to read Kubernetes objects, and a position for every diagnostic. So
the composed node tree is converted into ``PosMap``/``PosList`` (subclasses of dict and list) that carry the
span of themselves and of each of their values.
"""
from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from kspec.diagnostics import Diagnostic
from kspec.ir import Span

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PosMap(dict[str, Any]):
    """A YAML mapping; ``span`` is the mapping's own position, ``span_of(key)`` that of a value and
    ``span_of_key(key)`` that of the key itself."""

    __slots__ = ("span", "spans", "key_spans")
    span: Span
    spans: dict[str, Span]
    key_spans: dict[str, Span]

    def span_of(self, key: str) -> Span:
        return self.spans.get(key, self.span)

    def span_of_key(self, key: str) -> Span:
        return self.key_spans.get(key, self.span)


class PosList(list[Any]):
    """A YAML sequence; ``span_at(i)`` is the position of item ``i``."""

    __slots__ = ("span", "spans")
    span: Span
    spans: list[Span]

    def span_at(self, index: int) -> Span:
        return self.spans[index] if 0 <= index < len(self.spans) else self.span


def span_of_node(node: yaml.Node, file: str) -> Span:
    start, end = node.start_mark, node.end_mark
    return Span(file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def load_documents(text: str, file: str) -> list[Any]:
    """Return the non-empty documents of ``text`` as PosMap/PosList/scalars.

    Malformed YAML raises ``YamlSyntaxError`` carrying a positioned Diagnostic.
    """
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        span = Span(file, mark.line + 1, mark.column + 1) if mark else Span(file, 1, 1)
        raise YamlSyntaxError(Diagnostic(span, f"invalid YAML: {err.problem or err.context}")) from None
    except yaml.YAMLError as err:
        raise YamlSyntaxError(Diagnostic(Span(file, 1, 1), f"invalid YAML: {err}")) from None
    converter = _Converter(file)
    documents = []
    for node in nodes:
        try:
            doc = converter.convert(node)
        except _RecursiveAlias as err:
            raise YamlSyntaxError(Diagnostic(err.span, "invalid YAML: an alias refers to its own anchor")) from None
        except RecursionError:
            raise YamlSyntaxError(Diagnostic(span_of_node(node, file), "invalid YAML: nested too deeply")) from None
        if doc is not None:  # `---` followed by nothing (or comments)
            documents.append(doc)
    return documents


class YamlSyntaxError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class _RecursiveAlias(Exception):
    def __init__(self, span: Span):
        self.span = span


class _Converter:
    def __init__(self, file: str):
        self.file = file
        self.scalars = SafeConstructor()
        # Aliases make the node tree a graph: convert each node once (so "billion laughs" stays linear)
        # and refuse cycles.
        self.done: dict[int, Any] = {}
        self.in_progress: set[int] = set()

    def convert(self, node: yaml.Node) -> Any:
        key = id(node)
        if key in self.done:
            return self.done[key]
        if key in self.in_progress:
            raise _RecursiveAlias(span_of_node(node, self.file))
        self.in_progress.add(key)
        result: Any
        if isinstance(node, yaml.MappingNode):
            result = self._mapping(node)
        elif isinstance(node, yaml.SequenceNode):
            result = self._sequence(node)
        else:
            result = self.scalars.construct_object(node, deep=True)
        self.in_progress.discard(key)
        self.done[key] = result
        return result

    def _mapping(self, node: yaml.MappingNode) -> PosMap:
        result = PosMap()
        result.span = span_of_node(node, self.file)
        result.spans, result.key_spans = {}, {}
        for key_node, value_node in node.value:
            key = self.convert(key_node)
            if not isinstance(key, str):  # YAML 1.1 reads a bare `on:` or `1:` key as a non-string
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key)
            result[key] = self.convert(value_node)
            result.spans[key] = span_of_node(value_node, self.file)
            result.key_spans[key] = span_of_node(key_node, self.file)
        return result

    def _sequence(self, node: yaml.SequenceNode) -> PosList:
        result = PosList(self.convert(item) for item in node.value)
        result.span = span_of_node(node, self.file)
        result.spans = [span_of_node(item, self.file) for item in node.value]
        return result
