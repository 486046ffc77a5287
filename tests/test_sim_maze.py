"""ProceduralMaze: valid random mazes, BFS solvability, and memory making later trials faster."""

import gymnasium
import numpy as np
import pytest

import sim  # noqa: F401
from sim.maze import carve_maze
from sim.oracles import MazeBFSOracle, MazeMemoryAgent, bfs_path, run_episode


@pytest.mark.parametrize("size", [2, 5, 12])
def test_carved_maze_is_a_perfect_maze(size):
    walls = carve_maze(size, np.random.default_rng(size))
    n = 2 * size + 1
    assert walls.shape == (n, n)
    assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
    assert not walls[1::2, 1::2].any()  # every maze cell is open
    assert walls[::2, ::2].all()  # wall posts stay
    # A spanning tree of size*size cells opens exactly size*size - 1 passages ...
    passages = np.count_nonzero(~walls) - size * size
    assert passages == size * size - 1
    # ... and connects all of them.
    free = {(r, c) for r, c in zip(*np.nonzero(~walls))}
    reached, frontier = {(1, 1)}, [(1, 1)]
    while frontier:
        r, c = frontier.pop()
        for q in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if q in free and q not in reached:
                reached.add(q)
                frontier.append(q)
    assert reached == free


def test_each_episode_has_a_new_maze():
    env = gymnasium.make("dnc/ProceduralMaze-v0")
    env.reset(seed=0)
    first = env.unwrapped.walls.copy()
    env.reset()
    assert not np.array_equal(first, env.unwrapped.walls)


def _shortest(env):
    u = env.unwrapped
    w = u.grid_width
    return len(bfs_path(divmod(u.start, w), divmod(u.goal, w), lambda p: not u.walls[p]))


def test_bfs_oracle_solves_every_trial_by_a_shortest_path():
    env = gymnasium.make("dnc/ProceduralMaze-v0", size=6, n_trials=3)
    for seed in range(15):
        env.reset(seed=seed)
        shortest = _shortest(env)
        ret, steps, info = run_episode(env, MazeBFSOracle(env), seed=seed)
        assert info["is_success"] is True
        assert info["trial_steps"] == (shortest,) * 3
        assert ret == pytest.approx(3 * 1.0 - 0.01 * (steps - 3))


def test_memory_makes_later_trials_shortest_and_faster():
    env = gymnasium.make("dnc/ProceduralMaze-v0", size=5, n_trials=3)
    firsts, laters = [], []
    for seed in range(25):
        env.reset(seed=seed)
        shortest = _shortest(env)
        _, _, info = run_episode(env, MazeMemoryAgent(), seed=seed)
        assert info["is_success"] is True
        first, *later = info["trial_steps"]
        assert later == [shortest, shortest]  # remembered route = the unique shortest path
        assert first >= shortest
        firsts.append(first)
        laters.append(np.mean(later))
    assert np.mean(firsts) > 1.3 * np.mean(laters)


def test_observation_window_and_trial_flag():
    env = gymnasium.make("dnc/ProceduralMaze-v0", size=4, view_radius=1)
    obs, info = env.reset(seed=2)
    u = env.unwrapped
    assert obs.shape == (19,) and info == {"trial": 0, "size": 4}
    r, c = divmod(u._pos, u.grid_width)
    np.testing.assert_array_equal(obs[:9].reshape(3, 3), u.walls[r - 1 : r + 2, c - 1 : c + 2])
    assert obs[-1] == 1.0
    action = next(a for a, (dr, dc) in enumerate(((-1, 0), (0, 1), (1, 0), (0, -1)))
                  if not u.walls[r + dr, c + dc])
    obs, *_ = env.step(action)
    assert obs[-1] == 0.0


def test_trial_end_respawns_at_start_and_reports_steps():
    env = gymnasium.make("dnc/ProceduralMaze-v0", n_trials=2)
    obs, _ = env.reset(seed=4)
    oracle = MazeBFSOracle(env)
    steps = 0
    while True:
        obs, reward, terminated, _, info = env.step(oracle.act(obs))
        steps += 1
        if reward > 0:
            break
    assert not terminated and info["trial_steps"] == (steps,) and info["trial"] == 1
    assert obs[-1] == 1.0 and env.unwrapped._pos == env.unwrapped.start


def test_random_respawn_moves_the_agent_between_trials():
    env = gymnasium.make("dnc/ProceduralMaze-v0", respawn="random", n_trials=12)
    obs, _ = env.reset(seed=0)
    oracle, u, starts = MazeBFSOracle(env), env.unwrapped, set()
    terminated = False
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
        assert not truncated
        if reward > 0 and not terminated:
            starts.add(u._pos)
    assert info["is_success"] is True and len(info["trial_steps"]) == 12
    assert len(starts) > 3 and u.goal not in starts


def test_truncation_reports_failure_and_trial_steps():
    env = gymnasium.make("dnc/ProceduralMaze-v0", max_steps=5)
    env.reset(seed=0)
    u = env.unwrapped
    blocked = next(a for a, off in enumerate(u._offsets) if not u._free[u._pos + off])
    for step in range(1, 6):
        _, reward, terminated, truncated, info = env.step(blocked)
        assert reward == pytest.approx(-0.01) and not terminated
    assert truncated and info == {"is_success": False, "trial_steps": ()}


# ------------------------------------------------------------------ randomised sizes
def _sizes(env, seed, n):
    first = env.reset(seed=seed)[1]["size"]
    return [first] + [env.reset()[1]["size"] for _ in range(n - 1)]


def test_drawn_sizes_stay_in_bounds_cover_both_ends_and_shape_the_maze():
    env = gymnasium.make("dnc/ProceduralMaze-v0", size=[2, 5], n_trials=2)
    u = env.unwrapped
    assert u.size_range == (2, 5) and u.size == 5  # before the first reset: hi
    seen = []
    for seed in range(80):
        obs, info = env.reset(seed=seed)
        n = info["size"]
        seen.append(n)
        assert u.size == n and u.walls.shape == (2 * n + 1, 2 * n + 1)
        assert u.grid_width == 2 * n + 1 and u.max_steps == 8 * n * n * 2
        assert obs.shape == env.observation_space.shape
    assert set(seen) == {2, 3, 4, 5}
    fixed = gymnasium.make("dnc/ProceduralMaze-v0", size=[2, 5], max_steps=77).unwrapped
    fixed.reset(seed=0)
    assert fixed.max_steps == 77


def test_same_seed_same_sizes_and_mazes_different_seeds_differ():
    a, b = (gymnasium.make("dnc/ProceduralMaze-v0", size=(2, 12)) for _ in range(2))
    assert _sizes(a, 3, 15) == _sizes(b, 3, 15)
    a.reset(seed=9)
    b.reset(seed=9)
    np.testing.assert_array_equal(a.unwrapped.walls, b.unwrapped.walls)
    assert _sizes(a, 4, 15) != _sizes(b, 3, 15)


def test_a_fixed_size_draws_nothing_and_reports_its_size():
    """A one-value range leaves the random stream as before: same maze for the seed."""
    env = gymnasium.make("dnc/ProceduralMaze-v0", size=5)
    walls = carve_maze(5, np.random.default_rng(np.random.SeedSequence(11)))
    assert env.reset(seed=11)[1] == {"trial": 0, "size": 5}
    np.testing.assert_array_equal(env.unwrapped.walls, walls)


def test_bfs_oracle_solves_every_drawn_size():
    env = gymnasium.make("dnc/ProceduralMaze-v0", size=[2, 8], n_trials=2)
    sizes = set()
    for seed in range(30):
        env.reset(seed=seed)
        sizes.add(env.unwrapped.size)
        shortest = _shortest(env)
        _, _, info = run_episode(env, MazeBFSOracle(env), seed=seed)
        assert info["is_success"] is True and info["trial_steps"] == (shortest,) * 2
    assert len(sizes) >= 5


@pytest.mark.parametrize("size", [[6, 3], [1, 4], [3, 51], [2, 3, 4], [2.0, 3], "2..5"])
def test_bad_size_ranges_raise_value_error_naming_the_argument(size):
    with pytest.raises(ValueError, match=r"^size must be an integer in \[2, 50\] or a range"):
        gymnasium.make("dnc/ProceduralMaze-v0", size=size)
