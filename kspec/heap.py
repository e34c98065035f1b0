"""kspec's bulk work and Python's cycle collector.

kspec builds large, long-lived, acyclic structures (a parsed 10k-Service ruleset is a few hundred thousand
frozen objects) and then, when verifying, makes millions of short-lived ones. The cycle collector's full
collections rescan everything alive each time, and find nothing to free in either: measured, they took a
third of compiling, half of parsing and a fifth of proving. Two remedies, both scoped to a ``with`` block:

* ``collector_paused``: no collections at all while building (parser, compiler), and what was built goes
  straight to the oldest generation. Re-enabled as it was, the collector would otherwise scan every object
  of the build in its first young collection (a fifth of a parse) and again on promotion, only to keep them;
* ``heap_frozen``: what is alive when the block starts is left out of every collection inside it (the models
  a check walks), while the block's own garbage is still collected.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused", "heap_frozen"]


@contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if enabled and not gc.get_freeze_count():  # never unfreeze somebody else's freeze
            _promote_everything()
    finally:
        if enabled:
            gc.enable()


def _promote_everything() -> None:
    """Every tracked object to the oldest generation, unscanned: ``gc.freeze`` moves the young and old lists
    to the permanent one and zeroes the young count; ``gc.unfreeze`` moves that back as the oldest. Both are
    list splices. Garbage cycles the caller had pending are freed at the next full collection instead."""
    gc.freeze()
    gc.unfreeze()


@contextmanager
def heap_frozen() -> Iterator[None]:
    """``gc.freeze`` for the block (both it and ``gc.unfreeze`` are constant time). Nested in somebody
    else's freeze, it leaves theirs alone and does nothing."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
