"""Gymnasium spaces <-> the flat tensors and :class:`ActionSpec` the policy works with.

Observations of any Box, Discrete, MultiDiscrete or MultiBinary space are flattened to
float32 vectors (discrete values one-hot, as ``gymnasium.spaces.flatten`` does), batched.
Actions are described by an :class:`ActionSpec` and converted back to what the (vector)
env expects.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from dnc_core import ActionSpec

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


def action_spec(space: spaces.Space) -> ActionSpec:
    """The :class:`ActionSpec` for a single env's action space."""
    if isinstance(space, spaces.Discrete):
        if int(space.start) != 0:
            raise ValueError(f"Discrete action spaces must start at 0, got start={space.start}")
        return ActionSpec.discrete(int(space.n))
    if isinstance(space, spaces.MultiDiscrete):
        if np.any(np.asarray(space.start) != 0):
            raise ValueError("MultiDiscrete action spaces must start at 0")
        return ActionSpec.multi_discrete(np.asarray(space.nvec).reshape(-1).tolist())
    if isinstance(space, spaces.MultiBinary):
        return ActionSpec.multi_binary(int(np.prod(space.shape)))
    if isinstance(space, spaces.Box):
        return ActionSpec.box(space.low.reshape(-1).tolist(), space.high.reshape(-1).tolist(),
                              shape=space.shape)
    raise ValueError(f"action space {space} is not supported: expected Discrete, "
                     f"MultiDiscrete, MultiBinary or Box")


def to_env_actions(actions: np.ndarray, space: spaces.Space) -> np.ndarray:
    """Policy actions ``[B, ...]`` (already clipped for Box) -> the batched env actions."""
    b = actions.shape[0]
    if isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
        return actions.reshape((b,) + space.shape).astype(space.dtype, copy=False)
    return actions.reshape(b).astype(np.int64, copy=False)


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
