"""Turn lark's parse failures into one positioned, human-worded Diagnostic.

LALR merges states that share a core, so the expected set lark reports can name terminals that would fail
a few reductions later. We ask the interactive parser which terminals it really ``accepts()`` instead.
"""
from __future__ import annotations

from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from kspec.diagnostics import Diagnostic
from kspec.ir import Span

# Regex terminals, as a reader would name them. Terminals that are a fixed choice of words expand to them.
_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "NAME": ("a name",),
    "INT": ("a number",),
    "STRING": ("a quoted string",),
    "LABEL_KEY": ("a label key",),
    "LABEL_VALUE": ("a label value",),
    "IPV4": ("an IP address",),
    "IPV6": ("an IP address",),
    "CIDR4": ("a CIDR",),
    "CIDR6": ("a CIDR",),
    "CONDITION": ("'ready'", "'serving'", "'terminating'"),
    "SERVICE_TYPE": ("'ClusterIP'", "'ExternalName'", "'LoadBalancer'", "'NodePort'"),
    "POLICY": ("'Cluster'", "'Local'"),
    "PROTOCOL": ("'sctp'", "'tcp'", "'udp'"),
    "$END": ("end of file",),
}

_MAX_SHOWN = 40  # characters of an offending token quoted back to the user


def describe_terminals(names: set[str], lark: Lark) -> list[str]:
    """Human names for a set of terminal names: quoted keywords first, then kinds of value."""
    words: set[str] = set()
    kinds: set[str] = set()
    by_name = {t.name: t for t in lark.terminals}
    if "NAME" in names:  # a name may be quoted: the string is one way of writing it, not something else
        names = {name for name in names if name != "STRING"}
    for name in names:
        if name in _DESCRIPTIONS:
            target = words if _DESCRIPTIONS[name][0].startswith("'") else kinds
            target.update(_DESCRIPTIONS[name])
        elif name in by_name and isinstance(by_name[name].pattern, PatternStr):
            words.add(f"'{by_name[name].pattern.value}'")
        else:
            kinds.add(name.lower())
    return sorted(words) + sorted(kinds)


def expected_phrase(choices: list[str]) -> str:
    if len(choices) == 1:
        return f"expected {choices[0]}"
    return "expected one of " + ", ".join(choices)


def quote(text: str) -> str:
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "..."
    return repr(text)


def end_position(text: str) -> tuple[int, int]:
    """Line and column just after the last non-blank character: where "end of file" is best shown."""
    stripped = text.rstrip()
    line = stripped.count("\n") + 1
    column = len(stripped) - (stripped.rfind("\n") + 1) + 1
    return line, column


def syntax_diagnostic(err: UnexpectedInput, accepted: set[str], lark: Lark, text: str,
                      filename: str) -> Diagnostic:
    expected = expected_phrase(describe_terminals(accepted, lark)) if accepted else "unexpected input"
    if isinstance(err, UnexpectedToken) and err.token.type == "$END":
        line, column = end_position(text)
        return Diagnostic(Span(filename, line, column, line, column + 1), f"{expected}, found end of file")
    if isinstance(err, UnexpectedToken):
        tok = err.token
        span = Span(filename, tok.line, tok.column, tok.end_line, tok.end_column)
        return Diagnostic(span, f"{expected}, found {quote(str(tok))}")
    assert isinstance(err, UnexpectedCharacters)
    pos = err.pos_in_stream or 0  # set for every error the lexer raises; lark types it optional
    char = text[pos] if pos < len(text) else ""
    span = Span(filename, err.line, err.column, err.line, err.column + 1)
    return Diagnostic(span, f"{expected}, found {quote(char)}")
