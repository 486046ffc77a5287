"""MemoryNav: a unicycle robot that is shown its goal briefly and must then reach it blind."""

from __future__ import annotations

import math
from typing import ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim._checks import (choice_arg, draw_int, float_arg, int_arg, int_range_arg,
                         render_mode_arg)
from sim._render import draw_ring, draw_segment, fill_disc, warn_no_render_mode

GOAL_BOUND = 3.0  # |goal offset| / half_size is at most 2 * sqrt(2) < 3 inside the arena


class MemoryNavEnv(gym.Env):
    """Drive a 2-D unicycle robot to a goal that is only visible during the first steps.

    The robot lives in a square arena of side ``arena_size`` metres with pose
    ``(x, y, theta)``; its action is a velocity command ``[v, omega]`` (linear m/s,
    angular rad/s, i.e. ``geometry_msgs/Twist`` ``linear.x`` and ``angular.z``),
    integrated for ``dt`` seconds; the walls stop it (the position is clamped). For the
    first ``cue_steps`` steps the goal is shown, as an offset in the robot's own frame,
    while the robot is held still (commands are ignored: it is being briefed); after that
    the goal vanishes from the observation (unless ``show_goal="always"``) and the robot
    must drive there from memory. (``show_goal="never"`` hides it during the briefing too.)
    Entering the ``goal_radius`` circle terminates the episode with success.

    What it tests: remembering a continuous target and combining it with odometry (the
    robot's pose stays observed) over ~100 control steps, with robot-like kinematics.
    How hard: moderate; a memoryless policy can only sweep the arena (well under 30 %
    success with the defaults), a policy that stores the goal's world position succeeds
    almost always.

    Observation ``Box(float32, (7,))``: ``[x / h, y / h, cos theta, sin theta,
    goal_visible, goal_forward / h, goal_left / h]`` with ``h = arena_size / 2``; the goal
    terms are 0 once hidden (never with ``show_goal="always"``, always with
    ``"never"``). Action
    ``Box([-v_max, -w_max], [v_max, w_max], float32)``.
    Reward: ``progress_coef * (previous distance - distance)`` (metres) minus
    ``step_penalty`` each step, plus +1 on reaching the goal. Episodes are *truncated*
    after ``max_steps``; ``info["is_success"]`` and ``info["distance"]`` are set on the
    final step; the reset info holds ``info["distance"]`` (start to goal) and
    ``info["cue_steps"]`` (this episode's briefing length).

    Randomised briefing: ``cue_steps=[lo, hi]`` draws each episode's number of steps with
    the goal shown uniformly from ``lo..hi`` at reset (from ``np_random``, after the pose
    and goal, so a seed gives the same start and goal whatever the range). The
    ``goal_visible`` flag marks the briefing, so a policy must store the goal during
    however many steps it gets rather than rely on a fixed moment. ``self.cue_steps`` is
    the current episode's value (``hi`` before the first reset), ``self.cue_steps_range``
    the ``(lo, hi)`` the env was made with. (The arena size has no range: positions are
    observed divided by the half-size, so a per-episode size would change the meaning of
    the observation and of ``v_max`` without the policy seeing it.)

    Args:
        arena_size: side of the square arena in metres, (0.5, 100].
        v_max: top linear speed in m/s, (0, 10].
        w_max: top angular speed in rad/s, (0, 10].
        dt: control period in seconds, (0, 1].
        cue_steps: steps during which the goal is visible, 1..max_steps - 1, or a range
            ``[lo, hi]`` (list or tuple, ``1 <= lo <= hi <= max_steps - 1``) to draw it
            from at every reset.
        goal_radius: success radius in metres, (0, arena_size / 4].
        min_goal_distance: smallest start-to-goal distance in metres, [0, arena_size / 2].
        step_penalty: cost per step, [0, 1]. progress_coef: shaping weight, [0, 10].
        max_steps: truncation limit, 2..100000.
        show_goal: ``"briefing"`` (the task: the goal offset is observed during the
            briefing only) or ``"always"``: the same task without its memory demand, the
            goal offset observed at every step (``goal_visible`` still marks the
            briefing). A control for studies: a trainer that learns ``"always"`` but not
            the task lacks the memory; one that learns neither lacks the driving.
            ``"never"``: the goal is never observed (the briefing, flag and held robot
            stay), so whatever a policy learns there is a blind sweep: the other control,
            the success a trained policy reaches without the goal.
        render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        arena_size: float = 4.0,
        v_max: float = 0.5,
        w_max: float = 2.0,
        dt: float = 0.1,
        cue_steps: int = 3,
        goal_radius: float = 0.25,
        min_goal_distance: float = 1.0,
        step_penalty: float = 0.01,
        progress_coef: float = 1.0,
        max_steps: int = 200,
        show_goal: str = "briefing",
        render_mode: str | None = None,
    ):
        self.arena_size = float_arg("arena_size", arena_size, 0.5, 100.0, low_open=True)
        self.v_max = float_arg("v_max", v_max, 0.0, 10.0, low_open=True)
        self.w_max = float_arg("w_max", w_max, 0.0, 10.0, low_open=True)
        self.dt = float_arg("dt", dt, 0.0, 1.0, low_open=True)
        self.max_steps = int_arg("max_steps", max_steps, 2, 100_000)
        self.cue_steps_range = int_range_arg("cue_steps", cue_steps, 1, self.max_steps - 1)
        self.cue_steps = self.cue_steps_range[1]
        half = self.arena_size / 2
        self.goal_radius = float_arg("goal_radius", goal_radius, 0.0, half / 2, low_open=True)
        self.min_goal_distance = float_arg("min_goal_distance", min_goal_distance, 0.0, half)
        self.step_penalty = float_arg("step_penalty", step_penalty, 0.0, 1.0)
        self.progress_coef = float_arg("progress_coef", progress_coef, 0.0, 10.0)
        self.show_goal = choice_arg("show_goal", show_goal, ("briefing", "always", "never"))
        self.render_mode = render_mode_arg(render_mode, self.metadata)
        self._half, self._inv_half = half, 1.0 / half
        high = np.array([1, 1, 1, 1, 1, GOAL_BOUND, GOAL_BOUND], np.float32)
        low = -high
        low[4] = 0.0
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Box(
            np.array([-self.v_max, -self.w_max], np.float32),
            np.array([self.v_max, self.w_max], np.float32),
            dtype=np.float32,
        )
        self.x = self.y = self.theta = 0.0
        self.goal_x, self.goal_y = half / 2, 0.0
        self._t, self._dist = 0, half / 2

    def _obs(self) -> np.ndarray:
        c, s = math.cos(self.theta), math.sin(self.theta)
        k = self._inv_half
        briefing = self._t < self.cue_steps
        if self.show_goal == "always" or (briefing and self.show_goal == "briefing"):
            dx, dy = self.goal_x - self.x, self.goal_y - self.y
            return np.array(
                [self.x * k, self.y * k, c, s, float(briefing), (c * dx + s * dy) * k,
                 (c * dy - s * dx) * k],
                np.float32,
            )
        return np.array([self.x * k, self.y * k, c, s, float(briefing), 0.0, 0.0], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng, half = self.np_random, self._half
        self.x, self.y = (float(v) for v in rng.uniform(-half, half, 2))
        self.theta = float(rng.uniform(-math.pi, math.pi))
        min_distance = max(self.min_goal_distance, self.goal_radius)
        while True:  # rejection-sample a goal far enough from the start
            gx, gy = (float(v) for v in rng.uniform(-half, half, 2))
            if math.hypot(gx - self.x, gy - self.y) >= min_distance:
                break
        self.goal_x, self.goal_y = gx, gy
        self.cue_steps = draw_int(rng, self.cue_steps_range)
        self._t = 0
        self._dist = math.hypot(gx - self.x, gy - self.y)
        return self._obs(), {"distance": self._dist, "cue_steps": self.cue_steps}

    def step(self, action):
        v, w = float(action[0]), float(action[1])
        if not (math.isfinite(v) and math.isfinite(w)):
            raise ValueError(f"action must be finite [v, omega], got {action!r}")
        self._t += 1
        if self._t > self.cue_steps:  # the robot is held still while it is being briefed
            v = min(max(v, -self.v_max), self.v_max)
            w = min(max(w, -self.w_max), self.w_max)
            mid = self.theta + 0.5 * w * self.dt  # midpoint heading: exact for straight lines
            half = self._half
            self.x = min(max(self.x + v * self.dt * math.cos(mid), -half), half)
            self.y = min(max(self.y + v * self.dt * math.sin(mid), -half), half)
            self.theta = (self.theta + w * self.dt + math.pi) % (2 * math.pi) - math.pi
        dist = math.hypot(self.goal_x - self.x, self.goal_y - self.y)
        reward = self.progress_coef * (self._dist - dist) - self.step_penalty
        self._dist = dist
        if dist <= self.goal_radius:
            return self._obs(), reward + 1.0, True, False, {"is_success": True, "distance": dist}
        if self._t >= self.max_steps:
            return self._obs(), reward, False, True, {"is_success": False, "distance": dist}
        return self._obs(), reward, False, False, {}

    def render(self):
        """A top-down 256 x 256 frame: arena, goal (solid while visible, outlined after), robot."""
        if self.render_mode is None:
            return warn_no_render_mode()
        px = 256
        scale = (px - 1) / self.arena_size
        img = np.full((px, px, 3), 235, np.uint8)
        img[[0, -1], :] = img[:, [0, -1]] = (40, 40, 48)

        def to_px(x: float, y: float) -> tuple[float, float]:
            return (x + self._half) * scale, (self._half - y) * scale

        gx, gy = to_px(self.goal_x, self.goal_y)
        radius = max(2.0, self.goal_radius * scale)
        if self._t < self.cue_steps:
            fill_disc(img, gx, gy, radius, (40, 180, 70))
        else:
            draw_ring(img, gx, gy, radius, 2.0, (40, 180, 70))
        rx, ry = to_px(self.x, self.y)
        body = max(3.0, 0.12 * scale)
        fill_disc(img, rx, ry, body, (30, 100, 230))
        tip = (rx + 1.6 * body * math.cos(self.theta), ry - 1.6 * body * math.sin(self.theta))
        draw_segment(img, (rx, ry), tip, (15, 15, 20), 1.0)
        return img
