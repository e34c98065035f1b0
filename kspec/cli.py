"""The ``kspec`` command line. Every subcommand is ``run_X(args, out, err) -> exit code``.

Exit codes: 0 success (every verdict as expected), 1 a property does not hold as expected, 2 bad input.

Each subcommand imports what it needs inside its ``run_X``, the one place in kspec where imports are not at
the top: measured on this project's 2-core CI host, ``kspec --help`` takes 0.14 s so and 0.48 s with every
import at the top (z3, the lab, Hypothesis for ``fuzz``), a cost every ``kspec fmt`` or ``compile`` would pay.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from kspec import ir
from kspec.diagnostics import Diagnostic, KspecError, report

# load_cluster is the commands' loader; kept importable from here, where it used to live.
from kspec.inputs import (  # noqa: F401
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    OBJECT_SUFFIXES,
    load_cluster,
    write_atomic,
)

_FAMILIES = {"ipv4": ir.IPFamily.V4, "ipv6": ir.IPFamily.V6}


# --------------------------------------------------------------------------------------- loading


def _stdin(args: argparse.Namespace) -> bytes | None:
    """Standard input, read once, when ``--k8s -`` asks for it (kubectl ... -o yaml | kspec ... --k8s -)."""
    if "-" not in (getattr(args, "k8s", None) or ()):
        return None
    data = sys.stdin.buffer.read()
    from kspec.diagnostics import remember_source
    from kspec.ingest.k8s import STDIN

    remember_source(STDIN, data.decode("utf-8", errors="replace"))
    return data


def _family(args: argparse.Namespace, *clusters: ir.Cluster) -> ir.IPFamily | None:
    """``--family`` as asked (None: not given); refused for a cluster with no address of that family, which
    would verify nothing (every check unknown) and probe nothing."""
    if not args.family:
        return None
    family = _FAMILIES[args.family]
    for cluster in clusters:
        if family not in cluster.families():
            have = " and ".join(f.value for f in cluster.families())
            raise KspecError([Diagnostic(None, f"--family {args.family}: cluster {cluster.name} has no "
                                               f"{family.value} node or Service address (it is {have})")])
    return family


# --------------------------------------------------------------------------------------- compile


def run_compile(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from kspec.compiler import compile_cluster, compile_node

    cluster, warnings = load_cluster(args.spec, args.k8s, args.proxy_config, args.kube_proxy_version,
                                     _stdin(args))
    report(warnings, err, args.compact)
    # (An IPv4 ruleset of an IPv6-only cluster is kube-proxy's empty one: compile it, as kube-proxy would.)
    family = _FAMILIES[args.family] if args.family else cluster.families()[0]
    if args.all_nodes:
        if not args.output:
            raise KspecError([Diagnostic(None, "--all-nodes needs -o DIR")])
        texts = compile_cluster(cluster, family)
        # Compile everything first, then write: a failure never leaves a half-written set of files.
        suffix = "rules" if family is ir.IPFamily.V4 else "rules6"
        for node, text in texts.items():
            write_atomic(Path(args.output) / f"{node}.{suffix}", text)
        print(f"wrote {len(texts)} rulesets to {args.output}", file=err)
        return EXIT_OK
    node = _pick_node(cluster, args.node)
    sync = _since(cluster, node, family, args) if args.since else None
    text = compile_node(cluster, node, family, sync=sync)
    if args.output:
        write_atomic(Path(args.output), text)
    else:
        out.write(text)
    return EXIT_OK


def _pick_node(cluster: ir.Cluster, name: str | None) -> str:
    names = [node.name for node in cluster.nodes]
    if name is None:
        if len(names) == 1:
            return names[0]
        raise KspecError([Diagnostic(cluster.span, f"the cluster has {len(names)} nodes; say which with --node "
                                     f"({', '.join(names) or 'none declared'}) or use --all-nodes")])
    if name not in names:
        raise KspecError([Diagnostic(None, f"unknown node '{name}'; the cluster has: {', '.join(names)}")])
    return name


def dump_sets(cluster: ir.Cluster, rules: dict[str, Path] | None, where: str | None) -> dict[str, Path] | None:
    """The nodes' ``ipset save`` files: ``--ipsets FILE`` for a single dump, else ``NODE.ipsets`` beside each
    ``NODE.rules``."""
    if not rules:
        return None
    if where is not None:
        if len(rules) != 1 or not Path(where).is_file():
            raise KspecError([Diagnostic(None, f"--ipsets {where}: give one file, with a single --rules dump "
                                               "(a directory holds NODE.ipsets beside NODE.rules)")])
        return {node: Path(where) for node in rules}
    found = {node: dump.with_suffix(".ipsets") for node, dump in rules.items()}
    return {node: path for node, path in found.items() if path.is_file()}


def dump_rules(cluster: ir.Cluster, where: str | None, node: str | None,
               family: ir.IPFamily | None) -> dict[str, Path] | None:
    """The real nodes' dumps ``--rules`` names: one file (from ``--node``), or a directory holding
    ``NODE.rules`` per node (nodes without one keep their compiled rules)."""
    if where is None:
        return None
    path = Path(where)
    if family is None and len(cluster.families()) > 1:
        raise KspecError([Diagnostic(None, "--rules on a dual-stack cluster needs --family ipv4 (an "
                                           "iptables-save dump) or --family ipv6 (ip6tables-save)")])
    if not path.is_dir():
        if not path.is_file():
            raise KspecError([Diagnostic(None, f"--rules {where}: no such file or directory")])
        if node is None and len(cluster.nodes) != 1:
            raise KspecError([Diagnostic(None, "--rules needs --node NAME: which node the dump is from (or a "
                                               "directory of NODE.rules files)")])
        return {_pick_node(cluster, node): path}
    found = {file.stem: file for file in sorted(path.glob("*.rules"))}
    names = {n.name for n in cluster.nodes}
    strangers = sorted(set(found) - names)
    if strangers:
        raise KspecError([Diagnostic(None, f"--rules {where}: {', '.join(f'{s}.rules' for s in strangers)} "
                                           f"names no node of the cluster (it has {', '.join(sorted(names))})")])
    if not found:
        raise KspecError([Diagnostic(None, f"--rules {where}: no NODE.rules files in it")])
    return found


def unhooked_dumps(rules: dict[str, Path] | None) -> list[Diagnostic]:
    """Warnings for ``--rules`` dumps that hold kube-proxy's chains with nothing jumping to them."""
    from kspec.rules.iptables.iptables_save import unhooked_kube_chains

    found = []
    for path in (rules or {}).values():
        try:
            warning = unhooked_kube_chains(path.read_text(encoding="utf-8", errors="replace"), str(path))
        except OSError:
            continue  # reading it properly later says what is wrong
        if warning is not None:
            found.append(warning)
    return found


def _since(cluster: ir.Cluster, node: str, family: ir.IPFamily, args: argparse.Namespace):
    """A partial sync from the state PREVIOUS describes to this one, as kube-proxy does after a change."""
    from kspec.compiler import SyncState, compile_node
    from kspec.compiler.names import PER_SERVICE_PREFIXES

    previous, _ = load_cluster(args.since, None, args.proxy_config, args.kube_proxy_version)
    before = {svc.key: svc for svc in previous.services}
    after = {svc.key: svc for svc in cluster.services}
    changed = frozenset(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    old_text = compile_node(previous, node, family)
    nat = old_text.split("*nat\n", 1)[1]
    existing = frozenset(line[1:].split(" ")[0] for line in nat.splitlines()
                         if line.startswith(":") and line[1:].startswith(PER_SERVICE_PREFIXES))
    return SyncState(changed=changed, existing_chains=existing)


# ------------------------------------------------------------------------------------------- fmt


def run_fuzz(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from kspec.fuzz import run_fuzz as fuzz

    return fuzz(args, out, err)


def run_fmt(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from kspec.grammar import format_cluster, load

    paths = [str(found) for path in args.specs
             for found in (sorted(Path(path).rglob("*.k")) if Path(path).is_dir() else [Path(path)])]
    if not paths:
        raise KspecError([Diagnostic(None, "no specs given" if not args.specs else "no .k specs in "
                                     + ", ".join(args.specs))])
    status = EXIT_OK
    stdin = _stdin(args)
    for path in paths:
        cluster, warnings = load(path, args.k8s or (), args.proxy_config, stdin)
        report(warnings, err, args.compact)
        source = Path(path).read_text(encoding="utf-8")
        text = format_cluster(cluster, source)
        if args.check:
            if source != text:
                print(f"{path}: not in canonical form", file=err)
                status = EXIT_FAILED
        elif args.write:
            write_atomic(Path(path), text)
        else:
            out.write(text)
    return status


# ---------------------------------------------------------------------------------------- verify


def run_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from kspec.config import load_settings
    from kspec.report.run import emit, progress_bar, targets, verify_outcomes

    settings = load_settings()
    timeout = args.timeout if args.timeout is not None else settings.get("timeout", 10)
    jobs = args.jobs if args.jobs is not None else settings.get("jobs", 1)
    allow_unknown = args.allow_unknown or settings.get("allow-unknown", False)
    try:
        formats = targets(args.format if args.format is not None else settings.get("formats", ["human"]))
    except ValueError as exc:
        raise KspecError([Diagnostic(None, str(exc))]) from None
    specs = args.specs or ([args.spec] if args.spec else [])
    if not specs and args.k8s:
        specs = [None]  # the objects alone, with the built-in properties
    if not specs:
        raise KspecError([Diagnostic(None, "no specs given (or --k8s OBJECTS)")])
    # Load every spec first: bad input anywhere is reported (exit 2) before any verdict.
    loaded = []
    errors: list[Diagnostic] = []
    stdin = _stdin(args)
    for path in specs:
        try:
            cluster, warnings = load_cluster(path, args.k8s, args.proxy_config, args.kube_proxy_version, stdin)
            report(warnings, err, args.compact)
            loaded.append((path or " ".join(args.k8s), cluster))
        except KspecError as exc:
            errors += exc.diagnostics
            continue
        if not cluster.nodes:  # the built-ins would still send from a made-up external host
            errors.append(Diagnostic(cluster.span, f"cluster {cluster.name} has no nodes: nothing runs kube-proxy, "
                                                   "so there is nothing to verify"))
    if errors:
        raise KspecError(errors)
    family = _family(args, *(cluster for _, cluster in loaded))
    rules = dump_rules(loaded[0][1], args.rules, args.node, family)
    report(unhooked_dumps(rules), err, args.compact)
    with progress_bar(err) as progress:
        outs = verify_outcomes(loaded, timeout_ms=timeout * 1000, rules=rules, builtins=not args.no_builtins,
                               allow_unknown=allow_unknown, jobs=jobs, family=family,
                               ipsets=dump_sets(loaded[0][1], rules, args.ipsets), strict=args.strict,
                               progress=progress)
    emit(formats, outs, out, no_color=args.no_color)
    return EXIT_FAILED if any(o.failed for o in outs) else EXIT_OK


# ----------------------------------------------------------------------------------------- trace


def run_trace(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Walk one concrete packet through the cluster with the concrete tracer; every branch is shown."""

    from kspec.verifier import node_models
    from kspec.verifier.engines.replay import ConcreteCluster
    from kspec.verifier.engines.tracer import Packet
    from kspec.verifier.model.network import ClusterNetwork

    cluster, warnings = load_cluster(args.spec, args.k8s, args.proxy_config, args.kube_proxy_version, _stdin(args))
    report(warnings, err, args.compact)
    client = next((c for c in cluster.clients if c.name == args.from_), None)
    if client is None:
        names = ", ".join(c.name for c in cluster.clients) or "none declared"
        raise KspecError([Diagnostic(None, f"unknown client '{args.from_}'; the spec has: {names}")])
    dst, dport, proto = _destination(args.to)
    family = ir.IPFamily.of(dst)
    rules = dump_rules(cluster, args.rules, args.rules_node, family)
    report(unhooked_dumps(rules), err, args.compact)
    network = ClusterNetwork(cluster, node_models(cluster, family, rules, dump_sets(cluster, rules, None)), family)
    entry = args.node
    if entry is None and client.kind is ir.ClientKind.EXTERNAL:
        owner = network.node_of(dst)
        entry = owner[0] if owner else None
    if entry is not None:
        _pick_node(cluster, entry)
    src = cluster.client_address(client, family)
    if src is None:
        raise KspecError([Diagnostic(client.span, f"client '{client.name}' has no address to trace from")])
    concrete = ConcreteCluster(network)
    said = out if args.format == "text" else err  # a drawing on standard output is the drawing alone
    print(f"packet {src}:{args.sport} -> {args.to} from {client.name}"
          + (f", entering at {entry}" if entry and client.kind is ir.ClientKind.EXTERNAL else ""), file=said)
    note = _unserved(cluster, dst, dport, proto)
    if note:
        print(f"note: {note}", file=said)
    lb_targets = _lb_targets(cluster, network, dst, dport, proto) \
        if entry is None and client.kind is ir.ClientKind.EXTERNAL else []
    title = f"{client.name} {src}:{args.sport} -> {args.to}"
    if not lb_targets:
        journeys = concrete.round_trips(client, Packet(src, dst, proto, args.sport, dport), entry, (dst, dport))
        if args.format == "svg":
            return _write_svg(args, out, cluster, client, src, journeys, title)
        _print_journeys(journeys, out)
        return EXIT_OK
    from kspec.verifier.engines.replay import journeys_via_lb

    every = []
    for target, label in lb_targets:  # the load balancer picks a backend node: a branch each
        packet = Packet(src, target.dst, proto, args.sport, target.dport)
        journeys = journeys_via_lb(concrete, client, packet, target, round_trip=True)
        every += journeys
        if args.format != "svg":
            print(f"via the load balancer: {label}", file=out)
            _print_journeys(journeys, out)
    if args.format == "svg":
        return _write_svg(args, out, cluster, client, src, every, title)
    return EXIT_OK


def run_diff(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Which packets two clusters treat differently: two specs (or object files), or one under two releases."""
    from kspec.verifier import node_models
    from kspec.verifier.diff import diff, stale_chains
    from kspec.verifier.model.network import ClusterNetwork
    from kspec.verifier.properties import Verifier

    after_path = args.after or args.before
    if args.after is None and args.against_version is None and args.rules is None:
        raise KspecError([Diagnostic(None, "give two specs, or one with --against-version RELEASE or --rules "
                                           "DUMP|DIR (a node's rules against what kube-proxy should have written)")])
    stdin = _stdin(args)
    before, warnings = load_cluster(args.before, args.k8s, args.proxy_config, args.kube_proxy_version, stdin)
    report(warnings, err, args.compact)
    after, warnings = load_cluster(after_path, args.k8s, args.proxy_config,
                                   args.against_version or args.kube_proxy_version, stdin)
    report(warnings, err, args.compact)
    family = _family(args, before, after) or before.families()[0]
    rules = dump_rules(after, args.rules, args.node, family)  # drift: the nodes' own rules on the other side
    report(unhooked_dumps(rules), err, args.compact)
    models = [node_models(before, family), node_models(after, family, rules, dump_sets(after, rules, None))]
    sides = [Verifier(c, ClusterNetwork(c, m, family), args.timeout * 1000) for c, m in zip((before, after), models)]
    result = diff(*sides)
    names = (_side_name(args.before, args.kube_proxy_version),
             f"the rules in {args.rules}" if rules else _side_name(after_path, args.against_version))
    stale = stale_chains(models[1]) if rules else []
    if args.format != "human":
        import json

        from kspec.report.diffreport import render_diff_github, render_diff_junit, render_diff_sarif
        from kspec.verifier.diff import result_json

        data = result_json(result, names, stale)
        spans = {svc.key: (s.file, s.line, s.column, s.end_line, s.end_column) for svc in after.services
                 if (s := svc.span) is not None}
        out.write({"json": lambda: json.dumps(data, indent=2) + "\n", "junit": lambda: render_diff_junit(data),
                   "github": lambda: render_diff_github(data),
                   "sarif": lambda: render_diff_sarif(data, spans)}[args.format]())
        return EXIT_OK if result.same else EXIT_FAILED
    out.write(_diff_text(result, names))
    for node, table, chain in stale:
        print(f"note: {node}: chain {chain} in table {table} is left behind: no rule reaches it (a stale chain "
              "of an interrupted sync?); it changes no packet's way", file=out)
    return EXIT_OK if result.same else EXIT_FAILED


def _side_name(path: str, release: str | None) -> str:
    return path + (f" at kube-proxy {release}" if release else "")


def _diff_text(result, names: tuple[str, str]) -> str:
    from kspec.verifier.diff import readable
    from kspec.verifier.render import ending, step_lines

    lines = []
    for number, d in enumerate(result.differences, 1):
        source = f"[{d.src}]:{d.sport}" if ":" in d.src else f"{d.src}:{d.sport}"
        lines.append(f"difference {number}: {readable(d.destination)}")
        lines.append(f"  packet {source}" + (f"  (and every source in {d.region} the client can have, on any port)"
                                               if d.region else ""))
        for name, fates in zip(names, (d.before, d.after)):
            ends = [ending(f, str(f.packet.src_value or d.src)).strip().removeprefix("=> ") for f in fates]
            lines.append(f"  {name}: " + ("; ".join(ends) or "no fate"))
            for fate in fates:
                lines += ["  " + line for line in step_lines(fate)]
    for where, why in result.unknown:
        lines.append(f"unknown: {readable(where)}: {why}")
    for only, name in ((result.only_before, names[0]), (result.only_after, names[1])):
        for what in only:
            lines.append(f"only in {name}: {what}")
    total = len(result.differences)
    lines.append(f"{result.compared} destinations compared: {total} difference{'s' if total != 1 else ''}, "
                 f"{len(result.unknown)} unknown, {len(result.only_before) + len(result.only_after)} on one side "
                 "only" + (" - no difference: proved for every source" if result.same else ""))
    return "\n".join(lines) + "\n"


def _write_svg(args: argparse.Namespace, out: TextIO, cluster: ir.Cluster, client: ir.Client, src, journeys,
               title: str) -> int:
    from kspec.report.picture import scene, svg, way

    drawing = svg(scene(cluster, client), [way(j, str(src)) for j in journeys], title)
    if args.output:
        write_atomic(Path(args.output), drawing)
    else:
        out.write(drawing)
    return EXIT_OK


def _print_journeys(journeys, out: TextIO) -> None:
    from kspec.verifier.render import journey_text

    for number, journey in enumerate(journeys, 1):
        print(journey_text(number, len(journeys), journey), file=out)


def _services_at(cluster: ir.Cluster, dst) -> list[ir.Service]:
    """The Services that own ``dst`` (a cluster, external or load-balancer IP)."""
    return [svc for svc in cluster.services
            if dst in svc.cluster_ips or dst in svc.external_ips or any(i.ip == dst for i in svc.load_balancer_ingress)]


def _unserved(cluster: ir.Cluster, dst, dport: int, proto: str) -> str:
    """Why kube-proxy has no rule for a packet to a Service's address ('' when it has one)."""
    for svc in _services_at(cluster, dst):
        if not any(p.port == dport and p.protocol.lower == proto for p in svc.ports):
            ports = ", ".join(f"{p.port}/{p.protocol.value}" for p in svc.ports) or "none"
            return (f"{svc.key} has no {proto.upper()} port {dport} (its ports: {ports}): kube-proxy programs "
                    "nothing for this packet")
    return ""


def _lb_targets(cluster: ir.Cluster, network, dst, dport: int, proto: str) -> list:
    """(Target, label) for each backend the cloud load balancer may send ``dst:dport`` to, when ``dst`` is a
    Service's load-balancer address (the verifier's own choice of backends)."""
    from kspec.verifier.properties import Verifier

    verifier = Verifier(cluster, network)
    for svc in _services_at(cluster, dst):
        if not any(i.ip == dst for i in svc.load_balancer_ingress):
            continue
        for port in svc.ports:
            if port.port == dport and port.protocol.lower == proto:
                destination = ir.Destination(svc.key, ir.Via.LOAD_BALANCER, port.name)
                return [(t, label) for t, label in verifier.targets(svc, port, destination)
                        if t.load_balancer == dst or t.dst == dst]
    return []

def _destination(text: str) -> tuple[ir.IPAddress, int, str]:
    import ipaddress

    try:
        hostport, _, proto = text.partition("/")
        host, _, port = hostport.rpartition(":")
        dst = ipaddress.ip_address(host.strip("[]"))
        dport = int(port)
        if not 0 < dport < 65536 or (proto or "tcp").lower() not in ("tcp", "udp", "sctp"):
            raise ValueError
    except ValueError:
        raise KspecError([Diagnostic(None, f"--to expects IP:PORT[/tcp|udp|sctp], got '{text}'")]) from None
    return dst, dport, (proto or "tcp").lower()

# ------------------------------------------------------------------------------------------- lab


def run_lab(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from kspec.lab import LabUnavailable, cleanup, requirements
    from kspec.lab import run_lab as run
    from kspec.lab.netns import LabError

    if args.cleanup:
        reason = requirements()
        if reason:
            print(reason, file=err)
            return EXIT_BAD_INPUT
        deleted, live, failed = cleanup(include_live=args.all)
        print(f"removed {len(deleted)} lab namespace(s)" + (f"; {len(live)} belong to running labs (--all removes "
              "them too)" if live else ""), file=err)
        for ns in failed:
            print(f"could not remove {ns}", file=err)
        return EXIT_FAILED if failed else EXIT_OK
    if not args.specs and not args.k8s:
        raise KspecError([Diagnostic(None, "no specs given (or --k8s OBJECTS, or --cleanup)")])
    stdin = _stdin(args)
    loaded = [(path or " ".join(args.k8s), load_cluster(path, args.k8s, args.proxy_config, args.kube_proxy_version,
                                                        stdin)) for path in args.specs or [None]]
    family = _family(args, *(cluster for _, (cluster, _) in loaded))
    reason = next(filter(None, (requirements(family or cluster.families()[0]) for _, (cluster, _) in loaded)), None)
    if reason:
        print(reason, file=err)
        return EXIT_BAD_INPUT
    status = EXIT_OK
    for path, (cluster, warnings) in loaded:
        report(warnings, err, args.compact)
        progress = (lambda msg: print(f"  {msg}", file=err)) if args.verbose else None
        rules = dump_rules(cluster, args.rules, None, family)
        report(unhooked_dumps(rules), err, args.compact)
        texts = {node: dump.read_text(encoding="utf-8") for node, dump in rules.items()} if rules else None
        sets = {node: p.read_text(encoding="utf-8") for node, p in (dump_sets(cluster, rules, None) or {}).items()}
        from kspec.report.run import progress_bar

        try:
            with progress_bar(err) if not args.verbose else contextlib.nullcontext() as tick:  # -v says instead
                result = run(cluster, keep=args.keep, spec=path, progress=progress, family=family, rules=texts,
                             ipsets=sets or None, tick=tick)
        except (LabError, LabUnavailable) as exc:
            print(f"kspec lab: {path}: {exc}", file=err)
            return EXIT_BAD_INPUT
        print(result.text(), file=out)
        out.flush()
        if not result.agree:
            status = EXIT_FAILED
    return status


# ------------------------------------------------------------------------------------------ main

def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _specs_after_objects(args: argparse.Namespace) -> None:
    """Specs and objects apart, whichever way they were given: ``--k8s`` takes every word after it, so
    ``--k8s - checks.k`` would read the spec as objects (a ``.k`` there is a spec); and object files given as
    specs (``kspec verify svc.yaml nodes.yaml``) are one cluster's objects, not one cluster each."""
    if not hasattr(args, "k8s") or args.command == "compile":
        return
    words = list(args.k8s or [])
    if hasattr(args, "specs"):
        objects = [word for word in args.specs or [] if Path(word).suffix in OBJECT_SUFFIXES]
        args.specs = [word for word in args.specs or [] if word not in objects]
        words += objects
    specs = [word for word in words if word.endswith(".k")]
    args.k8s = [word for word in words if not word.endswith(".k")] or None
    if hasattr(args, "specs"):
        args.specs = list(args.specs or []) + specs
    elif specs and args.spec is None:
        args.spec, *rest = specs
        args.k8s = (args.k8s or []) + rest  # more than one spec for one trace: the objects reader says so


def _objects_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k8s", nargs="+", metavar="OBJECTS", help="Kubernetes objects (YAML/JSON as kubectl prints "
                        "them; - for standard input), read as one cluster; a spec given too adds its clients and "
                        "checks (and any nodes, pods or Services) to it")
    parser.add_argument("--proxy-config", metavar="CONFIG", help="a KubeProxyConfiguration file for --k8s")


def _release_option(parser: argparse.ArgumentParser) -> None:
    from kspec.releases import NEWEST, OLDEST, text

    parser.add_argument("--kube-proxy-version", metavar="1.N", help=f"the kube-proxy release whose rules to model, "
                        f"{text(OLDEST)} to {text(NEWEST)} (default {text(NEWEST)}; docs/kube-proxy-releases.md)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kspec",
        description="What will kube-proxy do to this packet, and which source IP will my pod see?",
        epilog="exit codes: 0 success, 1 a check failed (or fmt --check found changes), 2 bad input, "
               "3 internal error (a bug in kspec)",
    )
    parser.add_argument("--compact", action="store_true", help="one-line diagnostics (file:line:col: ...)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    comp = sub.add_parser("compile", help="print the iptables-restore input kube-proxy programs on a node")
    comp.add_argument("spec", nargs="?", help="a .k spec (or a Kubernetes objects file)")
    comp.add_argument("--k8s", nargs="+", metavar="OBJECTS", help="Kubernetes objects (YAML/JSON, kubectl output)")
    comp.add_argument("--proxy-config", metavar="CONFIG", help="a KubeProxyConfiguration file")
    comp.add_argument("--node", help="the node whose rules to print")
    comp.add_argument("--all-nodes", action="store_true", help="compile every node (needs -o DIR)")
    comp.add_argument("-o", "--output", help="output file (or directory with --all-nodes), written atomically")
    comp.add_argument("--family", choices=sorted(_FAMILIES),
                      help="IP family (default: the cluster's, IPv4 when it has both)")
    comp.add_argument("--since", metavar="PREVIOUS",
                      help="emit kube-proxy's partial restore after a change from the cluster in PREVIOUS")
    _release_option(comp)
    comp.set_defaults(run=run_compile)

    ver = sub.add_parser(
        "verify", help="prove or refute every check (and built-in property) of the specs",
        description="exit 0: every verdict as expected; 1: some verdict is not (an unknown counts, unless "
                    "--allow-unknown); 2: bad input")
    ver.add_argument("specs", nargs="*", help=".k specs (with --k8s: the clients and checks to add to the objects)")
    _objects_options(ver)
    ver.add_argument("--spec", help="the spec whose checks to run against --rules")
    ver.add_argument("--rules", metavar="DUMP|DIR", help="check a real node's iptables-save dump instead of "
                     "the compiled rules (with --node), or a directory of NODE.rules dumps")
    ver.add_argument("--node", help="the node the --rules dump is from")
    ver.add_argument("--ipsets", metavar="FILE", help="the 'ipset save' of the --rules dump's node (a --rules "
                     "directory holds NODE.ipsets beside NODE.rules)")
    ver.add_argument("--strict", action="store_true", help="a match or target kspec does not model is an error "
                     "(exit 2) instead of making the paths through it unknown")
    ver.add_argument("--family", choices=sorted(_FAMILIES),
                     help="verify one IP family (default: every family the cluster's nodes and Services have; "
                          "a dual-stack check is violated when either family violates it)")
    ver.add_argument("--format", action="append", metavar="NAME[=FILE]",
                     help="report format: human, json, junit, sarif, github or html (one page, each counterexample "
                          "drawn); repeat for several, each but one with =FILE (default human; [tool.kspec] formats "
                          "in pyproject.toml)")
    ver.add_argument("--timeout", type=_positive, metavar="SECONDS", help="Z3 timeout per query (10)")
    ver.add_argument("--jobs", "-j", type=_positive, metavar="N", help="verify N specs in parallel (1)")
    ver.add_argument("--no-builtins", action="store_true", help="only the specs' own checks")
    ver.add_argument("--allow-unknown", action="store_true", default=None,
                     help="an unknown verdict is not a failure")
    ver.add_argument("--no-color", action="store_true", help="no colour even on a terminal (also: NO_COLOR=1)")
    _release_option(ver)
    ver.set_defaults(run=run_verify)

    tr = sub.add_parser("trace", help="walk one packet through the cluster's rules, every branch shown")
    tr.add_argument("spec", nargs="?", help="a .k spec (with --k8s: what it adds to the objects)")
    _objects_options(tr)
    tr.add_argument("--from", dest="from_", required=True, metavar="CLIENT", help="a client of the spec")
    tr.add_argument("--to", required=True, metavar="IP:PORT[/PROTO]", help="destination (default protocol tcp)")
    tr.add_argument("--node", help="where an external client's packet enters (default: the node owning IP)")
    tr.add_argument("--sport", type=int, default=40000, help="source port (default 40000)")
    tr.add_argument("--rules", metavar="DUMP|DIR", help="trace through real nodes' dumps (a directory of NODE.rules, "
                    "or one file with --rules-node)")
    tr.add_argument("--rules-node", metavar="NODE", help="the node a single --rules dump is from")
    tr.add_argument("--format", choices=("text", "svg"), default="text",
                    help="text (default), or svg: a drawing of the cluster with each branch's way")
    tr.add_argument("-o", "--output", help="write to this file (atomically) instead of standard output")
    _release_option(tr)
    tr.set_defaults(run=run_trace)

    lab = sub.add_parser(
        "lab", help="build the cluster from network namespaces, send real traffic, compare with the model",
        description="exit 0: every probe behaves as the verifier predicts; 1: some probe does not; 2: bad input, "
                    "or the lab cannot run here (needs root and ip netns)")
    lab.add_argument("specs", nargs="*", help=".k specs (with --k8s: what they add to the objects)")
    _objects_options(lab)
    lab.add_argument("--keep", action="store_true", help="leave the namespaces up and print how to tear them down")
    lab.add_argument("--cleanup", action="store_true", help="remove labs left behind by crashed or --keep runs")
    lab.add_argument("--all", action="store_true", help="with --cleanup: also labs whose kspec still runs")
    lab.add_argument("--family", choices=sorted(_FAMILIES), help="the IP family of the lab (default: ipv4 when "
                     "the spec has it, else ipv6)")
    lab.add_argument("-v", "--verbose", action="store_true", help="say what the lab is doing")
    lab.add_argument("--rules", metavar="DIR", help="load these dumps (NODE.rules per node) exactly as given "
                     "instead of the compiled rules")
    _release_option(lab)
    lab.set_defaults(run=run_lab)

    df = sub.add_parser(
        "diff", help="which packets two clusters (two specs, or one under two releases) treat differently",
        description="exit 0: no difference (proved for every source); 1: differences (or some not decided); "
                    "2: bad input")
    df.add_argument("before", help="a .k spec (or Kubernetes objects file)")
    df.add_argument("after", nargs="?", help="the other spec (default: the same, with --against-version)")
    df.add_argument("--against-version", metavar="1.N", help="the release the other side runs")
    df.add_argument("--family", choices=sorted(_FAMILIES), help="the IP family to compare (default: the first "
                    "the cluster has)")
    df.add_argument("--timeout", type=_positive, default=10, metavar="SECONDS", help="Z3 timeout per query (10)")
    df.add_argument("--rules", metavar="DUMP|DIR", help="drift: compare with these nodes' own iptables-save dumps "
                    "(one file with --node, or a directory of NODE.rules) instead of another spec")
    df.add_argument("--node", help="the node a single --rules dump is from")
    df.add_argument("--format", choices=("human", "json", "junit", "github", "sarif"), default="human",
                    help="human (default), json, junit, github (workflow annotations) or sarif")
    _objects_options(df)
    _release_option(df)
    df.set_defaults(run=run_diff)

    fz = sub.add_parser(
        "fuzz", help="run generated clusters against a property or the specs; write failures as minimal .k files",
        description="exit 0: no failure; 1: a failure (written to -o DIR as a shrunk .k reproducer); 2: bad input")
    fz.add_argument("specs", nargs="*", help=".k specs or folders: their verdicts must not change when "
                    "unrelated Services are added")
    fz.add_argument("--property", metavar="MODULE:FUNC", help="your property: a function of a cluster that "
                    "returns false or raises AssertionError when it does not hold (FILE.py:FUNC works too)")
    fz.add_argument("-n", "--examples", type=_positive, metavar="N", help="examples per target (default 100 "
                    "unless --seconds)")
    fz.add_argument("-t", "--seconds", type=_positive, metavar="T", help="stop after T seconds in all")
    fz.add_argument("--max-nodes", type=_positive, default=3, metavar="N", help="nodes per cluster (3)")
    fz.add_argument("--max-services", type=_positive, default=2, metavar="N", help="Services per cluster (2)")
    fz.add_argument("-o", "--output", default="fuzz-failures", metavar="DIR",
                    help="where reproducers go (fuzz-failures)")
    fz.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    fz.add_argument("--no-color", action="store_true", help="no colour (also: NO_COLOR=1)")
    fz.set_defaults(run=run_fuzz)

    fmt = sub.add_parser("fmt", help="print specs in canonical form")
    fmt.add_argument("specs", nargs="*", help=".k specs, or folders of them (with --k8s: the objects their names "
                     "refer to)")
    _objects_options(fmt)
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a spec is not in canonical form")
    mode.add_argument("--write", action="store_true", help="rewrite the files in place")
    fmt.set_defaults(run=run_fmt)
    return parser

class Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C (so a lab still tears down), then exit 143 as a shell reports it."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        return _main(argv, out, err)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv, out, err)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None, out: TextIO | None, err: TextIO | None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors are bad input
        return EXIT_BAD_INPUT if exc.code else EXIT_OK
    run: Callable[[argparse.Namespace, TextIO, TextIO], int] = args.run
    _specs_after_objects(args)
    try:
        return run(args, out, err)
    except KspecError as exc:
        report(exc.diagnostics, err, args.compact)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=err)
        return EXIT_BAD_INPUT
    except Terminated:
        print("terminated", file=err)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    except Exception as exc:  # a bug in kspec, not in the input: say so, without a wall of traceback
        if os.environ.get("KSPEC_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (a bug in kspec; rerun with KSPEC_DEBUG=1 "
              "for the traceback)", file=err)
        return EXIT_INTERNAL

if __name__ == "__main__":
    sys.exit(main())
