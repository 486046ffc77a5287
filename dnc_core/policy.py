"""Actor-critic policy over any recurrent core.

``obs [B, obs_dim] -> normaliser -> core.step -> features -> (policy head, value head)``.

Action spaces are described by :class:`ActionSpec` (plain data, no Gymnasium here;
``training`` converts Gymnasium spaces into it):

* ``discrete``: n choices; logits ``[B, n]``; action int64 ``[B]``.
* ``multi_discrete``: one choice per entry of ``nvec``; logits ``[B, sum(nvec)]``; action
  int64 ``[B, len(nvec)]``.
* ``multi_binary``: n independent bits; logits ``[B, n]``; action int64 ``[B, n]``.
* ``box``: a diagonal Gaussian with a learned, state-independent log-std; mean and
  log-std ``[B, act_dim]``; sampled actions are unbounded (their log-prob is exact) and
  :meth:`ActorCritic.env_action` clips them to ``[low, high]`` for the environment.
"""

from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Normal, kl_divergence

from .core import RecurrentCore, check_state_shapes

ACTION_KINDS = ("discrete", "multi_discrete", "multi_binary", "box")


@dataclass(frozen=True)
class ActionSpec:
    """What the policy must output. Build with the class methods."""

    kind: str
    n: int = 0  # discrete: choices; multi_binary: bits
    nvec: tuple[int, ...] = ()  # multi_discrete
    low: tuple[float, ...] = ()  # box, flattened
    high: tuple[float, ...] = ()  # box, flattened
    shape: tuple[int, ...] = field(default=())  # box: the env's action shape

    def __post_init__(self):
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"unknown action kind {self.kind!r}, expected one of {ACTION_KINDS}")
        if self.kind in ("discrete", "multi_binary") and self.n < 1:
            raise ValueError(f"{self.kind} action space needs n >= 1, got {self.n}")
        if self.kind == "multi_discrete" and (not self.nvec or min(self.nvec) < 1):
            raise ValueError(f"multi_discrete action space needs nvec of positive ints, got {self.nvec}")
        if self.kind == "box":
            if not self.low or len(self.low) != len(self.high):
                raise ValueError(f"box action space needs low and high of equal, non-zero "
                                 f"length, got {len(self.low)} and {len(self.high)}")
            if any(lo > hi for lo, hi in zip(self.low, self.high)):
                raise ValueError(f"box action space has low > high: {self.low} vs {self.high}")

    @classmethod
    def discrete(cls, n: int) -> "ActionSpec":
        return cls("discrete", n=int(n))

    @classmethod
    def multi_discrete(cls, nvec) -> "ActionSpec":
        return cls("multi_discrete", nvec=tuple(int(v) for v in nvec))

    @classmethod
    def multi_binary(cls, n: int) -> "ActionSpec":
        return cls("multi_binary", n=int(n))

    @classmethod
    def box(cls, low, high, shape=None) -> "ActionSpec":
        low = tuple(float(v) for v in torch.as_tensor(low, dtype=torch.float64).flatten())
        high = tuple(float(v) for v in torch.as_tensor(high, dtype=torch.float64).flatten())
        return cls("box", low=low, high=high, shape=tuple(shape) if shape else (len(low),))

    @property
    def dim(self) -> int:
        """Width of the action vector (1 for discrete, whose action is a scalar)."""
        return {"discrete": 1, "multi_discrete": len(self.nvec), "multi_binary": self.n,
                "box": len(self.low)}[self.kind]

    @property
    def head_size(self) -> int:
        """Width of the policy head's output (logits, or the Gaussian mean)."""
        return {"discrete": self.n, "multi_discrete": sum(self.nvec), "multi_binary": self.n,
                "box": len(self.low)}[self.kind]

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ActionSpec":
        d = dict(d)
        for k in ("nvec", "low", "high", "shape"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


class RunningNorm(nn.Module):
    """Observation normaliser with running mean and variance (parallel Welford).

    The statistics are float64 buffers, so they are saved in the module's state dict
    and follow it into checkpoints and the exported graph.
    """

    def __init__(self, size: int, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.clip, self.eps = float(clip), float(eps)
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(0.0, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold a batch ``x [..., size]`` into the running statistics."""
        x = x.reshape(-1, x.shape[-1]).to(torch.float64)
        if x.shape[0]:
            self.update_moments(x.shape[0], x.mean(0), x.var(0, unbiased=False))

    @torch.no_grad()
    def update_moments(self, n, batch_mean: Tensor, batch_var: Tensor) -> None:
        """Fold in a batch given by its size, mean and (biased) variance (e.g. pooled
        over processes)."""
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, x: Tensor) -> Tensor:
        mean, var = self.mean.to(x.dtype), self.var.to(x.dtype)
        return ((x - mean) / torch.sqrt(var + self.eps)).clamp(-self.clip, self.clip)


class PolicyOutput(NamedTuple):
    """One step's heads. ``dist`` is ``logits`` (categorical and binary spaces) or the
    Gaussian ``action_mean``; ``log_std`` is set for box spaces only."""

    dist: Tensor  # [B, head_size] (or [B, T, head_size] from evaluate)
    log_std: Tensor | None  # [act_dim]
    value: Tensor  # [B] (or [B, T])


#: The prefix of a separate critic core's state entries in the policy's state.
CRITIC_PREFIX = "critic_"


@lru_cache(maxsize=None)
def pair_state_type(actor: type, critic: type) -> type:
    """The state of a policy with a separate critic core: a NamedTuple of the actor
    core's fields followed by the critic core's, each prefixed ``critic_`` (one class
    per pair of core state types, so states of one policy are always of one type)."""
    return namedtuple(f"{actor.__name__}With{critic.__name__}",
                      actor._fields + tuple(CRITIC_PREFIX + f for f in critic._fields))


def _init_linear(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Actor-critic over a recurrent core.

    Args:
        core: any :class:`RecurrentCore` whose ``input_size`` equals ``obs_dim``.
        obs_dim: width of the flat observation.
        action: the :class:`ActionSpec`.
        normalize_obs: keep and apply a running observation normaliser.
        head_hidden: 0 for linear heads on the core's features, else the width of the
            tanh hidden layers in each head (actor and critic have their own).
        head_layers: how many such tanh layers each head has (1, or 2 as in
            sb3-contrib RecurrentPPO's default network); used when ``head_hidden > 0``.
        init_log_std: the Gaussian log-std at start (box actions).
        critic_core: None (the critic head reads ``core``'s features, as the actor's
            does), or a second core of its own that only the critic head reads: the
            value loss then shapes no weight the actor uses (sb3-contrib's RecurrentPPO
            has such a critic LSTM by default). Its state follows the actor core's in
            the policy's state, each entry prefixed ``critic_``; it is exported and
            carried like the rest, since the graph outputs the value.
    """

    def __init__(self, core: RecurrentCore, obs_dim: int, action: ActionSpec,
                 normalize_obs: bool = True, head_hidden: int = 0, init_log_std: float = 0.0,
                 critic_core: RecurrentCore | None = None, head_layers: int = 1):
        super().__init__()
        if isinstance(head_layers, bool) or not isinstance(head_layers, int) or head_layers < 1:
            raise ValueError(f"head_layers: expected an integer >= 1, got {head_layers!r}")
        for name, c in (("core", core), ("critic_core", critic_core)):
            if c is not None and getattr(c, "input_size", obs_dim) != obs_dim:
                raise ValueError(f"{name} input_size {c.input_size} != obs_dim {obs_dim}")
        self.core, self.obs_dim, self.action = core, int(obs_dim), action
        self.critic_core = critic_core
        self.normalize_obs, self.head_hidden = bool(normalize_obs), int(head_hidden)
        self.head_layers = head_layers
        self.obs_norm = RunningNorm(obs_dim)

        def head(out: int, gain: float, f: int) -> nn.Module:
            if head_hidden <= 0:
                return _init_linear(nn.Linear(f, out), gain)
            layers: list[nn.Module] = []
            for i in range(head_layers):
                layers += [_init_linear(nn.Linear(f if i == 0 else head_hidden, head_hidden),
                                        math.sqrt(2)), nn.Tanh()]
            return nn.Sequential(*layers, _init_linear(nn.Linear(head_hidden, out), gain))

        self.actor = head(action.head_size, 0.01, core.feature_size)
        self.critic = head(1, 1.0, (critic_core or core).feature_size)
        if action.kind == "box":
            self.log_std = nn.Parameter(torch.full((action.head_size,), float(init_log_std)))
            self.register_buffer("action_low", torch.tensor(action.low, dtype=torch.float32))
            self.register_buffer("action_high", torch.tensor(action.high, dtype=torch.float32))
        else:
            self.log_std = None

    # -- state -------------------------------------------------------------------------
    @property
    def state_type(self) -> type:
        """The NamedTuple class of the policy's state: the core's, or with a separate
        critic core :func:`pair_state_type` of both."""
        if self.critic_core is None:
            return self.core.state_type
        return pair_state_type(self.core.state_type, self.critic_core.state_type)

    @property
    def state_spec(self):
        if self.critic_core is None:
            return self.core.state_spec
        return self.core.state_spec + tuple((CRITIC_PREFIX + n, s)
                                            for n, s in self.critic_core.state_spec)

    @property
    def state_bounds(self) -> dict:
        """The cores' ``state_bounds`` under the policy's state names."""
        bounds = dict(self.core.state_bounds)
        if self.critic_core is not None:
            bounds.update({CRITIC_PREFIX + n: b for n, b in self.critic_core.state_bounds.items()})
        return bounds

    @property
    def cores(self) -> tuple[RecurrentCore, ...]:
        """The actor core, then the critic's own core if there is one."""
        return (self.core,) if self.critic_core is None else (self.core, self.critic_core)

    def initial_state(self, batch_size: int, device=None, dtype=None) -> Any:
        parts = [c.initial_state(batch_size, device, dtype) for c in self.cores]
        return parts[0] if len(parts) == 1 else self.state_type(*parts[0], *parts[1])

    def check_state(self, state, batch_size: int) -> None:
        """As :meth:`RecurrentCore.check_state`, over the policy's whole state."""
        check_state_shapes(self.state_spec, state, batch_size)

    def split_state(self, state: Any) -> tuple[Any, Any]:
        """``(actor core's state, critic core's state or None)`` of a policy state."""
        if self.critic_core is None:
            return state, None
        n = len(self.core.state_spec)
        return self.core.state_type(*state[:n]), self.critic_core.state_type(*state[n:])

    # -- forward -----------------------------------------------------------------------
    def normalize(self, obs: Tensor) -> Tensor:
        return self.obs_norm(obs) if self.normalize_obs else obs

    def heads(self, features: Tensor) -> PolicyOutput:
        """Heads over features ``[..., F]`` -> :class:`PolicyOutput` with leading dims kept:
        the critic head reads the same features, so this is the policy's output only
        without a ``critic_core`` (``forward`` and ``replay`` feed each head its own)."""
        return PolicyOutput(self.actor(features), self.log_std, self.critic(features).squeeze(-1))

    def forward(self, obs: Tensor, state: Any, reset: Tensor | None = None
                ) -> tuple[PolicyOutput, Any]:
        """One control tick: ``obs [B, obs_dim]``, ``reset [B]`` -> heads and new state.

        Or a sequence (a replay): ``obs [B, T, obs_dim]``, ``reset [B, T]`` -> heads with
        leading dims ``[B, T]`` and the state after the last step. The core steps through
        the ``T`` steps with each step's reset (:meth:`RecurrentCore.unroll`), then the
        heads run once over all of them: the same function as ``T`` ticks, with a
        ``T``-th of the heads' calls."""
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"observation has {obs.shape[-1]} values, expected {self.obs_dim}")
        if obs.dim() not in (2, 3):
            raise ValueError(f"observation must be [batch, {self.obs_dim}] or [batch, steps, "
                             f"{self.obs_dim}], got shape {tuple(obs.shape)}")
        x = self.normalize(obs)

        def run(core: RecurrentCore, s: Any) -> tuple[Tensor, Any]:
            return core.step(x, s, reset) if obs.dim() == 2 else core.unroll(x, s, reset)

        if self.critic_core is None:
            features, state = run(self.core, state)
            return self.heads(features), state
        actor_state, critic_state = self.split_state(state)
        features, actor_state = run(self.core, actor_state)
        critic_features, critic_state = run(self.critic_core, critic_state)
        out = PolicyOutput(self.actor(features), self.log_std,
                           self.critic(critic_features).squeeze(-1))
        return out, self.state_type(*actor_state, *critic_state)

    # -- actions -----------------------------------------------------------------------
    def distribution(self, out: PolicyOutput) -> "ActionDistribution":
        return ActionDistribution(self.action, out.dist, out.log_std)

    def act(self, obs: Tensor, state: Any, reset: Tensor | None = None,
            deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor, Any]:
        """``(action, log_prob [B], value [B], new_state)``. Box actions are unclipped;
        pass them through :meth:`env_action` before stepping an environment."""
        out, state = self(obs, state, reset)
        dist = self.distribution(out)
        action = dist.mode() if deterministic else dist.sample()
        return action, dist.log_prob(action), out.value, state

    def env_action(self, action: Tensor) -> Tensor:
        """The action an environment receives: box actions clipped to the bounds."""
        if self.action.kind != "box":
            return action
        return torch.maximum(torch.minimum(action, self.action_high), self.action_low)

    def config(self) -> dict:
        """Everything needed to rebuild this module (with its state dict)."""
        cfg = dict(core=self.core.kind, core_config=self.core.config(), obs_dim=self.obs_dim,
                   action=self.action.to_dict(), normalize_obs=self.normalize_obs,
                   head_hidden=self.head_hidden)
        if self.head_layers != 1:  # absent at 1: older readers take the rest
            cfg["head_layers"] = self.head_layers
        if self.critic_core is not None:  # absent otherwise: older readers take the rest
            cfg["critic_core"] = {"kind": self.critic_core.kind,
                                  "config": self.critic_core.config()}
        return cfg

    @classmethod
    def from_config(cls, cfg: dict) -> "ActorCritic":
        from . import make_core  # late import: dnc_core/__init__ imports this module

        critic = cfg.get("critic_core")
        return cls(make_core(cfg["core"], **cfg["core_config"]), cfg["obs_dim"],
                   ActionSpec.from_dict(cfg["action"]), normalize_obs=cfg["normalize_obs"],
                   head_hidden=cfg["head_hidden"], head_layers=cfg.get("head_layers", 1),
                   critic_core=None if critic is None else make_core(critic["kind"],
                                                                     **critic["config"]))


def deterministic_action(spec: ActionSpec, params: Tensor) -> Tensor:
    """The distribution's mode from its parameters (logits or Gaussian mean), built from
    plain ops so it exports to ONNX (``torch.distributions`` objects do not)."""
    if spec.kind == "discrete":
        return params.argmax(-1)
    if spec.kind == "multi_discrete":
        return torch.stack([p.argmax(-1) for p in torch.split(params, list(spec.nvec), -1)], -1)
    if spec.kind == "multi_binary":
        return (params > 0).long()
    return params


class NonFiniteDistribution(ValueError):
    """Sampling from an action distribution whose parameters hold NaN or Inf (a policy
    whose outputs diverged, even with finite weights)."""


class ActionDistribution:
    """The action distribution for one :class:`ActionSpec`, over any leading dims.

    torch's argument validation is off (``validate_args=False``), always: it would raise
    on NaN parameters, but only while no ``torch.compile`` has run in the process (which
    turns it off globally), so behaviour would depend on what ran before. Instead,
    :meth:`sample` refuses non-finite parameters itself (:class:`NonFiniteDistribution`),
    and the trainers check the weights after every update; log-probabilities and
    entropies of such parameters are NaN, which that check then finds."""

    def __init__(self, spec: ActionSpec, params: Tensor, log_std: Tensor | None):
        self.spec = spec
        if spec.kind == "discrete":
            self._dists = [Categorical(logits=params, validate_args=False)]
        elif spec.kind == "multi_discrete":
            self._dists = [Categorical(logits=p, validate_args=False)
                           for p in torch.split(params, list(spec.nvec), -1)]
        elif spec.kind == "multi_binary":
            self._dist = Bernoulli(logits=params, validate_args=False)
        else:
            self._dist = Normal(params, log_std.expand_as(params).exp(), validate_args=False)
        self.params, self.log_std = params, log_std

    def sample(self) -> Tensor:
        """An action per row; :class:`NonFiniteDistribution` (one line) if a parameter is
        NaN or infinite (torch would raise a traceback from the sampler, or, for a Box,
        return NaN actions)."""
        parts = (self.params,) if self.log_std is None else (self.params, self.log_std)
        if not all(bool(torch.isfinite(t).all()) for t in parts):  # no copy per step
            bad = sum(int((~torch.isfinite(t)).sum()) for t in parts)
            raise NonFiniteDistribution(
                f"the {self.spec.kind} action distribution has {bad} non-finite "
                f"parameter(s) of {sum(t.numel() for t in parts)}: the policy's outputs "
                "diverged")
        k = self.spec.kind
        if k == "discrete":
            return self._dists[0].sample()
        if k == "multi_discrete":
            return torch.stack([d.sample() for d in self._dists], dim=-1)
        if k == "multi_binary":
            return self._dist.sample().long()
        return self._dist.sample()

    def mode(self) -> Tensor:
        return deterministic_action(self.spec, self.params)

    def log_prob(self, action: Tensor) -> Tensor:
        k = self.spec.kind
        if k == "discrete":
            return self._dists[0].log_prob(action.long())
        if k == "multi_discrete":
            a = action.long()
            return sum(d.log_prob(a[..., i]) for i, d in enumerate(self._dists))
        if k == "multi_binary":
            return self._dist.log_prob(action.to(self.params.dtype)).sum(-1)
        return self._dist.log_prob(action).sum(-1)

    def entropy(self) -> Tensor:
        if self.spec.kind in ("discrete", "multi_discrete"):
            return sum(d.entropy() for d in self._dists)
        return self._dist.entropy().sum(-1)

    def kl(self, other: "ActionDistribution") -> Tensor:
        """``KL(self || other)`` over the leading dims (summed over an action's
        components); ``other`` must be of the same :class:`ActionSpec`."""
        if other.spec != self.spec:
            raise ValueError(f"kl: the two distributions are of different action specs "
                             f"({self.spec.kind} and {other.spec.kind})")
        if self.spec.kind in ("discrete", "multi_discrete"):
            return sum(kl_divergence(p, q) for p, q in zip(self._dists, other._dists))
        return kl_divergence(self._dist, other._dist).sum(-1)
