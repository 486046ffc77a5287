"""A2C correctness: GAE by hand, NEXT_STEP autoreset masking, truncation bootstrap under
the carried memory, reset masks, truncated BPTT, and the spaces the trainer accepts."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from training.a2c import a2c_loss
from training.rollout import (Context, EpisodeTracker, RewardScaler, collect_rollout,
                              compute_gae, replay, rollout_advantages, start_carry,
                              to_sequences)
from training.runner import _fold, build_policy, make_envs
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
def collect(policy, envs, carry, steps, flatten, window=None, tracker=None):
    return collect_rollout(policy, envs, carry, steps, flatten, envs.single_action_space,
                           window, tracker)


@pytest.mark.parametrize("truncate", [False, True])
def test_rollout_masks_autoreset_rows_and_sets_resets(truncate):
    cfg, envs, flatten, policy = chain_setup(truncate, length=3)
    carry = start_carry(policy, envs, [0, 1], torch.device("cpu"))
    tracker = EpisodeTracker(2, 100)
    r, carry = collect(policy, envs, carry, 9, flatten, tracker=tracker)
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


@pytest.mark.parametrize("truncate", [False, True])
def test_reward_scaler_divides_by_the_std_of_the_discounted_return_carried_per_env(truncate):
    # normalize_rewards, on the real vector env: episodes of 3 rewards of 1 (γ = 0.9), so
    # the discounted returns of the real rows are 1, 1.9, 2.71, 1, ... whichever way the
    # episode ends, and rollouts of 5 steps cut episodes: the return carries over.
    cfg, envs, flatten, policy = chain_setup(truncate, length=3)
    carry = start_carry(policy, envs, [0, 1], torch.device("cpu"))
    scaler = RewardScaler(2, 0.9)
    r1, carry = collect(policy, envs, carry, 5, flatten)
    r2, carry = collect(policy, envs, carry, 5, flatten)
    # Rows of the two rollouts: 1, 1.9, 2.71, (autoreset), 1 | 1.9, 2.71, (autoreset), 1, 1.9
    first, second = [1.0, 1.9, 2.71, 1.0], [1.9, 2.71, 1.0, 1.9]
    raw1, raw2 = r1.rewards.clone(), r2.rewards.clone()
    fold = lambda norm, x: _fold(norm, x, 1, torch.device("cpu"))  # noqa: E731  (the trainer's)
    scaler.scale_(r1, fold)
    g = np.array(first * 2)  # both envs
    assert float(scaler.stats.count) == 8
    np.testing.assert_allclose(float(scaler.stats.mean[0]), g.mean(), rtol=1e-12)
    np.testing.assert_allclose(float(scaler.stats.var[0]), g.var(), rtol=1e-12)
    torch.testing.assert_close(r1.rewards, raw1 / np.sqrt(g.var() + 1e-8))
    scaler.scale_(r2, fold)
    g = np.array((first + second) * 2)
    assert float(scaler.stats.count) == 16
    np.testing.assert_allclose(float(scaler.stats.var[0]), g.var(), rtol=1e-12)
    torch.testing.assert_close(r2.rewards, raw2 / np.sqrt(g.var() + 1e-8))
    assert (r2.rewards * (1 - r2.valid)).abs().sum() == 0  # an autoreset row stays 0
    envs.close()


def value_by_hand(policy, observations):
    """V of the last observation, the memory carried from a fresh start over all."""
    state = policy.initial_state(1)
    with torch.no_grad():
        for t, o in enumerate(observations):
            out, state = policy(torch.tensor([[o]]), state, torch.tensor([float(t == 0)]))
    return out.value[0]


def test_truncation_bootstrap_is_the_value_of_the_final_obs_under_the_carried_memory():
    cfg, envs, flatten, policy = chain_setup(truncate=True, length=3, num_envs=1)
    carry = start_carry(policy, envs, [0], torch.device("cpu"))
    r, _ = collect(policy, envs, carry, 5, flatten)
    # Replay the episode by hand: obs 0, 1, 2 then the final obs 3, memory carried along.
    v_final = value_by_hand(policy, [0.0, 1.0, 2.0, 3.0])
    torch.testing.assert_close(r.value[3, 0], v_final)
    # A fresh memory would give another value: the memory really is carried.
    with torch.no_grad():
        fresh, _ = policy(torch.tensor([[3.0]]), policy.initial_state(1))
    assert not torch.allclose(fresh.value[0], v_final)
    # And GAE uses it: with lambda = 1 the return-to-go of step 0 is 1 + g + g^2 + g^3 V.
    adv = rollout_advantages(r, cfg.gamma, cfg.gae_lambda)
    g = cfg.gamma
    expect = 1 + g + g ** 2 + g ** 3 * float(v_final)
    torch.testing.assert_close(adv[0, 0] + r.value[0, 0], torch.tensor(expect))
    envs.close()


@pytest.mark.parametrize("truncate", [False, True])
def test_an_episode_ending_on_the_rollouts_last_row(truncate):
    """The episode ends on row 2 of a 3-step rollout: a termination bootstraps 0, a
    truncation V(final obs) under the episode's memory (the rollout's bootstrap); the
    done flag is carried, so the next rollout's first row is the invalid autoreset row
    and its second row starts the new episode with a reset memory."""
    cfg, envs, flatten, policy = chain_setup(truncate, length=3, num_envs=1)
    carry = start_carry(policy, envs, [0], torch.device("cpu"))
    r, carry = collect(policy, envs, carry, 3, flatten)
    assert r.valid[:, 0].tolist() == [1, 1, 1] and bool(carry.prev_done[0])
    v_final = value_by_hand(policy, [0.0, 1.0, 2.0, 3.0])
    torch.testing.assert_close(r.bootstrap[0], v_final)
    adv = rollout_advantages(r, cfg.gamma, cfg.gae_lambda)
    last = 1.0 + (cfg.gamma * float(v_final) if truncate else 0.0) - float(r.value[2, 0])
    torch.testing.assert_close(adv[2, 0], torch.tensor(last))
    nxt, _ = collect(policy, envs, carry, 3, flatten)
    assert nxt.valid[:, 0].tolist() == [0, 1, 1] and nxt.resets[:, 0].tolist() == [0, 1, 0]
    assert float(nxt.rewards[0, 0]) == 0.0
    torch.testing.assert_close(nxt.value[1:, 0], r.value[:2, 0], rtol=0, atol=0)
    envs.close()


def test_memory_resets_at_episode_start_inside_a_rollout():
    cfg, envs, flatten, policy = chain_setup(truncate=False, length=3, num_envs=1)
    carry = start_carry(policy, envs, [0], torch.device("cpu"))
    r, _ = collect(policy, envs, carry, 8, flatten)
    # Every episode sees the same observations 0, 1, 2 from a reset memory, so the values
    # of its steps repeat exactly: nothing leaks from the previous episode.
    v = r.value[:, 0]
    torch.testing.assert_close(v[4:7], v[0:3], rtol=0, atol=0)
    envs.close()


# -- the gradient window (bptt) ---------------------------------------------------------------
def replayed(policy, envs, flatten, steps, window, seeds=(0, 1)):
    carry = start_carry(policy, envs, list(seeds), torch.device("cpu"))
    r, carry = collect(policy, envs, carry, steps, flatten, window)
    seq = to_sequences(r, torch.zeros_like(r.rewards))
    return r, seq, carry


def test_bptt_gradient_reaches_the_start_of_the_episode_and_stops_at_its_boundary():
    # Episodes of 6 steps + 1 autoreset row: rows 0-5 episode 1, 6 autoreset, 7-13 ep. 2.
    cfg, envs, flatten, policy = chain_setup(truncate=False, length=6, num_envs=1)
    _, seq, _ = replayed(policy, envs, flatten, 12, 12, seeds=(0,))
    obs = seq.obs.clone().requires_grad_(True)
    seq.obs = obs
    logp, _, value = replay(policy, policy, seq)
    # The last action of episode 1 (row 5) depends on its first observation (row 0)...
    (g,) = torch.autograd.grad(logp[0, 5], obs, retain_graph=True)
    assert g[0, 0].abs().sum() > 0 and g[0, 6:].abs().sum() == 0
    # ...and a step of episode 2 (row 9) on episode 2's first observation (row 7) but
    # not at all on episode 1, even though the memory ran on through the same sequence.
    (g,) = torch.autograd.grad(logp[0, 9] + value[0, 9], obs)
    assert g[0, 7].abs().sum() > 0
    assert g[0, :7].abs().sum() == 0  # exactly zero across the episode boundary
    envs.close()


def test_bptt_window_cuts_the_gradient_but_not_the_memory():
    # One long episode; rollout 12 replayed as sequences of 4 from the stored states.
    cfg, envs, flatten, policy = chain_setup(truncate=False, length=50, num_envs=2)
    r, seq, _ = replayed(policy, envs, flatten, 12, 4)
    assert len(seq) == 2 * 3 and seq.obs.shape[:2] == (6, 4)
    # Sequence k*B + b is env b's steps 4k..4k+3, from the state the rollout had there.
    torch.testing.assert_close(seq.obs[2 * 2 + 1], r.obs[8:12, 1])
    with torch.no_grad():
        logp, _, value = replay(policy, policy, seq)
    for k in range(3):
        for b in range(2):
            torch.testing.assert_close(value[k * 2 + b], r.value[4 * k:4 * k + 4, b])
            torch.testing.assert_close(logp[k * 2 + b], r.logp[4 * k:4 * k + 4, b])
    # The stored start states are the carried memory, not a fresh one: replaying the
    # third window from zeros gives other values.
    fresh = type(seq.start_state)(*(torch.zeros_like(s) for s in seq.start_state))
    seq_fresh = seq.select(torch.arange(len(seq)))
    seq_fresh.start_state = fresh
    with torch.no_grad():
        _, _, v_fresh = replay(policy, policy, seq_fresh)
    assert not torch.allclose(v_fresh[4], value[4])
    # With gradients: a window's start state is a leaf, the previous window is not reached.
    obs = seq.obs.clone().requires_grad_(True)
    seq.obs = obs
    logp, _, _ = replay(policy, policy, seq)
    (g,) = torch.autograd.grad(logp[4, 3], obs)  # env 0, window 2, last step
    assert g[4, 0].abs().sum() > 0 and g[[0, 1, 2, 3, 5]].abs().sum() == 0
    envs.close()


# -- the context before a gradient window (bptt_context) --------------------------------------
def test_bptt_context_carries_the_gradient_into_the_previous_rollout_within_an_episode():
    # Episodes of 6 steps + 1 autoreset row; rollouts of 4, one window each, context 4.
    # r1: episode 1 steps 0-3; r2: its steps 4, 5, the autoreset row, episode 2 step 0.
    cfg, envs, flatten, policy = chain_setup(truncate=False, length=6, num_envs=1)
    carry = start_carry(policy, envs, [0], torch.device("cpu"))
    r1, carry = collect(policy, envs, carry, 4, flatten)
    r2, _ = collect(policy, envs, carry, 4, flatten)
    r2.context = Context.of(r1, 4)
    seq = to_sequences(r2, torch.ones_like(r2.rewards))
    assert seq.obs.shape[:2] == (1, 8)
    torch.testing.assert_close(seq.obs[0], torch.cat([r1.obs[:, 0], r2.obs[:, 0]]))
    assert seq.valid[0, :4].sum() == 0 and (seq.valid[0, 4:] == r2.valid[:, 0]).all()
    assert seq.advantages[0, :4].sum() == 0 and (seq.advantages[0, 4:] == 1).all()
    for a, b in zip(seq.start_state, r1.start_states):  # the state before r1's first step
        torch.testing.assert_close(a[0], b[0, 0], rtol=0, atol=0)
    with torch.no_grad():  # the same weights: the rollout's own numbers (PPO's ratio 1)
        logp, _, value = replay(policy, policy, seq)
    torch.testing.assert_close(logp[0, 4:], r2.logp[:, 0], rtol=0, atol=1e-5)
    torch.testing.assert_close(value[0, :4], r1.value[:, 0], rtol=0, atol=1e-5)
    obs = seq.obs.clone().requires_grad_(True)
    seq.obs = obs
    logp, _, value = replay(policy, policy, seq)
    # Episode 1's last action (r2's row 1) depends on its first observation, in r1...
    (g,) = torch.autograd.grad(logp[0, 5], obs, retain_graph=True)
    assert g[0, 0].abs().sum() > 0
    # ...and episode 2's first step on nothing before it (exactly zero).
    (g,) = torch.autograd.grad(logp[0, 7] + value[0, 7], obs)
    assert g[0, 7].abs().sum() > 0 and g[0, :7].abs().sum() == 0
    # Without the context the window starts at r2 (the stored state is a leaf).
    r2.context = None
    assert to_sequences(r2, torch.ones_like(r2.rewards)).obs.shape[:2] == (1, 4)
    envs.close()


def test_bptt_context_of_later_windows_comes_from_the_same_rollout():
    # Rollout 8 as windows of 4 with a context of 4, two envs in one long episode.
    cfg, envs, flatten, policy = chain_setup(truncate=False, length=50, num_envs=2)
    carry = start_carry(policy, envs, [0, 1], torch.device("cpu"))
    r1, carry = collect(policy, envs, carry, 8, flatten, 4)
    r2, _ = collect(policy, envs, carry, 8, flatten, 4)
    r2.context = Context.of(r1, 4)
    seq = to_sequences(r2, torch.zeros_like(r2.rewards))
    assert len(seq) == 2 * 2 and seq.obs.shape[1] == 8
    for b in range(2):  # sequence k * B + b: env b's window k with the 4 steps before it
        torch.testing.assert_close(seq.obs[b], torch.cat([r1.obs[4:, b], r2.obs[:4, b]]))
        torch.testing.assert_close(seq.obs[2 + b], r2.obs[:, b])
        for s, s1, s2 in zip(seq.start_state, r1.start_states, r2.start_states):
            torch.testing.assert_close(s[b], s1[1, b], rtol=0, atol=0)
            torch.testing.assert_close(s[2 + b], s2[0, b], rtol=0, atol=0)
    with torch.no_grad():
        logp, _, _ = replay(policy, policy, seq)
    for k in range(2):
        for b in range(2):
            torch.testing.assert_close(logp[k * 2 + b, 4:], r2.logp[4 * k:4 * k + 4, b],
                                       rtol=0, atol=1e-5)
    # A run's first rollout has nothing before it: its context is inert, because every
    # env's memory resets at its first step, and a rollout that does not is refused.
    r1.context = Context.before_first(r1, 4)
    with torch.no_grad():
        logp, _, _ = replay(policy, policy, to_sequences(r1, torch.zeros_like(r1.rewards)))
    torch.testing.assert_close(logp[:2, 4:], r1.logp[:4].T, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="must start with every env reset"):
        Context.before_first(r2, 4)
    envs.close()


def test_collection_keeps_no_graph_and_rollouts_chain_their_state():
    cfg, envs, flatten, policy = chain_setup(truncate=False, length=50, num_envs=2)
    carry = start_carry(policy, envs, [0, 1], torch.device("cpu"))
    r1, carry = collect(policy, envs, carry, 4, flatten)
    r2, _ = collect(policy, envs, carry, 4, flatten)
    assert r1.logp.grad_fn is None and r1.value.grad_fn is None
    assert all(s.grad_fn is None for s in carry.state)  # what r1 handed to r2
    for a, b in zip(r2.start_states, carry.state):
        torch.testing.assert_close(a[0], b, rtol=0, atol=0)
    envs.close()


# -- the A2C loss -----------------------------------------------------------------------------
def hand_sequences(valid, adv, returns, logp=None, value=None):
    """A Sequences of one row per entry (L = len) with the given numbers."""
    from training.rollout import Sequences
    adv, valid, returns = (torch.tensor([x], dtype=torch.float32) for x in (adv, valid, returns))
    zeros = torch.zeros_like(adv)
    return Sequences(obs=zeros[..., None], actions=zeros.long(), resets=zeros, valid=valid,
                     logp=zeros if logp is None else torch.tensor([logp]),
                     value=zeros if value is None else torch.tensor([value]),
                     advantages=adv, returns=returns, start_state=())


def test_a2c_loss_masks_invalid_rows_and_normalises_over_valid_rows_only():
    valid = [1.0, 1.0, 0.0, 1.0]
    adv, ret = [1.0, 2.0, 100.0, 3.0], [0.5, 1.0, -50.0, 2.0]
    seq = hand_sequences(valid, adv, ret)
    logp = torch.tensor([[-0.1, -0.2, -9.0, -0.3]])
    entropy = torch.tensor([[1.0, 0.5, 7.0, 0.25]])
    value = torch.tensor([[0.0, 0.5, 3.0, 1.0]])
    cfg = TrainConfig(value_coef=0.5, entropy_coef=0.01, normalize_advantages=True)
    loss, parts = a2c_loss(logp, entropy, value, seq, cfg)
    a = np.array([1.0, 2.0, 3.0])  # the valid rows only
    a = (a - a.mean()) / (a.std() + 1e-8)
    pg = -np.mean(a * np.array([-0.1, -0.2, -0.3]))
    vl = 0.5 * np.mean((np.array([0.5, 1.0, 2.0]) - np.array([0.0, 0.5, 1.0])) ** 2)
    ent = np.mean([1.0, 0.5, 0.25])
    assert parts["losses/policy"] == pytest.approx(pg, rel=1e-5)
    assert parts["losses/value"] == pytest.approx(vl, rel=1e-5)
    assert parts["losses/entropy"] == pytest.approx(ent, rel=1e-6)
    assert float(loss) == pytest.approx(pg + 0.5 * vl - 0.01 * ent, rel=1e-5)
    # Whatever the invalid row holds, the loss and its gradient do not change.
    seq2 = hand_sequences(valid, [1.0, 2.0, -7.0, 3.0], [0.5, 1.0, 9.0, 2.0])
    logp2 = logp.clone().requires_grad_(True)
    loss2, _ = a2c_loss(logp2, entropy, value, seq2, cfg)
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-6)
    loss2.backward()
    assert logp2.grad[0, 2] == 0


# -- spaces ---------------------------------------------------------------------------------
def test_env_actions_from_float_messages_are_rounded_and_offset():
    """sim.spaces.to_env_actions, as the sim bridge uses it on a ROS message's float32
    action (and the trainers on integer ones)."""
    from sim.spaces import to_env_actions

    assert to_env_actions(np.array([[1.9999]], np.float32), spaces.Discrete(3, start=2)
                          ).tolist() == [4]
    assert to_env_actions(np.array([2, 0]), spaces.Discrete(3)).tolist() == [2, 0]
    md = spaces.MultiDiscrete([3, 4], start=[1, -1])
    assert to_env_actions(np.array([[2.0, 0.4]], np.float32), md).tolist() == [[3, -1]]
    mb = spaces.MultiBinary(3)
    out = to_env_actions(np.array([[1.0, 0.0, 0.9999]], np.float32), mb)
    assert out.dtype == mb.dtype and out.tolist() == [[1, 0, 1]]
    box = spaces.Box(-1.0, 1.0, (2, 1), np.float32)
    out = to_env_actions(np.array([[0.5, -0.25]], np.float32), box)
    assert out.shape == (1, 2, 1) and out.dtype == np.float32 and out[0, 1, 0] == -0.25


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
