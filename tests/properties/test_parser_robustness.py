"""Whatever bytes a .k file holds, kspec answers with positioned diagnostics and exit 2 (or parses it), never
a traceback, never a hang: random bytes, truncated and mutated valid specs, huge numbers, deep nesting,
non-UTF-8 input. Each example runs under a time bound."""
from __future__ import annotations

import io
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kspec import strategies as ks
from kspec.cli import main
from kspec.diagnostics import KspecError
from kspec.grammar import decode, parse_text

REPO = Path(__file__).resolve().parents[2]
SEEDS = [p.read_bytes() for p in sorted((REPO / "specs").glob("*.k"))]
BOUND_SECONDS = 5


@contextmanager
def bounded(seconds: int = BOUND_SECONDS):
    def expire(signum, frame):
        raise TimeoutError(f"kspec took more than {seconds}s on one input (a hang)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def judge(data: bytes) -> None:
    """The library raises only KspecError with a position on every diagnostic; the CLI exits 0 or 2."""
    with bounded():
        try:
            parse_text(decode(data, "input.k"), "input.k")
        except KspecError as exc:
            assert exc.diagnostics
            assert all(d.span is not None and d.span.line >= 1 and d.span.column >= 1 for d in exc.diagnostics), \
                [str(d.message) for d in exc.diagnostics if d.span is None]
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "input.k"
            path.write_bytes(data)
            out, err = io.StringIO(), io.StringIO()
            code = main(["--compact", "fmt", str(path)], out, err)
    assert code in (0, 2), err.getvalue()
    assert "Traceback" not in err.getvalue() and "internal error" not in err.getvalue(), err.getvalue()
    if code == 2:
        assert f"{path}:" in err.getvalue(), err.getvalue()  # file:line:col: message


@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    judge(data)


@given(st.sampled_from(SEEDS), st.data())
def test_truncated_specs(seed: bytes, data) -> None:
    judge(seed[:data.draw(st.integers(0, len(seed)))])


_TOKENS = [b"{", b"}", b"(", b")", b"->", b"/", b",", b":", b"=", b'"', b"#", b"\n", b"99999999999999999999999",
           b"-1", b"0", b"10.0.0.300", b"::", b"service", b"node", b"pod", b"check", b"port", b"not", b"implies",
           b"\xff", b"\xc3", b"\x00", b"\t", b" "]


@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 8), st.sampled_from(_TOKENS)),
                                        min_size=1, max_size=6))
def test_mutated_specs(seed: bytes, edits) -> None:
    data = bytearray(seed)
    for where, cut, token in edits:
        at = int(where * len(data))
        data[at:at + cut] = token
    judge(bytes(data))


@given(ks.specs(max_nodes=2), st.integers(10, 400))
def test_huge_numbers_in_generated_specs(text: str, digits: int) -> None:
    import re

    huge = "9" * digits
    judge(re.sub(r"(?<=[ /])\d{2,5}(?=[/ \n])", huge, text, count=3).encode())


@given(st.integers(1, 5000), st.sampled_from(["(", "not ", "not (", "{ "]))
def test_deep_nesting(depth: int, opener: str) -> None:
    prop = opener * depth + "delivered" + (")" * depth if "(" in opener else "")
    text = ("cluster c {\n  node n { ip 10.0.0.1 }\n  service s { cluster_ip 10.96.0.1  port 80/tcp }\n"
            f"  client x {{ ip 1.2.3.4  external }}\n  check \"c\" {{ from x  to s via cluster_ip  assert {prop} }}\n}}\n")
    judge(text.encode())


@given(ks.specs(max_nodes=2), st.binary(min_size=1, max_size=3).filter(lambda b: not _utf8(b)), st.floats(0, 1))
def test_non_utf8_bytes_in_valid_specs(text: str, junk: bytes, where: float) -> None:
    data = text.encode()
    at = int(where * len(data))
    judge(data[:at] + junk + data[at:])


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
