"""What A2C and PPO share: rollout collection, GAE(λ) and the replay of stored sequences.

Read with DESIGN.md §6. One rollout is ``rollout_steps`` steps of ``num_envs`` envs,
collected without a graph (:func:`collect_rollout`). It stores what the update needs:
raw (flattened) observations, the sampled actions, their log-probs and values, rewards,
termination / truncation, the reset mask of every step, which rows are real
transitions, and the recurrent state at the start of every gradient window.

The update replays the rollout with gradients (:func:`replay`) as sequences of
``window = bptt or rollout_steps`` steps per env. Each sequence starts from the state
the rollout really had at its first step (stored at collection, never recomputed with
newer weights), and the reset mask is applied at every step of the replay exactly as at
collection, so a sequence that holds several episodes never carries memory (or
gradient: ``apply_reset`` is a ``where``) across an episode start. Within a sequence the
gradient of a late step reaches every earlier step of the same episode.

Gymnasium 1.x vector envs autoreset on the step *after* an episode ends (NEXT_STEP).
That step ignores its action and returns the new episode's first observation with
reward 0: it is marked invalid and masked out of the losses and of GAE. Its forward ran
on the ended episode's final observation with the memory that episode carried, so its
value is V(final observation), the bootstrap a truncated episode needs. The observation
after it starts a new episode: the next step's reset mask is set.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from dnc_core import ActorCritic
from training.spaces import ObsFlattener, to_env_actions


# --------------------------------------------------------------------------------------
# Advantage estimation (pure, tested against hand-computed returns)
# --------------------------------------------------------------------------------------
def compute_gae(rewards: Tensor, values: Tensor, bootstrap: Tensor, terminated: Tensor,
                truncated: Tensor, valid: Tensor, gamma: float, lam: float) -> Tensor:
    """GAE(λ) over a time-major rollout; every argument is ``[T, B]`` but ``bootstrap [B]``.

    ``values[t]`` is V(obs_t); ``bootstrap`` is V(obs_T) for the observation after the
    rollout. Row ``t`` is a real transition iff ``valid[t]``. A truncated transition at
    ``t`` bootstraps from ``values[t + 1]`` (or ``bootstrap``), which under NEXT_STEP
    autoreset is V(final observation); a terminated one bootstraps 0. Returns the
    advantages ``[T, B]``, 0 on invalid rows.
    """
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(bootstrap)
    next_value = bootstrap
    for t in reversed(range(rewards.shape[0])):
        ended = torch.maximum(terminated[t], truncated[t])
        delta = rewards[t] + gamma * next_value * (1.0 - terminated[t]) - values[t]
        last = (delta + gamma * lam * (1.0 - ended) * last) * valid[t]
        advantages[t] = last
        next_value = values[t]
    return advantages


def rollout_advantages(r: "Rollout", gamma: float, lam: float) -> Tensor:
    """GAE(λ) of a rollout with the collecting policy's values, ``[T, B]``."""
    return compute_gae(r.rewards, r.value, r.bootstrap, r.terminated, r.truncated, r.valid,
                       gamma, lam)


class RewardScaler:
    """``normalize_rewards``: every reward divided by the running standard deviation of
    the discounted return, as gymnasium's ``NormalizeReward`` and SB3's ``VecNormalize``
    scale them (no mean is subtracted, so each reward keeps its sign and a reward of 0
    stays 0). The return is accumulated per env (``G = γ G + r`` on every real row, back
    to 0 after each episode's last row) and its statistics (``stats``, a
    :class:`~dnc_core.policy.RunningNorm` of size 1, in float64) take each rollout's
    returns before that rollout's rewards are scaled. Only the losses see scaled rewards:
    the episode returns the tracker logs are the env's."""

    def __init__(self, num_envs: int, gamma: float, device: torch.device | None = None):
        from dnc_core.policy import RunningNorm

        self.gamma = float(gamma)
        self.stats = RunningNorm(1).to(device)
        self.ret = torch.zeros(num_envs, dtype=torch.float64, device=device)

    def returns(self, r: "Rollout") -> Tensor:
        """The discounted return so far at every real row of ``r``, ``[n]`` float64
        (advancing the per-env accumulator)."""
        out = []
        for t in range(r.steps):  # an autoreset row (not real) follows an end: G is 0 there
            self.ret = self.ret * self.gamma + r.rewards[t] * r.valid[t]
            out.append(self.ret[r.valid[t] > 0])
            self.ret = self.ret * (1.0 - torch.maximum(r.terminated[t], r.truncated[t]))
        return torch.cat(out)

    @property
    def std(self) -> float:
        return float(torch.sqrt(self.stats.var[0] + self.stats.eps))

    def scale_(self, r: "Rollout", fold) -> None:
        """Fold ``r``'s returns into the statistics with ``fold(stats, returns [n, 1])``
        (the trainer's, pooled over processes), then divide ``r.rewards`` by the
        standard deviation."""
        fold(self.stats, self.returns(r)[:, None])
        r.rewards = r.rewards / self.std


# --------------------------------------------------------------------------------------
# Episode statistics
# --------------------------------------------------------------------------------------
def _info_flags(info: dict, key: str, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(values, present)`` of a boolean info key of a vector env, or None if absent."""
    if key not in info:
        return None
    mask = info.get(f"_{key}", np.ones(n, bool))
    return np.where(mask, np.asarray(info[key], dtype=bool), False), mask


class EpisodeTracker:
    """Returns, lengths and successes of finished episodes, over a rolling window."""

    def __init__(self, num_envs: int, window: int):
        self.ret, self.len = np.zeros(num_envs), np.zeros(num_envs, np.int64)
        self.returns, self.lengths = deque(maxlen=window), deque(maxlen=window)
        self.successes = deque(maxlen=window)
        self.episodes = 0

    def step(self, reward, terminated, truncated, valid, info) -> None:
        self.ret += reward * valid
        self.len += valid
        done = (terminated | truncated) & valid
        if not done.any():
            return
        succ = _info_flags(info, "is_success", len(done))
        for i in np.flatnonzero(done):
            self.returns.append(float(self.ret[i]))
            self.lengths.append(int(self.len[i]))
            if succ is not None and succ[1][i]:
                self.successes.append(float(succ[0][i]))
            self.episodes += 1
        self.ret[done], self.len[done] = 0.0, 0


# --------------------------------------------------------------------------------------
# Collection
# --------------------------------------------------------------------------------------
@dataclass
class Carry:
    """What one rollout hands to the next: the env's next observation, the recurrent
    state, the reset mask for the next step and which envs just ended an episode."""

    next_obs: np.ndarray
    state: Any
    reset: Tensor  # [B] 1 = the next observation starts an episode
    prev_done: np.ndarray  # [B] the last step ended an episode (next step autoresets)


@dataclass
class Rollout:
    """One rollout, time-major ``[T, B, ...]``, no graph."""

    obs: Tensor  # [T, B, obs_dim] flattened raw observations
    actions: Tensor  # [T, B, ...] the sampled (unclipped) actions
    logp: Tensor  # [T, B] their log-probs under the collecting policy
    value: Tensor  # [T, B] V(obs_t) under the carried memory
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    valid: Tensor  # 0 on NEXT_STEP autoreset rows (the env ignored that action)
    resets: Tensor  # the reset mask each step was taken with
    bootstrap: Tensor  # [B] V(obs_T)
    window: int  # steps per replayed sequence (bptt)
    start_states: Any  # state tuple, each [T // window, B, ...]: before steps 0, w, 2w..
    dist: Tensor  # [T, B, head_size] the collecting policy's distribution parameters
    log_std: Tensor | None  # [head_size] its Gaussian log-std (box actions), else None
    next_obs: Tensor  # [B, obs_dim] obs_T, the observation after the rollout
    next_reset: Tensor  # [B] the reset mask obs_T is taken with
    # the steps before it that bptt_context replays (set by the trainer; None: off)
    context: "Context | None" = None

    @property
    def steps(self) -> int:
        return self.rewards.shape[0]


@dataclass
class Context:
    """The last ``C`` steps of each env before a rollout (``bptt_context``), time-major,
    with the stored states at their window starts: what a window at the rollout's start
    replays first, so that its gradient reaches back into the previous rollout."""

    obs: Tensor  # [C, B, obs_dim]
    resets: Tensor  # [C, B]
    start_states: Any  # state tuple, each [C // window, B, ...]

    @staticmethod
    def of(r: "Rollout", steps: int) -> "Context":
        """The last ``steps`` steps of rollout ``r``: the next rollout's context."""
        k = steps // r.window
        return Context(r.obs[r.steps - steps:], r.resets[r.steps - steps:],
                       type(r.start_states)(*(s[s.shape[0] - k:] for s in r.start_states)))

    @staticmethod
    def before_first(r: "Rollout", steps: int) -> "Context":
        """A context for a rollout with nothing before it (the run's first, or the first
        after a resume): its first step resets every env's memory (the carry starts
        with reset 1), so what the context replays cannot reach it; zeros."""
        if not bool((r.resets[0] == 1).all()):
            raise ValueError("a rollout without a context must start with every env reset")
        k = steps // r.window
        return Context(r.obs.new_zeros((steps, *r.obs.shape[1:])),
                       r.resets.new_ones((steps, *r.resets.shape[1:])),
                       type(r.start_states)(*(s[:1].expand(k, *s.shape[1:]).clone()
                                              for s in r.start_states)))


def start_carry(policy: ActorCritic, envs: gym.vector.VectorEnv, seeds: list[int],
                device: torch.device) -> Carry:
    obs, _ = envs.reset(seed=seeds)
    n = envs.num_envs
    return Carry(obs, policy.initial_state(n, device=device), torch.ones(n, device=device),
                 np.zeros(n, bool))


@torch.no_grad()
def collect_rollout(policy: ActorCritic, envs: gym.vector.VectorEnv, carry: Carry,
                    steps: int, flatten: ObsFlattener, action_space: gym.Space,
                    window: int | None = None,
                    tracker: EpisodeTracker | None = None) -> tuple[Rollout, Carry]:
    """Step ``envs`` ``steps`` times with ``policy`` from ``carry`` (no graph), storing
    the state before every ``window``-th step for the replay."""
    window = steps if window is None else window
    if steps % window:
        raise ValueError(f"window {window} must divide the rollout's {steps} steps")
    device = carry.reset.device
    state, reset, prev_done, next_obs = carry.state, carry.reset, carry.prev_done, carry.next_obs
    n = envs.num_envs
    obs_buf = torch.zeros((steps, n, flatten.dim), device=device)
    logps, values, actions, resets, starts, params = [], [], [], [], [], []
    rewards = np.zeros((steps, n), np.float32)
    terms, truncs, valids = (np.zeros((steps, n), np.float32) for _ in range(3))
    for t in range(steps):
        if t % window == 0:
            starts.append(state)
        obs_buf[t] = torch.from_numpy(flatten(next_obs)).to(device)
        resets.append(reset)
        out, state = policy(obs_buf[t], state, reset)
        dist = policy.distribution(out)
        action = dist.sample()
        logps.append(dist.log_prob(action))
        values.append(out.value)
        actions.append(action)
        params.append(out.dist)
        env_action = to_env_actions(policy.env_action(action).cpu().numpy(), action_space)
        next_obs, reward, terminated, truncated, info = envs.step(env_action)
        valid = ~prev_done  # NEXT_STEP: the step right after an episode end is a reset
        rewards[t], terms[t], truncs[t], valids[t] = reward, terminated, truncated, valid
        if tracker is not None:
            tracker.step(reward, terminated, truncated, valid, info)
        prev_done = (terminated | truncated) & valid
        # An autoreset step returned the new episode's first observation: reset next.
        reset = torch.from_numpy((~valid).astype(np.float32)).to(device)
    last_obs = torch.from_numpy(flatten(next_obs)).to(device)
    boot, _ = policy(last_obs, state, reset)
    as_t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    start_states = type(state)(*(torch.stack(s) for s in zip(*starts)))
    log_std = None if boot.log_std is None else boot.log_std.detach().clone()
    rollout = Rollout(obs_buf, torch.stack(actions), torch.stack(logps), torch.stack(values),
                      as_t(rewards), as_t(terms), as_t(truncs), as_t(valids),
                      torch.stack(resets), boot.value, window, start_states,
                      torch.stack(params), log_std, last_obs, reset)
    return rollout, Carry(next_obs, state, reset, prev_done)


# --------------------------------------------------------------------------------------
# Sequences: the rollout cut into gradient windows, batch-first
# --------------------------------------------------------------------------------------
@dataclass
class Sequences:
    """The rollout as ``S = B * T / window`` sequences of ``L = window`` steps,
    batch-first ``[S, L, ...]``; sequence ``k * B + b`` is env ``b``'s steps
    ``k*L .. (k+1)*L - 1``, starting from ``start_state[k * B + b]``."""

    obs: Tensor
    actions: Tensor
    resets: Tensor
    valid: Tensor
    logp: Tensor  # the collecting policy's log-probs
    value: Tensor  # and values
    advantages: Tensor
    returns: Tensor  # advantages + values: the value targets
    start_state: Any  # state tuple, each [S, ...]

    def __len__(self) -> int:
        return self.obs.shape[0]

    def select(self, idx: Tensor) -> "Sequences":
        """The sequences ``idx`` (a minibatch)."""
        return Sequences(*(getattr(self, f)[idx] for f in _SEQ_FIELDS),
                         start_state=type(self.start_state)(*(s[idx] for s in self.start_state)))


_SEQ_FIELDS = ("obs", "actions", "resets", "valid", "logp", "value", "advantages", "returns")


def sequence_major(x: Tensor, window: int) -> Tensor:
    """A time-major rollout tensor as its sequences: ``[T, B, ...]`` ->
    ``[K, W, B, ...]`` -> ``[K * B, W, ...]`` (``K = T / W``; sequence ``k * B + b`` is
    env ``b``'s steps ``k*W .. (k+1)*W - 1``)."""
    k = x.shape[0] // window
    x = x.reshape(k, window, *x.shape[1:]).transpose(1, 2)
    return x.reshape(k * x.shape[1], window, *x.shape[3:])


def sequence_starts(r: Rollout) -> Any:
    """The stored start state of every sequence, in :func:`sequence_major`'s order."""
    return type(r.start_states)(*(s.reshape(-1, *s.shape[2:]) for s in r.start_states))


def to_sequences(r: Rollout, advantages: Tensor) -> Sequences:
    """Cut a rollout (and its advantages ``[T, B]``) into its replay sequences.

    With a context (``r.context``, ``C`` steps), sequence ``k * B + b`` is env ``b``'s
    ``C`` steps before window ``k`` (from the context where they precede the rollout)
    and then the window: ``L = C + window`` steps from the stored state at the context's
    start. The context rows have ``valid`` 0 (no loss of their own) and zero actions,
    advantages and targets; the gradient of a window's loss flows back through them."""
    if r.context is None:
        def seq(x: Tensor) -> Tensor:
            return sequence_major(x, r.window)

        return Sequences(seq(r.obs), seq(r.actions), seq(r.resets), seq(r.valid),
                         seq(r.logp), seq(r.value), seq(advantages),
                         seq(advantages + r.value), sequence_starts(r))
    c, w = r.context, r.window
    n = c.obs.shape[0]

    def seq(x: Tensor, before: Tensor | None = None) -> Tensor:
        """``[T, B, ...]`` -> ``[K * B, C + w, ...]``: each window with the ``C`` steps
        before it (``before``: the context's; zeros where it is None)."""
        before = x.new_zeros((n, *x.shape[1:])) if before is None else before
        full = torch.cat([before, x])
        k = r.steps // w
        parts = torch.stack([full[i * w:i * w + n + w] for i in range(k)])  # [K, L, B, ...]
        return parts.transpose(1, 2).reshape(k * x.shape[1], n + w, *x.shape[2:])

    starts = type(r.start_states)(*(torch.cat([a, b]) for a, b in
                                    zip(c.start_states, r.start_states)))
    starts = type(starts)(*(s[:r.steps // w].reshape(-1, *s.shape[2:]) for s in starts))
    return Sequences(seq(r.obs, c.obs), seq(r.actions), seq(r.resets, c.resets),
                     seq(r.valid), seq(r.logp), seq(r.value), seq(advantages),
                     seq(advantages + r.value), starts)


def minibatches(n: int, count: int, generator: torch.Generator | None = None
                ) -> Iterator[Tensor]:
    """``count`` disjoint random index sets covering ``range(n)`` (sizes differ by <= 1):
    every sequence, so every valid step, exactly once per epoch."""
    perm = torch.randperm(n, generator=generator)
    yield from torch.tensor_split(perm, count)


def replay(model: nn.Module, policy: ActorCritic, seq: Sequences
           ) -> tuple[Tensor, Tensor, Tensor]:
    """Re-run sequences with gradients from their stored start states, applying each
    step's reset mask: ``(log_prob, entropy, value)``, each ``[S, L]``.

    ``model`` is what the forward pass calls, once over the whole ``[S, L]`` sequences
    (:meth:`ActorCritic.forward` on a sequence): the policy itself, or its
    DistributedDataParallel wrapper (which averages the gradients across processes).
    """
    out, _ = model(seq.obs, seq.start_state, seq.resets)
    dist = policy.distribution(out)
    return dist.log_prob(seq.actions), dist.entropy(), out.value


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over the rows where ``mask`` is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def normalize(adv: Tensor, mask: Tensor) -> Tensor:
    """Advantages normalised to mean 0, std 1 over the valid rows only (0 elsewhere)."""
    mean = masked_mean(adv, mask)
    std = masked_mean((adv - mean) ** 2, mask).sqrt()
    return (adv - mean) / (std + 1e-8) * mask
