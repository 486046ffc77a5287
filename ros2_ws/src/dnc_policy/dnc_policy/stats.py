"""The policy node's figures, kept without allocating per tick: the counters bumped at
every tick and the rolling windows of latencies and ages behind /diagnostics."""

from __future__ import annotations

import numpy as np


class Window:
    """The last ``rows * 256`` samples (float64), written in place at every :meth:`add`.

    The write position is two ints below 256, which CPython keeps cached: a position
    counter past 256 would be a new int object at every tick."""

    COLS = 256

    def __init__(self, rows: int = 16):
        self._buf = np.zeros((rows, self.COLS))
        self._rows = rows
        self._r = 0
        self._c = 0
        self._full = False

    def add(self, x: float) -> None:
        self._buf[self._r, self._c] = x
        c = self._c + 1
        if c == self.COLS:
            c = 0
            r = self._r + 1
            if r == self._rows:
                r = 0
                self._full = True
            self._r = r
        self._c = c

    def values(self) -> np.ndarray:
        """A copy of the samples held (oldest first once the window has wrapped)."""
        flat = self._buf.reshape(-1)
        if not self._full:
            return flat[:self._r * self.COLS + self._c].copy()
        i = self._r * self.COLS + self._c
        return np.concatenate([flat[i:], flat[:i]])

    def __len__(self) -> int:
        return self._buf.size if self._full else self._r * self.COLS + self._c


def percentiles_us(w: Window) -> tuple[float, float, float]:
    """p50, p99 and max of a window of seconds, in microseconds (NaN when empty)."""
    v = w.values()
    if not v.size:
        return float("nan"), float("nan"), float("nan")
    p50, p99 = np.percentile(v, [50, 99])
    return p50 * 1e6, p99 * 1e6, float(v.max()) * 1e6


class LatencyWindow:
    """The last 4096 step latencies (seconds) and tick times, for diagnostics."""

    def __init__(self, rows: int = 16):
        self.latency = Window(rows)
        self.times = Window(rows)

    def add(self, now: float, seconds: float) -> None:
        self.latency.add(seconds)
        self.times.add(now)

    def percentiles_us(self) -> tuple[float, float]:
        return percentiles_us(self.latency)[:2]

    def rate_hz(self, now: float, window: float = 2.0) -> float:
        t = self.times.values()
        recent = t[now - t <= window]
        if recent.size < 2:
            return 0.0
        return (recent.size - 1) / max(float(recent.max() - recent.min()), 1e-9)


def _hot_counter(i: int, doc: str) -> property:
    return property(lambda self: int(self._hot[i]),
                    lambda self, v: self._hot.__setitem__(i, v), doc=doc)


class Counters:
    """What the controller counts. The counts that move at every tick (ticks, safe
    actions, overwritten observations) live in one int64 array bumped in place by a
    ufunc: ``+= 1`` on a Python int above 256 makes a new int object each time."""

    TICKS, SAFE, OVERWRITTEN = 0, 1, 2
    ticks = _hot_counter(TICKS, "policy actions")
    safe = _hot_counter(SAFE, "safe actions published")
    overwritten = _hot_counter(OVERWRITTEN, "timer mode: valid observations replaced by a "
                                            "newer one before a tick used them")

    def __init__(self):
        self._hot = np.zeros(3, np.int64)
        self._step = list(np.eye(3, dtype=np.int64))  # one row per hot counter
        self.rejected = 0
        self.nonfinite = 0  # steps undone because the model's outputs were not finite
        self.last_nonfinite = ""  # the runtime's message for the last of them
        self.timeouts = 0  # watchdog trips
        self.resets = 0
        self.snapshots = 0
        self.snapshot_errors = 0
        self.last_rejection = ""
        self.last_snapshot_error = ""
        self.dropped_in_queue = 0  # never reached the node (see PolicyController.dropped)

    def bump(self, which: int) -> None:
        """One more of the hot counter ``which`` (TICKS, SAFE, OVERWRITTEN)."""
        np.add(self._hot, self._step[which], out=self._hot)
