"""Words of an ``iptables-save`` line, split as iptables-restore splits them, and the error of one line.

Shared by the dump parser (``iptables_save``), the ipset reader and the validity checker (which positions
its diagnostics at a rule's words), so that none of them imports another for it.
"""
from __future__ import annotations

__all__ = ["LineError", "columns", "tokenize", "tokenize_with_columns"]


class LineError(Exception):
    """An error inside one line; ``token`` is the index of the offending word (for the column)."""

    def __init__(self, token: int, message: str, notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.token = token
        self.message = message
        self.notes = notes


def tokenize(line: str) -> list[str]:
    """Split one line into words the way iptables-restore does: whitespace separates, a double-quoted
    string is one word (quotes removed, ``\\"`` and ``\\\\`` unescaped inside)."""
    if "\\" not in line:
        if '"' not in line:
            return line.split()
        head, quote, rest = line.partition('"')
        quoted, quote, tail = rest.partition('"')
        if quote and '"' not in tail and (not head or head[-1].isspace()) and (not tail or tail[0].isspace()):
            words = head.split()  # one quoted word standing alone: kube-proxy's comments
            words.append(quoted)
            words += tail.split()
            return words
        fast = _split_simple_quotes(line)
        if fast is not None:
            return fast
    return [word for word, _ in tokenize_with_columns(line)]


def _split_simple_quotes(line: str) -> list[str] | None:
    """Fast path for kube-proxy's and iptables-save's quoting: every quoted string stands alone
    (whitespace or line end on both sides). Returns None when that does not hold."""
    parts = line.split('"')
    if len(parts) % 2 == 0:
        return None  # unbalanced; let the slow path report it
    words: list[str] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            words += part.split()
            continue
        before, after = parts[i - 1], parts[i + 1]
        glued_before = not before[-1:].isspace() if before else i > 1  # '"a""b"' is one word, 'ab'
        glued_after = not after[:1].isspace() if after else i < len(parts) - 2
        if glued_before or glued_after:
            return None
        words.append(part)
    return words


def tokenize_with_columns(line: str) -> list[tuple[str, int]]:
    """Words with their 0-based start column; handles quotes glued to text and backslash escapes."""
    words: list[tuple[str, int]] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        start, buf, quoted = i, [], False
        while i < n and (quoted or not line[i].isspace()):
            ch = line[i]
            if ch == '"':
                quoted = not quoted
            elif ch == "\\" and i + 1 < n and (quoted or line[i + 1] in '"\\'):
                i += 1
                buf.append(line[i])
            else:
                buf.append(ch)
            i += 1
        if quoted:
            raise LineError(len(words), "unterminated quoted string")
        words.append(("".join(buf), start))
    return words


def columns(line: str) -> list[int]:
    """1-based start column of every word (only computed when reporting an error)."""
    try:
        return [col + 1 for _, col in tokenize_with_columns(line)]
    except LineError:
        return [1]
