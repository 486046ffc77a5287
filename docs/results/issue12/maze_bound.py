"""What a perfect memory reaches in the fast-adaptation maze (issue 12).

``sim.oracles.MazeMemoryAgent`` sees only the observations, maps every view, explores the
nearest unknown square until it has seen the goal, then walks the known route: the
shortest path in every later trial. Its ``later / first`` (``training.evaluate``'s
measure, through ``training.compare_runs.memory_agent_trials``, the row ``compare
--eval-trials`` prints) is what a remembering policy with that search gets; a
deterministic policy without memory repeats trial 1 and gets 1.0. Second table: the
3 x 3 maze's earlier rows (their compare.md files' later / first, mean over seeds) as
shares of the agent's saving on all 100 evaluation episodes (not paired: those runs kept
no per-episode trials).

    PYTHONPATH=. python docs/results/issue12/maze_bound.py > docs/results/issue12/maze_bound.txt
"""

from pathlib import Path

from training.compare_runs import memory_agent_trials
from training.config import CONFIG_DIR, TrainConfig

HERE = Path(__file__).parent
ROWS = [("ppo_maze_*.yaml (the study's maze)", "ppo_maze_gru.yaml", {}),
        ("ppo_maze5_*.yaml (five trials)", "ppo_maze5_gru.yaml", {}),
        ("ppo_maze4_*.yaml (4 x 4, three trials)", "ppo_maze4_gru.yaml", {}),
        ("5 x 5, three trials", "ppo_maze_gru.yaml", {"size": 5, "max_steps": 200}),
        ("6 x 6, three trials", "ppo_maze_gru.yaml", {"size": 6, "max_steps": 288})]
EARLIER = ["maze_dnc", "maze_rnn", "maze_dealloc", "maze_ntm", "maze600", "maze_ctx"]


def later_over_first_rows(compare_md: Path) -> list[tuple[str, float]]:
    """``(core, mean later / first)`` of the fast-adaptation table in a compare.md."""
    lines = compare_md.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| core | episodes with"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.split("|")[1:-1]]
        rows.append((cells[0], float(cells[4].split(" ± ")[0])))
    return rows


print("| maze | env_kwargs | episodes (seeds 0..n-1) | trial 1 steps | later trials' steps "
      "| later / first | later shorter | first trial already the shortest "
      "| 0.6 needs this share of the saving |")
print("|---|---|---|---|---|---|---|---|---|")
study = None
for name, config, change in ROWS:
    kwargs = {**TrainConfig.load(CONFIG_DIR / config).env_kwargs, **change}
    for episodes in (100, 2000):
        r = memory_agent_trials("dnc/ProceduralMaze-v0", kwargs, episodes)
        ratio = r["later_over_first"]
        study = study if study is not None else ratio  # the study's maze, 100 episodes
        first_shortest = sum(t[0] == t[1] for t in r["trial_steps"]) / episodes
        print(f"| {name} | {kwargs} | {episodes} | {r['trial1_steps_mean']:.2f} "
              f"| {r['later_steps_mean']:.2f} | {ratio:.3f} | {r['later_shorter_fraction']:.2f} "
              f"| {first_shortest:.2f} | {0.4 / (1 - ratio):.0%} |")

print(f"\nThe 3 x 3 maze's earlier rows as shares of the agent's saving on its 100 "
      f"evaluation episodes ({study:.3f}; not paired)\n")
print("| results folder | core | later / first (mean over seeds) | share of the saving |")
print("|---|---|---|---|")
for folder in EARLIER:
    for core, ratio in later_over_first_rows(HERE / folder / "compare.md"):
        print(f"| {folder} | {core} | {ratio:.2f} | {(1 - ratio) / (1 - study):.0%} |")
