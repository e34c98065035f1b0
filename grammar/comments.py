"""Comments of a ``.k`` spec, kept by ``kspec fmt``.

The parser drops comments; the IR has no place for them (they mean nothing to a cluster). ``attach`` finds
them in the source text and ties each to the top-level item it documents, so the printer can put it back
with that item wherever canonical order moves it:

* before ``cluster``: the file's header;
* on lines of their own between items: above the next item (before the closing brace: at the end);
* after an item on its last line: after that item's last line;
* inside an item's block: above the item (fmt does not keep a comment's place inside a block).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from kspec import ir


@dataclass(frozen=True)
class Comment:
    line: int
    text: str  # from the '#' to the end of the line, trailing blanks removed
    own_line: bool  # nothing but blanks before it on its line


@dataclass
class Trivia:
    """The comments of one spec, by the item they belong to (``key``)."""

    header: list[str] = field(default_factory=list)
    leading: dict[object, list[str]] = field(default_factory=dict)
    trailing: dict[object, str] = field(default_factory=dict)
    footer: list[str] = field(default_factory=list)  # before the closing brace
    after: list[str] = field(default_factory=list)  # after the closing brace


def scan(text: str) -> list[Comment]:
    """Every comment: a '#' outside a string (strings are double-quoted, backslash-escaped, one line)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        in_string = escaped = False
        for column, char in enumerate(line):
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "#":
                found.append(Comment(number, line[column:].rstrip(), not line[:column].strip()))
                break
    return found


# One-line statements that are no IR object of their own: found in the text, keyed by their keyword.
_STATEMENTS = re.compile(r"^\s*(cluster_cidr|objects)\b", re.M)


def key(item: object) -> object:
    """What ``Trivia`` files an item's comments under: an IR object by identity, a statement by keyword."""
    return item if isinstance(item, str) else id(item)


@dataclass(frozen=True)
class _Placed:
    key: object
    span: ir.Span


def attach(text: str, cluster: ir.Cluster, items: list) -> Trivia:
    """``text``'s comments tied to ``items``: the spec's own top-level IR objects (each with a span), and
    its ``cluster_cidr`` and ``objects`` statements, which the printer names by keyword."""
    trivia = Trivia()
    placed = [_Placed(key(item), item.span) for item in items if item.span is not None]
    for found in _STATEMENTS.finditer(text):
        line = text.count("\n", 0, found.start(1)) + 1
        placed.append(_Placed(found.group(1), ir.Span("", line, 1, line, 1)))
    # A statement and an object on one line (the proxy settings, when only cluster_cidr wrote them): the
    # statement's.
    lines = {p.span.line for p in placed if isinstance(p.key, str)}
    spanned = sorted((p for p in placed if isinstance(p.key, str) or p.span.line not in lines),
                     key=lambda p: p.span.line)
    start = cluster.span.line if cluster.span is not None else 1
    end = cluster.span.end_line if cluster.span is not None and cluster.span.end_line else None
    for comment in scan(text):
        if comment.line <= start:
            trivia.header.append(comment.text)
        elif end is not None and comment.line >= end:  # after the closing brace
            trivia.after.append(comment.text)
        else:
            _place(trivia, spanned, comment)
    return trivia


def _place(trivia: Trivia, spanned: list, comment: Comment) -> None:
    inside = [item for item in spanned if item.span.line <= comment.line <= (item.span.end_line or item.span.line)]
    if inside:
        item = inside[-1]
        if not comment.own_line and (item.span.end_line or item.span.line) == comment.line \
                and item.key not in trivia.trailing:
            trivia.trailing[item.key] = comment.text
        else:  # within its block: above the item
            trivia.leading.setdefault(item.key, []).append(comment.text)
        return
    following = next((item for item in spanned if item.span.line > comment.line), None)
    if following is None:
        trivia.footer.append(comment.text)
    else:
        trivia.leading.setdefault(following.key, []).append(comment.text)
