"""T-maze: the cue-following oracle solves it at any length, memoryless policies cannot."""

import gymnasium
import numpy as np
import pytest

import sim  # noqa: F401
from sim.oracles import TMazeMemoryless, TMazeOracle, run_episode

FORWARD, LEFT, RIGHT = 0, 1, 2


@pytest.mark.parametrize("length", [1, 10, 300])
def test_cue_following_oracle_always_succeeds_in_optimal_time(length):
    env = gymnasium.make("dnc/TMaze-v0", length=length)
    for seed in range(20):
        ret, steps, info = run_episode(env, TMazeOracle(), seed=seed)
        assert info["is_success"] is True
        assert steps == length + 1
        assert ret == pytest.approx(1.0 - 0.01 * length)


@pytest.mark.parametrize("turn", [LEFT, RIGHT])
def test_memoryless_policy_stays_at_chance(turn):
    env = gymnasium.make("dnc/TMaze-v0")
    wins = [run_episode(env, TMazeMemoryless(turn), seed=s)[2]["is_success"] for s in range(400)]
    assert 0.4 <= np.mean(wins) <= 0.6


def _observations(env, seed):
    obs, info = env.reset(seed=seed)
    seen = [obs]
    for _ in range(env.unwrapped.length):
        obs, *_ = env.step(FORWARD)
        seen.append(obs)
    return info["cue"], np.array(seen)


@pytest.mark.parametrize("cue_steps", [1, 3])
def test_cue_is_only_visible_at_the_start_and_junction_is_flagged(cue_steps):
    env = gymnasium.make("dnc/TMaze-v0", length=6, cue_steps=cue_steps)
    runs = {}
    seed = 0
    while len(runs) < 2:
        cue, seen = _observations(env, seed)
        runs.setdefault(cue, seen)
        seed += 1
    left, right = runs[0], runs[1]
    np.testing.assert_array_equal(left[:cue_steps, :2], [[1, 0]] * cue_steps)
    np.testing.assert_array_equal(right[:cue_steps, :2], [[0, 1]] * cue_steps)
    # After the cue, both cues give identical observations, so only memory can tell them apart.
    np.testing.assert_array_equal(left[cue_steps:], right[cue_steps:])
    np.testing.assert_array_equal(left[:, 2:], [[1, 0]] * 6 + [[0, 1]])


def test_turns_in_corridor_bump_and_wrong_arm_fails():
    env = gymnasium.make("dnc/TMaze-v0", length=3, wrong_reward=-0.5, step_penalty=0.05)
    _, info = env.reset(seed=3)
    wrong = RIGHT if info["cue"] == 0 else LEFT
    obs, reward, terminated, _, _ = env.step(wrong)  # a turn in the corridor is a bump
    assert not terminated and reward == pytest.approx(-0.05) and obs[3] == 0
    for _ in range(3):
        obs, *_ = env.step(FORWARD)
    assert obs[3] == 1
    obs, reward, terminated, _, _ = env.step(FORWARD)  # forward at the junction: bump
    assert not terminated and obs[3] == 1
    _, reward, terminated, truncated, info = env.step(wrong)
    assert terminated and not truncated
    assert reward == pytest.approx(-0.5) and info["is_success"] is False


def test_truncation_after_max_steps():
    env = gymnasium.make("dnc/TMaze-v0", length=5, max_steps=9)
    env.reset(seed=0)
    for step in range(1, 10):
        _, _, terminated, truncated, info = env.step(LEFT)  # bumping forever
        assert not terminated
        assert truncated == (step == 9)
    assert info["is_success"] is False
    assert gymnasium.make("dnc/TMaze-v0", length=10).unwrapped.max_steps == 44


def test_ansi_render_shows_the_t():
    env = gymnasium.make("dnc/TMaze-v0", length=4, render_mode="ansi")
    env.reset(seed=0)
    lines = env.render().splitlines()
    assert lines[0].startswith("TMaze")
    assert lines[3].startswith("#") and "A" in lines[3] and lines[3].count(".") == 4
    assert {lines[2][-2], lines[4][-2]} == {"G", "X"}


def test_bump_penalty_applies_to_wall_bumps_only():
    env = gymnasium.make("dnc/TMaze-v0", length=2, step_penalty=0.01, bump_penalty=0.2)
    env.reset(seed=0)
    assert env.step(1)[1] == pytest.approx(-0.2)  # turn inside the corridor: a bump
    assert env.step(0)[1] == pytest.approx(-0.01)  # forward
    assert env.step(0)[1] == pytest.approx(-0.01)  # forward, now at the junction
    assert env.step(0)[1] == pytest.approx(-0.2)  # forward at the junction: a bump
    default = gymnasium.make("dnc/TMaze-v0", length=2, step_penalty=0.03)
    default.reset(seed=0)
    assert default.step(1)[1] == pytest.approx(-0.03)  # defaults to step_penalty
    with pytest.raises(ValueError, match="bump_penalty"):
        gymnasium.make("dnc/TMaze-v0", bump_penalty=2.0)
