"""The CartPolePO probes' table in issue11.md, from each probe's config.yaml and
metrics.csv.gz beside this file: python docs/results/issue11_cartpole_rnorm/runs/probe/summary.py"""

import csv
import gzip
from pathlib import Path

import yaml

HERE = Path(__file__).parent
print("| probe | core | num_envs | gae_lambda | env steps | episodes | final return | best rolling return |")
print("|---|---|---|---|---|---|---|---|")
for run in sorted(p for p in HERE.iterdir() if (p / "config.yaml").is_file()):
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    with gzip.open(run / "metrics.csv.gz", "rt", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["return"] not in ("", "nan")]
    best = max(float(r["return"]) for r in rows)
    last = rows[-1]
    print(f"| {run.name} | {cfg['core']} | {cfg['num_envs']} | {cfg['gae_lambda']} | "
          f"{int(last['global_step']):,} | {int(last['episodes']):,} | "
          f"{float(last['return']):.1f} | {best:.1f} |")
