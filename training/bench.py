"""Training throughput: ``python -m training.bench [--updates 40] [--repeats 3]``.

Env steps per second of the whole A2C loop (env stepping, the rollout's forward passes,
the update) on the default task (the T-maze) with 16 envs and 2 threads, for the DNC
(eager and with ``compile``) and the LSTM. Each variant is a real ``training.a2c.train``
run; the rate is taken from its metrics.csv after the first ``--warmup`` updates (so
set-up and compilation are not counted), repeated round-robin, median reported.
Target (issue 4): DNC >= 4,000 env steps/s.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile

import torch

from training.a2c import train
from training.config import resolve

VARIANTS = {"DNC (eager)": ["core=dnc"],
            "DNC (compile)": ["core=dnc", "compile=true"],
            "LSTM (eager)": ["core=lstm", "core_config.hidden_size=64"]}


def steady_rate(metrics_csv: str, warmup: int) -> float:
    """Env steps/s between the ``warmup``-th and the last row of a run's metrics.csv."""
    with open(metrics_csv) as f:
        rows = list(csv.DictReader(f))
    if len(rows) < 2:
        raise ValueError(f"{metrics_csv} has {len(rows)} rows; run more updates to time")
    first, last = rows[min(warmup, len(rows) - 2)], rows[-1]
    steps = int(last["global_step"]) - int(first["global_step"])
    return steps / (float(last["wall_s"]) - float(first["wall_s"]))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=40, help="A2C updates per run")
    p.add_argument("--warmup", type=int, default=5, help="updates not timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    rates: dict[str, list[float]] = {k: [] for k in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for name, sets in VARIANTS.items():
                cfg = resolve(None, sets + [f"threads={a.threads}", "num_envs=16",
                                            "rollout_steps=32", "stop_at_success=0",
                                            "log_every=1", "checkpoint_every=100000000",
                                            f"total_steps={a.updates * 16 * 32}",
                                            f"run_dir={tmp}/{name.split()[0]}{r}"])
                result = train(cfg, progress=False)
                rates[name].append(steady_rate(f"{result['run_dir']}/metrics.csv", a.warmup))
    print(f"training.bench: A2C on {cfg.env} {cfg.env_kwargs}, 16 envs x 32 steps per "
          f"update, {a.threads} threads, torch {torch.__version__}; median of {a.repeats} "
          f"round-robin runs of {a.updates} updates (first {a.warmup} not timed)")
    print(f"  {'variant':16s} {'env steps/s':>12s}   runs")
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in rates.items():
        print(f"  {k:16s} {med[k]:12.0f}   {', '.join(f'{x:.0f}' for x in v)}")
    print(f"  DNC eager / LSTM: {med['DNC (eager)'] / med['LSTM (eager)']:.2f}x;  "
          f"target: DNC >= 4,000 env steps/s")
    return med


if __name__ == "__main__":
    main()
