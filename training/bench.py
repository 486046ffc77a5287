"""Training throughput and memory: ``python -m training.bench [--updates 40] [--repeats 3]
[--algos a2c,ppo] [--variants "DNC (eager),LSTM (eager)"]``.

Env steps per second of the whole training loop (env stepping, the rollout's forward
passes, the replay and update) on the default task (the T-maze) with 2 threads, for A2C
(16 envs x 32 steps, as in issue 4's target; A2C's default has 4 envs since 2015ee2)
and for PPO at its defaults (16 envs x 32 steps, 20 epochs of 2 minibatches), each
with the DNC (eager, with ``compile`` of its step, and with 8 or 32 replay steps compiled as
one graph, ``compile_chunk``), the DNC with the three
improvements of Csordás & Schmidhuber (``DNC-MDS``), the NTM, the LSTM and the GRU
(the T-maze's default sizes: 64 units, 16 slots of 16). Each variant is a real training
run in its own process (``python -m training.<algo>``); the rate is taken from its
metrics.csv from the end of update ``--warmup`` + 1 to the last (so set-up,
compilation and the first ``--warmup`` + 1 updates are not counted), and the
process's peak resident memory from the OS (``wait4``'s ru_maxrss); repeated
round-robin, medians reported, with each variant's cost per env step and memory
relative to the LSTM's of the same trainer. Target (issue 4): DNC A2C >= 4,000 env
steps/s; (issue 12) the DNC's cost per env step <= 2x the LSTM's.

``--sb3-python PY`` adds sb3-contrib's RecurrentPPO (LSTM 64, the RL-Zoo settings of
``training.baseline_sb3``: 16 envs x 32 steps, 20 epochs of 2 minibatches of 256) on the
same env, threads and number of updates, timed the same way, in the round-robin beside
our PPO rows. ``PY`` is the interpreter of a separate venv that has sb3-contrib (it is a
baseline, never a dependency; see ``training.baseline_sb3``). Target (issue 11): DNC PPO
env steps/s >= 3x RecurrentPPO's.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import torch

from training.config import TrainConfig

MDS = ["core_config.masked_lookup=true", "core_config.deallocation=true",
       "core_config.link_sharpness=true"]
NTM = ["core=ntm", "core_config={hidden_size: 64, memory_slots: 16, word_size: 16, "
       "read_heads: 1}"]
# compile set either way: the trainers' default ("auto") depends on the run's length
CORES = {"DNC (eager)": ["core=dnc", "compile=false"],
         "DNC (compile)": ["core=dnc", "compile=true", "compile_chunk=1"],
         "DNC (compile chunk 8)": ["core=dnc", "compile=true", "compile_chunk=8"],
         "DNC (compile chunk 32)": ["core=dnc", "compile=true", "compile_chunk=32"],
         "DNC-MDS (eager)": ["core=dnc", "compile=false"] + MDS,
         "DNC-MDS (compile)": ["core=dnc", "compile=true", "compile_chunk=1"] + MDS,
         "NTM (eager)": NTM + ["compile=false"],
         "NTM (compile)": NTM + ["compile=true", "compile_chunk=1"],
         "LSTM (eager)": ["core=lstm", "core_config={hidden_size: 64}", "compile=false"],
         "GRU (eager)": ["core=gru", "core_config={hidden_size: 64}", "compile=false"]}
TRAIN = ("a2c", "ppo")
VARIANTS = {f"{algo.upper()} {core}": (algo, sets)
            for algo in TRAIN for core, sets in CORES.items()}


SB3 = "RecurrentPPO LSTM 64 (sb3)"
ROOT = Path(__file__).resolve().parent.parent
NUM_ENVS, ROLLOUT = 16, 32  # every variant's update: 16 envs x 32 steps


def run_process(args: list[str], what: str) -> tuple[str, float]:
    """Run ``args`` from the project root with it on PYTHONPATH: ``(its stdout, peak RSS in
    MiB)``; a failure is a RuntimeError naming ``what`` and the process's last line."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, last = out.read(), err.read().strip().splitlines()[-1:]
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {last}")
    return text, usage.ru_maxrss / 1024  # Linux: KiB


def run_variant(algo: str, sets: list[str], run_dir: Path, threads: int, updates: int
                ) -> tuple[Path, float]:
    """One training run in its own process: ``(its metrics.csv, peak RSS in MiB)``."""
    args = [sys.executable, "-m", f"training.{algo}", "--no-progress"]
    for x in sets + [f"threads={threads}", f"num_envs={NUM_ENVS}", f"rollout_steps={ROLLOUT}",
                     "stop_at_success=0", "log_every=1", "checkpoint_every=100000000",
                     f"total_steps={updates * NUM_ENVS * ROLLOUT}", f"run_dir={run_dir}"]:
        args += ["--set", x]
    _, peak = run_process(args, f"training.{algo} {' '.join(sets)}")
    found = sorted(run_dir.glob("*/metrics.csv"))
    if not found:
        raise RuntimeError(f"training.{algo} {' '.join(sets)} wrote no metrics.csv")
    return found[-1], peak


def time_ours(algo: str, sets: list[str], run_dir: Path, threads: int, updates: int,
              warmup: int) -> tuple[float, float]:
    """One of our variants: ``(steady env steps/s, peak RSS in MiB)``."""
    csv_path, peak = run_variant(algo, sets, run_dir, threads, updates)
    return steady_rate(str(csv_path), warmup), peak


def time_sb3(python: str, run_dir: Path, threads: int, updates: int, warmup: int
             ) -> tuple[float, float]:
    """sb3-contrib's RecurrentPPO on the PPO default env in ``python`` (a venv that has it):
    ``(steady env steps/s, peak RSS in MiB)``, timed as ``steady_rate`` times our runs
    (from the row after update ``warmup + 1`` to the last). ``run_dir`` is unused: sb3
    writes nothing to keep."""
    cfg = TrainConfig.default("ppo")
    text, peak = run_process(
        [python, "-m", "training.baseline_sb3", "--env", cfg.env,
         "--env-kwargs", json.dumps(cfg.env_kwargs), "--seeds", "1",
         "--total-steps", str(updates * NUM_ENVS * ROLLOUT), "--threads", str(threads),
         "--warmup-updates", str(warmup + 1)], f"training.baseline_sb3 in {python}")
    lines = text.strip().splitlines()
    if not lines:
        raise RuntimeError(f"training.baseline_sb3 in {python} printed no result line")
    rate = json.loads(lines[-1])["steady_steps_per_s"]
    if rate is None:
        raise RuntimeError(f"training.baseline_sb3 ran too few updates to time ({updates})")
    return rate, peak


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
    p.add_argument("--variants", help="comma-separated cores to time (default all): "
                                      + ", ".join(CORES))
    p.add_argument("--warmup", type=int, default=5,
                   help="timing starts at the end of update WARMUP + 1")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sb3-python", metavar="PY",
                   help="also time sb3-contrib's RecurrentPPO with this interpreter (a venv "
                        "with sb3-contrib)")
    a = p.parse_args(argv)
    algos = a.algos.split(",")
    if not set(algos) <= set(TRAIN):
        p.error(f"--algos: expected a comma-separated subset of {sorted(TRAIN)}, got {a.algos!r}")
    cores = list(CORES) if not a.variants else [c.strip() for c in a.variants.split(",")]
    unknown = [c for c in cores if c not in CORES]
    if unknown:
        p.error(f"--variants: unknown {unknown}; expected some of {list(CORES)}")
    if a.updates < a.warmup + 2 or a.warmup < 0 or a.repeats < 1:
        p.error("--updates must be at least --warmup + 2, --warmup >= 0, --repeats >= 1")
    if a.sb3_python:
        if "ppo" not in algos:
            p.error("--sb3-python: RecurrentPPO is timed beside PPO; --algos must include ppo")
        try:  # what training.baseline_sb3 imports, run as it will be
            run_process([a.sb3_python, "-c", "import sb3_contrib, gymnasium, sim"], "probe")
        except (OSError, RuntimeError):
            p.error(f"--sb3-python: {a.sb3_python} cannot import sb3_contrib, gymnasium "
                    "and sim; expected the python of a venv with sb3-contrib (see "
                    "training.baseline_sb3)")
    variants = {f"{algo.upper()} {c}": partial(time_ours, algo, CORES[c])
                for algo in algos for c in cores}
    if a.sb3_python:
        variants[SB3] = partial(time_sb3, a.sb3_python)
    rates: dict[str, list[float]] = {k: [] for k in variants}
    peaks: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for i, (name, time_it) in enumerate(variants.items()):
                rate, peak = time_it(Path(tmp) / f"v{i}r{r}", a.threads, a.updates, a.warmup)
                rates[name].append(rate)
                peaks[name].append(peak)
    cfg, ppo_cfg = TrainConfig.default(algos[0]), TrainConfig.default("ppo")
    print(f"training.bench: {cfg.env} {cfg.env_kwargs}, {NUM_ENVS} envs x {ROLLOUT} steps "
          f"per update (PPO: {ppo_cfg.update_epochs} epochs x {ppo_cfg.num_minibatches} "
          "minibatches), "
          f"{a.threads} threads, torch "
          f"{torch.__version__}; median of {a.repeats} round-robin runs of {a.updates} "
          f"updates (timed from the end of update {a.warmup + 1}), one process each")
    med = {k: statistics.median(v) for k, v in rates.items()}
    mem = {k: statistics.median(v) for k, v in peaks.items()}
    print(f"  {'variant':26s} {'env steps/s':>12s} {'cost/LSTM':>10s} {'peak RSS MiB':>13s} "
          f"{'mem/LSTM':>9s}   runs")
    for k, v in rates.items():
        lstm = f"{'PPO' if k == SB3 else k.split(' ')[0]} LSTM (eager)"
        cost = f"{med[lstm] / med[k]:9.2f}x" if lstm in med else f"{'—':>10s}"
        rel = f"{mem[k] / mem[lstm]:8.2f}x" if lstm in mem else f"{'—':>9s}"
        print(f"  {k:26s} {med[k]:12.0f} {cost} {mem[k]:13.0f} {rel}   "
              f"{', '.join(f'{x:.0f}' for x in v)}")
    if "a2c" in algos and "A2C DNC (eager)" in med:
        print("  target: A2C DNC >= 4,000 env steps/s")
    if "LSTM (eager)" in cores and any(c.startswith("DNC") for c in cores):
        print("  target: DNC cost per env step <= 2x the LSTM's")
    if SB3 in med:
        ours = ", ".join(f"{k.removeprefix('PPO ')} {med[k] / med[SB3]:.2f}x" for k in med
                         if k.startswith("PPO DNC"))
        print(f"  PPO env steps/s / RecurrentPPO's: {ours or '(no DNC row)'}; "
              "target (issue 11): DNC >= 3x")
    return {"rates": med, "peak_rss_mib": mem}


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:  # a timed run that failed: its one line, not a traceback
        sys.exit(f"training.bench: {e}")
