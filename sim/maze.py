"""Procedural maze: a new random maze each episode, seen through a small egocentric window."""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.lib.stride_tricks import sliding_window_view

from sim._checks import choice_arg, draw_int, float_arg, int_arg, int_range_arg, render_mode_arg
from sim._render import AGENT, FREE, GOAL, SEEN, WALL, CodeGridRender

# Action -> (row, column) step: 0 north (up), 1 east, 2 south, 3 west.
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))


def carve_maze(size: int, rng: np.random.Generator) -> np.ndarray:
    """Return a perfect maze (a spanning tree of ``size`` x ``size`` cells) as a wall grid.

    The result is a ``(2 * size + 1, 2 * size + 1)`` bool array, True where there is a
    wall; maze cells sit at odd coordinates, and the border is all wall. Carved with an
    iterative randomised depth-first search, so every cell is reachable by exactly one
    simple path.
    """
    walls = np.ones((2 * size + 1, 2 * size + 1), dtype=bool)
    visited = [[False] * size for _ in range(size)]
    start = (int(rng.integers(size)), int(rng.integers(size)))
    stack = [start]
    visited[start[0]][start[1]] = True
    walls[2 * start[0] + 1, 2 * start[1] + 1] = False
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in MOVES
            if 0 <= r + dr < size and 0 <= c + dc < size and not visited[r + dr][c + dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = options[int(rng.integers(len(options)))]
        visited[nr][nc] = True
        walls[r + nr + 1, c + nc + 1] = False  # the wall between the two cells
        walls[2 * nr + 1, 2 * nc + 1] = False
        stack.append((nr, nc))
    return walls


class ProceduralMazeEnv(CodeGridRender, gym.Env):
    """Several trials to one goal in a fresh random maze, seen through a local window.

    Each episode carves a new perfect maze of ``size`` x ``size`` cells (a grid of
    ``2 * size + 1`` squares a side, walls included) and picks a start and a goal cell.
    The agent sees only the ``(2 * view_radius + 1)`` squared window centred on itself
    (walls and, when inside the window, the goal). Reaching the goal gives
    ``goal_reward`` and starts the next trial: the agent is respawned (at the episode's
    start cell by default) while maze and goal stay the same. After ``n_trials`` goals
    the episode terminates with success.

    What it tests: building and using a map within an episode (episodic memory): the
    first trial needs exploration, but an agent that remembers the way walks the shortest
    path in every later trial. ``info["trial_steps"]`` (steps taken by each finished
    trial) measures exactly that. How hard: the default 5 x 5 maze with 3 trials is a
    moderate memory task; ``respawn="random"`` additionally requires self-localisation,
    and ``size`` >= 10 is hard.

    Randomised sizes: ``size=[lo, hi]`` draws each episode's maze size uniformly from
    ``lo..hi`` at reset (from ``np_random``, before the maze is carved). The observation
    (a fixed window) does not depend on the size. ``self.size`` and ``self.grid_width``
    describe the current episode's maze (``hi`` before the first reset),
    ``self.size_range`` is the ``(lo, hi)`` the env was made with, ``self.max_steps`` the
    current episode's limit; ``rgb_array`` frames are drawn on the ``hi`` maze's canvas,
    so they keep one size across episodes.

    Observation ``Box(0, 1, (2 * w * w + 1,), float32)`` with ``w = 2 * view_radius + 1``:
    the window's walls (row-major, 1 = wall), the window's goal indicator, and a flag that
    is 1 on the first observation of each trial. Action ``Discrete(4)``: 0 north, 1 east,
    2 south, 3 west (moving into a wall is a no-op). Reward: ``goal_reward`` per goal,
    ``-step_penalty`` on every other step. Episodes are *truncated* after ``max_steps``
    (default ``8 * size * size * n_trials`` with the episode's size); ``info["is_success"]``
    (all trials done) and ``info["trial_steps"]`` are set on the final step,
    ``trial_steps`` also whenever a trial ends. The reset info holds ``info["trial"]`` (0)
    and ``info["size"]`` (this episode's maze size).

    Args:
        size: maze cells per side, 2..50, or a range ``[lo, hi]`` (list or tuple,
            ``2 <= lo <= hi <= 50``) to draw it from at every reset.
        view_radius: half-width of the square view window, 1..5.
        n_trials: goals to reach per episode, 1..100.
        respawn: ``"start"`` (the episode's start cell) or ``"random"`` (any free square).
        goal_reward: reward for reaching the goal, in (0, 10].
        step_penalty: cost of every other step, in [0, 1].
        max_steps: truncation limit, >= 1; default ``8 * size * size * n_trials``.
        render_mode: ``None``, ``"rgb_array"`` or ``"ansi"``.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 8}

    def __init__(
        self,
        size: int = 5,
        view_radius: int = 2,
        n_trials: int = 3,
        respawn: str = "start",
        goal_reward: float = 1.0,
        step_penalty: float = 0.01,
        max_steps: int | None = None,
        render_mode: str | None = None,
    ):
        self.size_range = int_range_arg("size", size, 2, 50)
        self.view_radius = int_arg("view_radius", view_radius, 1, 5)
        self.n_trials = int_arg("n_trials", n_trials, 1, 100)
        self.respawn = choice_arg("respawn", respawn, ("start", "random"))
        self.goal_reward = float_arg("goal_reward", goal_reward, 0.0, 10.0, low_open=True)
        self.step_penalty = float_arg("step_penalty", step_penalty, 0.0, 1.0)
        self._max_steps = None if max_steps is None else int_arg("max_steps", max_steps, 1,
                                                                 None)
        self.render_mode = render_mode_arg(render_mode, self.metadata)
        window = 2 * self.view_radius + 1
        self.observation_space = spaces.Box(0.0, 1.0, (2 * window * window + 1,), np.float32)
        self.action_space = spaces.Discrete(4)
        self._set_size(self.size_range[1])
        w = self.grid_width
        self._new_maze(carve_maze(self.size, self.np_random), w + 1, w + 1)

    # ------------------------------------------------------------------ episode setup
    def _set_size(self, size: int) -> None:
        """Make ``size`` the current maze size (grid width, move offsets, step limit)."""
        self.size = size
        self.grid_width = w = 2 * size + 1
        self._offsets = tuple(dr * w + dc for dr, dc in MOVES)
        self.max_steps = (8 * size * size * self.n_trials if self._max_steps is None
                          else self._max_steps)

    def _new_maze(self, walls: np.ndarray, start: int, goal: int) -> None:
        """Install a maze, start and goal (flat square indices), and tabulate every view."""
        self.walls = walls
        self.start, self.goal = start, goal
        self._free = (~walls).ravel().tolist()
        self._free_squares = np.flatnonzero(~walls.ravel())
        r = self.view_radius
        window = 2 * r + 1
        goal_map = np.zeros(walls.shape, np.float32)
        goal_map.flat[goal] = 1.0
        padded_walls = np.pad(walls.astype(np.float32), r, constant_values=1.0)
        padded_goal = np.pad(goal_map, r)
        n = walls.size
        table = np.zeros((n, self.observation_space.shape[0]), np.float32)
        table[:, : window * window] = sliding_window_view(padded_walls, (window, window)).reshape(
            n, -1
        )
        table[:, window * window : -1] = sliding_window_view(padded_goal, (window, window)).reshape(
            n, -1
        )
        self._views = table
        self._pos = start
        self._t = self._trial_t = 0
        self._trial_steps: list[int] = []

    def _trial_start_obs(self) -> np.ndarray:
        obs = self._views[self._pos].copy()
        obs[-1] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self._set_size(draw_int(rng, self.size_range))
        walls = carve_maze(self.size, rng)
        cells = self.size * self.size
        start_cell = int(rng.integers(cells))
        goal_cell = int(rng.integers(cells - 1))
        goal_cell += goal_cell >= start_cell  # any cell but the start
        w = self.grid_width
        start, goal = (
            (2 * (cell // self.size) + 1) * w + 2 * (cell % self.size) + 1
            for cell in (start_cell, goal_cell)
        )
        self._new_maze(walls, start, goal)
        return self._trial_start_obs(), {"trial": 0, "size": self.size}

    def _respawn(self) -> None:
        if self.respawn == "start":
            self._pos = self.start
            return
        pos = self.goal
        while pos == self.goal:
            pos = int(self._free_squares[self.np_random.integers(len(self._free_squares))])
        self._pos = pos

    # ------------------------------------------------------------------------- step
    def step(self, action):
        action = int(action)
        if not 0 <= action <= 3:
            raise ValueError(f"action must be in 0..3 (north, east, south, west), got {action}")
        self._t += 1
        self._trial_t += 1
        nxt = self._pos + self._offsets[action]
        if self._free[nxt]:
            self._pos = nxt
        truncated = self._t >= self.max_steps
        if self._pos == self.goal:
            self._trial_steps.append(self._trial_t)
            self._trial_t = 0
            info = {"trial_steps": tuple(self._trial_steps), "trial": len(self._trial_steps)}
            if len(self._trial_steps) == self.n_trials:
                info["is_success"] = True
                return self._views[self._pos].copy(), self.goal_reward, True, False, info
            self._respawn()
            if truncated:
                info["is_success"] = False
            return self._trial_start_obs(), self.goal_reward, False, truncated, info
        if truncated:
            info = {"is_success": False, "trial_steps": tuple(self._trial_steps)}
            return self._views[self._pos].copy(), -self.step_penalty, False, True, info
        return self._views[self._pos].copy(), -self.step_penalty, False, False, {}

    # ------------------------------------------------------------------------ render
    def _render_codes(self) -> np.ndarray:
        codes = np.where(self.walls, WALL, FREE)
        w, r = self.grid_width, self.view_radius
        row, col = divmod(self._pos, w)
        view = codes[max(0, row - r) : row + r + 1, max(0, col - r) : col + r + 1]
        view[view == FREE] = SEEN
        codes.flat[self.goal] = GOAL
        codes.flat[self._pos] = AGENT
        return codes

    def _rgb_canvas(self) -> tuple[int, int]:
        side = 2 * self.size_range[1] + 1
        return side, side

    def _ansi_header(self) -> str:
        return (
            f"ProceduralMaze t={self._t} trial {len(self._trial_steps) + 1}/{self.n_trials} "
            f"trial_steps={self._trial_steps}"
        )
