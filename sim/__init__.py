"""Gymnasium environments that need memory (registered under the ``dnc/`` namespace).

``import sim`` registers:

=====================  ==========================================================
``dnc/Copy-v0``        DNC Copy task as RL (MultiBinary action each step)
``dnc/RepeatCopy-v0``  DNC Repeat-Copy task as RL
``dnc/TMaze-v0``       one-bit cue, corridor of fixed or drawn length, turn at the end
``dnc/ProceduralMaze-v0``  new random maze per episode, local view, several trials
``dnc/MemoryNav-v0``   unicycle robot (cmd_vel action) reaches a briefly shown goal
``dnc/CartPolePO-v0``  CartPole-v1 with positions only (:class:`sim.wrappers.HideVelocity`)
=====================  ==========================================================

Every environment truncates by itself (a ``max_steps`` argument where episodes can run
on; Copy tasks always terminate), so no ``max_episode_steps`` is registered except for
CartPolePO, whose limit lives in its factory. Importing this package twice (or
reloading it) registers nothing twice. Pure Gymnasium + numpy: no torch.
"""

from __future__ import annotations

import gymnasium

from sim.copy_tasks import CopyEnv, RepeatCopyEnv
from sim.maze import ProceduralMazeEnv
from sim.memory_nav import MemoryNavEnv
from sim.tmaze import TMazeEnv
from sim.wrappers import HideVelocity, SurvivalSuccess

ENTRY_POINTS = {
    "dnc/Copy-v0": "sim.copy_tasks:CopyEnv",
    "dnc/RepeatCopy-v0": "sim.copy_tasks:RepeatCopyEnv",
    "dnc/TMaze-v0": "sim.tmaze:TMazeEnv",
    "dnc/ProceduralMaze-v0": "sim.maze:ProceduralMazeEnv",
    "dnc/MemoryNav-v0": "sim.memory_nav:MemoryNavEnv",
    "dnc/CartPolePO-v0": "sim.wrappers:make_cartpole_po",
}
ENV_IDS = tuple(ENTRY_POINTS)


def register_envs() -> None:
    """Register every ``dnc/`` environment that is not registered yet (idempotent)."""
    for env_id, entry_point in ENTRY_POINTS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point)


register_envs()

__all__ = [
    "ENV_IDS",
    "CopyEnv",
    "HideVelocity",
    "MemoryNavEnv",
    "ProceduralMazeEnv",
    "RepeatCopyEnv",
    "SurvivalSuccess",
    "TMazeEnv",
    "register_envs",
]
