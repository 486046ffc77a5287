"""Scripted policies for the ``sim`` environments: proofs that each task is solvable
with memory, and memoryless baselines that show memory is needed.

Every policy has ``reset()`` (call at the start of an episode) and ``act(obs)``.
Apart from :class:`MazeBFSOracle`, which reads the true maze (privileged), they see
only observations, so what they keep between steps *is* the memory the task asks for.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from sim.maze import MOVES


def run_episode(env, policy, seed: int | None = None, max_steps: int = 1_000_000):
    """Run one episode; return ``(return, steps, final info)``."""
    obs, _ = env.reset(seed=seed)
    policy.reset()
    total, steps = 0.0, 0
    while steps < max_steps:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs))
        total += float(reward)
        steps += 1
        if terminated or truncated:
            return total, steps, info
    raise RuntimeError(f"episode did not end within {max_steps} steps")


class CopyOracle:
    """Copy / Repeat-Copy with memory: store each input vector, replay them in order."""

    def __init__(self, bits: int):
        self.bits = bits
        self.reset()

    def reset(self) -> None:
        self.memory: list[np.ndarray] = []
        self.out_step = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        bits = self.bits
        if obs[bits] > 0.5:  # input phase: remember, answer anything
            self.memory.append(obs[:bits].astype(np.int8))
            return np.zeros(bits, np.int8)
        action = self.memory[self.out_step % len(self.memory)]
        self.out_step += 1
        return action


class TMazeOracle:
    """T-maze with one bit of memory: remember the cue, go forward, turn as cued."""

    def reset(self) -> None:
        self.turn = None

    def act(self, obs: np.ndarray) -> int:
        if self.turn is None:
            self.turn = 1 if obs[0] > 0.5 else 2  # cue_left -> action 1 (left)
        return self.turn if obs[3] > 0.5 else 0


class TMazeMemoryless:
    """The best a memoryless T-maze policy can do: forward, then always the same turn."""

    def __init__(self, turn: int = 1):
        self.turn = turn

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray) -> int:
        return self.turn if obs[3] > 0.5 else 0


class MazeBFSOracle:
    """Privileged ProceduralMaze oracle: a shortest-path move from the true maze (BFS)."""

    def __init__(self, env):
        self.env = env.unwrapped

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray) -> int:
        env = self.env
        w = env.grid_width
        path = bfs_path(
            divmod(env._pos, w), divmod(env.goal, w), lambda p: not env.walls[p[0], p[1]]
        )
        return path[0]


class MazeMemoryAgent:
    """ProceduralMaze from observations only, with a map as memory.

    Dead-reckons its position from its own moves (relative to the trial start, where
    ``respawn="start"`` puts it back), writes every view into a map, explores the
    nearest unknown frontier until it has seen the goal, then walks there. In a perfect
    maze the known route is the unique shortest one, so every trial after the first takes
    the shortest path: the memory advantage the env measures in ``info["trial_steps"]``.
    """

    def reset(self) -> None:
        self.known: dict[tuple[int, int], bool] = {}  # square -> is free
        self.goal: tuple[int, int] | None = None
        self.pos = (0, 0)

    def _update_map(self, obs: np.ndarray) -> None:
        window = round(math.sqrt((obs.size - 1) / 2))
        r = window // 2
        walls = obs[: window * window].reshape(window, window)
        goal = obs[window * window : -1].reshape(window, window)
        for i in range(window):
            for j in range(window):
                square = (self.pos[0] + i - r, self.pos[1] + j - r)
                self.known[square] = walls[i, j] < 0.5
                if goal[i, j] > 0.5:
                    self.goal = square

    def act(self, obs: np.ndarray) -> int:
        if obs[-1] > 0.5:  # first observation of a trial: back at the start
            self.pos = (0, 0)
        self._update_map(obs)
        free, known = self.known.get, self.known
        path = None
        if self.goal is not None:
            path = bfs_path(self.pos, self.goal, lambda p: free(p, False))
        if path is None:  # walk to the nearest known square next to an unknown one
            path = bfs_path(
                self.pos,
                None,
                lambda p: free(p, False),
                is_target=lambda p: any((p[0] + dr, p[1] + dc) not in known for dr, dc in MOVES),
            )
        action = path[0] if path else 0
        dr, dc = MOVES[action]
        if free((self.pos[0] + dr, self.pos[1] + dc), False):
            self.pos = (self.pos[0] + dr, self.pos[1] + dc)
        return action


def bfs_path(start, goal, passable, is_target=None) -> list[int] | None:
    """Actions of a shortest 4-connected path from ``start`` to ``goal`` (or to the nearest
    square where ``is_target`` holds) through squares where ``passable`` holds."""
    is_target = is_target or (lambda p: p == goal)
    parent = {start: None}
    queue = deque([start])
    while queue:
        p = queue.popleft()
        if is_target(p):
            actions = []
            while parent[p] is not None:
                p, a = parent[p]
                actions.append(a)
            return actions[::-1]
        for a, (dr, dc) in enumerate(MOVES):
            q = (p[0] + dr, p[1] + dc)
            if q not in parent and passable(q):
                parent[q] = (p, a)
                queue.append(q)
    return None


def _steer(x, y, theta, gx, gy, v_max, w_max) -> np.ndarray:
    """Unicycle go-to-point controller: turn toward the point, drive when facing it."""
    err = (math.atan2(gy - y, gx - x) - theta + math.pi) % (2 * math.pi) - math.pi
    w = max(-w_max, min(w_max, 4.0 * err))
    v = v_max * max(0.0, math.cos(err)) ** 3
    return np.array([v, w], np.float32)


class MemoryNavOracle:
    """MemoryNav with memory: store the goal's world position while it is visible, then
    steer to it using the observed pose."""

    def __init__(self, env):
        env = env.unwrapped
        self.half, self.v_max, self.w_max = env.arena_size / 2, env.v_max, env.w_max

    def reset(self) -> None:
        self.goal = None

    def act(self, obs: np.ndarray) -> np.ndarray:
        h = self.half
        x, y, theta = obs[0] * h, obs[1] * h, math.atan2(obs[3], obs[2])
        if obs[4] > 0.5:
            fwd, left = obs[5] * h, obs[6] * h
            c, s = math.cos(theta), math.sin(theta)
            self.goal = (x + c * fwd - s * left, y + s * fwd + c * left)
        return _steer(x, y, theta, *self.goal, self.v_max, self.w_max)


class MemoryNavMemoryless:
    """A memoryless MemoryNav baseline: once the goal is hidden nothing in the observation
    says where it was, so it sweeps: full speed ahead, turning at a rate ``turn * w_max``
    scaled down near the side walls, which traces loops through the arena."""

    def __init__(self, env, turn: float = 0.6):
        env = env.unwrapped
        self.v_max, self.w_max, self.turn = env.v_max, env.w_max, turn

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.array([self.v_max, self.turn * self.w_max * (1.0 - abs(obs[0]))], np.float32)


class CartPoleDifferenceOracle:
    """CartPolePO with one step of memory: estimate both velocities by differencing the
    last two observations, then apply a linear state-feedback rule (survives 500 steps)."""

    gains = (0.1, 0.3, 3.0, 1.0)  # x, x_dot, theta, theta_dot
    dt = 0.02  # CartPole's tau

    def reset(self) -> None:
        self.prev = None

    def act(self, obs: np.ndarray) -> int:
        prev = obs if self.prev is None else self.prev
        x_dot, theta_dot = (obs - prev) / self.dt
        self.prev = obs.copy()
        k = self.gains
        return int(k[0] * obs[0] + k[1] * x_dot + k[2] * obs[1] + k[3] * theta_dot > 0)


class CartPoleMemoryless:
    """CartPolePO without memory: push toward the side the pole leans to."""

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray) -> int:
        return int(obs[1] > 0)
