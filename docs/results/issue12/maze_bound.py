"""What a perfect memory reaches in the fast-adaptation maze (issue 12).

``sim.oracles.MazeMemoryAgent`` sees only the observations, maps every view, explores the
nearest unknown square until it has seen the goal, then walks the known route: the
shortest path in every later trial. Its ``later / first`` (``training.evaluate``'s
measure, through ``training.compare_runs.memory_agent_trials``, the row ``compare
--eval-trials`` prints) is the lowest a remembering policy of this kind gets; a
deterministic policy without memory repeats trial 1 and gets 1.0.

    PYTHONPATH=. python docs/results/issue12/maze_bound.py > docs/results/issue12/maze_bound.txt
"""

from training.compare_runs import memory_agent_trials
from training.config import CONFIG_DIR, TrainConfig

ROWS = [("ppo_maze_*.yaml (the study's maze)", "ppo_maze_gru.yaml", {}),
        ("ppo_maze5_*.yaml (five trials)", "ppo_maze5_gru.yaml", {}),
        ("ppo_maze4_*.yaml (4 x 4, three trials)", "ppo_maze4_gru.yaml", {}),
        ("5 x 5, three trials", "ppo_maze_gru.yaml", {"size": 5, "max_steps": 200}),
        ("6 x 6, three trials", "ppo_maze_gru.yaml", {"size": 6, "max_steps": 288})]

print("| maze | env_kwargs | episodes (seeds 0..n-1) | trial 1 steps | later trials' steps "
      "| later / first | later shorter | 0.6 needs this share of the saving |")
print("|---|---|---|---|---|---|---|---|")
for name, config, change in ROWS:
    kwargs = {**TrainConfig.load(CONFIG_DIR / config).env_kwargs, **change}
    for episodes in (100, 2000):
        r = memory_agent_trials("dnc/ProceduralMaze-v0", kwargs, episodes)
        ratio = r["later_over_first"]
        print(f"| {name} | {kwargs} | {episodes} | {r['trial1_steps_mean']:.2f} "
              f"| {r['later_steps_mean']:.2f} | {ratio:.3f} | {r['later_shorter_fraction']:.2f} "
              f"| {0.4 / (1 - ratio):.0%} |")
