"""Python's cyclic garbage collector, tuned for a controller process under load.

With the collector's defaults (a young collection every 700 new container objects, a full one
when the objects promoted since the last reach a quarter of the old ones), a busy controller
spends a tenth of its CPU collecting: `bench/dispatch.py --ahead 0` made 44 young collections
a second and a full one every 3 seconds, 0.2 s each with the GIL held, about 0.13 ms of CPU
per poll. A held poll's objects (its request, its body, its future, its round) live for the
tens of milliseconds it waits its turn on the farm thread: every young collection finds a
hundred polls' objects alive and promotes them, so the old generation grows by thousands of
objects a second that die soon after, and full collections come often. Each full one walks
every object the process holds, its imports and its farm's state included.

`tune` (once the server has started) freezes what exists then, out of every later
collection (modules, classes, the app, the store's metadata: they live as long as the
process), and makes young collections rarer, so that most of a poll's objects are freed by
their reference counts before a collection sees them."""

from __future__ import annotations

import gc

#: New container objects between two young collections (CPython's default: 700).
YOUNG_EVERY = 50_000


def tune() -> None:
    """Collect once, freeze what survives, and space the young collections out."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_EVERY, middle, old)
