"""What the policy node does, in plain Python (numpy + the runtime; no rclpy).

:class:`PolicyController` owns a :class:`~dnc_policy.runtime.PolicyRuntime` and decides,
for every observation and every timer tick, whether the policy acts or the safe action
goes out. The ROS node (``dnc_policy.node``) only turns messages into calls here and
results into messages, so everything that matters for safety is tested without ROS:

- a bad observation (wrong length, NaN, Inf, |value| > ``max_abs_obs``) is rejected
  before the runtime sees it, so the memory is not advanced, and the safe action goes out;
- the watchdog: no valid observation for ``obs_timeout_s`` -> the safe action at every
  timer tick until observations return;
- a reset request makes the next tick start a new episode (the graph's ``reset`` input);
- snapshots of the memory are taken on the control thread (a copy, microseconds) and
  written atomically by a background thread (``dnc_policy.snapshots``), so a slow disk
  never delays a tick;
- how stale each acted-on observation was (its arrival to the action's publication) and
  how many observations a newer one replaced before a tick used them.

The tick path allocates nothing that can be made once: the observation is copied into a
buffer made at start-up and checked there, the :class:`Tick` objects and their action
arrays are reused (a returned Tick is valid until the next call), the counters bumped at
every tick and the diagnostics windows are preallocated arrays (``dnc_policy.stats``).
``python -m
dnc_policy_tools.bench MODEL --alloc N`` measures it with tracemalloc.
"""

from __future__ import annotations

import array
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .runtime import NonFiniteOutput, PolicyRuntime
from .settings import PolicySettings, SettingsError
from .snapshots import SnapshotWriter
from .stats import Counters, LatencyWindow, Window, percentiles_us


@dataclass
class Tick:
    """One published action: the policy's (``safe`` False) or the safe action."""

    action: np.ndarray  # float32, flat
    safe: bool
    reason: str = ""  # why the safe action (rejected input, watchdog, inactive)


def safe_action_for(contract_action: dict, given: tuple[float, ...]) -> np.ndarray:
    """The safe action as a flat float32 array, checked against the model's action space
    (SettingsError on a wrong length or a value outside the space). Empty ``given``:
    zeros (which must then be a valid action)."""
    kind = contract_action["kind"]
    dim = {"discrete": 1, "multi_discrete": len(contract_action.get("nvec", ())),
           "multi_binary": contract_action.get("n", 0),
           "box": len(contract_action.get("low", ()))}[kind]
    arr = np.zeros(dim, np.float32) if not given else np.asarray(given, np.float32)
    where = "safe_action" + ("" if given else " (default: zeros)")
    if arr.shape != (dim,):
        raise SettingsError(f"parameter {where} has {arr.size} values, the model's {kind} "
                            f"action has {dim}")
    if kind == "box":
        low = np.asarray(contract_action["low"], np.float32)
        high = np.asarray(contract_action["high"], np.float32)
        if ((arr < low) | (arr > high)).any():
            raise SettingsError(f"parameter {where} = {arr.tolist()} is outside the action "
                                f"bounds [{low.tolist()}, {high.tolist()}]")
        return arr
    n = {"discrete": [contract_action.get("n", 0)],
         "multi_discrete": contract_action.get("nvec", []),
         "multi_binary": [2] * dim}[kind]
    if (arr != np.round(arr)).any() or (arr < 0).any() or (arr >= np.asarray(n)).any():
        raise SettingsError(f"parameter {where} = {arr.tolist()} is not a valid {kind} "
                            f"action (choices {n})")
    return arr


class PolicyController:
    """The node's logic. ``now`` arguments are monotonic seconds (the node passes its
    clock's time, tests pass what they like)."""

    def __init__(self, settings: PolicySettings, now: float, log=None):
        self.settings = settings
        self.log = log or (lambda level, msg: None)
        path = Path(settings.model_path)
        if not path.is_file():
            raise SettingsError(f"parameter 'model_path' = {settings.model_path!r}: no such "
                                f"file (expected a policy.onnx written by export.onnx)")
        self.runtime = PolicyRuntime(path, providers=settings.providers, batch=1,
                                     deterministic=settings.deterministic,
                                     threads=settings.threads, seed=settings.seed)
        self.contract = self.runtime.contract
        # the state entries published on ~/debug (contract 1.1; none in a 1.0 model)
        self.debug_state = tuple(self.contract.get("debug_state", ()))
        self.safe_action = safe_action_for(self.runtime.action_spec, settings.safe_action)
        if settings.cmd_vel is not None:
            self._check_cmd_vel()
        self.counters = Counters()
        self.latency = LatencyWindow()
        # How stale each acted-on observation was: its arrival (``on_observation``'s
        # ``arrival``) to the action's publication (``published``), the last 4096 ticks.
        self.age = Window()
        self.age_source = "callback"  # what `arrival` is (the node says; diagnostics show it)
        self.counts_queue_drops = False  # the node calls dropped() (it sees sequence numbers)
        self.active = False
        self.restored_from = ""
        self._pending_reset = False
        self._build_buffers()
        self._held = False  # timer mode: the buffer holds the newest valid observation
        self._held_fresh = False  # ... and no tick has used it yet
        self._held_arrival = now
        self._acted_arrival = now  # the arrival of the observation of the last policy tick
        self._last_valid = now
        self._tripped = False
        self._nonfinite_run = False  # the last tick's outputs were not finite
        self._last_snapshot = now
        self._snapshot_mark = (0, 0)
        self._writer = None
        if settings.snapshot_path:
            self._restore(Path(settings.snapshot_path))
            self._writer = SnapshotWriter(self.runtime, settings.snapshot_path, self.counters)

    # -- set-up --------------------------------------------------------------------------
    def _build_buffers(self) -> None:
        """What every tick reuses: the observation buffer (``[1, obs_dim]`` float32, the
        runtime's batch-1 input, so it needs no reshaping), views of it for the copy in
        and the bound check, the two Ticks and the limit of that check."""
        dim = self.runtime.obs_dim
        self._obs = np.zeros((1, dim), np.float32)
        self._obs_row = self._obs[0]
        self._obs_col = self._obs.reshape(dim, 1)
        self._obs_mv = memoryview(self._obs_row)  # format "f", as rclpy's float32[] arrays
        self._dim, self._dim_shape = dim, (dim,)
        # Fast check: the sum of squares, in float64 (a float32 square cannot overflow
        # there), by one BLAS dot into a preallocated result, bounds every element: each
        # partial sum of non-negative terms is >= each of its terms whatever the rounding,
        # so sum <= lim^2 (with a margin for the rounding of one square) means every
        # |x| <= lim, and NaN or Inf never passes. Anything else (large values, bad ones,
        # other types) takes the exact path, validate().
        self._obs64 = np.zeros((1, dim))
        self._obs64_col = self._obs64.reshape(dim, 1)
        self._sumsq = np.zeros((1, 1))
        lim = min(float(self.settings.max_abs_obs), float(np.finfo(np.float32).max))
        self._sumsq_limit = lim * lim * (1.0 - 1e-9)
        width = self.safe_action.size
        self._tick = Tick(np.zeros(width, np.float32), safe=False)
        self._safe_tick = Tick(self.safe_action.copy(), safe=True)
        # The runtime's action has its own shape ([1] or [1, width]): a view of the
        # Tick's flat array in that shape takes it without a reshape per tick.
        self._action_shape = self.runtime.outputs["action"].shape
        self._action_out = (self._tick.action.reshape(self._action_shape)
                            if int(np.prod(self._action_shape)) == width else None)

    def _check_cmd_vel(self) -> None:
        spec, m = self.runtime.action_spec, self.settings.cmd_vel
        if spec["kind"] != "box":
            raise SettingsError(f"parameter 'cmd_vel.enabled' is true but the model's action "
                                f"is {spec['kind']}: cmd_vel needs a Box (velocity) action")
        dim = len(spec["low"])
        for name, idx in (("cmd_vel.linear_index", m.linear_index),
                          ("cmd_vel.angular_index", m.angular_index)):
            if idx >= dim:
                raise SettingsError(f"parameter {name!r} = {idx}: the model's action has "
                                    f"{dim} elements")

    def _restore(self, path: Path) -> None:
        """Restore the memory from ``path`` (at start-up). A file the runtime refuses
        (another model, unreadable, wrong dtypes or shapes, NaN or Inf, a state outside
        the ranges the contract declares: it checks the whole file before changing
        anything) is moved aside to ``<name>.rejected`` and the node keeps its current
        (empty) memory, logging why in one line."""
        if "state_bounds" not in self.contract:  # exported before contract 1.2
            self.log("warn", f"the model's contract ({self.contract['contract_version']}) "
                             "declares no state_bounds: a restored memory is checked for "
                             "shape and finite values only (export the model again to get "
                             "range checks)")
        if not path.exists():
            self.log("info", f"no memory snapshot at {path} yet: starting with an empty memory")
            return
        try:
            self.runtime.load_state(path)
        except ValueError as e:
            aside = path.with_name(path.name + ".rejected")
            try:
                path.replace(aside)
                where = f"moved it to {aside}"
            except OSError as err:  # a read-only folder: the first snapshot replaces it
                where = f"could not move it aside ({type(err).__name__}: {err.strerror})"
            self.log("error", f"memory snapshot refused: {e}; {where}; keeping the current "
                              "(empty) memory")
            return
        self.restored_from = str(path)
        self.log("info", f"memory restored from {path}")

    # -- lifecycle -----------------------------------------------------------------------
    def activate(self, now: float) -> None:
        self.active = True
        self._last_valid = now  # the watchdog counts from activation
        self._held = self._held_fresh = False
        self._tripped = False
        self._last_snapshot = now

    def deactivate(self) -> Tick:
        """Stop acting; the safe action to publish last, and a snapshot."""
        self.active = False
        self.snapshot_now()
        return self._safe("deactivated")

    def close(self) -> None:
        """Final snapshot (synchronously) and stop the writer thread."""
        if self._writer is not None:
            self._writer.close(self.runtime.snapshot())
            self._writer = None

    # -- ticks ---------------------------------------------------------------------------
    def validate(self, data) -> np.ndarray:
        """The observation as float32 ``[obs_dim]``; ValueError naming what is wrong: the
        runtime's checks (real numbers, the model's size, finite: PolicyRuntime.check_obs,
        the one observation validator), then this node's bound ``max_abs_obs``."""
        arr = self.runtime.check_obs(np.asarray(data).reshape(-1))[0]
        big = np.abs(arr) > self.settings.max_abs_obs
        if big.any():
            raise ValueError(f"observation has |value| > max_abs_obs "
                             f"({self.settings.max_abs_obs:g}) at index "
                             f"{np.flatnonzero(big)[:5].tolist()}")
        return arr

    def _load(self, data) -> bool:
        """The fast path: copy ``data`` (rclpy's ``array.array('f')`` or a float32 array of
        the right length) into the observation buffer and check it there, allocating
        nothing. False: anything else (other types, a wrong length, values that fail the
        sum-of-squares bound); validate() decides then."""
        if type(data) is array.array:
            if data.typecode != "f" or len(data) != self._dim:
                return False
            self._obs_mv[:] = data
        elif (type(data) is np.ndarray and data.dtype == np.float32
              and data.shape == self._dim_shape):
            np.copyto(self._obs_row, data)
        else:
            return False
        np.copyto(self._obs64, self._obs)
        np.dot(self._obs64, self._obs64_col, self._sumsq)
        return self._sumsq.item() <= self._sumsq_limit

    def on_observation(self, data, now: float, arrival: float | None = None) -> Tick | None:
        """An observation arrived. Returns the tick to publish (on_observation mode, or a
        rejection), or None (timer mode: the next timer tick uses it; inactive).
        ``arrival``: when it reached the process (same clock as ``now``; default ``now``),
        the start of its age in :attr:`age`. The returned Tick is reused by later calls."""
        if not self.active:
            return None
        if not self._load(data):
            try:
                np.copyto(self._obs_row, self.validate(data))
            except ValueError as e:
                self.counters.rejected += 1
                self.counters.last_rejection = str(e)
                # timer mode: never act on an observation older than a bad one
                self._held = self._held_fresh = False
                return self._safe(f"rejected observation: {e}")
        self._last_valid = now
        if self._tripped:
            self._tripped = False
            self.log("info", "observations are back: the policy acts again")
            if self.settings.reset_on_timeout:
                self.request_reset()
        if arrival is None:
            arrival = now
        if self.settings.tick_mode == "timer":
            # Latest-only handoff: this one replaces the held observation; if no tick
            # used that one, it was dropped.
            if self._held_fresh:
                self.counters.bump(Counters.OVERWRITTEN)
            self._held = self._held_fresh = True
            self._held_arrival = arrival
            return None
        self._acted_arrival = arrival
        return self._act(now)

    def on_timer(self, now: float) -> Tick | None:
        """The timer fired (rate_hz). Timer mode: act on the latest observation or publish
        the safe action. Both modes: the watchdog. The returned Tick is reused by later
        calls."""
        if not self.active:
            return None
        self._maybe_snapshot(now)
        timeout = self.settings.obs_timeout_s
        if timeout > 0 and now - self._last_valid > timeout:
            if not self._tripped:
                self._tripped = True
                self.counters.timeouts += 1
                self.log("warn", f"no valid observation for {timeout * 1000:.0f} ms: "
                                 "publishing the safe action")
            return self._safe("watchdog: no observation")
        if self.settings.tick_mode == "timer":
            if not self._held:
                return self._safe("no valid observation yet")
            self._held_fresh = False
            self._acted_arrival = self._held_arrival
            return self._act(now)
        return None

    def published(self, now: float) -> None:
        """The node published the last policy tick's action at ``now``: record how old
        its observation was (from its arrival)."""
        self.age.add(now - self._acted_arrival)

    def dropped(self, n: int) -> None:
        """``n`` observations never reached the node (the node counts gaps in the
        publishers' sequence numbers where rclpy gives them: a newer one replaced them in
        the subscription's queue, or they were lost)."""
        self.counters.dropped_in_queue += n

    def request_reset(self) -> None:
        """The next tick starts a new episode (the memory is cleared before it)."""
        self._pending_reset = True
        self.counters.resets += 1

    def _act(self, now: float) -> Tick:
        """One policy step on the observation buffer."""
        t0 = time.perf_counter()
        try:
            # checked: _load or validate() found every value within max_abs_obs
            action = self.runtime.step(self._obs, reset=self._pending_reset,
                                       out=self._action_out, checked=True)
        except NonFiniteOutput as e:
            # A model that outputs NaN/Inf (e.g. for an observation far outside
            # training's range within max_abs_obs): the runtime took the step back (the
            # memory and a pending reset are as before it); act safely.
            self.latency.add(now, time.perf_counter() - t0)
            self.counters.nonfinite += 1
            self.counters.last_nonfinite = str(e)
            if not self._nonfinite_run:  # once per run of such ticks (timer mode too)
                self.log("warn", f"{e}; publishing the safe action")
            self._nonfinite_run = True
            return self._safe("the model produced a non-finite output; step undone")
        self.latency.add(now, time.perf_counter() - t0)
        if self._nonfinite_run:
            self._nonfinite_run = False
            self.log("info", "the model's outputs are finite again: the policy acts again")
        self._pending_reset = False
        self.counters.bump(Counters.TICKS)
        tick = self._tick
        if action is not self._action_out:  # sampled, or an action of another layout
            np.copyto(tick.action, np.asarray(action).reshape(-1), casting="unsafe")
        return tick

    def _safe(self, reason: str) -> Tick:
        self.counters.bump(Counters.SAFE)
        tick = self._safe_tick
        np.copyto(tick.action, self.safe_action)  # whatever a caller did to the last one
        tick.reason = reason
        return tick

    # -- state ---------------------------------------------------------------------------
    @property
    def watchdog_tripped(self) -> bool:
        return self._tripped

    def _maybe_snapshot(self, now: float) -> None:
        period = self.settings.snapshot_period_s
        if self._writer is not None and period > 0 and now - self._last_snapshot >= period:
            self._last_snapshot = now
            mark = (self.counters.ticks, self.counters.resets)
            if mark != self._snapshot_mark:  # unchanged memory: spare the disk (flash)
                self._snapshot_mark = mark
                self.snapshot_now()

    def snapshot_now(self) -> None:
        if self._writer is not None:
            self._writer.submit(self.runtime.snapshot())

    def debug_fields(self) -> dict[str, np.ndarray]:
        """The value and the state entries the model's contract names ``debug_state``
        (a DNC's usage and read/write weights; none for LSTM, GRU, or a model exported
        before contract 1.1) of the last tick."""
        out = {"value": np.asarray(self.runtime.outputs["value"], np.float32).reshape(-1)}
        for name, arr in self.runtime.snapshot(self.debug_state).items():
            out[name] = arr[0]
        return out

    def status(self, now: float) -> dict[str, str]:
        """Key/values for /diagnostics."""
        p50, p99 = self.latency.percentiles_us()
        a50, a99, amax = percentiles_us(self.age)
        c = self.counters
        return {
            "active": str(self.active),
            "tick_mode": self.settings.tick_mode,
            "rate_hz": f"{self.latency.rate_hz(now):.1f}",
            "step_latency_p50_us": f"{p50:.1f}",
            "step_latency_p99_us": f"{p99:.1f}",
            "obs_age_p50_us": f"{a50:.1f}",
            "obs_age_p99_us": f"{a99:.1f}",
            "obs_age_max_us": f"{amax:.1f}",
            "obs_age_from": self.age_source,
            "obs_dropped": str(c.overwritten + c.dropped_in_queue),
            "obs_overwritten": str(c.overwritten),
            "obs_dropped_in_queue": str(c.dropped_in_queue) if self.counts_queue_drops
                                    else "n/a",
            "ticks": str(c.ticks),
            "safe_actions": str(c.safe),
            "rejected_inputs": str(c.rejected),
            "nonfinite_outputs": str(c.nonfinite),
            "last_nonfinite_output": c.last_nonfinite,
            "last_rejection": c.last_rejection,
            "watchdog": "tripped" if self._tripped else "ok",
            "watchdog_timeouts": str(c.timeouts),
            "memory_resets": str(c.resets),
            "snapshots_written": str(c.snapshots),
            "snapshot_errors": str(c.snapshot_errors),
            "restored_from": self.restored_from,
            "providers": ",".join(self.runtime.providers),
            "model": str(self.runtime.path),
            "model_sha256": str(self.contract.get("checkpoint", {}).get("sha256", "")),
        }
