"""Success of sim's memoryless MemoryNav baselines and its oracle in a 2 m and a 4 m
arena, 200 episodes each (seeds 0..199)."""
import gymnasium as gym
import numpy as np
import sim  # noqa: F401
from sim.oracles import MemoryNavMemoryless, MemoryNavOracle, run_episode

for arena in (2.0, 4.0):
    env = gym.make("dnc/MemoryNav-v0", arena_size=arena)
    for name, pol in (("oracle", MemoryNavOracle(env)), ("memoryless +1", MemoryNavMemoryless(env)),
                      ("memoryless -1", MemoryNavMemoryless(env, -1.0))):
        rate = np.mean([run_episode(env, pol, seed=s)[2]["is_success"] for s in range(200)])
        print(f"arena {arena} m  {name:14s} success {rate:.3f}")
