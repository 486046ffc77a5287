"""Print the A2C T-maze-of-100 pilot table of docs/results/issue11.md from the runs'
metrics: python docs/results/issue11_t100_a2c/summary.py"""

import csv
import gzip
import sys
from pathlib import Path

import yaml

runs = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "runs")
print("| run | core | rollout (gradient window) | env steps | episodes | best rolling success "
      "(≥ 100 episodes) | at step | final rolling success | final entropy |")
print("|---|---|---|---|---|---|---|---|---|")
for d in sorted(p for p in runs.iterdir() if p.is_dir()):
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    with gzip.open(d / "metrics.csv.gz", "rt") as f:
        rows = [r for r in csv.DictReader(f)
                if r["success"] not in ("", "nan") and int(r["episodes"]) >= 100]
    best = max(rows, key=lambda r: float(r["success"]))
    last = rows[-1]
    print(f"| {d.name} | {cfg['core']} | {cfg['rollout_steps']} | {int(last['global_step']):,} | "
          f"{int(last['episodes']):,} | {float(best['success']):.2f} | "
          f"{int(best['global_step']):,} | {float(last['success']):.2f} | "
          f"{float(last['entropy']):.3f} |")
