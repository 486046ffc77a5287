"""Print a table of one-seed probes: each run folder under PROBES (its config.yaml and
metrics.csv.gz) against the config it was run on top of, naming the settings it changed.

    PYTHONPATH=. python docs/results/probes.py docs/results/issue11_cartpole_crit/runs/probe \
        training/configs/ppo_cartpole_po_lstm-rnorm.yaml

The best rolling return, and with ``--success T`` the best rolling success, are taken
once at least 100 episodes have finished (as training.compare counts them: a "rolling"
figure over the first few episodes is luck). ``--success T`` adds two columns: that best
rolling success, and the episodes at which it first reached ``T``.

The reference is resolved as the trainer resolves it (its keys over its trainer's
embedded default). A key that a probe's config.yaml lacks (added to the trainer after
the probe ran) is not a change: the probe ran with that key's old behaviour.
"""

import csv
import gzip
import sys
from pathlib import Path

import yaml

from training.config import TrainConfig

#: Keys a probe's command sets for the run itself, not for what it learns.
RUN_KEYS = {"run_dir", "seed", "threads", "compile", "log_every", "stop_at_success",
            "stop_min_episodes", "checkpoint_every", "total_steps"}


def changed(cfg: dict, ref: dict) -> str:
    """The settings of ``cfg`` that differ from ``ref`` (``core_config`` per option)."""
    out = []
    for key in sorted(cfg):
        if key in RUN_KEYS or key not in ref or cfg[key] == ref[key]:
            continue
        if key == "core_config":
            a, b = cfg.get(key) or {}, ref.get(key) or {}
            out += [f"core_config.{k}={a.get(k)}" for k in sorted(set(a) | set(b))
                    if a.get(k) != b.get(k)]
        else:
            out.append(f"{key}={cfg.get(key)}")
    return ", ".join(out) or "(none)"


def main(probes: Path, reference: Path, success: float | None = None) -> None:
    ref = TrainConfig.load(reference).to_dict()
    extra = ("" if success is None else
             f" best rolling success | episodes to {success} |")
    print(f"| probe | changed from {reference.name} | env steps | episodes | final return | "
          "best rolling return | final success |" + extra)
    print("|---|---|---|---|---|---|---|" + ("" if success is None else "---|---|"))
    for run in sorted(p for p in probes.iterdir() if (p / "config.yaml").is_file()):
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        with gzip.open(run / "metrics.csv.gz", "rt", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["return"] not in ("", "nan")]
        counted = [r for r in rows if int(r["episodes"]) >= 100] or rows[-1:]
        best, last = max(float(r["return"]) for r in counted), rows[-1]
        line = (f"| {run.name} | {changed(cfg, ref)} | {int(last['global_step']):,} | "
                f"{int(last['episodes']):,} | {float(last['return']):.1f} | {best:.1f} | "
                f"{float(last['success']):.2f} |")
        if success is not None:
            counted = [r for r in counted if r["success"] not in ("", "nan")]
            first = next((r for r in counted if float(r["success"]) >= success), None)
            reached = "not reached" if first is None else f"{int(first['episodes']):,}"
            line += f" {max(float(r['success']) for r in counted):.2f} | {reached} |"
        print(line)


if __name__ == "__main__":
    args = sys.argv[1:]
    threshold = None
    if len(args) == 4 and args[2] == "--success":
        threshold = float(args[3])
        args = args[:2]
    if len(args) != 2:
        sys.exit("usage: python docs/results/probes.py PROBE_FOLDER REFERENCE_CONFIG.yaml "
                 "[--success THRESHOLD]")
    main(Path(args[0]), Path(args[1]), threshold)
