"""CLEAR's pieces (training/clear.py): V-trace against hand-computed values and against
GAE on-policy, the reservoir keeping a uniform sample, prioritised sampling and its
weights, the cloning losses, and the buffer's file."""

import numpy as np
import pytest
import torch

from dnc_core import ActionSpec, ActorCritic, make_core
from dnc_core.policy import ActionDistribution
from training.clear import (
    ReplayBuffer,
    ReplayError,
    ReplayLoss,
    ReplaySettings,
    cloning_losses,
    replay_steps,
    vtrace,
)
from training.config import TrainConfig
from training.rollout import collect_rollout, compute_gae, start_carry
from training.runner import build_policy, make_envs
from training.spaces import ObsFlattener, action_spec

pytestmark = pytest.mark.usefixtures("one_thread")


def chisquare_p(observed, expected=None) -> float:
    """Pearson's chi-square goodness-of-fit p-value (uniform expectation by default)."""
    observed = np.asarray(observed, np.float64)
    expected = np.full_like(observed, observed.mean()) if expected is None else \
        np.asarray(expected, np.float64)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    dof = len(observed) - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                         torch.tensor(chi2 / 2, dtype=torch.float64)))


# -- V-trace --------------------------------------------------------------------------------
def _one_env(*rows):
    return [torch.tensor(r, dtype=torch.float32)[:, None] for r in rows]


def test_vtrace_by_hand_truncates_rho_and_c():
    # gamma 0.9, V = 1, 2, 3, bootstrap 4, rewards 1, 0, 2, no episode end.
    # rho = pi / mu = 2, 0.5, 1.5.
    values, rewards = _one_env([1, 2, 3], [1, 0, 2])
    zeros, ones = torch.zeros(3, 1), torch.ones(3, 1)
    mu = torch.zeros(3, 1)
    pi = torch.log(torch.tensor([2.0, 0.5, 1.5]))[:, None]
    boot = torch.tensor([4.0])
    # rho_bar = c_bar = 1: rho~ = c = 1, 0.5, 1.
    # d2 = 1 (2 + .9*4 - 3) = 2.6                      v2 = 3 + 2.6 = 5.6
    # d1 = .5 (0 + .9*3 - 2) = .35; acc = .35 + .9*.5*2.6 = 1.52        v1 = 3.52
    # d0 = 1 (1 + .9*2 - 1) = 1.8; acc = 1.8 + .9*1*1.52 = 3.168        v0 = 4.168
    # A2 = 1 (2 + .9*4 - 3) = 2.6; A1 = .5 (0 + .9*5.6 - 2) = 1.52; A0 = 1 + .9*3.52 - 1
    vs, adv = vtrace(mu, pi, rewards, values, boot, zeros, zeros, ones, 0.9)
    torch.testing.assert_close(vs[:, 0], torch.tensor([4.168, 3.52, 5.6]))
    torch.testing.assert_close(adv[:, 0], torch.tensor([3.168, 1.52, 2.6]))
    # rho_bar = 2 (rho~ = 2, .5, 1.5), c_bar = 1 (c = 1, .5, 1):
    # d2 = 1.5*2.6 = 3.9                                                 v2 = 6.9
    # d1 = .35; acc = .35 + .9*.5*3.9 = 2.105                            v1 = 4.105
    # d0 = 2*1.8 = 3.6; acc = 3.6 + .9*1*2.105 = 5.4945                  v0 = 6.4945
    # A2 = 1.5*2.6 = 3.9; A1 = .5 (.9*6.9 - 2) = 2.105; A0 = 2 (1 + .9*4.105 - 1) = 7.389
    vs, adv = vtrace(mu, pi, rewards, values, boot, zeros, zeros, ones, 0.9, rho_bar=2.0)
    torch.testing.assert_close(vs[:, 0], torch.tensor([6.4945, 4.105, 6.9]))
    torch.testing.assert_close(adv[:, 0], torch.tensor([7.389, 2.105, 3.9]))
    # c_bar = 0.25 (c = .25, .25, .25), rho_bar = 1: the traces shrink, the deltas do not.
    # acc2 = 2.6; acc1 = .35 + .9*.25*2.6 = .935; acc0 = 1.8 + .9*.25*.935 = 2.010375
    vs, _ = vtrace(mu, pi, rewards, values, boot, zeros, zeros, ones, 0.9, c_bar=0.25)
    torch.testing.assert_close(vs[:, 0], torch.tensor([3.010375, 2.935, 5.6]))


def test_vtrace_episode_ends_bootstrap_like_gae():
    # Step 1 terminates (no bootstrap), step 2 is the autoreset row (invalid), step 3
    # is truncated: it bootstraps V(final obs) = values[4], which is the invalid row 4.
    values, rewards = _one_env([1, 2, 9, 3, 7, 5], [1, 1, 0, 1, 0, 1])
    term, trunc = _one_env([0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0])
    valid = _one_env([1, 1, 0, 1, 0, 1])[0]
    same = torch.zeros(6, 1)
    vs, adv = vtrace(same, same, rewards, values, torch.tensor([10.0]), term, trunc, valid, 0.5)
    # v1 = 1 (terminated); v0 = 1 + .5*2 - 1 + .5*(1 - 2) + 1 = 1 + .5*1 = 1.5
    # v3 = 1 + .5*7 = 4.5 (truncated: V(final) = values[4]); v5 = 1 + .5*10 = 6
    # invalid rows keep v = V, A = 0
    torch.testing.assert_close(vs[:, 0], torch.tensor([1.5, 1.0, 9.0, 4.5, 7.0, 6.0]))
    torch.testing.assert_close(adv[:, 0], torch.tensor([1 + .5 * 1.0 - 1, 1 - 2, 0, 1 + 3.5 - 3,
                                                        0, 1 + 5 - 5]))


@pytest.mark.parametrize("lam", [1.0, 0.9])
def test_vtrace_on_policy_equals_the_lambda_returns(lam):
    g = torch.Generator().manual_seed(3)
    t, b = 40, 5
    rewards, values = torch.randn(t, b, generator=g), torch.randn(t, b, generator=g)
    ends = torch.rand(t, b, generator=g)
    term, trunc = (ends < 0.08).float(), ((ends > 0.08) & (ends < 0.14)).float()
    valid = torch.ones(t, b)
    valid[1:][(term[:-1] + trunc[:-1]) > 0] = 0.0  # the step after an end autoresets
    boot = torch.randn(b, generator=g)
    logp = torch.randn(t, b, generator=g)
    vs, adv = vtrace(logp, logp, rewards, values, boot, term, trunc, valid, 0.95, lam)
    gae = compute_gae(rewards, values, boot, term, trunc, valid, 0.95, lam)
    torch.testing.assert_close(vs, (gae + values) * valid + values * (1 - valid))
    # The policy-gradient advantage on-policy: r + gamma v_{t+1} - V (one-step, IMPALA).
    nxt = torch.cat([vs[1:], boot[None]])
    want = (rewards + 0.95 * (1 - term) * nxt - values) * valid
    torch.testing.assert_close(adv, want)


# -- a real rollout to fill buffers with -----------------------------------------------------
def _setup(env="dnc/TMaze-v0", kwargs=None, core="dnc", num_envs=4, separate_critic=False):
    cfg = TrainConfig(env=env, env_kwargs=kwargs or {"length": 4}, core=core,
                      core_config={"hidden_size": 8, "memory_slots": 4, "word_size": 4,
                                   "read_heads": 1} if core == "dnc" else {"hidden_size": 8},
                      num_envs=num_envs, rollout_steps=8, bptt=4,
                      separate_critic=separate_critic).validate()
    envs = make_envs(cfg, 0)
    flatten = ObsFlattener(envs.single_observation_space)
    torch.manual_seed(0)
    policy = build_policy(cfg, flatten.dim, action_spec(envs.single_action_space))
    carry = start_carry(policy, envs, list(range(num_envs)), torch.device("cpu"))
    return cfg, envs, flatten, policy, carry


def _rollout(policy, envs, carry, flatten, cfg):
    return collect_rollout(policy, envs, carry, cfg.rollout_steps, flatten,
                           envs.single_action_space, cfg.window)


def test_the_buffer_stores_what_the_rollout_had():
    cfg, envs, flatten, policy, carry = _setup()
    r, carry = _rollout(policy, envs, carry, flatten, cfg)
    buf = ReplayBuffer(capacity=100)
    assert buf.add(r) == 8  # 4 envs x 2 windows of 4
    b = buf.sample(8)
    # Sequence k * B + e is env e's window k; its next observation starts window k + 1
    # (or is the rollout's next observation), with that step's reset flag.
    for row, i in enumerate(b.index):
        k, e = divmod(int(i), 4)
        torch.testing.assert_close(b.fields["obs"][row], r.obs[4 * k:4 * k + 4, e])
        torch.testing.assert_close(b.fields["logp"][row], r.logp[4 * k:4 * k + 4, e])
        torch.testing.assert_close(b.fields["dist"][row], r.dist[4 * k:4 * k + 4, e])
        nxt = r.obs[4 * (k + 1), e] if k == 0 else r.next_obs[e]
        torch.testing.assert_close(b.fields["next_obs"][row], nxt)
        for name, s in zip(r.start_states._fields, r.start_states):
            torch.testing.assert_close(getattr(b.start_state, name)[row], s[k, e])
    envs.close()


def test_reservoir_keeps_a_uniform_sample():
    # 1000 sequences offered (40 rollouts of 25), capacity 100, 100 independent buffers:
    # each offered sequence should be kept with probability 0.1 wherever it came in.
    cfg, envs, flatten, policy, carry = _setup(num_envs=25)
    cfg.rollout_steps, cfg.bptt = 1, 1
    r, _ = collect_rollout(policy, envs, carry, 1, flatten, envs.single_action_space, 1)
    envs.close()
    kept = np.zeros(10)  # per decile of arrival order
    for trial in range(100):
        buf = ReplayBuffer(capacity=100, seed=trial)
        for k in range(40):
            buf.add(r, task=k)  # the task label says when a sequence arrived
        arrival = buf.arrays["task"] * 25  # the rollout's index, 25 sequences each
        kept += np.bincount(arrival // 100, minlength=10)
    assert kept.sum() == 100 * 100
    assert chisquare_p(kept) > 0.01, kept
    # A FIFO of the newest 100 (what a deque would keep) fails the same test.
    fifo = np.zeros(10)
    fifo[9] = 200 * 100
    assert chisquare_p(fifo) < 1e-10


def test_prioritized_sampling_follows_priority_to_the_alpha():
    cfg, envs, flatten, policy, carry = _setup()
    r, _ = _rollout(policy, envs, carry, flatten, cfg)
    envs.close()
    buf = ReplayBuffer(capacity=8, sampling="prioritized", alpha=0.5, beta=0.4, seed=1)
    buf.add(r)
    pri = np.array([1.0, 4.0, 9.0, 16.0, 1.0, 1.0, 4.0, 64.0])
    buf.update_priorities(np.arange(8), pri)
    want = np.sqrt(pri) / np.sqrt(pri).sum()
    counts = np.zeros(8)
    for _ in range(500):
        b = buf.sample(16)
        counts += np.bincount(b.index, minlength=8)
        # weights (N P(i))^-beta over their largest possible value (the rarest sequence's)
        w = (8 * want[b.index]) ** -0.4 / (8 * want.min()) ** -0.4
        np.testing.assert_allclose(b.weights.numpy(), w, rtol=1e-6)
    assert chisquare_p(counts, counts.sum() * want) > 0.01
    # a new sequence gets the largest priority seen so far
    buf2 = ReplayBuffer(capacity=20, sampling="prioritized")
    buf2.add(r)
    buf2.update_priorities(np.arange(8), pri)
    buf2.add(r)
    assert (buf2.arrays["priority"][8:16] == 64.0).all()


# -- cloning -----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [ActionSpec.discrete(3), ActionSpec.multi_discrete([2, 3]),
                                  ActionSpec.multi_binary(2), ActionSpec.box([-1, -1], [1, 1])])
def test_cloning_losses_are_zero_for_the_behaviour_policy_only(spec):
    policy = ActorCritic(make_core("lstm", input_size=3, hidden_size=8), 3, spec)
    g = torch.Generator().manual_seed(0)
    params = torch.randn(4, 5, spec.head_size, generator=g)
    values = torch.randn(4, 5, generator=g)
    log_std = torch.full((4, spec.head_size), -0.3) if spec.kind == "box" else None
    dist = ActionDistribution(spec, params, None if log_std is None else log_std[0])
    valid = torch.ones(4, 5)
    kl, vc = cloning_losses(policy, dist, values, params, log_std, values, valid)
    assert abs(float(kl)) < 1e-6 and float(vc) == 0.0
    other = ActionDistribution(spec, params + torch.randn(params.shape, generator=g),
                               None if log_std is None else log_std[0])
    kl, vc = cloning_losses(policy, other, values + 1.0, params, log_std, values, valid)
    assert float(kl) > 1e-3 and float(vc) == pytest.approx(1.0)


def test_replaying_fresh_data_is_on_policy():
    # Sequences replayed by the weights that collected them: ratio 1, no KL, values equal
    # the stored ones; so the replay loss is the actor-critic loss of that data alone.
    cfg, envs, flatten, policy, carry = _setup()
    r, _ = _rollout(policy, envs, carry, flatten, cfg)
    envs.close()
    buf = ReplayBuffer(capacity=64)
    buf.add(r)
    loss = ReplayLoss(buf, policy, policy, ReplaySettings(batch=8, gamma=0.9, lam=0.95))
    value = loss()
    assert value.requires_grad and torch.isfinite(value)
    figures = loss.drain()
    assert figures["replay/rho_mean"] == pytest.approx(1.0, abs=1e-5)
    assert figures["replay/kl"] == pytest.approx(0.0, abs=1e-6)
    assert figures["replay/value_cloning"] == pytest.approx(0.0, abs=1e-9)
    b = buf.sample(8)
    dist, values, _ = replay_steps(policy, policy, b.fields["obs"], b.fields["resets"],
                                   b.start_state)
    torch.testing.assert_close(values.detach(), b.fields["value"], atol=1e-5, rtol=1e-5)


# -- the file ------------------------------------------------------------------------------
def test_the_buffer_file_round_trips_and_sampling_continues(tmp_path):
    cfg, envs, flatten, policy, carry = _setup()
    r, _ = _rollout(policy, envs, carry, flatten, cfg)
    envs.close()
    buf = ReplayBuffer(capacity=12, sampling="prioritized", seed=5)
    buf.add(r)
    buf.add(r, task=1)  # 16 offered to 12 slots: the reservoir has drawn already
    buf.update_priorities(np.array([0, 3]), np.array([2.0, 5.0]))
    buf.save(tmp_path / "replay.npz", step=4096)
    loaded, step = ReplayBuffer.load(tmp_path / "replay.npz", policy.core)
    assert step == 4096 and loaded.size == 12 and loaded.offered == 16
    for name, a in buf.arrays.items():
        np.testing.assert_array_equal(loaded.arrays[name], a)
    a, b = buf.sample(6), loaded.sample(6)
    np.testing.assert_array_equal(a.index, b.index)
    assert buf.add(r) == loaded.add(r)
    np.testing.assert_array_equal(buf.arrays["task"], loaded.arrays["task"])


def test_a_buffer_of_a_policy_with_a_critic_core_round_trips_and_replays(tmp_path):
    # The stored states are the pair's (the actor DNC's, then the critic DNC's critic_*
    # entries): the file keeps them, the policy takes them back, and its replay from them
    # reproduces the values the rollout had, so both cores' memories came back.
    cfg, envs, flatten, policy, carry = _setup(separate_critic=True)
    r, _ = _rollout(policy, envs, carry, flatten, cfg)
    envs.close()
    buf = ReplayBuffer(capacity=8)
    buf.add(r)
    assert "state_critic_memory" in buf.arrays
    assert np.abs(buf.arrays["state_critic_memory"]).sum() > 0  # windows 2+ carry memory
    buf.save(tmp_path / "pair.npz", step=8)
    loaded, _ = ReplayBuffer.load(tmp_path / "pair.npz", policy)
    assert loaded.state_type is policy.state_type
    b = loaded.sample(8)
    with torch.no_grad():
        _, values, _ = replay_steps(policy, policy, b.fields["obs"], b.fields["resets"],
                                    b.start_state)
    torch.testing.assert_close(values, b.fields["value"], atol=1e-5, rtol=1e-5)
    # The actor core alone is not this policy: its fields lack the critic's.
    with pytest.raises(ReplayError, match="holds states with fields") as e:
        ReplayBuffer.load(tmp_path / "pair.npz", policy.core)
    assert "critic_h" in str(e.value) and "\n" not in str(e.value)


def test_a_bad_buffer_file_is_a_one_line_error(tmp_path):
    lstm = make_core("lstm", input_size=3, hidden_size=4)
    with pytest.raises(ReplayError, match="does not exist"):
        ReplayBuffer.load(tmp_path / "none.npz", lstm)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ReplayError, match="is not a replay file") as e:
        ReplayBuffer.load(tmp_path / "junk.npz", lstm)
    assert "\n" not in str(e.value)
    np.savez(tmp_path / "other.npz", meta=np.array('{"format": "x"}'))
    with pytest.raises(ReplayError, match="not a replay file"):
        ReplayBuffer.load(tmp_path / "other.npz", lstm)
    cfg, envs, flatten, policy, carry = _setup()
    r, _ = _rollout(policy, envs, carry, flatten, cfg)
    envs.close()
    buf = ReplayBuffer(capacity=8)
    buf.add(r)
    buf.arrays["value"][0, 0] = np.nan
    buf.save(tmp_path / "nan.npz", 0)
    with pytest.raises(ReplayError, match="value holds a NaN"):
        ReplayBuffer.load(tmp_path / "nan.npz", policy.core)
    buf.arrays["value"][0, 0] = 0.0
    buf.save(tmp_path / "dnc.npz", 0)
    with pytest.raises(ReplayError, match="holds states with fields"):
        ReplayBuffer.load(tmp_path / "dnc.npz", lstm)
    # The same fields, another memory size (a resumed run whose config changed): refused
    # by the core's own shape check, in one line naming the tensor.
    bigger = make_core("dnc", input_size=policy.core.input_size, hidden_size=8,
                       memory_slots=6, word_size=4, read_heads=1)
    with pytest.raises(ReplayError, match=r"cannot take: state tensor 'memory' has shape "
                                          r"\(8, 4, 4\), expected \(8, 6, 4\)") as e:
        ReplayBuffer.load(tmp_path / "dnc.npz", bigger)
    assert "\n" not in str(e.value)
    ReplayBuffer.load(tmp_path / "dnc.npz", policy.core)  # its own core takes it
