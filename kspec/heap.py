"""kspec's bulk work and Python's cycle collector.

kspec builds large, long-lived, acyclic structures (a parsed 10k-Service ruleset is a few hundred thousand
frozen objects) and then, when verifying, makes millions of short-lived ones. The cycle collector's full
collections rescan everything alive each time, and find nothing to free in either: measured, they took a
third of compiling, half of parsing and a fifth of proving. Two remedies, both scoped to a ``with`` block:

* ``collector_paused``: no collections at all while building (parser, compiler);
* ``heap_frozen``: what is alive when the block starts is left out of every collection inside it (the models
  a check walks), while the block's own garbage is still collected.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

__all__ = ["collector_paused", "heap_frozen"]


@contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
