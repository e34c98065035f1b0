"""kspec's pytest plugin (entry point ``pytest11``): ``pytest specs/`` runs every check of every ``.k`` spec.

* Collection: a ``.k`` file is collected when it is named on the command line or lies under a directory
  named in the ini option ``kspec_spec_dirs`` (default ``specs``). Each check is one test item, reported at
  the check's ``file:line``; the built-in properties of a spec are one more item. A spec that does not parse
  is one failing item with its positioned diagnostics. Collection parses specs only: z3 is imported when
  the first item runs. (pytest loads this plugin in every session of every project where kspec is
  installed, so its imports stay inside the functions that need them: measured, importing the plugin takes
  0.12 s so and 0.42 s with every import at the top.)
* A failing item's report is the verdict line and the counterexample trace (the same text as
  ``kspec verify``).
* Fixtures: ``kspec_specs`` (every spec of the project's spec folders, loaded), ``kspec_verify``
  (``kspec.testing.verify``), ``kspec_compile`` (``compile_cluster``).
"""
from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("kspec_spec_dirs", "directories whose .k specs pytest collects (kspec)", type="args",
                  default=["specs"])
    parser.addini("kspec_timeout", "Z3 timeout per query in seconds for collected specs (kspec)", default="10")


def _wanted(path: Path, config: pytest.Config) -> bool:
    named = {Path(a.split("::")[0]).resolve() for a in config.args}
    if path.resolve() in named:
        return True
    dirs = set(config.getini("kspec_spec_dirs"))
    return any(parent.name in dirs for parent in path.resolve().parents)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix == ".k" and _wanted(file_path, parent.config):
        return SpecFile.from_parent(parent, path=file_path)
    return None


class KspecCheckFailed(Exception):
    """A check's verdict is not the expected one (the message is the verdict line and the trace)."""


class SpecFile(pytest.File):
    def collect(self):
        from kspec.diagnostics import KspecError
        from kspec.grammar import load

        try:
            self.cluster, _ = load(self.path)
        except KspecError as exc:
            yield BadSpecItem.from_parent(self, name="parse", error=exc)
            return
        self._results: dict | None = None
        for check in self.cluster.checks:
            yield CheckItem.from_parent(self, name=check.name, check=check)
        yield BuiltinsItem.from_parent(self, name="builtin properties")

    def results(self) -> dict:
        """Verdicts of the spec's own checks, computed once for all its items."""
        if self._results is None:
            from kspec.verifier import verify

            timeout = int(float(self.config.getini("kspec_timeout")) * 1000)
            self._results = {r.check.name: r for r in verify(self.cluster, timeout_ms=timeout)}
        return self._results


class _KspecItem(pytest.Item):
    @property
    def spec_file(self) -> SpecFile:
        """The spec this item checks (its parent collector: kspec items are made by SpecFile only)."""
        if not isinstance(self.parent, SpecFile):
            raise TypeError(f"{self.name} was not collected from a .k spec")
        return self.parent

    def _fail_on(self, results) -> None:
        from kspec.report import outcomes

        bad = [o for o in outcomes(str(self.path), results) if o.failed]
        if bad:
            raise KspecCheckFailed("\n".join(o.text for o in bad))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, KspecCheckFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)


class CheckItem(_KspecItem):
    def __init__(self, *, check, **kwargs):
        super().__init__(**kwargs)
        self.check = check

    def runtest(self) -> None:
        self._fail_on([self.spec_file.results()[self.check.name]])

    def reportinfo(self):
        line = self.check.span.line - 1 if self.check.span else 0
        return self.path, line, f"{self.path.name}:{line + 1}: check {self.check.name!r}"


class BuiltinsItem(_KspecItem):
    def runtest(self) -> None:
        from kspec.verifier import verify

        timeout = int(float(self.config.getini("kspec_timeout")) * 1000)
        self._fail_on(verify(self.spec_file.cluster, (), builtins=True, timeout_ms=timeout))

    def reportinfo(self):
        return self.path, 0, f"{self.path.name}: built-in properties"


class BadSpecItem(pytest.Item):
    def __init__(self, *, error, **kwargs):
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise self.error

    def repr_failure(self, excinfo, style=None):
        from kspec.diagnostics import render
        from kspec.diagnostics import sources_of as _sources

        return render(self.error.diagnostics, _sources(self.error.diagnostics), compact=False)

    def reportinfo(self):
        span = next((d.span for d in self.error.diagnostics if d.span), None)
        return self.path, (span.line - 1 if span else 0), f"{self.path.name}: does not parse"


# -------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def kspec_specs(pytestconfig: pytest.Config) -> dict[str, object]:
    """Every ``.k`` spec under the project's spec folders (ini ``kspec_spec_dirs``), loaded: path -> Cluster."""
    from kspec.grammar import load

    root = Path(pytestconfig.rootpath)
    found: dict[str, object] = {}
    for folder in pytestconfig.getini("kspec_spec_dirs"):
        for path in sorted((root / folder).glob("*.k")):
            found[str(path.relative_to(root))] = load(path)[0]
    return found


@pytest.fixture(scope="session")
def kspec_verify():
    """``kspec.testing.verify``: ``kspec_verify(cluster, "local_keeps_client_ip").proved``."""
    from kspec.testing import verify

    return verify


@pytest.fixture(scope="session")
def kspec_compile():
    """``compile_cluster(cluster) -> {node: iptables-restore text}``."""
    from kspec.compiler import compile_cluster

    return compile_cluster
