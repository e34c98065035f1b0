"""Pictures of a packet's way through the cluster: an SVG drawing of the outside (clients, the load balancer)
and each node with its pods, the packet's path hop by hop (rewrites on the arrows, the rules it hit beside
each node), the answer's way back dashed; and one self-contained HTML page of every verdict.

Plain data in, text out: a scene (``scene()``: the cluster as the picture needs it) and ways (``way()``: a
fate as ``verifier.render`` writes it in JSON), so reports built in worker processes can be drawn.
"""
from __future__ import annotations

import html
from typing import Any

from kspec.report.outcome import summary_line
from kspec.verifier.model.network import with_endpoint_pods
from kspec.verifier.render import hops_json

CHAR = 7.2  # width of a character of the 12px monospace font, for sizing boxes to their text
BOX = 300  # a node's width
GAP = 220  # between columns, where the arrows and their labels go
TOP = 70
POD_H = 30
LINE = 15
MAX_NODES = 8  # nodes drawn besides those on the way
MAX_PODS = 5
COLORS = {"way": "#1f6feb", "answer": "#8250df"}
ENDINGS = {"delivered": "#1a7f37", "answered": "#1a7f37", "dropped": "#cf222e", "rejected": "#bc4c00",
           "no_route": "#cf222e", "unknown": "#6e7781", "host": "#9a6700"}


def scene(cluster, client=None) -> dict:
    """What the picture shows of ``cluster`` (and, for a counterexample or a trace, the ``client``)."""

    pods = with_endpoint_pods(cluster).pods
    return {
        "nodes": [{"name": n.name, "ips": [str(ip) for ip in n.ips],
                   "pods": [{"key": p.key, "ip": str(p.ip)} for p in pods if p.node == n.name]}
                  for n in cluster.nodes],
        "load_balancers": [lb.name for lb in cluster.load_balancers],
        "client": None if client is None else {"name": client.name, "kind": client.kind.value,
                                               "ip": None if client.ip is None else str(client.ip),
                                               "node": client.node},
    }


def way(fate, src: str, seen: str | None = None) -> dict:
    """A fate of either engine as the picture reads it: ``verifier.render.hops_json``'s hops and steps."""

    record = {"src": src, "disposition": fate.disposition.value, "pod": fate.pod.key if fate.pod else None,
              "node": fate.node, "reason": fate.reason or None, "client_address": seen,
              "hops": hops_json(fate)}
    if fate.reply is not None:
        record["answer"] = way(fate.reply, "")
    return record


# ------------------------------------------------------------------------------------------- the SVG


def svg(picture: dict, ways: list[dict], title: str = "") -> str:
    """One drawing per way, stacked (a trace's branches; a counterexample has one)."""
    panels = [_Panel(picture, w, f"{title} — branch {i}/{len(ways)}" if len(ways) > 1 else title)
              for i, w in enumerate(ways, 1)]
    width = max((p.width for p in panels), default=400)
    parts, y = [], 0
    for panel in panels:
        parts.append(f'<g transform="translate(0,{y})">{panel.draw()}</g>')
        y += panel.height + 20
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="kspec-way" viewBox="0 0 {width:.0f} {max(y, 40)}" '
            f'width="{width:.0f}" height="{max(y, 40)}" font-family="monospace" font-size="12">'
            f'{_DEFS}{"".join(parts)}</svg>\n')


_DEFS = ("<defs>" + "".join(
    f'<marker id="head-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
    f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>'
    for name, color in COLORS.items()) + "</defs>")


class _Panel:
    """One way drawn: columns (the outside, then nodes), boxes, the path, the rules beside each node."""

    def __init__(self, picture: dict, way_: dict, title: str):
        self.picture, self.way, self.title = picture, way_, title
        on_way = [hop["node"] for hop in way_["hops"]] + [h["node"] for h in way_.get("answer", {}).get("hops", [])]
        nodes = picture["nodes"]
        # The way's nodes first, in the order it meets them (its arrows then run left to right), then others.
        order = list(dict.fromkeys(on_way))
        shown = sorted((n for n in nodes if n["name"] in order), key=lambda n: order.index(n["name"])) \
            + [n for n in nodes if n["name"] not in order]
        self.hidden = max(0, len(shown) - max(MAX_NODES, len(order)))
        self.nodes = shown[:len(shown) - self.hidden]
        self.column = {n["name"]: i + 1 for i, n in enumerate(self.nodes)}
        self.rules = {n["name"]: self._rules(n["name"]) for n in self.nodes}
        self.box_h = {n["name"]: 46 + POD_H * min(len(n["pods"]), MAX_PODS)
                      + (LINE if len(n["pods"]) > MAX_PODS else 0) for n in self.nodes}
        body = max(self.box_h.values(), default=60)
        rules = max((len(r) for r in self.rules.values()), default=0)
        self.width = 40 + (len(self.nodes) + 1) * (BOX + GAP)
        self.height = TOP + body + 30 + rules * LINE + 40

    # -------------------------------------------------------------------------------- layout

    def x(self, column: int) -> float:
        return 20 + column * (BOX + GAP)

    def node_box(self, name: str) -> tuple[float, float, float, float]:
        return self.x(self.column[name]), TOP, BOX, self.box_h[name]

    def pod_point(self, node: str, key: str | None) -> tuple[float, float]:
        x, y, w, _ = self.node_box(node)
        node_ = next(n for n in self.nodes if n["name"] == node)
        keys = [p["key"] for p in node_["pods"]][:MAX_PODS]
        if key in keys:  # the pod box's left end, where arrows come in and go out
            return x + 10, y + 46 + POD_H * keys.index(key) - 4
        return x + 10, y + 22

    def _rules(self, node: str) -> list[tuple[str, str, str]]:
        """(text shown, full rule, rewrite) of every step on this node, the way's and then the answer's."""
        lines = []
        for label, record in (("", self.way), ("answer: ", self.way.get("answer") or {})):
            for hop in record.get("hops", []):
                if hop["node"] != node:
                    continue
                for step in hop["steps"]:
                    rule = step["rule"] or f"({step['chain']})"  # conntrack's own step: no rule line
                    text = _fit(f"{label}{step['table']:<6} {rule}", BOX + GAP - 20)
                    lines.append((text, f"{rule}  [{step['origin'] or ''}]", step["rewrite"] or ""))
        return lines

    # ------------------------------------------------------------------------------- drawing

    def draw(self) -> str:
        out = [f'<text x="20" y="24" font-size="14" font-weight="bold">{_e(_fit(self.title, self.width - 40))}'
               f'</text>', self._legend()]
        out += self._outside()
        for node in self.nodes:
            out += self._node(node)
        out += self._path(self.way, "way")
        if self.way.get("answer"):
            out += self._path(self.way["answer"], "answer", back=True)
        if self.hidden:
            out.append(f'<text x="{self.x(len(self.nodes) + 1)}" y="{TOP + 20}">… {self.hidden} more '
                       f'node(s)</text>')
        return "".join(out)

    def _legend(self) -> str:
        end = self.way["disposition"]
        text = f"{end.upper()}" + (f": {self.way['reason']}" if self.way.get("reason") else "")
        if self.way.get("pod"):
            text += f" to {self.way['pod']}" + (f", client_address={self.way['client_address']}"
                                                 if self.way.get("client_address") else "")
        if self.way.get("answer"):
            answer = self.way["answer"]
            text += f"; answer {answer['disposition'].upper()}"
        return (f'<text x="20" y="44" fill="{ENDINGS.get(end, "#000")}">{_e(_fit(text, self.width - 40))}'
                f'<title>{_e(text)}</title></text>')

    def _outside(self) -> list[str]:
        client = self.picture.get("client") or {}
        x, y = self.x(0), TOP
        out = [f'<rect x="{x}" y="{y}" width="{BOX}" height="60" rx="8" fill="#f6f8fa" stroke="#8c959f"/>',
               f'<text x="{x + 10}" y="{y + 20}" font-weight="bold">outside</text>']
        if client and client.get("kind") == "external":
            label = _fit(f"{client['name']} {client.get('ip') or self.way.get('src') or ''}", BOX - 20)
            out.append(f'<text x="{x + 10}" y="{y + 42}">{_e(label)}</text>')
        lbs = self.picture.get("load_balancers") or []
        if lbs:
            out.append(f'<text x="{x + 10}" y="{y + 80}">{_e(_fit("load balancer: " + ", ".join(lbs), BOX))}'
                       f'</text>')
        return out

    def _node(self, node: dict) -> list[str]:
        x, y, w, h = self.node_box(node["name"])
        on_way = bool(self.rules[node["name"]])
        out = [f'<rect class="node" x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="#ffffff" '
               f'stroke="{"#1f6feb" if on_way else "#8c959f"}" stroke-width="{2 if on_way else 1}"/>',
               f'<text x="{x + 10}" y="{y + 20}" font-weight="bold">'
               f'{_e(_fit(node["name"] + "  " + ", ".join(node["ips"]), w - 20))}</text>']
        for i, pod in enumerate(node["pods"][:MAX_PODS]):
            py = y + 46 + POD_H * i - 16
            mark = pod["key"] == self.way.get("pod")
            out.append(f'<rect class="pod" x="{x + 10}" y="{py}" width="{w - 20}" height="{POD_H - 6}" rx="4" '
                       f'fill="{"#dafbe1" if mark else "#f6f8fa"}" stroke="#8c959f"/>')
            out.append(f'<text x="{x + 16}" y="{py + 16}">{_e(_fit(pod["key"] + " " + pod["ip"], w - 32))}</text>')
        if len(node["pods"]) > MAX_PODS:
            out.append(f'<text x="{x + 10}" y="{y + h - 8}">… {len(node["pods"]) - MAX_PODS} more pod(s)</text>')
        for i, (text, full, rewrite) in enumerate(self.rules[node["name"]]):
            ly = TOP + max(self.box_h.values()) + 30 + i * LINE
            color = "#9a6700" if rewrite else "#24292f"
            tip = full + (f"\n{rewrite}" if rewrite else "")
            out.append(f'<text class="rule" x="{x}" y="{ly}" fill="{color}">{_e(text)}<title>{_e(tip)}</title>'
                       f'</text>')
        return out

    def _path(self, record: dict, kind: str, back: bool = False) -> list[str]:
        """The arrows of one direction, in a lane of their own (the way above, the answer below): from where it
        starts, box edge to box edge, into the pod where it ends; each arrow labelled with the rewrites of
        the node it leaves."""
        hops = [h for h in record.get("hops", []) if h["node"] in self.column]
        if not hops:
            return []
        client = self.picture.get("client") or {}
        lane = TOP + (38 if back else 14)
        out, color = [], COLORS[kind]
        dash = ' stroke-dasharray="6 4"' if back else ""

        def arrow(a, b, label=""):
            if a == b:
                return
            out.append(f'<path class="hop-arrow {kind}" d="M{a[0]:.1f},{a[1]:.1f} L{b[0]:.1f},{b[1]:.1f}" '
                       f'stroke="{color}" stroke-width="2" fill="none" marker-end="url(#head-{kind})"{dash}/>')
            lines = _wrap(label, GAP - 20)[:5]
            for i, line in enumerate(lines):
                y = (a[1] + b[1]) / 2 + (14 + i * LINE if back else -8 - (len(lines) - 1 - i) * LINE)
                out.append(f'<text class="rewrite" x="{(a[0] + b[0]) / 2:.1f}" y="{y:.1f}" text-anchor="middle" '
                           f'fill="#9a6700">{_e(line)}<title>{_e(label)}</title></text>')

        def edge(node: str, right: bool) -> tuple[float, float]:
            x, _, w, _ = self.node_box(node)
            return (x + w if right else x), lane

        first = hops[0]["node"]
        if back:  # the answer starts at the pod
            at = self.pod_point(first, self.way.get("pod"))
        elif client.get("kind") == "pod" and client.get("node") == first:
            start = next((p["key"] for n in self.nodes if n["name"] == first for p in n["pods"]
                          if p["ip"] == (client.get("ip") or "")), None)
            at = self.pod_point(first, start)
        elif client.get("kind") == "node":
            at = self.node_box(first)[0] + 20, lane
        else:
            arrow((self.x(0) + BOX, lane), edge(first, False))
            at = edge(first, False)
        for prev, hop in zip(hops, hops[1:]):
            a_col, b_col = self.column[prev["node"]], self.column[hop["node"]]
            leave = edge(prev["node"], b_col > a_col)
            if at != leave and at[1] != lane:
                arrow(at, leave)
            enter = edge(hop["node"], b_col < a_col)
            arrow(leave, enter, self._rewrites(prev))
            at = enter
        end = record["disposition"]
        last = hops[-1]
        if record.get("pod") and record.get("node") in self.column:
            arrow(at, self.pod_point(record["node"], record["pod"]))  # its node's rewrites: in its rules
        elif back and end == "answered" and client.get("kind") == "external":
            arrow(edge(last["node"], False) if self.column[last["node"]] else at, (self.x(0) + BOX, lane),
                  self._rewrites(last))
        if end not in ("delivered", "answered"):
            x, _, w, _ = self.node_box(last["node"])
            out.append(f'<text class="ending" x="{x + w - 10:.1f}" y="{lane + 4:.1f}" text-anchor="end" '
                       f'fill="{ENDINGS.get(end, "#000")}" font-weight="bold">✗ {_e(end)}</text>')
        return out

    @staticmethod
    def _rewrites(hop: dict) -> str:
        """The address and port rewrites of a hop (its mark changes are in the rules beside the node)."""
        notes = [part for step in hop["steps"] if step.get("rewrite") for part in step["rewrite"].split("; ")]
        return "; ".join(note for note in notes if not note.startswith(("mark:", "ctmark:", "policy")))


def _fit(text: str, width: float) -> str:
    """``text`` cut to ``width`` pixels of the monospace font (the full text is in the element's title)."""
    room = max(4, int(width / CHAR))
    return text if len(text) <= room else text[:room - 1] + "…"


def _wrap(text: str, width: float) -> list[str]:
    """``text`` in lines of at most ``width`` pixels, broken at spaces (a longer word is cut)."""
    room = max(4, int(width / CHAR))
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > room:
            lines.append(line)
            line = ""
        line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return [_fit(line, width) for line in lines]


def _e(text: str) -> str:
    return html.escape(text, quote=True)


# ------------------------------------------------------------------------------------------ the page


def render_html(outs: list[Any]) -> str:
    """Every verdict, and for each counterexample its drawing and its trace, in one self-contained page."""

    rows, sections = [], []
    for number, out in enumerate(outs):
        verdict = out.verdict
        badge = {"proved": "#1a7f37", "violated": "#cf222e", "unknown": "#6e7781"}.get(verdict, "#000")
        status = "as expected" if out.record["as_expected"] else f"expected {out.record['expect']}"
        link = f'<a href="#ce-{number}">trace</a>' if out.record.get("counterexample") else ""
        rows.append(f"<tr><td>{_e(out.spec)}</td><td>{_e(out.check)}</td>"
                    f'<td><span class="badge" style="background:{badge}">{_e(verdict)}</span></td>'
                    f"<td>{_e(status)}</td><td>{_e(out.record.get('reason') or '')}</td><td>{link}</td></tr>")
        ce = out.record.get("counterexample")
        if ce is None:
            continue
        picture = out.scene or {"nodes": [], "load_balancers": [], "client": None}
        drawing = svg(picture, [_ce_way(ce)], f"{out.check}: {ce['packet']['instance']}")
        sections.append(f'<section id="ce-{number}"><h2>{_e(out.check)}</h2><p>{_e(out.spec)}: {_e(verdict)}, '
                        f'{_e(status)}</p><div class="drawing">{drawing}</div>'
                        f"<details><summary>trace</summary><pre>{_e(out.trace)}</pre></details></section>")
    return page("".join(sections), summary_line(outs), "".join(rows))


def page(sections: str, summary: str = "", rows: str = "", title: str = "kspec verify") -> str:
    """A self-contained page around ``sections`` (HTML holding drawings), with the verdict table's rows."""
    table = (f"<table><tr><th>spec</th><th>check</th><th>verdict</th><th>expected</th><th>reason</th><th></th>"
             f"</tr>{rows}</table>") if rows else ""
    return _PAGE.format(summary=_e(summary), table=table, sections=sections, title=_e(title))


def _ce_way(ce: dict) -> dict:
    record = {"src": ce["packet"]["src"], "disposition": ce["disposition"], "pod": ce["pod"],
              "node": ce["hops"][-1]["node"] if ce["hops"] else None, "reason": None,
              "client_address": ce["client_address"], "hops": ce["hops"]}
    answer = ce.get("answer")
    if answer is not None:
        record["answer"] = {"disposition": answer["disposition"], "pod": None, "node": None,
                            "reason": answer["reason"], "hops": answer["hops"]}
    return record


# The page checks itself when a browser loads it (the tests read the result with a headless browser):
# scripting errors, drawings whose text runs past their frame, arrows of no length.
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #24292f; }}
table {{ border-collapse: collapse; width: 100%; table-layout: fixed; }}
td, th {{ border-bottom: 1px solid #d0d7de; padding: 4px 8px; text-align: left; overflow-wrap: anywhere; }}
.badge {{ color: white; border-radius: 10px; padding: 1px 8px; }}
.drawing {{ overflow-x: auto; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px; }}
.drawing svg {{ max-width: 100%; height: auto; }}
pre {{ overflow-x: auto; background: #f6f8fa; padding: 8px; font-size: 12px; }}
</style></head>
<body data-kspec-check="pending">
<h1>{title}</h1><p>{summary}</p>
{table}
{sections}
<script>
window.kspecErrors = 0;
window.addEventListener("error", () => {{ window.kspecErrors += 1; }});
window.addEventListener("load", () => {{
  let overflow = 0, arrows = 0;
  for (const svg of document.querySelectorAll("svg.kspec-way")) {{
    const box = svg.viewBox.baseVal;
    for (const el of svg.querySelectorAll("text, rect, path")) {{
      const b = el.getBBox(), m = el.getCTM(), sm = svg.getCTM().inverse().multiply(m);
      const x = b.x * sm.a + sm.e, y = b.y * sm.d + sm.f;
      if (x < -1 || y < -1 || x + b.width * sm.a > box.width + 1 || y + b.height * sm.d > box.height + 1) overflow++;
    }}
    for (const p of svg.querySelectorAll("path.hop-arrow")) if (p.getTotalLength() > 1) arrows++;
  }}
  if (document.documentElement.scrollWidth > window.innerWidth + 1) overflow++;
  document.body.dataset.kspecCheck = `errors=${{window.kspecErrors}} overflow=${{overflow}} arrows=${{arrows}}`;
}});
</script>
</body></html>
"""
