"""A2C correctness: GAE by hand, NEXT_STEP autoreset masking, truncation bootstrap under
the carried memory, reset masks, truncated BPTT, and the spaces the trainer accepts."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from training.a2c import (EpisodeTracker, a2c_loss, build_policy, collect_rollout,
                          compute_gae, make_envs, start_carry)
from training.config import TrainConfig
from training.spaces import ObsFlattener, action_spec, to_env_actions


# -- a tiny env whose returns are known exactly -------------------------------------------
class ChainEnv(gym.Env):
    """Reward 1 every step; ends after ``length`` steps by termination or truncation.
    The observation is the step index (so the policy could tell where it is)."""

    def __init__(self, length=3, truncate=False):
        self.length, self.truncate = length, truncate
        self.observation_space = spaces.Box(0.0, 100.0, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        return (np.array([self.t], np.float32), 1.0, end and not self.truncate,
                end and self.truncate, {"is_success": True} if end else {})


if "test/Chain-v0" not in gym.registry:
    gym.register("test/Chain-v0", entry_point=ChainEnv)


def chain_setup(truncate, length=3, num_envs=2, core="dnc"):
    cfg = TrainConfig(env="test/Chain-v0", env_kwargs={"length": length, "truncate": truncate},
                      core=core, core_config={"hidden_size": 8} if core == "lstm" else
                      {"hidden_size": 8, "memory_slots": 4, "word_size": 4, "read_heads": 1},
                      num_envs=num_envs, normalize_obs=False, gamma=0.9, gae_lambda=1.0,
                      normalize_advantages=False).validate()
    envs = make_envs(cfg, 0)
    flatten = ObsFlattener(envs.single_observation_space)
    torch.manual_seed(0)
    policy = build_policy(cfg, flatten.dim, action_spec(envs.single_action_space))
    return cfg, envs, flatten, policy


# -- GAE by hand --------------------------------------------------------------------------
def test_gae_terminated_episode_inside_the_rollout():
    # One env: steps 0,1,2 are an episode that terminates at 2; step 3 is the NEXT_STEP
    # autoreset row (invalid); step 4 starts the next episode.
    g, lam = 0.9, 0.8
    rewards = torch.tensor([[1.0], [2.0], [3.0], [0.0], [5.0]])
    values = torch.tensor([[0.5], [0.4], [0.3], [9.9], [0.2]])
    term = torch.tensor([[0.0], [0.0], [1.0], [0.0], [0.0]])
    trunc = torch.zeros(5, 1)
    valid = torch.tensor([[1.0], [1.0], [1.0], [0.0], [1.0]])
    boot = torch.tensor([0.7])
    adv = compute_gae(rewards, values, boot, term, trunc, valid, g, lam)
    d2 = 3.0 - 0.3  # terminated: no bootstrap, and V(autoreset row) = 9.9 is never used
    d1 = 2.0 + g * 0.3 - 0.4
    d0 = 1.0 + g * 0.4 - 0.5
    d4 = 5.0 + g * 0.7 - 0.2
    expect = [d0 + g * lam * (d1 + g * lam * d2), d1 + g * lam * d2, d2, 0.0, d4]
    torch.testing.assert_close(adv[:, 0], torch.tensor(expect))


def test_gae_truncation_bootstraps_from_the_final_observation_value():
    g, lam = 0.9, 1.0
    rewards = torch.tensor([[1.0], [1.0], [0.0]])
    values = torch.tensor([[0.0], [0.0], [4.0]])  # row 2: V(final obs) under the memory
    term = torch.zeros(3, 1)
    trunc = torch.tensor([[0.0], [1.0], [0.0]])
    valid = torch.tensor([[1.0], [1.0], [0.0]])
    adv = compute_gae(rewards, values, torch.tensor([100.0]), term, trunc, valid, g, lam)
    # Returns 1 + g (1 + g * 4) and 1 + g * 4: the truncated episode is bootstrapped.
    torch.testing.assert_close(adv[:, 0], torch.tensor([1 + g * (1 + g * 4.0), 1 + g * 4.0, 0.0]))
    # Treating the truncation as a termination would have given 1 + g and 1.
    term_adv = compute_gae(rewards, values, torch.tensor([100.0]), trunc, term, valid, g, lam)
    assert not torch.allclose(term_adv, adv)


def test_gae_bootstraps_the_rollout_end():
    adv = compute_gae(torch.ones(2, 1), torch.zeros(2, 1), torch.tensor([10.0]),
                      torch.zeros(2, 1), torch.zeros(2, 1), torch.ones(2, 1), 0.5, 1.0)
    torch.testing.assert_close(adv[:, 0], torch.tensor([1 + 0.5 * (1 + 0.5 * 10.0), 1 + 0.5 * 10.0]))


# -- the rollout against the real vector env ----------------------------------------------
@pytest.mark.parametrize("truncate", [False, True])
def test_rollout_masks_autoreset_rows_and_sets_resets(truncate):
    cfg, envs, flatten, policy = chain_setup(truncate, length=3)
    carry = start_carry(policy, envs, [0, 1], torch.device("cpu"))
    tracker = EpisodeTracker(2, 100)
    r, carry = collect_rollout(policy, envs, carry, 9, flatten, envs.single_action_space, tracker)
    # Episodes of 3 steps: steps 0-2 real, 3 autoreset, 4-6 real, 7 autoreset, 8 real.
    valid = torch.tensor([1, 1, 1, 0, 1, 1, 1, 0, 1.0])
    resets = torch.tensor([1, 0, 0, 0, 1, 0, 0, 0, 1.0])  # first obs of each episode
    for b in range(2):
        torch.testing.assert_close(r.valid[:, b], valid)
        torch.testing.assert_close(r.resets[:, b], resets)
    ended = r.terminated if not truncate else r.truncated
    assert ended[:, 0].tolist() == [0, 0, 1, 0, 0, 0, 1, 0, 0]
    assert (r.rewards * (1 - r.valid)).abs().sum() == 0  # autoreset rows carry no reward
    # The autoreset rows saw the ended episode's final observation (t = 3).
    assert (r.obs[[3, 7], :, 0] == 3.0).all() and (r.obs[[4, 8], :, 0] == 0.0).all()
    assert tracker.episodes == 4 and list(tracker.returns) == [3.0] * 4
    assert list(tracker.successes) == [1.0] * 4
    envs.close()


def test_truncation_bootstrap_is_the_value_of_the_final_obs_under_the_carried_memory():
    cfg, envs, flatten, policy = chain_setup(truncate=True, length=3, num_envs=1)
    carry = start_carry(policy, envs, [0], torch.device("cpu"))
    r, _ = collect_rollout(policy, envs, carry, 5, flatten, envs.single_action_space)
    # Replay the episode by hand: obs 0, 1, 2 then the final obs 3, memory carried along.
    state = policy.initial_state(1)
    with torch.no_grad():
        for t, o in enumerate([0.0, 1.0, 2.0, 3.0]):
            out, state = policy(torch.tensor([[o]]), state, torch.tensor([1.0 if t == 0 else 0.0]))
    torch.testing.assert_close(r.value[3, 0].detach(), out.value[0])
    # A fresh memory would give another value: the memory really is carried.
    with torch.no_grad():
        fresh, _ = policy(torch.tensor([[3.0]]), policy.initial_state(1))
    assert not torch.allclose(fresh.value, out.value)
    # And GAE uses it: with lambda = 1 the return-to-go of step 0 is 1 + g + g^2 + g^3 V.
    loss, _ = a2c_loss(r, cfg)  # runs end to end
    adv = compute_gae(r.rewards, r.value.detach(), r.bootstrap, r.terminated, r.truncated,
                      r.valid, cfg.gamma, cfg.gae_lambda)
    g, v_final = cfg.gamma, float(out.value)
    expect = 1 + g + g ** 2 + g ** 3 * v_final
    torch.testing.assert_close(adv[0, 0] + r.value[0, 0].detach(), torch.tensor(expect))
    envs.close()


def test_memory_resets_at_episode_start_inside_a_rollout():
    cfg, envs, flatten, policy = chain_setup(truncate=False, length=3, num_envs=1)
    carry = start_carry(policy, envs, [0], torch.device("cpu"))
    r, _ = collect_rollout(policy, envs, carry, 8, flatten, envs.single_action_space)
    # Every episode sees the same observations 0, 1, 2 from a reset memory, so the values
    # of its steps repeat exactly: nothing leaks from the previous episode.
    v = r.value[:, 0].detach()
    torch.testing.assert_close(v[4:7], v[0:3], rtol=0, atol=0)
    envs.close()


def test_rollouts_are_truncated_bptt():
    cfg, envs, flatten, policy = chain_setup(truncate=False, length=50, num_envs=2)
    carry = start_carry(policy, envs, [0, 1], torch.device("cpu"))
    opt = torch.optim.SGD(policy.parameters(), lr=1e-3)
    for _ in range(3):  # without the detach, the 2nd backward would reach a freed graph
        r, carry = collect_rollout(policy, envs, carry, 4, flatten, envs.single_action_space)
        loss, _ = a2c_loss(r, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert carry.state.memory.grad_fn is not None  # the carry is live until detached
    r, _ = collect_rollout(policy, envs, carry, 1, flatten, envs.single_action_space)
    # The graph of the new rollout starts at the detached state: its leaves are params.
    grads = torch.autograd.grad(r.value.sum(), [carry.state.memory], allow_unused=True)
    assert grads[0] is None
    envs.close()


# -- spaces ---------------------------------------------------------------------------------
def test_obs_flattening_of_every_supported_space():
    assert ObsFlattener(spaces.Discrete(3, start=1))(np.array([1, 3])).tolist() == \
        [[1, 0, 0], [0, 0, 1]]
    md = ObsFlattener(spaces.MultiDiscrete([2, 3]))
    assert md.dim == 5 and md(np.array([[1, 2], [0, 0]])).tolist() == \
        [[0, 1, 0, 0, 1], [1, 0, 1, 0, 0]]
    assert ObsFlattener(spaces.MultiBinary([2, 2]))(np.ones((1, 2, 2), np.int8)).shape == (1, 4)
    box = ObsFlattener(spaces.Box(-1, 1, (2, 3)))
    assert box.dim == 6 and box(np.zeros((4, 2, 3))).dtype == np.float32
    with pytest.raises(ValueError, match="observation space .* is not supported"):
        ObsFlattener(spaces.Dict({"a": spaces.Discrete(2)}))


def test_action_specs_and_env_actions():
    assert action_spec(spaces.Discrete(4)).kind == "discrete"
    assert action_spec(spaces.MultiDiscrete([2, 3])).nvec == (2, 3)
    assert action_spec(spaces.MultiBinary(3)).n == 3
    box = spaces.Box(np.array([-1, -2], np.float32), np.array([1, 2], np.float32))
    spec = action_spec(box)
    assert spec.low == (-1.0, -2.0) and spec.high == (1.0, 2.0)
    out = to_env_actions(np.zeros((3, 2), np.float32), box)
    assert out.shape == (3, 2) and out.dtype == np.float32
    assert to_env_actions(np.array([[1], [0]]), spaces.Discrete(2)).shape == (2,)
    with pytest.raises(ValueError, match="must start at 0"):
        action_spec(spaces.Discrete(3, start=1))
