"""Print the A2C sweep table of docs/results/issue11.md, one row per run, from run
folders laid out as ROOT/VARIANT/RUN/{config.yaml,metrics.csv}:

    PYTHONPATH=. python docs/results/issue11_a2c4/sweep_table.py ROOT

Only the runs' config.yaml files are committed (sweep/runs/); their metrics.csv (about
370 kB each) are not, so the table is rebuilt by training the runs again with the
command in issue11.md.
"""
import glob
import sys

import yaml

from training.compare_stats import summarize_run

KEYS = ("num_envs", "rollout_steps", "lr", "normalize_advantages", "seed")


def main(root: str) -> None:
    print("| variant | steps | " + " | ".join(KEYS)
          + " | episodes to 0.9 | lowest after | final success |")
    print("|---" * (len(KEYS) + 5) + "|")
    for run in sorted(glob.glob(f"{root}/*/*/")):
        with open(run + "config.yaml") as f:
            config = yaml.safe_load(f)
        r = summarize_run(run + "metrics.csv", 0.9)
        episodes = (f"{r.episodes_to_threshold:,}" if r.reached
                    else f"not reached (> {r.total_episodes:,})")
        lowest = "—" if r.lowest_after is None else f"{r.lowest_after:.2f}"
        cells = [run.split("/")[-3], f"{r.total_steps:,}", *(str(config[k]) for k in KEYS),
                 episodes, lowest, f"{r.final_success:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
