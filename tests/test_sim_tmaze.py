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


# ---------------------------------------------------------------- randomised lengths
def _lengths(env, seed, n):
    """The drawn lengths of ``n`` episodes: one seeded reset, then unseeded ones."""
    first = env.reset(seed=seed)[1]["length"]
    return [first] + [env.reset()[1]["length"] for _ in range(n - 1)]


def test_drawn_lengths_stay_in_bounds_and_cover_both_ends():
    env = gymnasium.make("dnc/TMaze-v0", length=[3, 7])
    lengths = _lengths(env, 0, 300)
    assert set(lengths) == {3, 4, 5, 6, 7}
    counts = np.bincount(lengths)[3:]
    assert counts.min() > 30  # roughly uniform: 60 expected per value
    assert env.unwrapped.length_range == (3, 7)
    assert gymnasium.make("dnc/TMaze-v0", length=(3, 7)).unwrapped.length_range == (3, 7)


def test_same_seed_same_lengths_and_different_seeds_differ():
    env = gymnasium.make("dnc/TMaze-v0", length=[1, 1000])
    a, b = _lengths(env, 5, 20), _lengths(gymnasium.make("dnc/TMaze-v0", length=[1, 1000]), 5, 20)
    assert a == b
    assert _lengths(env, 6, 20) != a


def test_seed_gives_the_same_cue_whatever_the_length_range():
    fixed = gymnasium.make("dnc/TMaze-v0", length=10)
    drawn = gymnasium.make("dnc/TMaze-v0", length=[2, 50])
    for seed in range(20):
        assert fixed.reset(seed=seed)[1]["cue"] == drawn.reset(seed=seed)[1]["cue"]


def test_fixed_length_is_a_one_value_range_and_reports_its_length():
    env = gymnasium.make("dnc/TMaze-v0", length=6)
    u = env.unwrapped
    assert u.length_range == (6, 6) and u.length == 6 and u.max_steps == 28
    assert env.reset(seed=0)[1] == {"cue": env.unwrapped._cue, "length": 6}


def test_length_and_max_steps_follow_the_drawn_length():
    env = gymnasium.make("dnc/TMaze-v0", length=[2, 9])
    u = env.unwrapped
    assert u.length == 9 and u.max_steps == 40  # before the first reset: hi
    seen = set()
    for seed in range(30):
        _, info = env.reset(seed=seed)
        n = info["length"]
        seen.add(n)
        assert u.length == n and u.max_steps == 4 * (n + 1)
        for step in range(1, 4 * (n + 1) + 1):  # bumping into the corridor wall forever
            *_, terminated, truncated, _ = env.step(LEFT)
            assert not terminated and truncated == (step == 4 * (n + 1))
    assert len(seen) > 4
    given = gymnasium.make("dnc/TMaze-v0", length=[2, 9], max_steps=15).unwrapped
    for seed in range(10):
        given.reset(seed=seed)
        assert given.max_steps == 15


def test_junction_is_flagged_at_the_drawn_length():
    env = gymnasium.make("dnc/TMaze-v0", length=[1, 12])
    for seed in range(15):
        obs, info = env.reset(seed=seed)
        flags = [obs[3]]
        for _ in range(info["length"]):
            obs, *_ = env.step(FORWARD)
            flags.append(obs[3])
        assert flags == [0.0] * info["length"] + [1.0]


def test_cue_following_oracle_solves_every_drawn_length():
    env = gymnasium.make("dnc/TMaze-v0", length=[1, 60], cue_steps=1)
    lengths = set()
    for seed in range(60):
        ret, steps, info = run_episode(env, TMazeOracle(), seed=seed)
        n = env.unwrapped.length
        lengths.add(n)
        assert info["is_success"] is True and steps == n + 1
        assert ret == pytest.approx(1.0 - 0.01 * n)
    assert len(lengths) > 20


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"length": [30, 5]}, "length"),
        ({"length": [0, 5]}, "length"),
        ({"length": [5, 100_001]}, "length"),
        ({"length": [5, 10, 20]}, "length"),
        ({"length": [5]}, "length"),
        ({"length": [5, 7.5]}, "length"),
        ({"length": {"lo": 5, "hi": 10}}, "length"),
        ({"length": [5, 10], "cue_steps": 6}, "cue_steps"),
        ({"length": [5, 10], "max_steps": 10}, "max_steps"),
    ],
)
def test_bad_length_ranges_raise_value_error_naming_the_argument(kwargs, name):
    expected = {"length": r"length must be an integer in \[1, 100000\] or a range \[lo, hi\]",
                "cue_steps": r"cue_steps must be an integer in \[1, 5\]",
                "max_steps": r"max_steps must be an integer in \[11, inf\)"}[name]
    with pytest.raises(ValueError, match=rf"^{expected}"):
        gymnasium.make("dnc/TMaze-v0", **kwargs)


def test_rendering_follows_the_drawn_length_on_one_canvas():
    ansi = gymnasium.make("dnc/TMaze-v0", length=[2, 8], render_mode="ansi")
    rgb = gymnasium.make("dnc/TMaze-v0", length=[2, 8], render_mode="rgb_array")
    shapes = set()
    for seed in range(12):
        n = ansi.reset(seed=seed)[1]["length"]
        assert rgb.reset(seed=seed)[1]["length"] == n
        lines = ansi.render().splitlines()
        assert lines[3].count(".") == n and len(lines[3]) == n + 3  # the drawn corridor
        frame = rgb.render()
        shapes.add(frame.shape)
        cell = frame.shape[0] // 5
        assert frame.shape == (5 * cell, 11 * cell, 3)  # the hi = 8 canvas: 5 x (8 + 3)
    assert len(shapes) == 1


def test_opposite_goal_arm_mirrors_the_goal_and_nothing_else():
    # The same cues (same seeds), the same corridor and observations; only which turn
    # wins changes: the cue follower always fails, turning away from the cue always wins.
    cued = gymnasium.make("dnc/TMaze-v0", length=5, cue_steps=3)
    mirrored = gymnasium.make("dnc/TMaze-v0", length=5, cue_steps=3, goal_arm="opposite",
                              render_mode="ansi")
    for seed in range(20):
        assert run_episode(cued, TMazeOracle(), seed=seed)[2]["is_success"] is True
        assert run_episode(mirrored, TMazeOracle(), seed=seed)[2]["is_success"] is False
        obs_a, _ = cued.reset(seed=seed)
        obs_b, info = mirrored.reset(seed=seed)
        np.testing.assert_array_equal(obs_a, obs_b)
        for _ in range(5):
            obs_a, *_ = cued.step(FORWARD)
            obs_b, *_ = mirrored.step(FORWARD)
            np.testing.assert_array_equal(obs_a, obs_b)
        away = RIGHT if info["cue"] == 0 else LEFT
        lines = mirrored.render().splitlines()
        goal_row = 2 if away == LEFT else 4  # row 2: the left arm, row 4: the right arm
        assert lines[goal_row][-2] == "G" and "opposite" in lines[0]
        _, reward, terminated, _, step_info = mirrored.step(away)
        assert terminated and reward == 1.0 and step_info["is_success"] is True
    with pytest.raises(ValueError, match="goal_arm"):
        gymnasium.make("dnc/TMaze-v0", goal_arm="left")


def test_arena_marker_changes_only_what_the_corridor_sensor_reads():
    plain = gymnasium.make("dnc/TMaze-v0", length=4)
    marked = gymnasium.make("dnc/TMaze-v0", length=4, arena_marker=0.5)
    for seed in range(5):
        a, b = plain.reset(seed=seed)[0], marked.reset(seed=seed)[0]
        for _ in range(5):  # the corridor, then the junction
            expect = a.copy()
            expect[2] *= 0.5
            np.testing.assert_array_equal(b, expect)
            assert marked.observation_space.contains(b)
            a, b = plain.step(FORWARD)[0], marked.step(FORWARD)[0]
        assert run_episode(marked, TMazeOracle(), seed=seed)[2]["is_success"] is True
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="arena_marker"):
            gymnasium.make("dnc/TMaze-v0", arena_marker=bad)
