"""Text -> lark syntax tree, or a KspecError with one positioned syntax diagnostic."""
from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedToken

from kspec.diagnostics import Diagnostic, KspecError
from kspec.ir import Span

from .errors import syntax_diagnostic

# Deep trees (`((((…))))`, `not not not …`, long `and` chains) would make the recursive tree transformer,
# the printer and dataclass equality overflow the Python stack; no honest spec comes near this.
MAX_DEPTH = 100
MAX_BYTES = 10_000_000


@functools.cache
def lark_parser() -> Lark:
    grammar = Path(__file__).with_name("kspec.lark")
    return Lark(grammar.read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                propagate_positions=True, maybe_placeholders=False, cache=True)


def parse_tree(text: str, filename: str) -> Tree:
    """Parse ``text``; raise KspecError (never a lark exception) when it is not a well-formed spec."""
    if len(text) > MAX_BYTES:
        raise KspecError([Diagnostic(Span(filename, 1, 1), f"file is too large (over {MAX_BYTES} bytes)")])
    lark = lark_parser()
    interactive = lark.parse_interactive(text)
    try:
        last = None
        for last in interactive.iter_parse():  # noqa: B007  (the last token is what feed_eof needs)
            pass
        tree = interactive.feed_eof(last)
    except (UnexpectedToken, UnexpectedCharacters) as err:
        # `interactive` stopped at the failing token, so it knows what could have come instead.
        accepted = interactive.accepts()
        raise KspecError([syntax_diagnostic(err, accepted, lark, text, filename)]) from None
    _check_depth(tree, filename)
    return tree


def _check_depth(tree: Tree, filename: str) -> None:
    """Reject trees deeper than MAX_DEPTH, walking iteratively (the point is to avoid recursion)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            meta = node.meta
            span = Span(filename, meta.line, meta.column)  # the whole subtree would be a wall of carets
            raise KspecError([Diagnostic(span, f"expression is nested too deeply (more than {MAX_DEPTH} levels)")])
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
