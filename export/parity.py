"""Parity of an exported policy with its PyTorch original, on real env observations:
``batch`` envs of the checkpoint's own env for ``steps`` consecutive steps, the same
observations and resets (every episode start, and at random steps) fed to both sides,
each carrying its own state. Value and distribution parameters must agree within
:data:`TOLERANCE`, discrete actions exactly, and nothing may be NaN or infinite.
``export.onnx`` runs it on every file it writes; ``export.gpu_check`` runs it through
GPU sessions (``onnx_step``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from dnc_policy.contract import OBS, RESET, STATE_IN, distribution_outputs
from dnc_policy.contract import io_names as contract_io_names

from dnc_core import ActorCritic

TOLERANCE = 1e-4


@dataclass
class ParityReport:
    batch: int
    steps: int
    resets: int = 0
    max_value_diff: float = 0.0
    max_dist_diff: float = 0.0
    max_state_diff: float = 0.0
    max_action_diff: float = 0.0  # box actions
    action_mismatches: int = 0  # discrete kinds
    # Non-finite (NaN or inf) values among the outputs (value, distribution parameters,
    # state, Box actions) of each side, over all steps: any of them fails the check.
    nonfinite_torch: int = 0
    nonfinite_onnx: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # (a NaN difference fails each comparison too)
        return (self.steps > 0 and self.nonfinite_torch == 0 and self.nonfinite_onnx == 0
                and self.max_value_diff <= TOLERANCE and self.max_dist_diff <= TOLERANCE
                and self.max_action_diff <= TOLERANCE and self.action_mismatches == 0)

    def line(self) -> str:
        nonfinite = (f"  non-finite outputs: torch {self.nonfinite_torch}, onnx "
                     f"{self.nonfinite_onnx}" if self.nonfinite_torch or self.nonfinite_onnx
                     else "")
        return (f"batch {self.batch}: {self.steps} steps, {self.resets} resets | max |Δvalue| "
                f"{self.max_value_diff:.2e}  max |Δdist| {self.max_dist_diff:.2e}  "
                f"max |Δstate| {self.max_state_diff:.2e}  max |Δaction| "
                f"{self.max_action_diff:.2e}  discrete action mismatches "
                f"{self.action_mismatches}{nonfinite}  -> {'PASS' if self.ok else 'FAIL'}")


def _max_diff(current: float, arrays) -> float:
    """The largest |a - b| over ``arrays`` (pairs) and ``current``; NaN as soon as any
    difference is NaN (``max()`` would silently drop it)."""
    out = current
    for a, b in arrays:
        with np.errstate(invalid="ignore"):  # inf - inf: NaN, reported as such
            d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        m = float(d.max()) if d.size else 0.0
        if math.isnan(m) or math.isnan(out):
            return math.nan
        out = max(out, m)
    return out


def _nonfinite(arrays) -> int:
    return int(sum((~np.isfinite(np.asarray(a))).sum() for a in arrays))


def session_step(policy: ActorCritic, onnx_path: str | Path, batch: int):
    """The ONNX side of :func:`check_parity` for a plain CPU session: a callable
    ``(obs, reset) -> (action, value, [distribution outputs], [state])`` that carries the
    graph's state from call to call (zeros at first, as the runtime's)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    _, outputs = contract_io_names([n for n, _ in policy.state_spec],
                                   policy.action.kind)
    names = [n for n, _ in policy.state_spec]
    n_dist = len(distribution_outputs(policy.action.kind))
    state = [np.zeros((batch, *shape), np.float32) for _, shape in policy.state_spec]

    def step(obs, reset):
        nonlocal state
        feed = {OBS: obs, RESET: reset, **{STATE_IN + n: s for n, s in zip(names, state)}}
        res = sess.run(outputs, feed)
        state = res[2 + n_dist:]
        return res[0], res[1], res[2:2 + n_dist], state

    return step


def check_parity(policy: ActorCritic, onnx_path: str | Path | None, env_id: str,
                 env_kwargs: dict, steps: int = 1000, batch: int = 1, seed: int = 0,
                 reset_prob: float = 0.02, onnx_step=None) -> ParityReport:
    """Run ``batch`` envs for ``steps`` steps with the PyTorch policy's deterministic
    actions; feed the same observations and resets to ONNX Runtime; each side carries
    its own state. Resets: every episode start, plus extra ones at random steps.

    The ONNX side is a plain CPU session of ``onnx_path`` (:func:`session_step`), or
    ``onnx_step``, a callable of the same form for ``batch`` rows (``export.gpu_check``
    passes its IOBinding / CUDA-graph sessions)."""
    import gymnasium as gym

    import sim  # noqa: F401
    from training.evaluate import TorchActor
    from training.spaces import ObsFlattener, to_env_actions

    policy = policy.cpu().float().eval()
    if onnx_step is None:
        onnx_step = session_step(policy, onnx_path, batch)
    n_dist = len(distribution_outputs(policy.action.kind))
    envs = [gym.make(env_id, **env_kwargs) for _ in range(batch)]
    flatten = ObsFlattener(envs[0].observation_space)
    rng = np.random.default_rng(seed)
    episode = 0
    obs = np.zeros((batch, flatten.dim), np.float32)
    for i, env in enumerate(envs):
        obs[i] = flatten(np.asarray(env.reset(seed=seed + episode)[0])[None])[0]
        episode += 1
    reset = np.ones(batch, np.float32)
    torch_tick = TorchActor(policy, batch, deterministic=True)
    report = ParityReport(batch=batch, steps=steps)
    for t in range(steps):
        extra = rng.random(batch) < reset_prob  # memory resets mid-episode too
        reset = np.maximum(reset, extra.astype(np.float32))
        report.resets += int(reset.sum())
        a_t = torch_tick(obs, reset)  # the graph's deterministic action, in PyTorch
        out, state_t = torch_tick.out, torch_tick.state
        torch_dist = [out.dist] + ([out.log_std.detach().expand_as(out.dist)] if n_dist == 2
                                   else [])
        a_o, v_o, dist_o, state_o = onnx_step(obs, reset)
        torch_dist = [d.numpy() for d in torch_dist]
        torch_state = [s.numpy() for s in state_t]
        report.max_value_diff = _max_diff(report.max_value_diff, [(v_o, out.value.numpy())])
        report.max_dist_diff = _max_diff(report.max_dist_diff, zip(dist_o, torch_dist))
        report.max_state_diff = _max_diff(report.max_state_diff, zip(state_o, torch_state))
        box = policy.action.kind == "box"
        report.nonfinite_torch += _nonfinite([out.value.numpy(), *torch_dist, *torch_state]
                                             + ([a_t] if box else []))
        report.nonfinite_onnx += _nonfinite([v_o, *dist_o, *state_o] + ([a_o] if box else []))
        if box:
            report.max_action_diff = _max_diff(report.max_action_diff, [(a_o, a_t)])
        else:
            report.action_mismatches += int((a_o.reshape(batch, -1)
                                             != a_t.reshape(batch, -1)).any(-1).sum())
        if report.nonfinite_torch or report.nonfinite_onnx:
            report.steps = t + 1  # failed; and NaN actions are not for the env
            break
        env_actions = to_env_actions(a_t, envs[0].action_space)
        reset = np.zeros(batch, np.float32)
        for i, env in enumerate(envs):
            o, _, terminated, truncated, _ = env.step(env_actions[i])
            if terminated or truncated:
                o, _ = env.reset(seed=seed + episode)
                episode += 1
                reset[i] = 1.0
            obs[i] = flatten(np.asarray(o)[None])[0]
    for env in envs:
        env.close()
    return report
