"""CLEAR (Rolnick et al. 2019): replay of past experience against forgetting.

Read with docs/CONTINUAL.md. Three pieces, each usable alone:

- :func:`vtrace`: V-trace targets and policy-gradient advantages (Espeholt et al.
  2018, IMPALA) for sequences collected by an older policy, with the same episode
  boundary rules as :func:`training.rollout.compute_gae` (so on-policy, with
  ``rho_bar = c_bar = 1``, the targets are exactly GAE(λ) + V);
- :class:`ReplayBuffer`: a bounded store of whole rollout sequences with everything
  the replay needs (observations, actions, rewards, termination / truncation, reset
  masks, which rows are real transitions, the behaviour policy's log-probs, action
  distribution and values, the observation after the sequence, and the recurrent state
  at the sequence's start), filled by reservoir sampling (a uniform sample of every
  sequence ever offered) and sampled uniformly or by priority (``priority ** alpha``,
  importance weights with exponent ``beta``);
- :class:`ReplayLoss`: the loss on a replayed batch, added to every gradient step of the
  trainer through :attr:`training.runner.Learner.extra_loss`: V-trace policy gradient
  and value regression, entropy bonus, and behavioural cloning (the KL from the stored
  behaviour policy to the current one, and the squared distance of the values to the
  stored ones).

The start states are stored as the rollout had them (float32, exact), not rebuilt with a
burn-in: a DNC's state is a few kB per sequence (``ReplayBuffer.nbytes`` says how much),
and a burn-in would need the steps before each sequence, which a bounded buffer of
sequences does not keep. As in CLEAR (and R2D2's "stored state"), the replay starts from
the memory the *collecting* weights produced; V-trace's truncated importance weights and
the cloning terms are what keep the replayed targets honest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dnc_policy.files import atomic_write
from torch import Tensor

from dnc_core import ActorCritic, RecurrentCore
from dnc_core.policy import ActionDistribution
from training.rollout import Rollout, masked_mean, sequence_major, sequence_starts

SAMPLING = ("reservoir", "prioritized")


# --------------------------------------------------------------------------------------
# V-trace (pure, tested against hand-computed examples)
# --------------------------------------------------------------------------------------
def vtrace(behaviour_logp: Tensor, target_logp: Tensor, rewards: Tensor, values: Tensor,
           bootstrap: Tensor, terminated: Tensor, truncated: Tensor, valid: Tensor,
           gamma: float, lam: float = 1.0, rho_bar: float = 1.0, c_bar: float = 1.0
           ) -> tuple[Tensor, Tensor]:
    """V-trace over time-major sequences; every argument ``[T, B]`` but ``bootstrap [B]``.

    With ``rho_t = pi(a_t | x_t) / mu(a_t | x_t)`` (target over behaviour),
    ``rho~_t = min(rho_bar, rho_t)`` and ``c_t = lam * min(c_bar, rho_t)``::

        v_t - V(x_t) = rho~_t delta_t + gamma c_t (v_{t+1} - V(x_{t+1}))
        delta_t      = r_t + gamma V(x_{t+1}) - V(x_t)
        A_t          = rho~_t (r_t + gamma v_{t+1} - V(x_t))

    Episode ends follow :func:`training.rollout.compute_gae`: a terminated step
    bootstraps 0, a truncated one bootstraps ``values[t + 1]`` (V(final observation)
    under NEXT_STEP autoreset) and both cut the trace; invalid rows (the autoreset step)
    get ``v_t = V(x_t)`` and ``A_t = 0``. Returns ``(v [T, B], A [T, B])``, no graph.
    """
    with torch.no_grad():
        rho = (target_logp - behaviour_logp).exp()
        rho_t = rho.clamp(max=rho_bar)
        c = lam * rho.clamp(max=c_bar)
        vs, adv = torch.zeros_like(values), torch.zeros_like(values)
        acc = torch.zeros_like(bootstrap)
        next_value, next_vs = bootstrap, bootstrap
        for t in reversed(range(values.shape[0])):
            keep = 1.0 - terminated[t]
            ended = torch.maximum(terminated[t], truncated[t])
            delta = rho_t[t] * (rewards[t] + gamma * keep * next_value - values[t])
            acc = (delta + gamma * c[t] * (1.0 - ended) * acc) * valid[t]
            vs[t] = values[t] + acc
            adv[t] = rho_t[t] * (rewards[t] + gamma * keep * next_vs - values[t]) * valid[t]
            next_value, next_vs = values[t], vs[t]
    return vs, adv


# --------------------------------------------------------------------------------------
# The buffer
# --------------------------------------------------------------------------------------
class ReplayError(ValueError):
    """A replay file that cannot be used (one line: what is wrong)."""


@dataclass
class Batch:
    """Sampled sequences, batch-first ``[S, L, ...]`` (``start_state`` a state tuple,
    ``weights [S]`` the importance weights, 1 under uniform sampling)."""

    index: np.ndarray
    weights: Tensor
    fields: dict[str, Tensor]
    start_state: Any


# Per-sequence arrays: name -> what a rollout gives (``[T, B, ...]`` cut by sequence).
_STEP_FIELDS = ("obs", "actions", "resets", "valid", "rewards", "terminated", "truncated",
                "logp", "value", "dist")


class ReplayBuffer:
    """At most ``capacity`` sequences of past rollouts (see the module's docstring).

    Insertion is reservoir sampling (Vitter's algorithm R): the ``n``-th sequence
    offered is kept with probability ``capacity / n``, in a slot drawn uniformly, so the
    buffer is always a uniform sample of everything offered, old tasks included.
    ``sampling="prioritized"`` draws sequence ``i`` with probability
    ``p_i ** alpha / sum(p ** alpha)`` and weights it by ``(size * P(i)) ** -beta /
    max_j (size * P(j)) ** -beta``; a new sequence gets the largest priority so far, and
    :meth:`update_priorities` sets replayed ones (ReplayLoss uses the mean absolute
    V-trace advantage). All randomness is the buffer's own generator, saved with it.
    """

    def __init__(self, capacity: int, sampling: str = "reservoir", alpha: float = 0.6,
                 beta: float = 0.4, seed: int = 0):
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, got {capacity!r}")
        if sampling not in SAMPLING:
            raise ValueError(f"sampling must be one of {list(SAMPLING)}, got {sampling!r}")
        self.capacity, self.sampling = capacity, sampling
        self.alpha, self.beta = float(alpha), float(beta)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.size, self.offered = 0, 0
        self.arrays: dict[str, np.ndarray] = {}  # allocated at the first add
        self.state_names: tuple[str, ...] = ()
        self.state_type: Any = None
        self.max_priority = 1.0

    # -- filling -----------------------------------------------------------------------
    def add(self, r: Rollout, task: int = 0) -> int:
        """Offer every sequence of a rollout; returns how many were stored."""
        seqs = {name: sequence_major(getattr(r, name), r.window).cpu().numpy()
                for name in _STEP_FIELDS}
        n = seqs["obs"].shape[0]
        b = r.next_obs.shape[0]
        k = r.steps // r.window
        # The observation after sequence k of env b: the first of sequence k + 1, or the
        # rollout's next observation for the last one (and its reset mask).
        obs_t = r.obs.reshape(k, r.window, b, -1)
        after = torch.cat([obs_t[1:, 0], r.next_obs[None]], 0).reshape(k * b, -1)
        reset_t = r.resets.reshape(k, r.window, b)
        after_reset = torch.cat([reset_t[1:, 0], r.next_reset[None]], 0).reshape(k * b)
        per_seq = {"next_obs": after.cpu().numpy(), "next_reset": after_reset.cpu().numpy(),
                   "task": np.full(n, task, np.int64)}
        if r.log_std is not None:
            per_seq["log_std"] = np.broadcast_to(r.log_std.cpu().numpy(),
                                                 (n, r.log_std.shape[-1])).copy()
        starts = sequence_starts(r)
        for name, s in zip(starts._fields, starts):
            per_seq["state_" + name] = s.cpu().numpy()
        if not self.arrays:
            self._allocate({**seqs, **per_seq}, type(starts))
        stored = 0
        for i in range(n):
            self.offered += 1
            if self.size < self.capacity:
                slot = self.size
                self.size += 1
            else:
                j = int(self.rng.integers(self.offered))
                if j >= self.capacity:
                    continue
                slot = j
            for name, a in seqs.items():
                self.arrays[name][slot] = a[i]
            for name, a in per_seq.items():
                self.arrays[name][slot] = a[i]
            self.arrays["priority"][slot] = self.max_priority
            stored += 1
        return stored

    def _allocate(self, example: dict[str, np.ndarray], state_type: Any) -> None:
        self.arrays = {name: np.zeros((self.capacity, *a.shape[1:]), a.dtype)
                       for name, a in example.items()}
        self.arrays["priority"] = np.zeros(self.capacity, np.float64)
        self.state_type = state_type
        self.state_names = tuple(state_type._fields)

    @property
    def nbytes(self) -> int:
        """The memory the buffer holds (allocated at its full capacity on the first add)."""
        return sum(a.nbytes for a in self.arrays.values())

    def describe(self) -> str:
        if not self.arrays:
            return f"replay buffer: {self.capacity} sequences (empty)"
        steps = self.arrays["obs"].shape[1]
        state = sum(self.arrays["state_" + n].nbytes for n in self.state_names) / self.capacity
        return (f"replay buffer: {self.capacity} sequences x {steps} steps, "
                f"{self.nbytes / 2**20:.1f} MiB ({state / 1024:.1f} KiB of recurrent state "
                f"per sequence), {self.sampling} sampling")

    # -- sampling ----------------------------------------------------------------------
    def sample(self, n: int, device: torch.device | str = "cpu") -> Batch:
        """``n`` sequences (without replacement when uniform and ``n <= size``)."""
        if self.size == 0:
            raise ValueError("sample: the replay buffer is empty")
        if self.sampling == "prioritized":
            p = self.arrays["priority"][:self.size] ** self.alpha
            prob = p / p.sum()
            index = self.rng.choice(self.size, size=n, replace=True, p=prob)
            w = (self.size * prob[index]) ** -self.beta
            w /= (self.size * prob.min()) ** -self.beta
        else:
            index = self.rng.choice(self.size, size=n, replace=n > self.size)
            w = np.ones(n)
        fields = {name: torch.from_numpy(a[index]).to(device)
                  for name, a in self.arrays.items()
                  if not name.startswith("state_") and name != "priority"}
        state = self.state_type(*(torch.from_numpy(self.arrays["state_" + s][index]).to(device)
                                  for s in self.state_names))
        return Batch(index, torch.as_tensor(w, dtype=torch.float32, device=device), fields,
                     state)

    def update_priorities(self, index: np.ndarray, priority: np.ndarray) -> None:
        priority = np.maximum(np.asarray(priority, np.float64), 1e-6)
        self.arrays["priority"][index] = priority
        self.max_priority = max(self.max_priority, float(priority.max()))

    # -- files (np.savez, no pickles) ---------------------------------------------------
    def save(self, path: str | Path, step: int) -> Path:
        """Atomically write the whole buffer (and its generator) to ``path`` (.npz)."""
        meta = {"format": "dnc-policy-replay", "version": 1, "step": int(step),
                "capacity": self.capacity, "sampling": self.sampling, "alpha": self.alpha,
                "beta": self.beta, "size": self.size, "offered": self.offered,
                "max_priority": self.max_priority, "state_names": list(self.state_names),
                "rng": self.rng.bit_generator.state}
        arrays = {name: a for name, a in self.arrays.items()}

        def write(f):
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        return atomic_write(Path(path), write)

    @classmethod
    def load(cls, path: str | Path, core: RecurrentCore | ActorCritic
             ) -> tuple["ReplayBuffer", int]:
        """A buffer saved by :meth:`save` and the step it was saved at. ``core`` is the
        policy (or its recurrent core, when it has no separate critic core): the stored
        sequence-start states must be states of it (its state fields, each of its
        shape; ``check_state``), so a run resumed with another memory size is refused
        here, not deep in a replay."""
        path = Path(path)
        state_type = core.state_type
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: z[k] for k in z.files if k != "meta"}
        except FileNotFoundError:
            raise ReplayError(f"replay buffer {str(path)!r} does not exist") from None
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise ReplayError(f"replay buffer {str(path)!r} is not a replay file: "
                              f"{' '.join(str(e).split())}") from None
        if not isinstance(meta, dict) or meta.get("format") != "dnc-policy-replay":
            found = meta.get("format") if isinstance(meta, dict) else meta
            raise ReplayError(f"replay buffer {str(path)!r} is not a replay file "
                              f"(format {found!r})")
        buf = cls(meta["capacity"], meta["sampling"], meta["alpha"], meta["beta"])
        buf.rng.bit_generator.state = meta["rng"]
        buf.size, buf.offered = meta["size"], meta["offered"]
        buf.max_priority = meta["max_priority"]
        if arrays:
            if tuple(meta["state_names"]) != tuple(state_type._fields):
                raise ReplayError(f"replay buffer {str(path)!r} holds states with fields "
                                  f"{meta['state_names']}, the policy's are "
                                  f"{list(state_type._fields)}")
            bad = [k for k, a in arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
            if bad:
                raise ReplayError(f"replay buffer {str(path)!r}: {bad[0]} holds a NaN or an "
                                  f"infinity")
            if any(a.shape[0] != buf.capacity for a in arrays.values()):
                raise ReplayError(f"replay buffer {str(path)!r}: arrays of a size other than "
                                  f"its capacity {buf.capacity}")
            missing = [n for n in state_type._fields if "state_" + n not in arrays]
            if missing:
                raise ReplayError(f"replay buffer {str(path)!r} lacks the state tensors "
                                  f"{missing}")
            try:
                core.check_state([arrays["state_" + n] for n in state_type._fields],
                                 buf.capacity)
            except ValueError as e:
                raise ReplayError(f"replay buffer {str(path)!r} holds states this policy's "
                                  f"core cannot take: {e}") from None
            buf.arrays, buf.state_type = arrays, state_type
            buf.state_names = tuple(meta["state_names"])
        return buf, int(meta["step"])


# --------------------------------------------------------------------------------------
# The replay loss
# --------------------------------------------------------------------------------------
def cloning_losses(policy: ActorCritic, dist: ActionDistribution, values: Tensor,
                   behaviour_params: Tensor, behaviour_log_std: Tensor | None,
                   behaviour_values: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """CLEAR's behavioural cloning over the valid rows of ``[S, L]`` sequences:
    ``(mean KL(behaviour || current), mean (V - V_behaviour)^2)``."""
    log_std = None if behaviour_log_std is None else \
        behaviour_log_std[:, None, :].expand_as(behaviour_params)
    behaviour = ActionDistribution(policy.action, behaviour_params, log_std)
    kl = behaviour.kl(dist)
    return masked_mean(kl, valid), masked_mean((values - behaviour_values) ** 2, valid)


def replay_steps(model, policy: ActorCritic, obs: Tensor, resets: Tensor, state: Any
                 ) -> tuple[ActionDistribution, Tensor, Any]:
    """Re-run ``[S, L]`` sequences with gradients from ``state``: the action
    distribution ``[S, L]``, the values ``[S, L]`` and the state after the last step."""
    out, state = model(obs, state, resets)
    return policy.distribution(out), out.value, state


@dataclass
class ReplaySettings:
    """What :class:`ReplayLoss` needs from the config (see docs/CONTINUAL.md)."""

    batch: int  # replayed sequences per gradient step
    gamma: float
    lam: float
    rho_bar: float = 1.0
    c_bar: float = 1.0
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    policy_cloning: float = 0.01
    value_cloning: float = 0.005


class ReplayLoss:
    """The replay term of every gradient step (``Learner.extra_loss``): samples
    ``settings.batch`` sequences, replays them with gradients and returns the V-trace
    actor-critic loss plus the cloning losses. Its figures since the last
    :meth:`drain` are averaged there (``replay/*`` in the logs)."""

    def __init__(self, buffer: ReplayBuffer, policy: ActorCritic, model, settings: ReplaySettings):
        self.buffer, self.policy, self.model, self.s = buffer, policy, model, settings
        self._totals: dict[str, float] = {}
        self._calls = 0

    def __call__(self) -> Tensor:
        device = next(self.policy.parameters()).device
        b = self.buffer.sample(self.s.batch, device)
        f = b.fields
        dist, values, state = replay_steps(self.model, self.policy, f["obs"], f["resets"],
                                           b.start_state)
        with torch.no_grad():
            boot = self.model(f["next_obs"], state, f["next_reset"])[0].value
        logp = dist.log_prob(f["actions"])
        tm = lambda x: x.transpose(0, 1)  # noqa: E731  [S, L] -> [L, S]
        vs, adv = vtrace(tm(f["logp"]), tm(logp.detach()), tm(f["rewards"]),
                         tm(values.detach()), boot, tm(f["terminated"]), tm(f["truncated"]),
                         tm(f["valid"]), self.s.gamma, self.s.lam, self.s.rho_bar, self.s.c_bar)
        vs, adv = tm(vs), tm(adv)
        valid = f["valid"]
        w = b.weights[:, None] * valid
        n = valid.sum().clamp(min=1.0)
        policy_loss = -(w * adv * logp).sum() / n
        value_loss = 0.5 * (w * (values - vs) ** 2).sum() / n
        entropy = masked_mean(dist.entropy(), valid)
        kl, value_clone = cloning_losses(self.policy, dist, values, f["dist"], f.get("log_std"),
                                         f["value"], valid)
        loss = (policy_loss + self.s.value_coef * value_loss - self.s.entropy_coef * entropy
                + self.s.policy_cloning * kl + self.s.value_cloning * value_clone)
        if self.buffer.sampling == "prioritized":
            per_seq = ((adv.abs() * valid).sum(1) / valid.sum(1).clamp(min=1.0))
            self.buffer.update_priorities(b.index, per_seq.cpu().numpy())
        with torch.no_grad():
            rho = (logp - f["logp"]).exp()
            figures = {"replay/policy": policy_loss.item(), "replay/value": value_loss.item(),
                       "replay/entropy": entropy.item(), "replay/kl": kl.item(),
                       "replay/value_cloning": value_clone.item(),
                       "replay/rho_mean": masked_mean(rho, valid).item(),
                       "replay/rho_clipped": masked_mean((rho > self.s.rho_bar).float(),
                                                         valid).item()}
        for k, v in figures.items():
            self._totals[k] = self._totals.get(k, 0.0) + v
        self._calls += 1
        return loss

    def drain(self) -> dict:
        out = {k: v / self._calls for k, v in self._totals.items()} if self._calls else {}
        self._totals, self._calls = {}, 0
        return out
