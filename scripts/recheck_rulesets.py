"""Re-judge a long random-ruleset run's logged disagreements (KSPEC_RULESETS_LOG) with the current code:
Z3 against the concrete tracer, and both against the kernel's observation the log recorded (no lab needed).

    .venv/bin/python scripts/recheck_rulesets.py 'kspec-rulesets-disagreements*.txt'
"""
import glob
import re
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from kspec import ir
from kspec.verifier import node_models
from kspec.verifier.engines.replay import ConcreteCluster
from kspec.verifier.model.network import ClusterNetwork
from kspec.verifier.properties import Verifier
from tests.lab.test_random_rulesets import _concrete, _model, _probes
from tests.verifier.test_kernel_faithful import scenario

cluster, _ = scenario()
total = agree = 0
for path in sorted(glob.glob(sys.argv[1])):
    text = open(path).read()
    for entry in text.split("=== ")[1:]:
        total += 1
        desc = entry.splitlines()[0].strip()
        dumps = {}
        for node, body in re.findall(r"## (\S+)\.rules\n(.*?)(?=\n## \S+\.rules\n|\nprobe |\n\n|\Z)", entry, re.S):
            dumps[node] = body.rstrip("\n") + "\n"
        if not dumps:
            print("SKIP", desc, "(no dumps in the entry)")
            continue
        kernel = re.search(r"the kernel observed (.*), the model predicts", entry)
        models = node_models(cluster, rules=dumps)
        verifier = Verifier(cluster, ClusterNetwork(cluster, models, ir.IPFamily.V4))
        inst = next(i for c, i in _probes(cluster, verifier) if i.description == desc)
        model = sorted(map(str, _model(verifier, inst)))
        conc = sorted(map(str, _concrete(ConcreteCluster(verifier.net), inst)))
        ok = model == conc
        seen = kernel.group(1) if kernel else None
        if seen is not None:
            observed = sorted(re.sub(r" x\d+", "", part) for part in seen.split(", "))
            ok = ok and observed == model
        agree += ok
        print("OK  " if ok else "BAD ", desc, "| Z3", model, "| concrete", conc, "| kernel", seen)
print(f"{agree}/{total} agree now")
