"""Gymnasium spaces <-> flat float32 vectors: the one conversion the trainers, the
evaluations and the sim bridge (dnc_policy_tools) share. Pure Gymnasium and numpy.

Observations of any Box, Discrete, MultiDiscrete or MultiBinary space are flattened to
float32 vectors (discrete values one-hot, as ``gymnasium.spaces.flatten`` does), batched;
policy actions are converted back to what the env takes.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

SUPPORTED = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


class ObsFlattener:
    """Batched flattening of one observation space: ``obs [B, ...] -> float32 [B, dim]``."""

    def __init__(self, space: spaces.Space):
        if not isinstance(space, SUPPORTED):
            raise ValueError(f"observation space {space} is not supported: expected Box, "
                             f"Discrete, MultiDiscrete or MultiBinary")
        self.space = space
        if isinstance(space, spaces.Discrete):
            self.dim = int(space.n)
        elif isinstance(space, spaces.MultiDiscrete):
            self._nvec = np.asarray(space.nvec).reshape(-1)
            self._offsets = np.concatenate([[0], np.cumsum(self._nvec)[:-1]])
            self.dim = int(self._nvec.sum())
        else:
            self.dim = int(np.prod(space.shape))

    def __call__(self, obs) -> np.ndarray:
        obs = np.asarray(obs)
        b = obs.shape[0]
        if isinstance(self.space, spaces.Discrete):
            out = np.zeros((b, self.dim), np.float32)
            out[np.arange(b), obs.reshape(b).astype(np.int64) - int(self.space.start)] = 1.0
            return out
        if isinstance(self.space, spaces.MultiDiscrete):
            out = np.zeros((b, self.dim), np.float32)
            idx = obs.reshape(b, -1).astype(np.int64) - np.asarray(self.space.start).reshape(-1)
            np.put_along_axis(out, idx + self._offsets, 1.0, axis=1)
            return out
        return obs.reshape(b, self.dim).astype(np.float32, copy=False)


def to_env_actions(actions: np.ndarray, space: spaces.Space) -> np.ndarray:
    """Policy actions ``[B, ...]`` (already clipped for Box) -> the batched env actions.
    Discrete kinds are rounded first (a ROS message carries them as float32) and offset
    by the space's ``start``."""
    actions = np.asarray(actions)
    b = actions.shape[0]
    if isinstance(space, spaces.Box):
        return actions.reshape((b,) + space.shape).astype(space.dtype, copy=False)
    if actions.dtype.kind == "f":
        actions = np.rint(actions)
    if isinstance(space, spaces.MultiBinary):
        return actions.reshape((b,) + space.shape).astype(space.dtype, copy=False)
    # (the offset only where a space has one: this runs at every rollout step)
    if isinstance(space, spaces.MultiDiscrete):
        out = actions.reshape((b,) + space.shape).astype(np.int64, copy=False)
        start = np.asarray(space.start, np.int64).reshape(space.shape)
        return out + start if start.any() else out
    if isinstance(space, spaces.Discrete):
        out = actions.reshape(b).astype(np.int64, copy=False)
        return out + int(space.start) if int(space.start) else out
    raise ValueError(f"action space {space} is not supported: expected Discrete, "
                     f"MultiDiscrete, MultiBinary or Box")


def describe_space(space: spaces.Space) -> dict:
    """Plain-data description of a space (for checkpoints and the ONNX contract)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": np.asarray(space.low, np.float64).reshape(-1).tolist(),
                "high": np.asarray(space.high, np.float64).reshape(-1).tolist()}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).reshape(-1).tolist(),
                "shape": list(space.shape)}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "shape": list(space.shape)}
    raise ValueError(f"space {space} is not supported")
