"""HideVelocity and the registered CartPolePO task."""

import gymnasium
import numpy as np
import pytest

import sim  # noqa: F401
from sim.oracles import CartPoleDifferenceOracle, CartPoleMemoryless, run_episode
from sim.wrappers import HideVelocity


def test_cartpole_po_observes_positions_only():
    env = gymnasium.make("dnc/CartPolePO-v0")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (2,)
    for i in range(20):
        state = np.asarray(env.unwrapped.state, np.float32)
        np.testing.assert_array_equal(obs, state[[0, 2]])
        obs, _, terminated, _, _ = env.step(i % 2)  # alternating pushes keep the pole up
        assert not terminated


def test_cartpole_po_is_solvable_with_memory_and_not_without():
    env = gymnasium.make("dnc/CartPolePO-v0")
    with_memory = [run_episode(env, CartPoleDifferenceOracle(), seed=s) for s in range(5)]
    assert all(steps == 500 and info["is_success"] is True for _, steps, info in with_memory)
    without = [run_episode(env, CartPoleMemoryless(), seed=s) for s in range(5)]
    assert all(steps < 200 and info["is_success"] is False for _, steps, info in without)


def test_max_steps_is_truncation_with_success():
    env = gymnasium.make("dnc/CartPolePO-v0", max_steps=20)
    _, steps, info = run_episode(env, CartPoleDifferenceOracle(), seed=0)
    assert steps == 20 and info["is_success"] is True


@pytest.mark.parametrize(
    ("env_id", "kept"),
    [("CartPole-v1", 2), ("Pendulum-v1", 2), ("MountainCar-v0", 1), ("Acrobot-v1", 4)],
)
def test_hide_velocity_defaults_for_classic_control(env_id, kept):
    base = gymnasium.make(env_id)
    env = HideVelocity(base)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (kept,) and env.observation_space.contains(obs)
    np.testing.assert_array_equal(env.observation_space.low, base.observation_space.low[env.keep])
    full, _ = gymnasium.make(env_id).reset(seed=0)
    np.testing.assert_array_equal(obs, full[env.keep])
    assert len(full) > kept


def test_hide_velocity_rejects_bad_arguments():
    with pytest.raises(ValueError, match="keep must be given"):
        HideVelocity(gymnasium.make("dnc/TMaze-v0"))
    with pytest.raises(ValueError, match=r"keep must be distinct integer indices in \[0, 3\]"):
        HideVelocity(gymnasium.make("CartPole-v1"), keep=(0, 4))
    with pytest.raises(ValueError, match="keep must be distinct"):
        HideVelocity(gymnasium.make("CartPole-v1"), keep=(0, 0))
    with pytest.raises(ValueError, match="1-D Box"):
        HideVelocity(gymnasium.make("FrozenLake-v1"), keep=(0,))
    env = HideVelocity(gymnasium.make("dnc/TMaze-v0"), keep=(2, 3))
    assert env.reset(seed=0)[0].tolist() == [1.0, 0.0]
