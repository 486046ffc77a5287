"""The T-maze: a cue at the start, a long blank corridor, and a turn decided by the cue."""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim._checks import choice_arg, draw_int, float_arg, int_arg, int_range_arg, render_mode_arg
from sim._render import (
    AGENT,
    CUE_LEFT,
    CUE_RIGHT,
    FREE,
    GOAL,
    WALL,
    WRONG,
    CodeGridRender,
)

FORWARD, LEFT, RIGHT = 0, 1, 2
MAX_LENGTH = 100_000


class TMazeEnv(CodeGridRender, gym.Env):
    """T-maze (Bakker 2001 style): remember a one-bit cue across a corridor of ``length`` steps.

    The agent starts at the foot of a corridor of ``length`` cells. On the first
    ``cue_steps`` observations a cue says whether the goal is in the LEFT or the RIGHT arm
    of the T; afterwards the cue is gone and every corridor cell looks the same. At the
    junction (which the observation flags) the agent turns: the arm the cue named gives
    +1 and ends the episode with success, the other arm gives ``wrong_reward`` and ends it
    with failure. Every other step costs ``step_penalty``, and a bump into a wall
    (a turn inside the corridor, forward at the junction) costs ``bump_penalty``.

    What it tests: pure memory *horizon* -- holding one bit for ``length`` steps with
    nothing else to do. How hard: ``length`` 10 (default) is learned by a small recurrent
    policy with A2C in minutes; hundreds of steps defeats plain LSTMs trained with
    truncated BPTT. A memoryless policy cannot beat chance (50 % success), because the
    junction observation is identical for both cues.

    Randomised lengths: ``length=[lo, hi]`` draws each episode's corridor length
    uniformly from ``lo..hi`` (inclusive) at reset, from the env's ``np_random`` (so
    ``reset(seed=...)`` fixes the sequence of lengths; the cue is drawn first, so a seed
    gives the same cue whatever the range). A policy trained on one fixed length can
    solve it by counting steps instead of watching for the junction; train on a range
    and evaluate beyond it (``python -m training.evaluate CKPT --env-kwargs length=300``).
    ``self.length`` is the current episode's length (``hi`` before the first reset),
    ``self.length_range`` the ``(lo, hi)`` the env was made with (``(n, n)`` for an
    integer), and ``self.max_steps`` the current episode's limit. The observation space
    does not depend on the length; ``rgb_array`` frames are drawn on the ``hi`` corridor's
    canvas, so they keep one size across episodes.

    Observation ``Box(0, 1, (4,), float32)``: ``[cue_left, cue_right, in_corridor,
    at_junction]``. Action ``Discrete(3)``: 0 forward, 1 turn left, 2 turn right (turning
    inside the corridor and going forward at the junction bump the wall: no move).
    Episodes *terminate* on a turn at the junction and are *truncated* after
    ``max_steps`` (default ``4 * (length + 1)`` of the episode's length); the optimal
    episode takes ``length + 1`` steps. ``info["is_success"]`` is set on the final step;
    the reset info holds ``info["cue"]`` (0 left, 1 right; for analysis only) and
    ``info["length"]`` (this episode's corridor length).

    Args:
        length: corridor length (steps from the start to the junction), 1..100000, or a
            range ``[lo, hi]`` (list or tuple, ``1 <= lo <= hi <= 100000``) to draw it
            from at every reset.
        cue_steps: number of initial observations that show the cue, 1..length
            (1..lo for a range).
        step_penalty: cost of every non-final step, in [0, 1].
        bump_penalty: cost of a step that bumps a wall, in [0, 1]; default
            ``step_penalty``. A larger value (e.g. 0.1) stops a policy from idling in
            the corridor with turns, so its deterministic (argmax) version walks
            straight to the junction -- what a deployed policy does.
        wrong_reward: reward for the wrong arm, in [-10, 1).
        goal_arm: ``"cued"`` (the goal is in the arm the cue names) or ``"opposite"``
            (in the other arm: the same corridor and cue with the goal layout
            mirrored, a task that undoes what ``"cued"`` taught; the continual-learning
            sequences of training/configs/continual_*.yaml use it).
        arena_marker: what the ``in_corridor`` channel reads in the corridor, in (0, 1]
            (default 1): another arena's floor as the robot's sensor sees it, so that
            tasks in different arenas can be told apart at every corridor step.
        max_steps: truncation limit, > length (> hi for a range); default
            ``4 * (length + 1)`` with each episode's length.
        render_mode: ``None``, ``"rgb_array"`` or ``"ansi"``.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 8}

    def __init__(
        self,
        length: int = 10,
        cue_steps: int = 1,
        step_penalty: float = 0.01,
        bump_penalty: float | None = None,
        wrong_reward: float = -1.0,
        max_steps: int | None = None,
        render_mode: str | None = None,
        goal_arm: str = "cued",
        arena_marker: float = 1.0,
    ):
        self.length_range = int_range_arg("length", length, 1, MAX_LENGTH)
        lo, hi = self.length_range
        self.cue_steps = int_arg("cue_steps", cue_steps, 1, lo)
        self.step_penalty = float_arg("step_penalty", step_penalty, 0.0, 1.0)
        self.bump_penalty = (self.step_penalty if bump_penalty is None
                             else float_arg("bump_penalty", bump_penalty, 0.0, 1.0))
        self.wrong_reward = float_arg("wrong_reward", wrong_reward, -10.0, 1.0)
        if self.wrong_reward >= 1.0:
            raise ValueError(f"wrong_reward must be in [-10.0, 1.0), got {wrong_reward!r}")
        self.goal_arm = choice_arg("goal_arm", goal_arm, ("cued", "opposite"))
        self.arena_marker = float_arg("arena_marker", arena_marker, 0.0, 1.0, low_open=True)
        self._max_steps = None if max_steps is None else int_arg("max_steps", max_steps,
                                                                 hi + 1, None)
        self._set_length(hi)
        self.render_mode = render_mode_arg(render_mode, self.metadata)
        self.observation_space = spaces.Box(0.0, 1.0, (4,), np.float32)
        self.action_space = spaces.Discrete(3)
        # The few distinct observations, indexed [cue shown (0 none, 1 left, 2 right), where].
        obs = np.zeros((3, 2, 4), np.float32)
        obs[1, :, 0] = obs[2, :, 1] = 1.0
        obs[:, 0, 2], obs[:, 1, 3] = self.arena_marker, 1.0
        self._obs_table = obs
        self._cue, self._pos, self._arm, self._t = 0, 0, 0, 0

    def _set_length(self, length: int) -> None:
        self.length = length
        self.max_steps = 4 * (length + 1) if self._max_steps is None else self._max_steps

    def _obs(self) -> np.ndarray:
        shown = self._cue + 1 if self._t < self.cue_steps else 0
        return self._obs_table[shown, int(self._pos == self.length)].copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(2))  # 0: goal in the left arm, 1: right
        self._set_length(draw_int(self.np_random, self.length_range))
        self._pos, self._arm, self._t = 0, 0, 0
        return self._obs(), {"cue": self._cue, "length": self.length}

    def step(self, action):
        action = int(action)
        if not 0 <= action <= 2:
            raise ValueError(f"action must be 0 (forward), 1 (left) or 2 (right), got {action}")
        self._t += 1
        penalty = self.step_penalty
        if self._pos < self.length:
            if action == FORWARD:
                self._pos += 1
            else:
                penalty = self.bump_penalty
        elif action == FORWARD:
            penalty = self.bump_penalty
        else:  # a turn at the junction ends the episode
            self._arm = action
            success = (action - LEFT == self._cue) == (self.goal_arm == "cued")
            reward = 1.0 if success else self.wrong_reward
            return self._obs(), reward, True, False, {"is_success": success}
        if self._t >= self.max_steps:
            return self._obs(), -penalty, False, True, {"is_success": False}
        return self._obs(), -penalty, False, False, {}

    def _render_codes(self) -> np.ndarray:
        """A 5 x (length + 3) picture: walls around a corridor with the two arms at the end."""
        n = self.length
        codes = np.full((5, n + 3), WALL, np.int64)
        codes[2, 1 : n + 2] = FREE
        codes[2, 1] = CUE_RIGHT if self._cue else CUE_LEFT
        good, bad = (3, 1) if self._cue == (self.goal_arm == "cued") else (1, 3)
        codes[good, n + 1], codes[bad, n + 1] = GOAL, WRONG
        row = {0: 2, LEFT: 1, RIGHT: 3}[self._arm]
        codes[row, self._pos + 1] = AGENT
        return codes

    def _rgb_canvas(self) -> tuple[int, int]:
        return 5, self.length_range[1] + 3

    def _ansi_header(self) -> str:
        cue = "right" if self._cue else "left"
        goal = "" if self.goal_arm == "cued" else ", goal in the opposite arm"
        return f"TMaze t={self._t} cue={cue} (shown for {self.cue_steps} step(s){goal})"
