"""Choices between equivalent ways of computing the same numbers, made by timing them here.

Some fast paths win on one CPU and lose on another: a convolution's no_grad windows in a ring
of 64 MiB against two blocks' buffers (about a third faster on an AMD EPYC whose two cores sit
far apart, a fifth slower on an Intel Xeon), its training windows in blocks of examples against
the whole batch at once (docs/speed.md, "Choices timed at run time"). No rule read off the
machine predicts them, and a VM's cores can move during a run. So a layer that has such a
choice times each way on its own calls and keeps to the fastest:

    fastest = FastestOf("conv_windows", ("blocks", "whole"))
    way = fastest.pick()           # each way TRIES times in turn, then the fastest, and now
    t = time.perf_counter()        # and then (every RETRY_EVERY-th call) the slowest again,
    ...                            # so that a change of machine shows
    fastest.record(way, time.perf_counter() - t)

The ways give the same numbers bit for bit (tested for every choice: tests/test_tuning.py), so
what a run computes does not depend on which one ran, and a resumed run stays exact.

``FIXED`` (or ``with fixed(name=way)``) pins a choice: the benchmarks time one way against the
other through it, and a user who has measured their machine can pin theirs.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator

FIXED: dict[str, str] = {}  # choice name -> the way to take; unnamed choices are timed


class FastestOf:
    """The fastest of ``ways`` (names), by the median of each way's last ``KEEP`` times.

    ``pick`` returns the way to run; ``record`` takes how long it took. Times are only
    comparable for the same work: keep one ``FastestOf`` per shape of work (``for_work``)."""

    TRIES = 2  # each way's first calls, taken in turn before any is preferred
    KEEP = 5  # times kept per way (a median: one slow call does not switch)
    RETRY_EVERY = 25  # every this many calls the way with the oldest times runs again

    def __init__(self, name: str, ways: tuple[str, ...]) -> None:
        if len(ways) < 1 or len(set(ways)) != len(ways):
            raise ValueError(f"FastestOf({name!r}): expected distinct ways, got {ways!r}")
        self.name, self.ways = name, tuple(ways)
        self.times: dict[str, list[float]] = {w: [] for w in self.ways}
        self.calls = 0
        self.last_run = dict.fromkeys(self.ways, -1)  # the call at which each way last ran

    def pick(self) -> str:
        pinned = FIXED.get(self.name)
        if pinned is not None:
            if pinned not in self.times:
                raise ValueError(f"tuning.FIXED[{self.name!r}] = {pinned!r}: expected one of {self.ways}")
            return pinned
        self.calls += 1
        untried = [w for w in self.ways if len(self.times[w]) < self.TRIES]
        if untried:
            way = min(untried, key=lambda w: len(self.times[w]))
        elif self.calls % self.RETRY_EVERY == 0:
            way = min(self.ways, key=self.last_run.__getitem__)
        else:
            way = self.best()
        self.last_run[way] = self.calls
        return way

    def record(self, way: str, seconds: float) -> None:
        if FIXED.get(self.name) is not None:
            return  # a pinned way is not being timed
        kept = self.times[way]
        kept.append(seconds)
        del kept[: -self.KEEP]

    def best(self) -> str:
        """The way with the smallest median time (the first way before any has been timed)."""
        timed = [w for w in self.ways if self.times[w]]
        if not timed:
            return self.ways[0]
        return min(timed, key=lambda w: statistics.median(self.times[w]))

    def __repr__(self) -> str:
        medians = ", ".join(
            f"{w}: {statistics.median(t) * 1e3:.3g} ms" if t else f"{w}: untimed"
            for w, t in self.times.items()
        )
        return f"FastestOf({self.name!r}, {medians})"


def for_work(owner: object, name: str, ways: tuple[str, ...], work: tuple) -> FastestOf:
    """``owner``'s ``FastestOf`` for this ``work`` (a key such as the input's shape), made on
    first use. At most ``MAX_KEYS`` kinds of work are remembered per owner (the oldest go)."""
    table = choosers(owner)
    key = (name, work)
    found = table.get(key)
    if found is None:
        if len(table) >= MAX_KEYS:
            del table[next(iter(table))]
        found = table[key] = FastestOf(name, ways)
    return found


MAX_KEYS = 16


def choosers(owner: object) -> dict:
    """``owner``'s ``FastestOf`` objects by (choice, work), made empty on first use: a copy of
    the owner that does its work (a grouped convolution's per-group copies) shares them so."""
    return owner.__dict__.setdefault("_fastest", {})


@contextlib.contextmanager
def fixed(**ways: str) -> Iterator[None]:
    """Pin choices inside the block, e.g. ``with fixed(conv_windows="whole"):``; the earlier
    pins come back after it."""
    saved = dict(FIXED)
    FIXED.update(ways)
    try:
        yield
    finally:
        FIXED.clear()
        FIXED.update(saved)
