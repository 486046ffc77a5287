"""The policy node's logic without ROS (``dnc_policy.settings``, ``dnc_policy.controller``):
parameter validation, the safe action, rejection without advancing the memory, the
watchdog and timer mode on a fake clock, resets, and snapshots on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import test_export
from dnc_policy.controller import PolicyController, safe_action_for
from dnc_policy.runtime import PolicyRuntime
from dnc_policy.settings import POLICY_PARAMETERS, SettingsError, parse_policy_settings
from test_export import env_observations

models = test_export.models
one_thread = test_export.one_thread


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
        ("on_observation", 50.0, 0.5, 5)
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
