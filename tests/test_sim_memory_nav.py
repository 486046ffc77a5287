"""MemoryNav: unicycle kinematics, the hidden goal, an oracle with memory, memoryless failure."""

import math

import gymnasium
import numpy as np
import pytest

import sim  # noqa: F401
from sim.oracles import MemoryNavMemoryless, MemoryNavOracle, run_episode


def _success_rate(env, policy, n=60):
    return np.mean([run_episode(env, policy, seed=s)[2]["is_success"] for s in range(n)])


def test_oracle_that_remembers_the_goal_succeeds():
    env = gymnasium.make("dnc/MemoryNav-v0")
    assert _success_rate(env, MemoryNavOracle(env)) >= 0.95


class _Still:
    def reset(self):
        pass

    def act(self, obs):
        return np.zeros(2, np.float32)


class _Straight(_Still):
    def act(self, obs):
        return np.array([0.5, 0.0], np.float32)


def test_memoryless_policies_mostly_fail():
    env = gymnasium.make("dnc/MemoryNav-v0")
    for policy in (_Still(), _Straight(), MemoryNavMemoryless(env), MemoryNavMemoryless(env, -1.0)):
        assert _success_rate(env, policy) <= 0.3


def test_goal_visible_only_during_cue_steps_while_robot_is_held():
    env = gymnasium.make("dnc/MemoryNav-v0", cue_steps=3)
    obs, info = env.reset(seed=5)
    u = env.unwrapped
    start = (u.x, u.y, u.theta)
    h = u.arena_size / 2
    # The goal offset is given in the robot frame.
    c, s = math.cos(u.theta), math.sin(u.theta)
    dx, dy = u.goal_x - u.x, u.goal_y - u.y
    expected = [1, (c * dx + s * dy) / h, (c * dy - s * dx) / h]
    np.testing.assert_allclose(obs[4:], expected, atol=1e-6)
    assert info["distance"] == pytest.approx(math.hypot(dx, dy))
    for t in range(1, 4):
        obs, *_ = env.step(np.array([0.5, 2.0], np.float32))
        assert (u.x, u.y, u.theta) == start  # briefing: commands ignored
        assert obs[4] == (1.0 if t < 3 else 0.0)
    np.testing.assert_array_equal(obs[4:], [0, 0, 0])
    obs, *_ = env.step(np.array([0.5, 0.0], np.float32))
    assert math.hypot(u.x - start[0], u.y - start[1]) == pytest.approx(0.05)


def test_show_goal_always_keeps_the_goal_offset_observed_after_the_briefing():
    hidden = gymnasium.make("dnc/MemoryNav-v0", cue_steps=2)
    shown = gymnasium.make("dnc/MemoryNav-v0", cue_steps=2, show_goal="always")
    a, _ = hidden.reset(seed=3)
    b, _ = shown.reset(seed=3)
    np.testing.assert_array_equal(a, b)  # the same briefing
    u = shown.unwrapped
    h = u.arena_size / 2
    act = np.array([0.4, 1.0], np.float32)
    for t in range(1, 12):
        a, ra, *_ = hidden.step(act)
        b, rb, *_ = shown.step(act)
        assert ra == rb and (a[:4] == b[:4]).all()  # the same robot and rewards
        assert a[4] == b[4] == (1.0 if t < 2 else 0.0)  # the flag still marks the briefing
        c, s = math.cos(u.theta), math.sin(u.theta)
        dx, dy = u.goal_x - u.x, u.goal_y - u.y  # the offset from where the robot is now
        np.testing.assert_allclose(b[5:], [(c * dx + s * dy) / h, (c * dy - s * dx) / h],
                                   atol=1e-6)
        if t >= 2:
            np.testing.assert_array_equal(a[4:], [0, 0, 0])
    # What the oracle needs is always in view, so a memoryless controller of the
    # offset succeeds: drive at the goal, turning towards it.
    class _Seek(_Still):
        def act(self, obs):
            fwd, left = float(obs[5]), float(obs[6])
            return np.array([0.5 if fwd > 0 else 0.0, 4.0 * math.atan2(left, fwd)], np.float32)

    env = gymnasium.make("dnc/MemoryNav-v0", show_goal="always")
    assert _success_rate(env, _Seek()) >= 0.95
    with pytest.raises(ValueError,
                       match=r"^show_goal must be one of \('briefing', 'always', 'never'\)"):
        gymnasium.make("dnc/MemoryNav-v0", show_goal="sometimes")


def test_show_goal_never_hides_the_goal_during_the_briefing_too():
    task = gymnasium.make("dnc/MemoryNav-v0", cue_steps=3)
    blind = gymnasium.make("dnc/MemoryNav-v0", cue_steps=3, show_goal="never")
    a, _ = task.reset(seed=5)
    b, _ = blind.reset(seed=5)
    assert a[5:].any() and (a[:5] == b[:5]).all()  # the same robot, flag and goal
    assert (task.unwrapped.goal_x, task.unwrapped.goal_y) == (blind.unwrapped.goal_x,
                                                             blind.unwrapped.goal_y)
    act = np.array([0.4, 1.0], np.float32)
    for t in range(12):
        assert b[4] == (1.0 if t < 3 else 0.0)  # the flag still marks the briefing
        np.testing.assert_array_equal(b[5:], [0, 0])
        a, ra, *_ = task.step(act)
        b, rb, *_ = blind.step(act)
        assert ra == rb and (a[:5] == b[:5]).all()  # held still, then the same drive


def test_unicycle_kinematics_turn_clip_and_walls():
    env = gymnasium.make("dnc/MemoryNav-v0", cue_steps=1, dt=0.1)
    env.reset(seed=0)
    u = env.unwrapped
    env.step(np.zeros(2, np.float32))  # end of the briefing
    u.x, u.y, u.theta = 0.0, 0.0, 0.0
    env.step(np.array([0.0, 1.0], np.float32))
    assert (u.x, u.y) == (0.0, 0.0) and u.theta == pytest.approx(0.1)
    env.step(np.array([100.0, -100.0], np.float32))  # clipped to v_max, w_max
    assert u.theta == pytest.approx(0.1 - 0.2)
    assert math.hypot(u.x, u.y) == pytest.approx(0.05)
    u.x, u.y, u.theta = 1.98, 0.0, 0.0
    obs, *_ = env.step(np.array([0.5, 0.0], np.float32))
    assert u.x == 2.0 and obs[0] == pytest.approx(1.0)  # the wall stops the robot


def test_success_reward_and_truncation():
    env = gymnasium.make("dnc/MemoryNav-v0", max_steps=10, step_penalty=0.0)
    env.reset(seed=1)
    for _ in range(10):
        _, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        assert reward == pytest.approx(0.0) and not terminated
    assert truncated and info["is_success"] is False
    env = gymnasium.make("dnc/MemoryNav-v0")
    ret, steps, info = run_episode(env, MemoryNavOracle(env), seed=3)
    assert info["is_success"] is True and info["distance"] <= 0.25
    start_distance = env.reset(seed=3)[1]["distance"]
    # progress shaping telescopes: return = progress + success bonus - step penalties
    assert ret == pytest.approx(start_distance - info["distance"] + 1.0 - 0.01 * steps)


# -------------------------------------------------------------- randomised briefing
def test_drawn_cue_steps_stay_in_bounds_cover_both_ends_and_are_reproducible():
    env = gymnasium.make("dnc/MemoryNav-v0", cue_steps=[1, 4])
    u = env.unwrapped
    assert u.cue_steps_range == (1, 4) and u.cue_steps == 4  # before the first reset: hi
    draws = [env.reset(seed=s)[1]["cue_steps"] for s in range(60)]
    assert set(draws) == {1, 2, 3, 4}
    again = gymnasium.make("dnc/MemoryNav-v0", cue_steps=(1, 4))
    assert [again.reset(seed=s)[1]["cue_steps"] for s in range(60)] == draws

    def sequence(seed):  # one seeded reset, then the unseeded ones continue its stream
        return [env.reset(seed=seed)[1]["cue_steps"]] + [
            env.reset()[1]["cue_steps"] for _ in range(15)]

    assert sequence(1) == sequence(1) and sequence(1) != sequence(2)


def test_goal_is_visible_for_exactly_the_drawn_cue_steps():
    env = gymnasium.make("dnc/MemoryNav-v0", cue_steps=[1, 6])
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        visible = [obs[4]]
        for _ in range(8):
            obs, *_ = env.step(np.zeros(2, np.float32))
            visible.append(obs[4])
        assert visible == [1.0] * info["cue_steps"] + [0.0] * (9 - info["cue_steps"])


def test_seed_gives_the_same_start_and_goal_whatever_the_range():
    fixed, drawn = gymnasium.make("dnc/MemoryNav-v0"), gymnasium.make("dnc/MemoryNav-v0",
                                                                      cue_steps=[1, 9])
    for seed in range(10):
        assert fixed.reset(seed=seed)[1]["distance"] == drawn.reset(seed=seed)[1]["distance"]
        f, d = fixed.unwrapped, drawn.unwrapped
        assert (f.x, f.y, f.theta, f.goal_x, f.goal_y) == (d.x, d.y, d.theta, d.goal_x, d.goal_y)
    assert fixed.reset(seed=0)[1]["cue_steps"] == 3


def test_oracle_succeeds_with_any_drawn_briefing():
    env = gymnasium.make("dnc/MemoryNav-v0", cue_steps=[1, 10])
    assert _success_rate(env, MemoryNavOracle(env)) >= 0.95


@pytest.mark.parametrize(("kwargs", "high"), [({"cue_steps": [0, 3]}, 199),
                                              ({"cue_steps": [5, 2]}, 199),
                                              ({"cue_steps": [3, 40], "max_steps": 40}, 39),
                                              ({"cue_steps": [1, 2, 3]}, 199)])
def test_bad_cue_step_ranges_raise_value_error_naming_the_argument(kwargs, high):
    with pytest.raises(ValueError, match=rf"^cue_steps must be an integer in \[1, {high}\] or"):
        gymnasium.make("dnc/MemoryNav-v0", **kwargs)
