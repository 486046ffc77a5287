"""Copy and Repeat-Copy: timeline, reward scheme, oracle and chance-level baselines."""

import gymnasium
import numpy as np
import pytest

import sim  # noqa: F401  (registers the dnc/ ids)
from sim.oracles import CopyOracle, run_episode


def test_copy_timeline_and_observations():
    env = gymnasium.make("dnc/Copy-v0", bits=3, length=4)
    obs, info = env.reset(seed=1)
    assert info == {"length": 4, "repeats": 1}
    seq = env.unwrapped._seq.copy()
    inputs = [obs]
    for _ in range(3):
        obs, reward, terminated, _, _ = env.step(np.zeros(3, np.int8))
        assert reward == 0.0 and not terminated  # input phase is never scored
        inputs.append(obs)
    inputs = np.array(inputs)
    np.testing.assert_array_equal(inputs[:, :3], seq)
    np.testing.assert_array_equal(inputs[:, 3:], [[1, 0]] * 4)  # input flag on
    obs, reward, terminated, _, _ = env.step(seq[0])  # answers on the last input step count 0
    assert reward == 0.0
    np.testing.assert_array_equal(obs, [0, 0, 0, 0, 1])  # output phase: blank + output flag
    obs, reward, *_ = env.step(seq[0])
    assert reward == pytest.approx(1.0)
    obs, reward, *_ = env.step(1 - seq[1])
    assert reward == pytest.approx(0.0)
    wrong_one = seq[2].copy()
    wrong_one[0] ^= 1
    obs, reward, terminated, _, _ = env.step(wrong_one)
    assert reward == pytest.approx(2 / 3) and not terminated
    obs, reward, terminated, truncated, info = env.step(seq[3])
    assert terminated and not truncated and info["is_success"] is False


def test_copy_oracle_is_perfect():
    env = gymnasium.make("dnc/Copy-v0", bits=8, length=12, min_length=1)
    for seed in range(20):
        ret, steps, info = run_episode(env, CopyOracle(8), seed=seed)
        length = steps // 2
        assert info["is_success"] is True
        assert ret == pytest.approx(length)


def test_repeat_copy_oracle_is_perfect_and_episode_length_matches_repeats():
    env = gymnasium.make(
        "dnc/RepeatCopy-v0", bits=4, length=6, min_length=2, repeats=4, min_repeats=1
    )
    seen = set()
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        length, repeats = info["length"], info["repeats"]
        seen.add(repeats)
        assert obs[-1] == pytest.approx(repeats / 4)  # repeat channel on input steps
        ret, steps, final = run_episode(env, CopyOracle(4), seed=seed)
        assert steps == length * (1 + repeats)
        assert ret == pytest.approx(length * repeats)
        assert final["is_success"] is True
    assert seen == {1, 2, 3, 4}


class _Constant:
    def reset(self):
        pass

    def act(self, obs):
        return np.ones(4, np.int8)


def test_memoryless_answer_scores_chance_per_bit_and_fails():
    env = gymnasium.make("dnc/RepeatCopy-v0", bits=4, length=8, repeats=2)
    results = [run_episode(env, _Constant(), seed=s) for s in range(100)]
    per_bit = np.mean([ret for ret, _, _ in results]) / 16
    assert 0.4 < per_bit < 0.6
    assert np.mean([info["is_success"] for _, _, info in results]) < 0.05


def test_action_shape_is_checked():
    env = gymnasium.make("dnc/Copy-v0", bits=4)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(5, np.int8))
