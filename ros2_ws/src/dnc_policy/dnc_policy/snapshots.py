"""Memory snapshots written off the control thread: the node copies the state on its
thread (microseconds) and this writer saves it atomically in the background."""

from __future__ import annotations

import threading
from pathlib import Path

from .runtime import PolicyRuntime
from .stats import Counters


class SnapshotWriter:
    """Writes memory snapshots to one file atomically, off the control thread. Only the
    newest pending snapshot is kept: a slow disk drops intermediate ones, never a tick."""

    def __init__(self, runtime: PolicyRuntime, path: str, counters: Counters):
        self.runtime, self.path, self.counters = runtime, Path(path), counters
        self._pending: dict | None = None
        # A crash during a write leaves a temporary file beside the snapshot: remove them.
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="snapshot-writer", daemon=True)
        self._thread.start()

    def submit(self, snapshot: dict) -> None:
        with self._cond:
            self._pending = snapshot
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._pending is None:
                    return
                snap, self._pending = self._pending, None
            self._write(snap)

    def _write(self, snap: dict) -> None:
        try:
            self.runtime.save_state(self.path, snap)
            self.counters.snapshots += 1
        except OSError as e:
            self.counters.snapshot_errors += 1
            self.counters.last_snapshot_error = f"{type(e).__name__}: {e}"

    def close(self, final: dict | None = None) -> None:
        """Stop the thread after the pending write; then write ``final`` synchronously."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()
        if final is not None:
            self._write(final)
