"""Dependencies point one way (issue 13): the CLI on top and imported by nothing, each layer of the pipeline
importing only layers below it, and no import cycle between modules. Imports inside functions count (they
are dependencies too); those under ``if TYPE_CHECKING:`` do not (they are never run).

The check reads the sources (``ast``), so it also runs on a tree with a planted reverse import, which it
must report: a check that cannot fail proves nothing."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

# Folder -> the package name it imports as (kspec/compiler etc. are links to the top-level folders).
ROOTS = {"kspec": "kspec", "compiler": "kspec.compiler", "verifier": "kspec.verifier", "grammar": "kspec.grammar"}

# The pipeline, lowest first: a module may import its own layer and those below, never one above.
LAYERS = [
    ("ir", ["kspec.ir", "kspec.families", "kspec.diagnostics", "kspec.heap"]),
    ("rules of kube-proxy and Kubernetes", ["kspec.consistency", "kspec.topology", "kspec.releases",
                                            "kspec.config"]),
    ("front ends", ["kspec.grammar", "kspec.ingest", "kspec.export"]),
    ("compiler backends", ["kspec.compiler"]),
    ("rule languages", ["kspec.rules"]),
    ("verifier", ["kspec.verifier"]),
    ("lab", ["kspec.lab"]),
    ("inputs", ["kspec.inputs"]),
    ("reports", ["kspec.report"]),
    ("testing", ["kspec.strategies", "kspec.testing", "kspec.fuzz", "kspec.pytest_plugin", "kspec._hypothesis_hook"]),
    ("cli", ["kspec.cli", "kspec.__main__"]),
]


def sources(repo: Path = REPO) -> dict[str, str]:
    """Module name -> its source, for every module of the package."""
    found = {}
    for folder, package in ROOTS.items():
        for path in sorted((repo / folder).rglob("*.py")):
            parts = [part for part in path.relative_to(repo / folder).with_suffix("").parts if part != "__init__"]
            found[".".join([package, *parts])] = path.read_text(encoding="utf-8")
    return found


def imports(modules: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the kspec modules it imports at run time (a package's own ``__init__`` when a name is not a
    submodule)."""
    graph: dict[str, set[str]] = {}
    for name, text in modules.items():
        tree = ast.parse(text)
        hidden = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node.test)
                  for n in ast.walk(node)}
        package = name if _is_package(name, modules) else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            if isinstance(node, ast.Import):
                targets |= {_known(alias.name, modules) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                subs = [f"{base}.{alias.name}" for alias in node.names]
                targets |= {sub for sub in subs if sub in modules}
                if any(sub not in modules for sub in subs):
                    targets.add(_known(base, modules))
        graph[name] = {t for t in targets if t and t != name and t.startswith("kspec")}
    return graph


def _is_package(name: str, modules: dict[str, str]) -> bool:
    return any(other.startswith(name + ".") for other in modules)


def _known(name: str, modules: dict[str, str]) -> str:
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name if name in modules else ""


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def layer_of(module: str) -> int | None:
    for number, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return number
    return None


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        if module == "kspec":  # the package's own __init__ (it imports nothing of its layers)
            continue
        own = layer_of(module)
        if own is None:
            found.append(f"{module} is in no layer of the pipeline (add it to LAYERS)")
            continue
        for target in sorted(targets):
            if target == "kspec":
                continue
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                found.append(f"{module} ({LAYERS[own][0]}) imports {target} ({LAYERS[theirs][0]}), a layer above it")
    return found + [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_dependencies_point_one_way():
    graph = imports(sources())
    assert len(graph) > 70
    assert violations(graph) == []


def test_nothing_imports_the_cli():
    graph = imports(sources())
    assert [module for module, targets in graph.items() if "kspec.cli" in targets] == []


def test_a_planted_reverse_import_is_reported():
    planted = dict(sources())
    planted["kspec.compiler.planted"] = "from kspec.cli import main\n"
    planted["kspec.verifier.planted"] = "def later():\n    from kspec.lab import run_lab\n"
    planted["kspec.ir_planted"] = "import kspec.rules.iptables.ruleset\n"
    planted["kspec.rules.iptables.planted"] = "from kspec.verifier.model import netfilter\n"
    found = violations(imports(planted))
    assert any(v.startswith("kspec.compiler.planted (compiler backends) imports kspec.cli (cli)") for v in found), found
    assert any(v.startswith("kspec.verifier.planted (verifier) imports kspec.lab (lab)") for v in found), found
    assert any(v.startswith("kspec.ir_planted is in no layer") for v in found), found
    assert any(v.startswith("kspec.rules.iptables.planted (rule languages) imports kspec.verifier") for v in found), found


def test_a_planted_cycle_is_reported():
    planted = dict(sources())
    planted["kspec.verifier.cycle_a"] = "from kspec.verifier import cycle_b\n"
    planted["kspec.verifier.cycle_b"] = "from kspec.verifier.cycle_a import x\n"
    found = violations(imports(planted))
    assert "import cycle: kspec.verifier.cycle_a -> kspec.verifier.cycle_b" in found, found


def solver_users(modules: dict[str, str]) -> set[str]:
    """Modules that import z3 at run time (under ``if TYPE_CHECKING:`` does not count)."""
    users = set()
    for name, text in modules.items():
        tree = ast.parse(text)
        hidden = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node.test)
                  for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(n == "z3" or n.startswith("z3.") for n in names):
                users.add(name)
    return users


def test_z3_stays_inside_the_verifier():
    # The solver's boundary: everything outside kspec.verifier gets plain values (verdicts, packets, traces).
    users = solver_users(sources())
    assert users, "no module imports z3: the check reads the wrong sources"
    assert sorted(u for u in users if not u.startswith("kspec.verifier.")) == []


def test_a_planted_z3_import_outside_the_verifier_is_reported():
    planted = dict(sources())
    planted["kspec.lab.planted"] = "def later():\n    import z3\n"
    assert "kspec.lab.planted" in solver_users(planted)
