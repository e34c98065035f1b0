"""Show that each property suite catches a planted bug: plant it by monkeypatching (never in the source),
run one Hypothesis property under the `ci` profile, report the examples until the first failure.

    .venv/bin/python scripts/planted_bugs.py prob masq hash hook printer utf8 k8s local

prob: a wrong statistic probability; masq: the MASQUERADE rule dropped; hash: a mis-hashed KUBE-SEP name;
hook: the routing decision before nat PREROUTING in the shared walk, and MASQUERADE keeping the source
in the concrete engine alone; printer: the printer forgets `not serving`; utf8: decode
without its UTF-8 guard; k8s: ingest ignores the EndpointSlice serving condition; local: nondeterministic
endpoint order."""
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)
from hypothesis import settings

settings.load_profile("ci")

def measure(label, test, plant, unplant):
    inner = test.hypothesis.inner_test
    calls = {"n": 0, "first": None}
    def counting(*a, **k):
        calls["n"] += 1
        try:
            return inner(*a, **k)
        except Exception:
            if calls["first"] is None:
                calls["first"] = calls["n"]
            raise
    test.hypothesis.inner_test = counting
    plant()
    t = time.time()
    try:
        test()
        result = "NOT CAUGHT"
    except Exception as exc:
        result = f"caught at example {calls['first']} ({time.time()-t:.1f}s incl. shrinking): {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:110]}"
    finally:
        unplant()
        test.hypothesis.inner_test = inner
    print(f"{label}: {result}", flush=True)

which = sys.argv[1:]
import kspec.compiler.iptables.endpoints as endpoints
import kspec.compiler.iptables.masquerade as masquerade
import kspec.compiler.names as names
import tests.properties.test_compiler_props as cp
import tests.properties.test_model_props as mp
import tests.properties.test_parser_robustness as pr
import tests.properties.test_strategies as sp

# 1. wrong probability
if "prob" in which:
    orig = endpoints.probability
    measure("wrong probability 1/(n+1) -> compiler: equal shares", cp.test_every_endpoint_is_chosen_with_equal_probability,
            lambda: setattr(endpoints, "probability", lambda r: f"{1.0/(r+1):.10f}"), lambda: setattr(endpoints, "probability", orig))
    measure("wrong probability 1/(n+1) -> strategies/iptables? (chain graph)", cp.test_every_jump_is_declared_and_every_service_chain_is_used,
            lambda: setattr(endpoints, "probability", lambda r: f"{1.0/(r+1):.10f}"), lambda: setattr(endpoints, "probability", orig))

# 2. drop the masquerade rule
if "masq" in which:
    orig = masquerade.fixed_rules
    def no_masq(out, ctx):
        mark = ctx.mark
        out.nat.add("KUBE-POSTROUTING", "-m", "mark", "!", "--mark", f"{mark}/{mark}", "-j", "RETURN")
        out.nat.add("KUBE-POSTROUTING", "-j", "MARK", "--xor-mark", mark)
        out.nat.add("KUBE-MARK-MASQ", "-j", "MARK", "--or-mark", mark)
    import kspec.compiler as compiler
    measure("masquerade rule dropped -> model: Cluster-policy SNAT found", mp.test_cluster_policy_snat_is_found_on_every_node_without_a_local_endpoint,
            lambda: setattr(masquerade, "fixed_rules", no_masq), lambda: setattr(masquerade, "fixed_rules", orig))
    measure("masquerade rule dropped -> model: built-ins hold", mp.test_builtin_properties_hold_where_the_docs_say_they_must,
            lambda: setattr(masquerade, "fixed_rules", no_masq), lambda: setattr(masquerade, "fixed_rules", orig))

# 3. mis-hash a chain name: the dispatch chain jumps to endpoint chains hashed with the lower-case protocol
if "hash" in which:
    orig = endpoints._dispatch_lines
    def mis(view, chain, eps, large):
        lines = orig(view, chain, eps, large)
        return [re.sub(r"KUBE-SEP-(\w+)", lambda m: "KUBE-SEP-" + names._hash(m.group(1).lower()), line) for line in lines]
    measure("mis-hashed KUBE-SEP name in KUBE-SVC jumps -> compiler: chain graph", cp.test_every_jump_is_declared_and_every_service_chain_is_used,
            lambda: setattr(endpoints, "_dispatch_lines", mis), lambda: setattr(endpoints, "_dispatch_lines", orig))
    measure("mis-hashed KUBE-SEP name -> model: ready endpoints chosen", mp.test_every_ready_endpoint_and_only_ready_ones_are_chosen,
            lambda: setattr(endpoints, "_dispatch_lines", mis), lambda: setattr(endpoints, "_dispatch_lines", orig))

# 4. the routing decision taken before nat PREROUTING (on the pre-DNAT destination), in the walk both engines
# share; and the concrete engine alone keeping the source on MASQUERADE (what the Z3-vs-tracer test is for)
if "hook" in which:
    import kspec.verifier.engines.tracer as tracer
    import kspec.verifier.model.walk as walk
    import tests.verifier.test_differential as td
    orig_arriving = walk.NodeWalk.arriving
    def routed_first(self, pkt, conn=None):
        route = self.route(pkt.dst)  # planted: decided before PREROUTING's DNAT
        live, exits = self._hook("PREROUTING", [pkt], conn)
        for path in live:
            if route.kind is walk.RouteKind.LOCAL:
                exits += self._to_host(*self._hook("INPUT", [path], conn))
            else:
                forwarded, ended = self._hook("FORWARD", [path], conn)
                exits += ended + self._leaving(forwarded, conn)
        return exits
    measure("walk: routing decision before nat PREROUTING -> model: built-ins hold", mp.test_builtin_properties_hold_where_the_docs_say_they_must,
            lambda: setattr(walk.NodeWalk, "arriving", routed_first), lambda: setattr(walk.NodeWalk, "arriving", orig_arriving))
    orig_snat = tracer.NodeTracer._snat
    def keeps_source(th, target, step, rule):
        if isinstance(target, tracer.rs.Masquerade):
            th.snat = True  # planted: the address is not rewritten
            return
        orig_snat(th, target, step, rule)
    measure("tracer: MASQUERADE keeps the source -> Z3 vs tracer", td.test_generated_topologies,
            lambda: setattr(tracer.NodeTracer, "_snat", staticmethod(keeps_source)),
            lambda: setattr(tracer.NodeTracer, "_snat", staticmethod(orig_snat)))

# 5. printer forgets "not serving" -> strategies round trip
if "printer" in which:
    import kspec.grammar.printer as printer
    orig = printer._conditions
    def forgetful(ready, serving, terminating):
        return [w for w in orig(ready, serving, terminating) if w != "not serving"]
    measure("printer drops 'not serving' -> strategies: DSL round trip", sp.test_clusters_round_trip_through_the_dsl,
            lambda: setattr(printer, "_conditions", forgetful), lambda: setattr(printer, "_conditions", orig))

# 6. decoding without the UTF-8 guard -> parser robustness
if "utf8" in which:
    import kspec.grammar as grammar
    orig = grammar.decode
    measure("decode() without its UTF-8 error handling -> robustness: non-UTF-8", pr.test_non_utf8_bytes_in_valid_specs,
            lambda: (setattr(grammar, "decode", lambda data, f: data.decode("utf-8")), setattr(pr, "decode", grammar.decode)),
            lambda: (setattr(grammar, "decode", orig), setattr(pr, "decode", orig)))

# 7. k8s exporter / ingest disagreement: an EndpointSlice's serving condition ignored
if "k8s" in which:
    import kspec.ingest.k8s as k8s
    orig = k8s._endpoint
    from dataclasses import replace
    def ignore_serving(*a, **k):
        ep = orig(*a, **k)
        return ep if ep is None else replace(ep, serving=ep.ready)
    measure("ingest ignores EndpointSlice serving -> compiler: k8s objects = DSL bytes", cp.test_kubernetes_objects_and_dsl_compile_to_the_same_bytes,
            lambda: setattr(k8s, "_endpoint", ignore_serving), lambda: setattr(k8s, "_endpoint", orig))

# 8. unrelated Service leaks: a service's KUBE-SVC chain takes endpoints from every service (locality)
if "local" in which:
    import kspec.compiler as compiler
    orig = compiler.endpoints.dispatch_chain
    measure("compile is not deterministic (random endpoint order) -> compiler: determinism", cp.test_output_is_deterministic,
            lambda: setattr(compiler.endpoints, "dispatch_chain", lambda out, ctx, view, chain, eps: orig(out, ctx, view, chain, tuple(sorted(eps, key=lambda e: __import__('random').random())))),
            lambda: setattr(compiler.endpoints, "dispatch_chain", orig))
