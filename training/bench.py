"""Training throughput: ``python -m training.bench [--updates 40] [--repeats 3]``.

Env steps per second of the whole training loop (env stepping, the rollout's forward
passes, the replay and update) on the default task (the T-maze) with 2 threads, for A2C
(16 envs x 32 steps) and for PPO at its defaults (16 envs x 32 steps, 20 epochs of 2
minibatches), each with the DNC (eager and with ``compile``), the LSTM and the GRU.
Each variant is a real ``train`` run; the rate is taken from its metrics.csv after the
first ``--warmup`` updates (so set-up and compilation are not counted), repeated
round-robin, median reported. Target (issue 4): DNC A2C >= 4,000 env steps/s.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile

import torch

from training import a2c, ppo
from training.config import TrainConfig, resolve

CORES = {"DNC (eager)": ["core=dnc"],
         "DNC (compile)": ["core=dnc", "compile=true"],
         "LSTM (eager)": ["core=lstm", "core_config.hidden_size=64"],
         "GRU (eager)": ["core=gru", "core_config.hidden_size=64"]}
TRAIN = {"a2c": a2c.train, "ppo": ppo.train}
VARIANTS = {f"{algo.upper()} {core}": (algo, sets)
            for algo in TRAIN for core, sets in CORES.items()}


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
    p.add_argument("--updates", type=int, default=40, help="updates per run")
    p.add_argument("--algos", default="a2c,ppo", help="comma-separated trainers to time")
    p.add_argument("--warmup", type=int, default=5, help="updates not timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    algos = a.algos.split(",")
    if not set(algos) <= set(TRAIN):
        p.error(f"--algos: expected a comma-separated subset of {sorted(TRAIN)}, got {a.algos!r}")
    variants = {k: v for k, v in VARIANTS.items() if v[0] in algos}
    rates: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for i, (name, (algo, sets)) in enumerate(variants.items()):
                cfg = resolve(None, sets + [f"threads={a.threads}", "num_envs=16",
                                            "rollout_steps=32", "stop_at_success=0",
                                            "log_every=1", "checkpoint_every=100000000",
                                            f"total_steps={a.updates * 16 * 32}",
                                            f"run_dir={tmp}/v{i}r{r}"], algo=algo)
                result = TRAIN[algo](cfg, progress=False)
                rates[name].append(steady_rate(f"{result['run_dir']}/metrics.csv", a.warmup))
    ppo_cfg = TrainConfig.default("ppo")
    print(f"training.bench: {cfg.env} {cfg.env_kwargs}, 16 envs x 32 steps per update "
          f"(PPO: {ppo_cfg.update_epochs} epochs x {ppo_cfg.num_minibatches} minibatches), "
          f"{a.threads} threads, torch "
          f"{torch.__version__}; median of {a.repeats} round-robin runs of {a.updates} "
          f"updates (first {a.warmup} not timed)")
    print(f"  {'variant':20s} {'env steps/s':>12s}   runs")
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in rates.items():
        print(f"  {k:20s} {med[k]:12.0f}   {', '.join(f'{x:.0f}' for x in v)}")
    for algo in algos:
        up = algo.upper()
        print(f"  {up} DNC eager / LSTM: "
              f"{med[f'{up} DNC (eager)'] / med[f'{up} LSTM (eager)']:.2f}x")
    if "a2c" in algos:
        print("  target: A2C DNC >= 4,000 env steps/s")
    return med


if __name__ == "__main__":
    main()
