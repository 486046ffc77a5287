"""The policy node's logic without ROS (``dnc_policy.settings``, ``dnc_policy.controller``):
parameter validation, the safe action, rejection without advancing the memory, the
watchdog and timer mode on a fake clock, resets, snapshots on disk, the latest-only
handoff and the age of acted-on observations, and the allocations of a tick."""

from __future__ import annotations

import array
import json

import numpy as np
import pytest
from dnc_policy.controller import PolicyController, safe_action_for
from dnc_policy.runtime import PolicyRuntime
from dnc_policy.settings import POLICY_PARAMETERS, SettingsError, parse_policy_settings
from rosutil import stop_tqdm_monitor
from exported import env_observations




pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture
def model(models):
    return models("dnc").onnx


def controller(model, now=0.0, **params) -> PolicyController:
    c = PolicyController(parse_policy_settings({"model_path": str(model), **params}), now)
    c.activate(now)
    return c


# -- settings --------------------------------------------------------------------------------
def test_defaults_parse_and_every_parameter_has_a_description():
    s = parse_policy_settings({"model_path": "m.onnx"})
    assert (s.tick_mode, s.rate_hz, s.obs_timeout_s, s.qos_depth) == \
        ("on_observation", 50.0, 0.5, 1)  # depth 1: a backlog is dropped, not acted on late
    assert s.executor == "auto"  # events where rclpy has it (docs/BENCHMARKS.md's figures)
    assert parse_policy_settings({"model_path": "m", "executor": "events"}).executor == "events"
    assert not s.obs_reliable and s.action_reliable
    assert s.providers is None and s.cmd_vel is None and s.autostart
    assert all(p.description for p in POLICY_PARAMETERS.values())


@pytest.mark.parametrize("values,message", [
    ({}, "'model_path' is not set"),
    ({"tick_mode": "fast"}, "'tick_mode' = 'fast': expected one of on_observation, timer"),
    ({"rate_hz": 0.0}, "'rate_hz' = 0.0: expected a number > 0.0"),
    ({"rate_hz": "fast"}, "'rate_hz' = 'fast': expected a number"),
    ({"obs_timeout_ms": -1.0}, "'obs_timeout_ms' = -1.0: expected a number >= 0.0"),
    ({"qos.depth": 0}, "'qos.depth' = 0: expected an integer >= 1"),
    ({"qos.action_reliability": "sometimes"},
     "'qos.action_reliability' = 'sometimes': expected one of best_effort, reliable"),
    ({"deterministic": 1}, "'deterministic' = 1: expected true or false"),
    ({"threads": 1.5}, "'threads' = 1.5: expected an integer"),
    ({"safe_action": ["a"]}, "'safe_action' = ['a']: expected a list of numbers"),
    ({"providers": ["CUDA"]}, "unknown execution provider 'CUDA' (did you mean 'CUDAExecutionProvider'?)"),
    ({"obs_timout_ms": 5.0}, "unknown parameter 'obs_timout_ms' (did you mean 'obs_timeout_ms'?)"),
    ({"cmd_vel.enabled": True, "cmd_vel.linear_index": -1}, "'cmd_vel.linear_index' = -1"),
    ({"executor": "multi_threaded"},
     "'executor' = 'multi_threaded': expected one of auto, single_threaded, events"),
    ({"executor": 1}, "'executor' = 1: expected one of auto, single_threaded, events"),
])
def test_a_bad_value_names_the_parameter_and_what_was_expected(values, message):
    with pytest.raises(SettingsError) as e:
        parse_policy_settings({"model_path": "m.onnx", **values} if values else {})
    assert message in str(e.value)


def test_integers_are_accepted_for_float_parameters():
    """A YAML `rate_hz: 100` is an integer parameter: it must still work."""
    assert parse_policy_settings({"model_path": "m", "rate_hz": 100}).rate_hz == 100.0


@pytest.mark.parametrize("action,given,ok", [
    ({"kind": "discrete", "n": 3}, (), [0.0]),
    ({"kind": "discrete", "n": 3}, (2.0,), [2.0]),
    ({"kind": "discrete", "n": 3}, (3.0,), None),
    ({"kind": "discrete", "n": 3}, (1.5,), None),
    ({"kind": "box", "low": [-1, 0.5], "high": [1, 2]}, (), None),  # 0 is below 0.5
    ({"kind": "box", "low": [-1, -1], "high": [1, 1]}, (0.5, -1.0), [0.5, -1.0]),
    ({"kind": "box", "low": [-1, -1], "high": [1, 1]}, (0.5,), None),
    ({"kind": "multi_discrete", "nvec": [3, 2]}, (2.0, 1.0), [2.0, 1.0]),
    ({"kind": "multi_discrete", "nvec": [3, 2]}, (2.0, 2.0), None),
    ({"kind": "multi_binary", "n": 2}, (1.0, 0.0), [1.0, 0.0]),
])
def test_the_safe_action_must_be_a_valid_action_of_the_model(action, given, ok):
    if ok is None:
        with pytest.raises(SettingsError, match="safe_action"):
            safe_action_for(action, given)
    else:
        assert safe_action_for(action, given).tolist() == ok


# -- ticks -----------------------------------------------------------------------------------
def test_rejected_observations_leave_the_memory_untouched(model):
    c = controller(model)
    ref = PolicyRuntime(model)
    obs = env_observations("dnc/TMaze-v0", {"length": 3}, 6, seed=0)
    dim = c.runtime.obs_dim
    bad = [np.full(dim, np.nan), np.full(dim + 1, 0.5), np.zeros(0), np.full(dim, -np.inf),
           np.full(dim, 2e6)]
    for o, b in zip(obs, bad):
        before = c.runtime.snapshot()
        tick = c.on_observation(b, 0.0)
        assert tick.safe and tick.action.tolist() == [0.0] and "rejected" in tick.reason
        for k, v in c.runtime.snapshot().items():
            np.testing.assert_array_equal(v, before[k])
        tick = c.on_observation(o, 0.0)
        assert not tick.safe
        assert tick.action.tolist() == np.asarray(ref.step(o), np.float32).reshape(-1).tolist()
    assert c.counters.rejected == 5 and c.counters.ticks == 5
    assert "max_abs_obs" in c.counters.last_rejection


def test_watchdog_on_a_fake_clock(model):
    c = controller(model, now=10.0, obs_timeout_ms=200.0, rate_hz=50.0)
    obs = env_observations("dnc/TMaze-v0", {"length": 3}, 3, seed=0)
    assert c.on_timer(10.1) is None  # within the timeout after activation
    assert c.on_observation(obs[0], 10.15).safe is False
    assert c.on_timer(10.30) is None
    tick = c.on_timer(10.36)  # 210 ms after the last observation
    assert tick.safe and "watchdog" in tick.reason and c.watchdog_tripped
    assert c.on_timer(10.38).safe and c.counters.timeouts == 1
    assert c.on_observation(obs[1], 10.40).safe is False and not c.watchdog_tripped
    assert c.on_timer(10.42) is None


@pytest.mark.parametrize("reset", [False, True])
def test_reset_on_timeout_starts_a_new_episode_when_observations_return(model, reset):
    c = controller(model, now=10.0, obs_timeout_ms=200.0, rate_hz=50.0, reset_on_timeout=reset)
    ref = PolicyRuntime(model)
    obs = env_observations("dnc/TMaze-v0", {"length": 3}, 3, seed=0)
    for t, o in zip((10.05, 10.10), obs[:2]):
        assert c.on_observation(o, t).action.tolist() == np.asarray(ref.step(o), np.float32
                                                                    ).reshape(-1).tolist()
    assert c.on_timer(10.40).safe and c.watchdog_tripped  # 300 ms without an observation
    tick = c.on_observation(obs[2], 10.50)
    want = ref.step(obs[2], reset=reset)  # a new episode only with reset_on_timeout
    assert not tick.safe and tick.action.tolist() == np.asarray(want, np.float32
                                                                 ).reshape(-1).tolist()
    for k, v in ref.snapshot().items():
        np.testing.assert_array_equal(c.runtime.snapshot()[k], v, err_msg=k)


def test_timer_mode_acts_on_the_latest_observation_and_a_bad_one_stops_it(model):
    c = controller(model, tick_mode="timer", obs_timeout_ms=1000.0)
    ref = PolicyRuntime(model)
    obs = env_observations("dnc/TMaze-v0", {"length": 3}, 3, seed=0)
    assert c.on_timer(0.01).safe  # nothing yet
    assert c.on_observation(obs[0], 0.02) is None
    for t in (0.04, 0.06):  # the same observation at every tick
        assert c.on_timer(t).action.tolist() == np.asarray(ref.step(obs[0]), np.float32).tolist()
    assert c.on_observation(np.full(c.runtime.obs_dim, np.nan), 0.07).safe
    assert c.on_timer(0.08).safe, "no acting on an observation older than a rejected one"


def test_reset_request_starts_an_episode_at_the_next_tick(model):
    c = controller(model)
    ref = PolicyRuntime(model)
    obs = env_observations("dnc/TMaze-v0", {"length": 3}, 4, seed=0)
    for o in obs[:3]:
        c.on_observation(o, 0.0)
        ref.step(o)
    c.request_reset()
    c.on_observation(obs[3], 0.0)
    ref.step(obs[3], reset=True)
    for k, v in ref.snapshot().items():
        np.testing.assert_array_equal(c.runtime.snapshot()[k], v)


def test_inactive_controller_does_nothing_and_deactivate_gives_the_safe_action(model):
    c = controller(model, safe_action=[2.0])
    tick = c.deactivate()
    assert tick.safe and tick.action.tolist() == [2.0]
    assert c.on_observation(np.zeros(c.runtime.obs_dim), 0.0) is None
    assert c.on_timer(5.0) is None


# -- snapshots -------------------------------------------------------------------------------
def test_a_failing_snapshot_write_is_counted_and_never_stops_the_ticks(model, tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    c = controller(model, **{"snapshot.path": str(folder / "mem.npz"), "snapshot.period_s": 0.1})
    folder.rmdir()
    folder.write_text("a file where the snapshot folder was")  # every write now fails
    ref = PolicyRuntime(model)
    obs = env_observations("dnc/TMaze-v0", {"length": 3}, 4, seed=0)
    for i, o in enumerate(obs):
        tick = c.on_observation(o, 0.2 * (i + 1))  # a snapshot is due at each tick
        assert not tick.safe
        assert tick.action.tolist() == np.asarray(ref.step(o), np.float32).reshape(-1).tolist()
    c.close()  # pending and final snapshots written (the writer keeps only the newest)
    assert c.counters.snapshots == 0 and c.counters.snapshot_errors >= 1
    assert str(folder) in c.counters.last_snapshot_error  # the OSError, naming the path
    assert c.status(1.0)["snapshot_errors"] == str(c.counters.snapshot_errors)
    assert folder.read_text() == "a file where the snapshot folder was"  # nothing clobbered


def test_snapshots_restore_and_a_foreign_file_is_set_aside(model, models, tmp_path):
    path = tmp_path / "mem.npz"
    c = controller(model, **{"snapshot.path": str(path), "snapshot.period_s": 0.1})
    obs = env_observations("dnc/TMaze-v0", {"length": 3}, 3, seed=0)
    for o in obs:
        c.on_observation(o, 0.0)
    c.on_timer(0.2)  # a periodic snapshot (written by the writer thread)
    c.close()  # and the final one, synchronously
    held = c.runtime.snapshot()
    c2 = controller(model, **{"snapshot.path": str(path)})
    assert c2.restored_from == str(path)
    for k, v in held.items():
        np.testing.assert_array_equal(c2.runtime.snapshot()[k], v)
    c2.close()
    # A state file of another model: set aside, the node starts with an empty memory.
    other = controller(models("lstm").onnx, **{"snapshot.path": str(path)})
    assert other.restored_from == ""
    assert (tmp_path / "mem.npz.rejected").exists()
    assert all((v == 0).all() for v in other.runtime.snapshot().values())
    other.close()
    ident = json.loads(bytes(np.load(path)["__identity__"]).decode())
    assert ident["state"][0][0] == other.runtime.state_spec[0][0]


@pytest.mark.parametrize("kind,names", [
    ("dnc", ["usage", "write_weights", "read_weights"]), ("gru", [])])
def test_debug_fields_are_the_state_the_contract_names(models, kind, names):
    """The ~/debug topics come from the contract's debug_state (the core declares it):
    a DNC's usage and weightings after the tick, nothing but the value for a GRU."""
    m = models(kind)
    assert m.contract()["debug_state"] == names
    c = controller(m.onnx)
    obs = env_observations("dnc/TMaze-v0", {"length": 3}, 2, seed=0)
    for o in obs:
        c.on_observation(o, 0.0)
    fields = c.debug_fields()
    assert sorted(fields) == sorted(["value", *names])
    state = c.runtime.snapshot()
    for name in names:
        np.testing.assert_array_equal(fields[name], state[name][0])
    assert fields["value"] == pytest.approx(float(c.runtime.outputs["value"][0]))
    if kind == "dnc":  # after two ticks the memory has been written: not all zero
        assert fields["usage"].sum() > 0 and fields["read_weights"].shape == (1, 8)


def test_undo_step_returns_to_the_state_before_the_step(model):
    rt = PolicyRuntime(model)
    obs = env_observations("dnc/TMaze-v0", {"length": 3}, 3, seed=0)
    rt.step(obs[0])
    before = rt.snapshot()
    rt.step(obs[1])
    assert any((rt.snapshot()[k] != v).any() for k, v in before.items())
    rt.undo_step()
    for k, v in rt.snapshot().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(RuntimeError, match="must follow a step"):
        rt.undo_step()
    # The step taken again gives the same state as the first time.
    rt.step(obs[1])
    ref = PolicyRuntime(model)
    ref.step(obs[0])
    ref.step(obs[1])
    for k, v in ref.snapshot().items():
        np.testing.assert_array_equal(rt.snapshot()[k], v)
    # An undone step keeps the reset it consumed: the next step starts an episode.
    rt.step(obs[2], reset=True)
    rt.undo_step()
    rt.step(obs[0])
    fresh = PolicyRuntime(model)
    fresh.step(obs[0])
    for k, v in fresh.snapshot().items():
        np.testing.assert_array_equal(rt.snapshot()[k], v)


def test_a_model_that_outputs_nan_gives_the_safe_action_and_keeps_the_memory(model, tmp_path):
    """A real model whose critic weights were corrupted to NaN: the step is undone."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(model))
    names = {i for n in m.graph.node for i in n.input}
    target = next(t for t in m.graph.initializer if "critic" in t.name and t.name in names)
    arr = numpy_helper.to_array(target).copy()
    arr.flat[0] = np.nan
    target.CopyFrom(numpy_helper.from_array(arr, target.name))
    bad = tmp_path / "nan_critic.onnx"
    onnx.save(m, str(bad))
    c = controller(bad, safe_action=[1.0])
    before = c.runtime.snapshot()
    tick = c.on_observation(env_observations("dnc/TMaze-v0", {"length": 3}, 1)[0], 0.0)
    assert tick.safe and tick.action.tolist() == [1.0] and "non-finite" in tick.reason
    assert c.counters.nonfinite == 1 and c.counters.ticks == 0
    for k, v in c.runtime.snapshot().items():
        np.testing.assert_array_equal(v, before[k])
    assert c.status(0.0)["nonfinite_outputs"] == "1"


# -- the fast path, the handoff, staleness -----------------------------------------------------
def test_the_fast_path_checks_exactly_what_validate_checks(model):
    """rclpy's float32[] (array.array 'f') and float32 arrays take the copy-and-dot path;
    its answers (act or reject) and actions are those of the exact check and the runtime,
    at the bound, beyond it, with NaN and Inf, and for values the dot cannot vouch for."""
    c = controller(model, max_abs_obs=10.0)
    ref = PolicyRuntime(model)
    dim = c.runtime.obs_dim
    cases = [
        (np.full(dim, 10.0), True),  # every value at the bound: sum of squares above it
        (np.full(dim, 0.5), True),
        (np.r_[np.float32(10.0) + np.float32(1e-6), np.zeros(dim - 1)], False),
        (np.r_[np.nan, np.zeros(dim - 1)], False),
        (np.r_[np.zeros(dim - 1), -np.inf], False),
        (np.r_[3.0e38, np.zeros(dim - 1)], False),  # the dot overflows to Inf
        (np.full(dim, -7.0), True),
    ]
    for values, ok in cases:
        for data in (array.array("f", values.astype(np.float32).tolist()),
                     values.astype(np.float32), values.astype(np.float64),
                     values.astype(np.float32).tolist()):
            tick = c.on_observation(data, 0.0)
            assert tick.safe is (not ok), (values, type(data))
            if ok:
                want = ref.step(values.astype(np.float32))
                assert tick.action.tolist() == np.asarray(want, np.float32).reshape(-1).tolist()
            else:
                assert "rejected observation" in tick.reason
    assert c.on_observation(array.array("f", [0.5] * (dim + 1)), 0.0).safe  # wrong length
    assert c.on_observation(array.array("d", [0.5] * dim), 0.0).safe is False  # another typecode
    ref.step(np.full(dim, 0.5, np.float32))
    for k, v in ref.snapshot().items():
        np.testing.assert_array_equal(c.runtime.snapshot()[k], v)
    # An unbounded max_abs_obs still refuses Inf (the bound is float32's largest value).
    c2 = controller(model, max_abs_obs=float("inf"))
    assert c2.on_observation(array.array("f", [float("inf")] * dim), 0.0).safe


def test_timer_mode_keeps_the_newest_counts_the_overwritten_and_ages_the_held(model):
    c = controller(model, tick_mode="timer", obs_timeout_ms=0.0)
    ref = PolicyRuntime(model)
    obs = env_observations("dnc/TMaze-v0", {"length": 3}, 8, seed=2)
    for i, o in enumerate(obs[:5]):  # five before a tick: four dropped, the fifth acted on
        assert c.on_observation(o, 1.0 + 0.01 * i) is None
    tick = c.on_timer(1.10)
    assert not tick.safe
    assert tick.action.tolist() == np.asarray(ref.step(obs[4]), np.float32).tolist()
    c.published(1.12)  # the fifth arrived at 1.04
    tick = c.on_timer(1.30)  # held: the same observation again, older now
    assert tick.action.tolist() == np.asarray(ref.step(obs[4]), np.float32).tolist()
    c.published(1.31)
    assert c.on_observation(obs[5], 1.35, arrival=1.33) is None  # arrival given: its age counts
    c.on_timer(1.40)
    c.published(1.41)
    assert c.counters.overwritten == 4
    st = c.status(1.5)
    assert st["obs_overwritten"] == "4" and st["obs_dropped"] == "4"
    assert st["obs_dropped_in_queue"] == "n/a"  # nobody counts queue drops here
    ages = sorted(c.age.values().tolist())
    np.testing.assert_allclose(ages, [0.08, 0.08, 0.27], atol=1e-9)
    assert float(st["obs_age_max_us"]) == pytest.approx(270000.0, abs=0.1)
    assert float(st["obs_age_p50_us"]) == pytest.approx(80000.0, abs=0.1)
    # A rejected observation drops the held one (no acting on data older than a bad one),
    # without counting it as overwritten.
    c.on_observation(np.full(c.runtime.obs_dim, np.nan), 1.5)
    assert c.on_timer(1.6).safe and c.counters.overwritten == 4
    c.dropped(3)
    c.counts_queue_drops = True
    st = c.status(1.7)
    assert (st["obs_dropped"], st["obs_dropped_in_queue"]) == ("7", "3")


def test_on_observation_mode_ages_from_the_arrival_and_safe_ticks_do_not_count(model):
    c = controller(model)
    obs = env_observations("dnc/TMaze-v0", {"length": 3}, 3, seed=0)
    c.on_observation(obs[0], 2.0, arrival=1.995)
    c.published(2.001)
    c.on_observation(obs[1], 3.0)  # arrival defaults to now
    c.published(3.0005)
    assert c.on_observation(np.full(c.runtime.obs_dim, np.inf), 4.0).safe
    np.testing.assert_allclose(sorted(c.age.values()), [0.0005, 0.006], atol=1e-9)
    assert len(c.age) == 2


def test_windows_hold_the_last_samples_and_wrap():
    from dnc_policy.stats import Window

    w = Window(rows=2)  # 512 samples
    assert len(w) == 0 and w.values().size == 0
    for i in range(700):
        w.add(float(i))
    assert len(w) == 512
    np.testing.assert_array_equal(w.values(), np.arange(188, 700, dtype=float))


# -- allocations -------------------------------------------------------------------------------
def test_the_tick_path_allocates_nothing(model):
    """tracemalloc counts are deterministic: every piece of the node's tick around the
    runtime's step allocates 0 bytes (the observation copy and check, the handoff, the
    safe tick, the counters and windows, the message fill), and so does a whole policy
    tick, PolicyRuntime.step included."""
    import time

    from dnc_policy_tools.bench import measure_allocations, observation_messages, traced_calls
    from dnc_policy.node import TickOutput

    stop_tqdm_monitor()

    timer = controller(model, tick_mode="timer", obs_timeout_ms=0.0)
    msgs = observation_messages(timer.runtime.obs_dim, 64)
    out = TickOutput(timer.safe_action.size)
    sent = [None]

    def handoff(i):  # timer mode: the callback stores, counts and returns
        timer.on_observation(msgs[i % 64].data, time.monotonic())

    def fill(i):
        sent[0] = out.action(timer._tick)
        timer.published(time.monotonic())

    watchdog = controller(model, obs_timeout_ms=1.0)

    def safe(i):  # the watchdog's safe tick
        sent[0] = out.action(watchdog.on_timer(time.monotonic() + 1.0))

    for name, fn in (("handoff", handoff), ("fill", fill), ("safe", safe)):
        assert traced_calls(fn, list(range(3000)), warmup=500)["peak_max_bytes"] == 0, name

    # A policy tick as the node's callback runs it, its traced peak taken apart at the
    # runtime's step (the real step, wrapped on this instance to read tracemalloc): from
    # the tick's start to the step, and from the step's return to the tick's end. Both 0.
    import gc
    import tracemalloc

    c = controller(model)
    real_step = c.runtime.step
    at = np.zeros(2, np.int64)  # [peak up to the step, traced memory when it returned]

    def step(*args, **kwargs):
        at[0] = tracemalloc.get_traced_memory()[1]
        result = real_step(*args, **kwargs)
        at[1] = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        return result

    c.runtime.step = step
    n, warm = 3000, 500
    before, after = np.zeros(n + warm, np.int64), np.zeros(n + warm, np.int64)
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(n + warm):
            start = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            tick = c.on_observation(msgs[i % 64].data, time.monotonic())
            sent[0] = out.action(tick)
            c.published(time.monotonic())
            after[i] = tracemalloc.get_traced_memory()[1] - at[1]
            before[i] = at[0] - start
    finally:
        tracemalloc.stop()
    assert not tick.safe and c.counters.ticks == n + warm
    assert before[warm:].max() == 0, "allocated before the runtime's step"
    assert after[warm:].max() == 0, "allocated after the runtime's step"
    r = measure_allocations(model, 3000, warmup=500)
    tick, step = r["tick"], r["runtime_step"]
    assert tick["peak_max_bytes"] == step["peak_max_bytes"] == 0, r  # the whole tick: 0
    assert tick["gc_collections"] == 0, r
