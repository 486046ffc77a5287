"""Wrappers that turn fully observed classic-control tasks into memory tasks."""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control import CartPoleEnv

from sim._checks import int_arg, render_mode_arg
from sim._render import draw_segment, warn_no_render_mode

# Observation indices that are *not* velocities, for the classic-control tasks.
POSITION_INDICES = {
    "CartPole": (0, 2),  # cart position, pole angle (drops both velocities)
    "Pendulum": (0, 1),  # cos(theta), sin(theta) (drops angular velocity)
    "MountainCar": (0,),  # position (drops velocity)
    "MountainCarContinuous": (0,),
    "Acrobot": (0, 1, 2, 3),  # cos/sin of both joint angles (drops both joint velocities)
}


class HideVelocity(gym.ObservationWrapper):
    """Keep only the position-like entries of a flat ``Box`` observation.

    A policy that sees positions only must estimate velocities from consecutive
    observations, i.e. it needs (a little) memory: CartPole without velocities is the
    classic minimal partially observable control task. How hard: easy for any recurrent
    policy, while a memoryless one balances the pole noticeably worse.

    Args:
        env: the environment to wrap; its observation space must be a 1-D ``Box``.
        keep: indices to keep; by default looked up from the wrapped env's id in
            :data:`POSITION_INDICES` (CartPole, Pendulum, MountainCar, Acrobot).
    """

    def __init__(self, env: gym.Env, keep: tuple[int, ...] | None = None):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"env must have a 1-D Box observation space, got {space}")
        if keep is None:
            keep = POSITION_INDICES.get(_base_name(env))
            if keep is None:
                raise ValueError(
                    f"keep must be given for {_base_name(env)!r}; known envs: "
                    f"{sorted(POSITION_INDICES)}"
                )
        keep = tuple(keep)
        n = space.shape[0]
        if not keep or len(set(keep)) != len(keep) or not all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= i < n
            for i in keep
        ):
            raise ValueError(f"keep must be distinct integer indices in [0, {n - 1}], got {keep!r}")
        self.keep = np.asarray(keep, dtype=np.intp)
        self.observation_space = spaces.Box(
            space.low[self.keep], space.high[self.keep], dtype=space.dtype
        )

    def observation(self, observation):
        return observation[self.keep]


class SurvivalSuccess(gym.Wrapper):
    """Set ``info["is_success"]`` at episode end: True when the episode was truncated
    (time limit reached) rather than terminated (e.g. the pole fell)."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            info = {**info, "is_success": bool(truncated and not terminated)}
        return obs, reward, terminated, truncated, info


def _base_name(env: gym.Env) -> str:
    spec = env.spec or env.unwrapped.spec
    if spec is not None:
        return spec.name
    return type(env.unwrapped).__name__.removesuffix("Env")


class NumpyCartPoleEnv(CartPoleEnv):
    """CartPole-v1 with an ``rgb_array`` renderer drawn in numpy (no pygame needed)."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": CartPoleEnv.metadata["render_fps"]}

    def render(self):
        if self.render_mode is None:
            return warn_no_render_mode()
        height, width = 200, 300
        img = np.full((height, width, 3), 235, np.uint8)
        x, _, theta, _ = self.state if self.state is not None else (0.0, 0.0, 0.0, 0.0)
        scale = width / (2 * self.x_threshold)
        track_y = 150
        img[track_y, :] = (40, 40, 48)
        cx = width / 2 + x * scale
        x0, x1 = int(max(0, cx - 25)), int(min(width, cx + 25))
        img[track_y - 15 : track_y + 1, x0:x1] = (30, 100, 230)
        pole = 2 * self.length * scale
        tip = (cx + pole * np.sin(theta), track_y - 15 - pole * np.cos(theta))
        draw_segment(img, (cx, track_y - 15), tip, (200, 120, 60), 3.0)
        return img


def make_cartpole_po(max_steps: int = 500, render_mode: str | None = None) -> gym.Env:
    """``dnc/CartPolePO-v0``: CartPole-v1 with only cart position and pole angle observed.

    Observation ``Box(float32, (2,))``: ``[x, theta]``; action ``Discrete(2)``; +1 per
    step; *terminated* when the pole falls, *truncated* after ``max_steps`` (500, as
    CartPole-v1), and ``info["is_success"]`` is True when the time limit was reached.
    """
    max_steps = int_arg("max_steps", max_steps, 1, 1_000_000)
    render_mode = render_mode_arg(render_mode, NumpyCartPoleEnv.metadata)
    env = gym.wrappers.TimeLimit(NumpyCartPoleEnv(render_mode=render_mode), max_steps)
    return SurvivalSuccess(HideVelocity(env, keep=POSITION_INDICES["CartPole"]))


make_cartpole_po.metadata = NumpyCartPoleEnv.metadata  # lets gymnasium.make check render modes
