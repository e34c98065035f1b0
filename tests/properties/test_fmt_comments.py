"""``kspec fmt`` keeps comments: every comment of a spec survives formatting, the formatted spec parses to the
same cluster, and formatting it again changes nothing."""
from __future__ import annotations

import io
import re
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from kspec import strategies as ks
from kspec.cli import main
from kspec.grammar import format_cluster, parse_text
from kspec.grammar.comments import scan
from tests.conftest import REPO

# A comment's text: anything on one line, '#' and quotes included.
COMMENT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30).map(
    lambda text: "# " + text.strip())


@st.composite
def commented_specs(draw) -> str:
    """A canonical spec with comments put in: on lines of their own anywhere in the cluster block, before
    it, and after the closing brace of lines that end one."""
    cluster = draw(ks.clusters(with_checks=True, proxy=ks.proxy_configs(), max_nodes=2))
    lines = format_cluster(cluster).splitlines()
    out = []
    for number, line in enumerate(lines):
        if draw(st.integers(0, 3)) == 0 and number > 0:
            out.append(re.match(r"\s*", line).group(0) + draw(COMMENT))
        if line.rstrip().endswith(("}", "{")) and draw(st.integers(0, 2)) == 0:
            line = f"{line}  {draw(COMMENT)}"
        out.append(line)
    if draw(st.booleans()):
        out.insert(0, draw(COMMENT))
    return "\n".join(out) + "\n"


@settings(max_examples=60, deadline=None)
@given(commented_specs())
def test_fmt_keeps_every_comment_and_the_cluster(text: str) -> None:
    cluster, _ = parse_text(text, "commented.k")
    formatted = format_cluster(cluster, text)
    assert Counter(c.text for c in scan(formatted)) == Counter(c.text for c in scan(text)), formatted
    again, _ = parse_text(formatted, "commented.k")
    assert again == cluster, formatted
    assert format_cluster(again, formatted) == formatted  # idempotent


def test_comments_stay_with_their_item_when_fmt_reorders():
    text = ('# header\ncluster c {\n  check "x" { from a  to web via cluster_ip  assert delivered }  # about x\n'
            '  # the web service\n  service web { cluster_ip 10.96.0.1  port 80 -> 8080/tcp\n'
            '    # inside: goes above\n  }\n  client a { ip 192.0.2.1  external }  # a host\n'
            '  node n { ip 10.0.0.1  pod_cidr 10.244.0.0/24 }\n  # at the end\n}\n# after\n')
    cluster, _ = parse_text(text, "t.k")
    formatted = format_cluster(cluster, text)
    assert formatted.startswith("# header\ncluster c {\n")
    assert "  # the web service\n  # inside: goes above\n  service web {" in formatted
    assert 'client a { ip 192.0.2.1  external }  # a host' in formatted
    assert "  }  # about x\n" in formatted  # after the check's last line
    assert formatted.endswith("  # at the end\n}\n# after\n")


def test_shipped_specs_are_in_canonical_form_with_their_comments():
    out, err = io.StringIO(), io.StringIO()
    assert main(["fmt", "--check", str(REPO / "specs"), str(REPO / "examples")], out, err) == 0, err.getvalue()
    assert sum(len(scan(path.read_text())) for path in (REPO / "specs").glob("*.k")) > 40
