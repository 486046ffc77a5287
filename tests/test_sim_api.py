"""API-level checks every sim environment must pass: registration, Gymnasium's env
checker, seeded determinism, rendering, argument validation, vectorisation, no torch."""

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim

GRID_IDS = ["dnc/TMaze-v0", "dnc/ProceduralMaze-v0"]
ANSI_IDS = ["dnc/Copy-v0", "dnc/RepeatCopy-v0", *GRID_IDS]
# Advisory warnings check_env gives that are design decisions, not defects:
# the CartPolePO env is a wrapper by construction; MemoryNav's action space is in
# physical units (m/s, rad/s) on purpose, to map 1:1 onto a Twist message.
ALLOWED_WARNINGS = {
    "dnc/CartPolePO-v0": ".*different from the unwrapped version",
    "dnc/MemoryNav-v0": ".*symmetric and normalized space",
}
# The randomised forms: a setting drawn from [lo, hi] at every reset (and MemoryNav's
# controls with the goal offset observed at every step and never).
RANGE_CASES = [
    ("dnc/TMaze-v0", {"length": [3, 12]}),
    ("dnc/TMaze-v0", {"length": (1, 40), "cue_steps": 1, "max_steps": 60}),
    ("dnc/ProceduralMaze-v0", {"size": [2, 6]}),
    ("dnc/MemoryNav-v0", {"cue_steps": [1, 8]}),
    ("dnc/MemoryNav-v0", {"cue_steps": [1, 8], "show_goal": "always"}),
    ("dnc/MemoryNav-v0", {"show_goal": "never"}),
]


def test_all_ids_registered():
    expected = {
        "dnc/Copy-v0",
        "dnc/RepeatCopy-v0",
        "dnc/TMaze-v0",
        "dnc/ProceduralMaze-v0",
        "dnc/MemoryNav-v0",
        "dnc/CartPolePO-v0",
    }
    assert set(sim.ENV_IDS) == expected
    assert expected <= set(gymnasium.registry)


def test_registration_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(sim)
        sim.register_envs()
        sim.register_envs()
    assert isinstance(gymnasium.make("dnc/TMaze-v0").unwrapped, sim.TMazeEnv)


def strict_check_env(env_id, env):
    """check_env with every warning an error but the ones ALLOWED_WARNINGS names."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if env_id in ALLOWED_WARNINGS:
            warnings.filterwarnings("ignore", message=ALLOWED_WARNINGS[env_id])
        check_env(env)


@pytest.mark.parametrize("env_id", sim.ENV_IDS)
def test_check_env_passes_without_unexpected_warnings(env_id):
    env = gymnasium.make(env_id)
    strict_check_env(env_id, env if env_id == "dnc/CartPolePO-v0" else env.unwrapped)


@pytest.mark.parametrize(("env_id", "kwargs"), RANGE_CASES)
@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
def test_check_env_passes_with_drawn_settings(env_id, kwargs, render_mode):
    strict_check_env(env_id, gymnasium.make(env_id, render_mode=render_mode, **kwargs).unwrapped)


@pytest.mark.parametrize(("env_id", "kwargs"), RANGE_CASES)
def test_drawn_settings_keep_spaces_and_frame_size(env_id, kwargs):
    """Spaces do not depend on the drawn value, and rgb_array frames keep one size across
    episodes of different drawn sizes (the grid envs draw on the largest canvas)."""
    env = gymnasium.make(env_id, render_mode="rgb_array", **kwargs)
    fixed = gymnasium.make(env_id)
    assert env.observation_space == fixed.observation_space
    assert env.action_space == fixed.action_space
    shapes = set()
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        shapes.add(env.render().shape)
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        shapes.add(env.render().shape)
    assert len(shapes) == 1


@pytest.mark.parametrize("env_id", sim.ENV_IDS)
def test_spaces_are_flat_float32_boxes(env_id):
    env = gymnasium.make(env_id)
    space = env.observation_space
    assert isinstance(space, gymnasium.spaces.Box)
    assert space.dtype == np.float32 and len(space.shape) == 1
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and space.contains(obs)


def _trajectory(env_id, seed, n_steps=400, **kwargs):
    env = gymnasium.make(env_id, **kwargs)
    env.action_space.seed(123)
    actions = [env.action_space.sample() for _ in range(n_steps)]
    obs, _ = env.reset(seed=seed)
    record = [obs]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        record += [obs, np.float64(reward), np.bool_(terminated), np.bool_(truncated)]
        if terminated or truncated:
            record.append(env.reset()[0])  # unseeded resets continue the seeded stream
    return record


@pytest.mark.parametrize("env_id", sim.ENV_IDS)
def test_same_seed_same_trajectory(env_id):
    a, b = _trajectory(env_id, seed=7), _trajectory(env_id, seed=7)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = _trajectory(env_id, seed=8)
    assert len(a) != len(c) or any(not np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize(("env_id", "kwargs"), RANGE_CASES)
def test_same_seed_same_trajectory_with_drawn_settings(env_id, kwargs):
    a, b = _trajectory(env_id, 7, **kwargs), _trajectory(env_id, 7, **kwargs)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("env_id", sim.ENV_IDS)
def test_rgb_array_frames(env_id):
    env = gymnasium.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.shape[0] >= 16 and first.shape[1] >= 16
    assert len(np.unique(first.reshape(-1, 3), axis=0)) >= 3  # actually draws something
    env.action_space.seed(0)
    for _ in range(10):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frame = env.render()
        assert frame.shape == first.shape and frame.dtype == np.uint8
        if terminated or truncated:
            break


@pytest.mark.parametrize("env_id", ANSI_IDS)
def test_ansi_text(env_id):
    env = gymnasium.make(env_id, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert isinstance(text, str) and text.count("\n") >= 3
    if env_id in GRID_IDS:
        assert text.count("A") == 1 and "#" in text


@pytest.mark.parametrize(
    ("env_id", "kwargs", "name"),
    [
        ("dnc/Copy-v0", {"bits": 0}, "bits"),
        ("dnc/Copy-v0", {"length": 2.5}, "length"),
        ("dnc/Copy-v0", {"length": 4, "min_length": 5}, "min_length"),
        ("dnc/RepeatCopy-v0", {"repeats": 0}, "repeats"),
        ("dnc/RepeatCopy-v0", {"repeats": 2, "min_repeats": 3}, "min_repeats"),
        ("dnc/TMaze-v0", {"length": 0}, "length"),
        ("dnc/TMaze-v0", {"length": 5, "cue_steps": 6}, "cue_steps"),
        ("dnc/TMaze-v0", {"wrong_reward": 1.0}, "wrong_reward"),
        ("dnc/TMaze-v0", {"step_penalty": -0.1}, "step_penalty"),
        ("dnc/TMaze-v0", {"length": 10, "max_steps": 10}, "max_steps"),
        ("dnc/TMaze-v0", {"length": True}, "length"),
        ("dnc/TMaze-v0", {"length": [30, 5]}, "length"),
        ("dnc/TMaze-v0", {"length": [0, 5]}, "length"),
        ("dnc/TMaze-v0", {"length": [5, 100_001]}, "length"),
        ("dnc/TMaze-v0", {"length": [5, 10, 20]}, "length"),
        ("dnc/TMaze-v0", {"length": [5.0, 10]}, "length"),
        ("dnc/TMaze-v0", {"length": "5-10"}, "length"),
        ("dnc/TMaze-v0", {"length": [5, 10], "cue_steps": 6}, "cue_steps"),
        ("dnc/TMaze-v0", {"length": [5, 10], "max_steps": 10}, "max_steps"),
        ("dnc/ProceduralMaze-v0", {"size": [6, 3]}, "size"),
        ("dnc/ProceduralMaze-v0", {"size": [1, 3]}, "size"),
        ("dnc/ProceduralMaze-v0", {"size": [3, 51]}, "size"),
        ("dnc/MemoryNav-v0", {"cue_steps": [0, 3]}, "cue_steps"),
        ("dnc/MemoryNav-v0", {"cue_steps": [3, 40], "max_steps": 40}, "cue_steps"),
        ("dnc/MemoryNav-v0", {"cue_steps": [4, 2]}, "cue_steps"),
        ("dnc/ProceduralMaze-v0", {"size": 1}, "size"),
        ("dnc/ProceduralMaze-v0", {"view_radius": 0}, "view_radius"),
        ("dnc/ProceduralMaze-v0", {"respawn": "nowhere"}, "respawn"),
        ("dnc/ProceduralMaze-v0", {"n_trials": 0}, "n_trials"),
        ("dnc/MemoryNav-v0", {"v_max": 0.0}, "v_max"),
        ("dnc/MemoryNav-v0", {"dt": float("nan")}, "dt"),
        ("dnc/MemoryNav-v0", {"goal_radius": 5.0}, "goal_radius"),
        ("dnc/MemoryNav-v0", {"cue_steps": 200, "max_steps": 200}, "cue_steps"),
        ("dnc/CartPolePO-v0", {"max_steps": 0}, "max_steps"),
        ("dnc/TMaze-v0", {"render_mode": "rgb"}, "render_mode"),
        ("dnc/MemoryNav-v0", {"render_mode": "ansi"}, "render_mode"),
        ("dnc/MemoryNav-v0", {"show_goal": True}, "show_goal"),
    ],
)
@pytest.mark.filterwarnings("ignore:.*render_mode")  # gymnasium.make's own notice
def test_bad_arguments_raise_clear_value_error(env_id, kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        gymnasium.make(env_id, **kwargs)


def test_error_message_states_the_expected_range():
    with pytest.raises(ValueError) as excinfo:
        gymnasium.make("dnc/TMaze-v0", length=0)
    assert str(excinfo.value) == ("length must be an integer in [1, 100000] or a range "
                                  "[lo, hi] of two such integers with lo <= hi, got 0")
    with pytest.raises(ValueError) as excinfo:
        gymnasium.make("dnc/TMaze-v0", length=[30, 5])
    assert str(excinfo.value) == ("length must be an integer in [1, 100000] or a range "
                                  "[lo, hi] of two such integers with lo <= hi, got [30, 5]")
    with pytest.raises(ValueError, match=r"^size must be an integer in \[2, 50\] or a range"):
        gymnasium.make("dnc/ProceduralMaze-v0", size=(2, 3, 4))
    with pytest.raises(ValueError, match=r"one of \('start', 'random'\)"):
        gymnasium.make("dnc/ProceduralMaze-v0", respawn="nowhere")


@pytest.mark.parametrize("env_id", sim.ENV_IDS)
def test_sync_vector_env_runs(env_id):
    envs = gymnasium.make_vec(env_id, num_envs=2, vectorization_mode="sync")
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, *envs.single_observation_space.shape)
    for _ in range(50):
        obs, reward, *_ = envs.step(envs.action_space.sample())
    assert obs.dtype == np.float32 and reward.shape == (2,)
    envs.close()


def test_sim_never_imports_torch():
    sources = Path(sim.__file__).parent.glob("*.py")
    offenders = [p.name for p in sources if "import torch" in p.read_text()]
    assert offenders == []
    code = (
        "import sys, gymnasium, sim, sim.bench, sim.oracles\n"
        "for i in sim.ENV_IDS: gymnasium.make(i).reset(seed=0)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(sim.__file__).parents[1])
