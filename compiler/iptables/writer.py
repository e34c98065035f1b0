"""The restore text: a buffer the rule modules append to, and its serialisation in the order kube-proxy's own
unit tests normalise to (``sortIPTablesRules``, spec §7), so a spec always compiles to the same bytes."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

TABLES = ("filter", "nat")
_OWNED_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")
LAST_RULE_MARKER = "must be the last rule"
_SORTED_CHAINS = ("KUBE-NODEPORTS", "KUBE-SERVICES")


@dataclass
class Table:
    chains: list[str] = field(default_factory=list)  # declaration order
    rules: dict[str, list[str]] = field(default_factory=dict)  # chain -> its "-A ..." lines, in order
    deleted: list[str] = field(default_factory=list)

    def declare(self, chain: str) -> None:
        self.chains.append(chain)

    def add(self, chain: str, *words: str) -> None:
        self.add_line(chain, f"-A {chain} {' '.join(words)}")

    def add_line(self, chain: str, line: str) -> None:
        found = self.rules.get(chain)
        if found is None:
            self.rules[chain] = [line]
        else:
            found.append(line)

    def add_lines(self, chain: str, lines: list[str]) -> None:
        found = self.rules.get(chain)
        if found is None:
            self.rules[chain] = list(lines)
        else:
            found.extend(lines)

    def delete(self, chain: str) -> None:
        self.chains.append(chain)
        self.deleted.append(chain)


@dataclass
class Restore:
    """kube-proxy's restore input for one node and IP family, as it is emitted."""

    filter: Table = field(default_factory=Table)
    nat: Table = field(default_factory=Table)

    def table(self, name: str) -> Table:
        return getattr(self, name)

    def extend(self, other: Restore) -> None:
        """Append everything ``other`` holds, as if it had been emitted here."""
        for name in TABLES:
            mine, theirs = self.table(name), other.table(name)
            mine.chains += theirs.chains
            mine.deleted += theirs.deleted
            for chain, lines in theirs.rules.items():
                found = mine.rules.get(chain)
                if found is not None:
                    found.extend(lines)
                elif chain.startswith(_OWNED_PREFIXES):
                    mine.rules[chain] = lines  # a per-service chain: nobody else appends, so share, don't copy
                else:
                    mine.rules[chain] = list(lines)

    def render(self) -> str:
        return "".join(_render_table(name, self.table(name)) for name in TABLES)


def service_of(rule: str) -> str:
    """The service a KUBE-SERVICES/KUBE-NODEPORTS rule belongs to: its comment up to a space or colon."""
    match = re.search(r'--comment "?([^ :"]*)', rule)
    return match.group(1) if match else ""


def _sorted_rules(chain: str, rules: list[str]) -> list[str]:
    if chain not in _SORTED_CHAINS:
        return rules
    last = [r for r in rules if LAST_RULE_MARKER in r]
    rest = [r for r in rules if LAST_RULE_MARKER not in r]
    return sorted(rest, key=service_of) + last


def ordered_chains(chains) -> list[str]:
    """kube-proxy's test order: KUBE-NODEPORTS, KUBE-SERVICES, other KUBE-* chains, then the rest, each group
    sorted by name (plain sorts, no key function: a node has 100k+ chains)."""
    names = set(chains)
    kube = sorted(c for c in names if c.startswith("KUBE-") and c not in _SORTED_CHAINS)
    other = sorted(c for c in names if not c.startswith("KUBE-"))
    return [c for c in _SORTED_CHAINS if c in names] + kube + other


def _render_table(name: str, table: Table) -> str:
    chains = ordered_chains(table.chains + list(table.rules))
    lines = [f"*{name}"]
    lines += [f":{chain} - [0:0]" for chain in chains]
    rules = table.rules
    for chain in chains:
        found = rules.get(chain)
        if found:
            lines += _sorted_rules(chain, found)
    lines += [f"-X {chain}" for chain in ordered_chains(table.deleted)]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
