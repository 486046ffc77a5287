"""Gymnasium spaces <-> the :class:`ActionSpec` the policy works with. The flattening of
observations and the conversion of actions back to the env are ``sim.spaces``'s (shared
with the sim bridge), re-exported here.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from dnc_core import ActionSpec
from sim.spaces import SUPPORTED, ObsFlattener, describe_space, to_env_actions

__all__ = ["SUPPORTED", "ObsFlattener", "action_spec", "describe_space", "to_env_actions"]


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
