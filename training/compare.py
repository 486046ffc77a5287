"""DNC vs LSTM: the same A2C budget, several seeds, episodes to reach a success threshold.

    python -m training.compare                                  # tmaze and maze, 5 seeds
    python -m training.compare --tasks tmaze_long --seeds 3 --jobs 2
    python -m training.compare --tasks tmaze --budget 4096 --seeds 2 --out /tmp/r
    python -m training.compare --budget 600000,maze=1000000 --threshold 0.9,maze=0.5
    python -m training.compare --no-train                       # re-summarise runs/compare

A task ``T`` and a core ``C`` name the config ``training/configs/T_C.yaml``. Every
(task, core, seed) is one ``python -m training.<algo>`` subprocess (the trainer the
config names) with ``threads=1``,
``stop_at_success=0`` (every run spends the whole budget), ``log_every=1`` (one metrics
row per update) and ``run_dir=<runs-dir>/<task>/<core>/seed<k>``; ``--jobs`` of them run
at once. From each run's ``metrics.csv`` (:func:`summarize_run`):

- episodes to threshold: the ``episodes`` column of the first row whose rolling success
  (over the last ``success_window`` = 100 episodes) is >= ``--threshold``, counting only
  rows with at least ``--min-episodes`` finished episodes (a full window, so that a lucky
  first few episodes cannot count); "not reached" otherwise;
- env steps to threshold (``global_step`` of that row), final success (last row), wall
  time (last ``wall_s``).

Writes ``<out>/compare.md`` (a table per task and the DNC/LSTM episode ratio against the
claim "the DNC needs about 40% fewer episodes than the LSTM") and
``<out>/compare_<task>.png`` (success vs env steps: mean over seeds, min-max band).

An env that reports no ``is_success`` (POPGym's) is compared by return instead: the
final rolling return (mean over the last 100 episodes at the end of the budget) per core
and seed, and its curve. ``--baseline TASK=FILE`` adds sb3-contrib RecurrentPPO's row
from ``python -m training.baseline_sb3 --out FILE`` (run in its own venv, on the same
env, kwargs and budget, which are checked), and for a return task the line "within 10% of
its return" per core (ours >= theirs - 0.1 * |theirs|).

Length generalisation (``--eval-lengths 10,30,100,300,1000``, for envs with a ``length``
argument such as the T-maze): each run's final checkpoint is evaluated deterministically
on ``--eval-episodes`` episodes (seeds 0..N-1) at each length, as ``python -m
training.evaluate CKPT --env-kwargs length=L`` does; a table of success per length and
core (mean, and the seeds at >= 0.9) and ``<out>/compare_<task>_lengths.png`` (success vs
length, log x, seeds as thin lines). The results are kept beside each checkpoint
(``lengths.json``, keyed by the checkpoint's sha256), so ``--no-train`` re-uses them.

Fast adaptation (``--eval-trials``, for envs that report ``info["trial_steps"]`` such as
``dnc/ProceduralMaze-v0`` with several trials to one goal per episode): each final
checkpoint on its own env settings, ``--eval-episodes`` deterministic episodes; per core
the steps to the goal in trial 1 against later trials (their ratio, and the share of
episodes whose later trials were shorter), as ``training.evaluate`` prints them, and
``<out>/compare_<task>_trials.png`` (mean steps per trial). Kept in ``trials.json``.

Rows: a core of ``dnc_core`` or a labelled variant, ``<core>-<label>`` (config
``<task>_<core>-<label>.yaml``, e.g. ``dnc-mds``). Each task's line says whether the
parameter counts are within 10% of the first core's; every memory row (not LSTM or GRU)
gets a ratio line against the better of the LSTM and GRU rows present.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.config import CONFIG_DIR, TrainConfig

CLAIMED_RATIO = 0.6  # "about 40% fewer episodes"
SUPPORT_BELOW = 0.7  # a ratio at or below this (>= 30% fewer) counts as support


# --------------------------------------------------------------------------------------
# Per-run metrics (pure)
# --------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    episodes_to_threshold: int | None  # None: not reached within the budget
    steps_to_threshold: int | None
    final_success: float
    wall_s: float
    total_episodes: int
    total_steps: int
    steps: np.ndarray  # the learning curve: global_step per row
    success: np.ndarray  # rolling success per row (NaN before the first episode ends)
    lowest_after: float | None = None  # lowest rolling success from the threshold row on
    returns: np.ndarray | None = None  # rolling return per row (NaN before the first episode)

    @property
    def reached(self) -> bool:
        return self.episodes_to_threshold is not None

    @property
    def has_success(self) -> bool:
        """False for an env that reports no ``is_success`` (POPGym's): compared by return."""
        return bool(np.any(~np.isnan(self.success)))

    @property
    def final_return(self) -> float:
        return float(self.returns[-1]) if self.returns is not None else math.nan


def summarize_run(csv_path: str | Path, threshold: float, min_episodes: int = 100) -> RunSummary:
    """Summarise one run's ``metrics.csv`` (columns as written by ``training.a2c``).

    The threshold counts as reached at the first row with ``success >= threshold`` and
    ``episodes >= min_episodes``.
    """
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{csv_path}: no metrics rows (did the run log anything?)")
    steps = np.array([int(r["global_step"]) for r in rows])
    episodes = np.array([int(r["episodes"]) for r in rows])
    success = np.array([float(r["success"]) if r["success"] else math.nan for r in rows])
    returns = np.array([float(r["return"]) if r["return"] else math.nan for r in rows])
    hit = np.flatnonzero((success >= threshold) & (episodes >= min_episodes))  # NaN: False
    first = int(hit[0]) if len(hit) else None
    return RunSummary(
        episodes_to_threshold=int(episodes[first]) if first is not None else None,
        steps_to_threshold=int(steps[first]) if first is not None else None,
        final_success=float(success[-1]), wall_s=float(rows[-1]["wall_s"]),
        total_episodes=int(episodes[-1]), total_steps=int(steps[-1]),
        steps=steps, success=success, returns=returns,
        lowest_after=float(np.nanmin(success[first:])) if first is not None else None)


def censored_episodes(runs: list[RunSummary]) -> list[int]:
    """Episodes to threshold per run, an unreached run counted as its total episodes
    (the budget): a lower bound of what that run would have needed."""
    return [r.episodes_to_threshold if r.reached else r.total_episodes for r in runs]


def episode_ratio(dnc: list[RunSummary], lstm: list[RunSummary]) -> float:
    """Mean episodes to threshold of the DNC over that of the LSTM (censored means)."""
    return float(np.mean(censored_episodes(dnc)) / np.mean(censored_episodes(lstm)))


def permutation_p(a: list[float], b: list[float]) -> float:
    """Two-sided exact permutation test of a difference in means (every split of the
    pooled values into groups of len(a) and len(b)): the share of splits whose |mean
    difference| is at least the observed one."""
    from itertools import combinations
    pooled, n = np.asarray(a + b, dtype=float), len(a)
    observed = abs(np.mean(a) - np.mean(b))
    total, count = pooled.sum(), 0
    splits = list(combinations(range(len(pooled)), n))
    for idx in splits:
        sa = pooled[list(idx)].sum()
        count += abs(sa / n - (total - sa) / len(b)) >= observed - 1e-9
    return count / len(splits)


def verdict(ratio: float, dnc: list[RunSummary], lstm: list[RunSummary],
            names: tuple[str, str] = ("DNC", "LSTM")) -> str:
    """One sentence on the claim "the DNC needs about 40% fewer episodes" (than the LSTM,
    or the rows ``names``)."""
    mem, rnn = names
    n_dnc, n_lstm = sum(r.reached for r in dnc), sum(r.reached for r in lstm)
    if n_dnc == 0 and n_lstm == 0:
        return "no verdict: neither core reached the threshold within the budget"
    if n_dnc == 0:
        return f"does not support the claim: the {mem} never reached the threshold, the {rnn} did"
    # Unreached seeds are counted at the budget, below what they would need: LSTM ones
    # make the ratio an upper bound, DNC ones a lower bound.
    if n_lstm < len(lstm) and n_dnc < len(dnc):
        bound = " (unreached seeds on both sides: the ratio is not a bound either way)"
    elif n_lstm < len(lstm):
        bound = f" (an upper bound of the ratio: the {rnn}'s unreached seeds need more)"
    elif n_dnc < len(dnc):
        bound = f" (a lower bound of the ratio: the {mem}'s unreached seeds need more)"
    else:
        bound = ""
    fewer = (1 - ratio) * 100
    upper, lower = n_lstm < len(lstm) and n_dnc == len(dnc), n_dnc < len(dnc) and n_lstm == len(lstm)
    if (upper and ratio > SUPPORT_BELOW) or (lower and ratio <= SUPPORT_BELOW) or (
            n_dnc < len(dnc) and n_lstm < len(lstm)):
        return f"inconclusive: ratio {ratio:.2f} with unreached seeds{bound}"
    if ratio <= SUPPORT_BELOW:
        return f"supports the claim: the {mem} needs {fewer:.0f}% fewer episodes{bound}"
    if ratio < 1:
        return (f"does not support the claim: the {mem} needs only {fewer:.0f}% fewer "
                f"episodes{bound}")
    return f"does not support the claim: the {mem} needs {-fewer:.0f}% more episodes{bound}"


# --------------------------------------------------------------------------------------
# Tasks and runs
# --------------------------------------------------------------------------------------
def available_configs(config_dir: Path = CONFIG_DIR) -> dict[str, list[str]]:
    """``{task: [cores]}`` for every ``<task>_<core>.yaml`` in ``config_dir``; a core is
    a name of ``dnc_core.CORES`` or a labelled variant of one, ``<core>-<label>`` (e.g.
    ``dnc-mds``: the DNC with other ``core_config`` options), its own row."""
    from dnc_core import CORES
    found: dict[str, list[str]] = {}
    for path in sorted(config_dir.glob("*.yaml")):
        task, _, core = path.stem.rpartition("_")
        if task and base_core(core) in CORES:
            found.setdefault(task, []).append(core)
    return found


def base_core(label: str) -> str:
    """The ``dnc_core`` core of a row label: ``dnc-mds`` -> ``dnc``, ``lstm`` -> ``lstm``."""
    return label.partition("-")[0]


def config_paths(tasks: list[str], cores: list[str],
                 config_dir: Path = CONFIG_DIR) -> dict[tuple[str, str], Path]:
    """The config of every (task, core); a ``ValueError`` naming what exists otherwise."""
    from dnc_core import CORES
    found = available_configs(config_dir)
    for core in cores:
        if base_core(core) not in CORES:
            raise ValueError(f"unknown core {core!r}; cores: {', '.join(sorted(CORES))} "
                             f"or a labelled variant of one, <core>-<label>")
    listing = ", ".join(f"{t} ({'/'.join(c)})" for t, c in found.items())
    paths = {}
    for task in tasks:
        if task not in found:
            raise ValueError(f"unknown task {task!r}; tasks with configs in {config_dir}: "
                             f"{listing}")
        for core in cores:
            path = config_dir / f"{task}_{core}.yaml"
            if not path.is_file():
                raise ValueError(f"task {task!r} has no config for core {core!r} ({path} "
                                 f"is missing); tasks: {listing}")
            if core != base_core(core):  # a labelled variant: its file names its core
                import yaml
                named = (yaml.safe_load(path.read_text()) or {}).get("core")
                if named != base_core(core):
                    raise ValueError(f"{path}: core {named!r}, but the row {core!r} is a "
                                     f"variant of {base_core(core)!r}")
            paths[task, core] = path
    return paths


@dataclass
class Run:
    task: str
    core: str
    seed: int
    config: Path
    folder: Path  # <runs-dir>/<task>/<core>/seed<k>; a2c makes a timestamped run inside
    total_steps: int
    compile: bool = False  # torch.compile the core's step (the same model, faster)


def settings_differ(configs: list[TrainConfig | dict], cores_too: bool = False) -> list[str]:
    """Config keys, other than the run machinery (and the core, unless ``cores_too``),
    that differ between configs (TrainConfig or dicts such as a run's config.yaml):
    empty when every core of a task gets the same env, A2C settings and budget."""
    ignore = {"seed", "run_dir", "threads", "device", "compile", "vector_env", "log_every",
              "checkpoint_every", "stop_at_success"}
    ignore |= set() if cores_too else {"core", "core_config"}
    dicts = [c if isinstance(c, dict) else c.to_dict() for c in configs]
    keys = sorted(set().union(*dicts) - ignore)
    return [k for k in keys if any(d.get(k) != dicts[0].get(k) for d in dicts[1:])]


def parameter_count(metrics_csv: Path) -> int | None:
    """Trainable parameters of a run's policy (from its latest checkpoint), or None."""
    from training.checkpoint import CheckpointError, load_policy
    try:
        policy, _ = load_policy(Path(metrics_csv).parent)
    except CheckpointError:
        return None
    return sum(p.numel() for p in policy.parameters())


MATCHED = 0.1  # parameter counts "matched": every core within 10% of the first core's


def parameters_line(counts: dict[str, int | None]) -> str:
    """Whether the cores' parameter counts are within 10% of the first core's."""
    known = {k: v for k, v in counts.items() if v}
    if len(known) < len(counts):
        return "parameter counts: some checkpoints could not be read"
    ref_core, ref = next(iter(known.items()))
    worst = max(known.values(), key=lambda v: abs(v - ref))
    off = abs(worst - ref) / ref
    return (f"parameter counts {'' if off <= MATCHED else 'NOT '}matched within "
            f"{MATCHED:.0%} of {ref_core}'s (largest difference {off:.1%})")


def run_config(metrics_csv: Path) -> dict:
    """The config a run was trained with (its ``config.yaml``), as a dict."""
    import yaml
    return yaml.safe_load((Path(metrics_csv).parent / "config.yaml").read_text())


def train_command(run: Run) -> list[str]:
    algo = TrainConfig.load(run.config).algo  # the trainer the config was written for
    cmd = [sys.executable, "-m", f"training.{algo}", "--config", str(run.config),
           "--seed", str(run.seed), "--no-progress", "--set", "threads=1",
           "--set", "stop_at_success=0", "--set", "log_every=1",
           "--set", f"run_dir={run.folder}"]
    # compile set either way, so that every row of a task has the same setting (the
    # trainers' "auto" would compile the DNC and NTM rows alone)
    cmd += ["--set", f"compile={'true' if run.compile else 'false'}"]
    return cmd + ["--total-steps", str(run.total_steps)]


def code_version() -> str:
    """``git`` commit of the working tree, ``+dirty`` if tracked files of the code a run
    imports (dnc_core, sim, training) have uncommitted changes; "unknown" outside git."""
    root = CONFIG_DIR.parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno", "--", "dnc_core", "sim",
                                "training"], cwd=root, check=True, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def execute(run: Run) -> Path:
    """Train one run in a subprocess; return its new ``metrics.csv``. The code version
    at launch goes to ``code_version.txt`` in the run's folder."""
    run.folder.mkdir(parents=True, exist_ok=True)
    before = set(run.folder.iterdir())
    version = code_version()
    log = run.folder / "train.log"
    with open(log, "w") as f:
        rc = subprocess.run(train_command(run), stdout=f, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False).returncode
    if rc != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(f"{run.task}/{run.core}/seed{run.seed} failed (exit {rc}); "
                           f"{log}:\n{tail}")
    new = [p for p in set(run.folder.iterdir()) - before if (p / "metrics.csv").is_file()]
    if len(new) != 1:
        raise RuntimeError(f"expected one new run folder in {run.folder}, found {new}")
    (new[0] / "code_version.txt").write_text(version + "\n")
    return new[0] / "metrics.csv"


def run_code_version(metrics_csv: Path) -> str:
    path = Path(metrics_csv).parent / "code_version.txt"
    return path.read_text().strip() if path.is_file() else "not recorded"


def latest_metrics(folder: Path) -> Path:
    """The newest run's ``metrics.csv`` under a seed folder (for ``--no-train``)."""
    found = sorted(folder.glob("*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no run with a metrics.csv in {folder}")
    return found[-1]


class _EvalCache:
    """A JSON file beside a run's final checkpoint (``lengths.json``, ``trials.json``)
    holding evaluations of that checkpoint: ``data`` is its content when it names the
    same checkpoint (sha256) and episode count, else empty; ``save`` rewrites it
    atomically."""

    def __init__(self, run_folder: Path, name: str, episodes: int):
        import json

        from training.checkpoint import resolve_path
        self.ckpt = resolve_path(run_folder)
        self.path = Path(run_folder) / name
        self.episodes = episodes
        self.digest = hashlib.sha256(self.ckpt.read_bytes()).hexdigest()
        data = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                data = {}
        ok = (isinstance(data, dict) and data.get("sha256") == self.digest
              and data.get("episodes") == episodes)
        self.data = data if ok else {}

    def save(self, **fields) -> None:
        import json

        from dnc_policy.files import atomic_write
        data = json.dumps({"sha256": self.digest, "checkpoint": str(self.ckpt),
                           "episodes": self.episodes, **fields}, indent=1)
        atomic_write(self.path, lambda f: f.write(data.encode()))


def evaluate_lengths(run_folder: Path, lengths: list[int], episodes: int) -> dict[int, float]:
    """Deterministic success of a run's final checkpoint at each corridor length
    (``{length: success}``), from ``lengths.json`` beside it when that holds the same
    checkpoint (sha256) and episode count, else evaluated and added there."""
    import torch

    from training.evaluate import evaluate
    cache = _EvalCache(run_folder, "lengths.json", episodes)
    results = dict(cache.data.get("success", {}))
    todo = [n for n in lengths if str(n) not in results]
    if todo:
        torch.set_num_threads(1)
        for n in todo:
            r = evaluate(str(cache.ckpt), episodes=episodes, seed=0, env_kwargs={"length": n})
            results[str(n)] = float(r["success_rate"])
        cache.save(success=results)
    return {n: results[str(n)] for n in lengths}


def evaluate_trials(run_folder: Path, episodes: int) -> dict:
    """Fast adaptation of a run's final checkpoint on its own env settings
    (``training.evaluate``'s ``adaptation``: steps per trial, deterministic, seeds
    0..episodes-1), from ``trials.json`` beside it when that holds the same checkpoint
    (sha256) and episode count, else evaluated and written there."""
    import torch

    from training.evaluate import evaluate
    cache = _EvalCache(run_folder, "trials.json", episodes)
    if "adaptation" in cache.data:
        return cache.data["adaptation"]
    torch.set_num_threads(1)
    r = evaluate(str(cache.ckpt), episodes=episodes, seed=0)
    if "adaptation" not in r:
        raise ValueError(f"--eval-trials: {r['env']} reports no info['trial_steps']")
    cache.save(success=r["success_rate"], adaptation=r["adaptation"])
    return r["adaptation"]


ADAPTED = 0.6  # the target: later trials in <= 0.6x trial 1's steps


def trials_report(task: str, results: dict[str, list[dict]], episodes: int) -> str:
    """The markdown section of a task's fast adaptation (steps per trial)."""
    def cell(values, fmt):
        v = [x for x in values if x is not None]
        if not v:
            return "—"
        return f"{np.mean(v):{fmt}} ± {np.std(v, ddof=1) if len(v) > 1 else 0:{fmt}}"

    lines = [f"#### {task}: fast adaptation (steps to the goal per trial)", "",
             f"Each seed's final checkpoint, deterministic, {episodes} episodes (seeds "
             f"0..{episodes - 1}), a new maze each episode and the goal fixed within it. "
             f"Per seed: the episodes that finished at least two trials; trial 1's mean "
             f"steps, the later trials' (each episode's mean of trials 2+), their ratio, and "
             f"the share of episodes whose later trials were shorter than their first. "
             f"Cells: mean ± std over seeds. Target: later/first <= {ADAPTED}.", "",
             "| core | episodes with 2+ trials (of " f"{episodes}) | trial 1 steps | later "
             "trials' steps | later / first | later shorter (share of episodes) "
             "| later / first per seed |",
             "|---|---|---|---|---|---|---|"]
    for core, runs in results.items():
        ratios = [r["later_over_first"] for r in runs]
        lines.append(
            f"| {core} | {cell([r['episodes'] for r in runs], '.0f')} "
            f"| {cell([r['trial1_steps_mean'] for r in runs], '.1f')} "
            f"| {cell([r['later_steps_mean'] for r in runs], '.1f')} "
            f"| {cell(ratios, '.2f')} | {cell([r['later_shorter_fraction'] for r in runs], '.2f')} "
            f"| {', '.join('—' if x is None else f'{x:.2f}' for x in ratios)} |")
    lines.append("")
    return "\n".join(lines)


def plot_trials(results: dict[str, list[dict]], path: Path, title: str) -> None:
    """Mean steps to the goal per trial index: each core's mean over seeds (thick), each
    seed (thin)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for core, runs in results.items():
        curves = [r["per_trial_steps_mean"] for r in runs if r["per_trial_steps_mean"]]
        if not curves:
            continue
        n = min(map(len, curves))
        mean = np.mean([c[:n] for c in curves], 0)
        line, = ax.plot(range(1, n + 1), mean, linewidth=2, marker="o",
                        label=f"{core} ({len(curves)} seeds)")
        for c in curves:
            ax.plot(range(1, len(c) + 1), c, color=line.get_color(), alpha=0.4, linewidth=0.6)
    ax.set(xlabel="trial within the episode", ylabel="steps to the goal (mean)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def lengths_report(task: str, results: dict[str, list[dict[int, float]]], lengths: list[int],
                   episodes: int, trained: object) -> str:
    """The markdown section of a task's length generalisation."""
    lines = [f"#### {task}: length generalisation", "",
             f"Trained on lengths {trained}; each seed's final checkpoint evaluated "
             f"deterministically on {episodes} episodes (seeds 0..{episodes - 1}) per length. "
             f"Cell: mean success over seeds (seeds with success >= 0.9).", "",
             "| core | " + " | ".join(f"length {n:,}" for n in lengths)
             + f" | success at {lengths[-1]:,} per seed |",
             "|---|" + "---|" * (len(lengths) + 1)]
    for core, runs in results.items():
        cells = []
        for n in lengths:
            values = [r[n] for r in runs]
            cells.append(f"{np.mean(values):.2f} ({sum(v >= 0.9 for v in values)}/{len(values)})")
        lines.append(f"| {core} | " + " | ".join(cells) + " | "
                     + ", ".join(f"{r[lengths[-1]]:.2f}" for r in runs) + " |")
    lines.append("")
    return "\n".join(lines)


def plot_lengths(results: dict[str, list[dict[int, float]]], lengths: list[int], path: Path,
                 title: str) -> None:
    """Success vs corridor length (log x): mean over seeds (thick), each seed (thin)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]  # cores that overlap stay visible
    for k, (core, runs) in enumerate(results.items()):
        curves = np.array([[r[n] for n in lengths] for r in runs])
        marker, style = styles[k % len(styles)]
        line, = ax.plot(lengths, curves.mean(0), linewidth=2, marker=marker, linestyle=style,
                        label=f"{core} ({len(runs)} seeds)")
        for curve in curves:
            ax.plot(lengths, curve, color=line.get_color(), alpha=0.45, linewidth=0.6)
    ax.axhline(0.9, color="grey", linestyle="--", linewidth=1, label="0.9")
    ax.set_xscale("log")
    ax.set(xlabel="corridor length (log)", ylabel="deterministic success", ylim=(-0.02, 1.02))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def _mean_std(values) -> str:
    """Mean ± sample standard deviation (0 for a single value)."""
    if len(values) == 0:
        return "—"
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):,.0f} ± {std:,.0f}"


RNN_ROWS = {"lstm", "gru"}  # the plain recurrent baselines of the claim


def ratio_pairs(results: dict[str, list]) -> list[tuple[str, str]]:
    """(memory row, baseline row) for the claim's ratio lines: every row that is not a
    plain LSTM or GRU against the better of those present (fewer mean episodes to the
    threshold, unreached seeds counted at their total)."""
    rnns = [k for k in results if k in RNN_ROWS]
    if not rnns:
        return []
    best = min(rnns, key=lambda k: (np.mean(censored_episodes(results[k])), k))
    return [(k, best) for k in results if k not in RNN_ROWS]


def task_report(task: str, results: dict[str, list[RunSummary]], threshold: float,
                env_line: str, baseline: list[dict] | None = None) -> str:
    """The markdown section of one task: a table over cores and the ratio line."""
    lines = [f"### {task}", "", env_line, "",
             (f"| core | seeds | reached {threshold:g} | episodes to {threshold:g} "
              f"(mean ± std, reached seeds) | env steps to {threshold:g} | episodes per seed "
              f"| final success (mean ± std) | wall time (mean, s) "
              f"| lowest success after reaching it, per seed "
              f"| final return (mean ± std; per seed) |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for core, runs in results.items():
        reached = [r for r in runs if r.reached]
        per_seed = ", ".join(f"{r.episodes_to_threshold:,}" if r.reached else
                             f"not reached (>{r.total_episodes:,})" for r in runs)
        finals = [r.final_success for r in runs]
        lines.append(
            f"| {core} | {len(runs)} | {len(reached)}/{len(runs)} "
            f"| {_mean_std([r.episodes_to_threshold for r in reached])} "
            f"| {_mean_std([r.steps_to_threshold for r in reached])} | {per_seed} "
            f"| {np.mean(finals):.3f} ± {np.std(finals, ddof=1) if len(finals) > 1 else 0:.3f} "
            f"| {np.mean([r.wall_s for r in runs]):.0f} "
            f"| {', '.join(f'{r.lowest_after:.2f}' if r.reached else '—' for r in runs)} "
            f"| {_returns([r.final_return for r in runs])} |")
    if baseline:
        lines.append(baseline_row(baseline, threshold))
    lines.append("")
    for mem, rnn in ratio_pairs(results):
        dnc, lstm = results[mem], results[rnn]
        ratio = episode_ratio(dnc, lstm)
        unreached = sum(not r.reached for r in dnc + lstm)
        counted = (f"{unreached} unreached seed(s) counted at their total episodes, a lower "
                   f"bound of what they need" if unreached else "all seeds reached it")
        if unreached:  # a censored count is the run's episodes at the budget, which
            # depends on how long its failing episodes were: no test on those numbers.
            test = "No significance test: some seeds did not reach the threshold."
        else:
            p = permutation_p(censored_episodes(dnc), censored_episodes(lstm))
            test = (f"The difference of the means is {'' if p < 0.05 else 'not '}"
                    f"significant at 5% (two-sided exact permutation test, p = {p:.3f}, "
                    f"{len(dnc)} vs {len(lstm)} seeds).")
        best = (f" ({rnn}: the better of {', '.join(sorted(RNN_ROWS & results.keys()))} by mean "
                f"episodes)" if len(RNN_ROWS & results.keys()) > 1 else "")
        lines.append(f"**{mem.upper()}/{rnn.upper()} episodes to {threshold:g}: {ratio:.2f}**"
                     f"{best} (mean over seeds; {counted}; the claim is ≈ {CLAIMED_RATIO}) — "
                     f"{verdict(ratio, dnc, lstm, (mem.upper(), rnn.upper()))}. {test}")
        lines.append("")
    return "\n".join(lines)


BASELINE = "RecurrentPPO (sb3-contrib)"
WITHIN = 0.1  # "within 10% of RecurrentPPO's return": ours >= theirs - 0.1 * |theirs|


def load_baseline(path: Path, env: str, env_kwargs: dict, budget: int) -> list[dict]:
    """The result lines ``training.baseline_sb3 --out`` wrote for one task; a
    ``ValueError`` naming the file unless every line is for this env, its kwargs and the
    budget (the steps of whole updates that reach it: 16 envs x 32 steps)."""
    import json
    try:
        lines = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"--baseline {path}: cannot be read as JSON lines ({e})") from None
    if not lines:
        raise ValueError(f"--baseline {path}: holds no results")
    for res in lines:
        if res.get("env") != env or res.get("env_kwargs") != env_kwargs:
            raise ValueError(f"--baseline {path}: seed {res.get('seed')} ran on "
                             f"{res.get('env')} {res.get('env_kwargs')}, not the task's "
                             f"{env} {env_kwargs}")
        if not budget <= int(res.get("steps", -1)) < budget + 16 * 32:
            raise ValueError(f"--baseline {path}: seed {res.get('seed')} ran "
                             f"{res.get('steps')} env steps, not the task's budget {budget:,}")
    return sorted(lines, key=lambda r: r["seed"])


def _pm(values, digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):.{digits}f} ± {std:.{digits}f}"


def _returns(values) -> str:
    """Final rolling returns: "mean ± std; each seed's", or "—" where none is known;
    one decimal where some |return| >= 10 (CartPole's hundreds), else three (the
    T-maze's returns near 0)."""
    known = [v for v in values if v is not None and not math.isnan(v)]
    if not known:
        return "—"
    digits = 1 if max(abs(v) for v in known) >= 10 else 3
    each = ", ".join("—" if v is None or math.isnan(v) else f"{v:.{digits}f}" for v in values)
    return f"{_pm(known, digits)}; {each}"


def baseline_row(lines: list[dict], threshold: float) -> str:
    """The table row of RecurrentPPO in a success task's table (same columns)."""
    reached = [r for r in lines if r["episodes_to_threshold"] is not None]
    per_seed = ", ".join(f"{r['episodes_to_threshold']:,}" if r["episodes_to_threshold"]
                         is not None else f"not reached (>{r['episodes']:,})" for r in lines)
    return (f"| {BASELINE} | {len(lines)} | {len(reached)}/{len(lines)} "
            f"| {_mean_std([r['episodes_to_threshold'] for r in reached])} "
            f"| {_mean_std([r['steps_to_threshold'] for r in reached])} | {per_seed} "
            f"| {_pm([r['final_success'] for r in lines])} | — "
            f"| {', '.join('—' if r['min_after'] is None else format(r['min_after'], '.2f') for r in lines)} "
            f"| {_returns([r.get('final_return') for r in lines])} |")


def return_report(task: str, results: dict[str, list[RunSummary]], env_line: str,
                  baseline: list[dict] | None) -> str:
    """The markdown section of a task whose env reports no success: final rolling return
    (mean over the last 100 episodes at the end of the budget) per core and seed, and,
    with a RecurrentPPO baseline, each core against it."""
    lines = [f"### {task}", "", env_line, "",
             "| core | seeds | final return (mean ± std) | final return per seed "
             "| best rolling return (mean) | wall time (mean, s) |", "|---|---|---|---|---|---|"]
    for core, runs in results.items():
        finals = [r.final_return for r in runs]
        lines.append(f"| {core} | {len(runs)} | {_pm(finals)} "
                     f"| {', '.join(f'{v:.3f}' for v in finals)} "
                     f"| {np.mean([np.nanmax(r.returns) for r in runs]):.3f} "
                     f"| {np.mean([r.wall_s for r in runs]):.0f} |")
    if baseline:
        finals = [r["final_return"] for r in baseline]
        lines.append(f"| {BASELINE} | {len(baseline)} | {_pm(finals)} "
                     f"| {', '.join(f'{v:.3f}' for v in finals)} | — | — |")
        theirs = float(np.mean(finals))
        lines += ["", f"Against {BASELINE}'s mean final return {theirs:.3f} (within "
                      f"{WITHIN:.0%}: at least {theirs - WITHIN * abs(theirs):.3f}):"]
        for core, runs in results.items():
            ours = float(np.mean([r.final_return for r in runs]))
            ok = ours >= theirs - WITHIN * abs(theirs)
            lines.append(f"- {core}: {ours:.3f}, difference {ours - theirs:+.3f} — "
                         f"{'within' if ok else '**not within**'} {WITHIN:.0%}")
    lines.append("")
    return "\n".join(lines)


def plot_task(task: str, results: dict[str, list[RunSummary]], threshold: float,
              path: Path, title: str) -> None:
    """Success (or, for an env without success, return) vs env steps, one colour per
    core: the mean over seeds (thick), a min-max band and every seed (thin: a mean of runs
    that solve and runs that fail hides both)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_return = not any(r.has_success for runs in results.values() for r in runs)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for core, runs in results.items():
        grid = np.unique(np.concatenate([r.steps for r in runs]))
        ys = [r.returns if by_return else r.success for r in runs]
        curves = np.stack([np.interp(grid, r.steps[~np.isnan(y)], y[~np.isnan(y)], left=np.nan)
                           for r, y in zip(runs, ys)])
        ok = ~np.all(np.isnan(curves), axis=0)
        grid, curves = grid[ok], curves[:, ok]
        line, = ax.plot(grid, np.nanmean(curves, 0), linewidth=2,
                        label=f"{core} ({len(runs)} seeds)")
        ax.fill_between(grid, np.nanmin(curves, 0), np.nanmax(curves, 0),
                        color=line.get_color(), alpha=0.15, linewidth=0)
        for curve in curves:
            ax.plot(grid, curve, color=line.get_color(), alpha=0.45, linewidth=0.6)
    if by_return:
        ax.set(xlabel="env steps", ylabel="return (rolling, last 100 episodes)")
    else:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label="threshold")
        ax.set(xlabel="env steps", ylabel="success (rolling, last 100 episodes)",
               ylim=(0, 1.02))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_per_task(flag: str, text: str, tasks: list[str], kind: type, default,
                   bounds: tuple[float, float]) -> dict:
    """``"0.9,maze=0.6"`` -> ``{task: value}``: a bare value is every other task's."""
    per_task = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        task, _, value = item.rpartition("=")
        try:
            number = kind(value)
        except ValueError:
            raise ValueError(f"{flag}: {item!r} is not X or TASK=X ({kind.__name__})") from None
        if not bounds[0] <= number <= bounds[1]:
            raise ValueError(f"{flag}: {item!r} must be in [{bounds[0]}, {bounds[1]}]")
        if task and task not in tasks:
            raise ValueError(f"{flag}: task {task!r} is not in --tasks {tasks}")
        if task:
            per_task[task] = number
        else:
            default = number
    return {t: per_task.get(t, default) for t in tasks}


def _shown(path: Path) -> str:
    """A config path relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(CONFIG_DIR.parent.parent))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------
def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--tasks", default="tmaze,maze",
                   help="comma-separated; task T uses training/configs/T_<core>.yaml")
    p.add_argument("--cores", default="dnc,lstm")
    p.add_argument("--seeds", type=int, default=5, help="seeds 1..N per task and core")
    p.add_argument("--threshold", default="0.9", metavar="X[,TASK=X...]",
                   help="success threshold; TASK=X sets one task's (e.g. 0.9,maze=0.6)")
    p.add_argument("--min-episodes", type=int, default=100,
                   help="finished episodes before a row can count as reaching the threshold")
    p.add_argument("--budget", metavar="N[,TASK=N...]",
                   help="env steps per run, overriding the configs' total_steps; TASK=N "
                        "sets one task's (e.g. 600000,maze=1000000)")
    p.add_argument("--jobs", type=int, default=2, help="training processes at once")
    p.add_argument("--compile", action="store_true",
                   help="train with compile=true (torch.compile of the core's step: the "
                        "same model and updates, about 2x the DNC's rate after a one-off "
                        "compile of about a minute)")
    p.add_argument("--out", default="docs/results")
    p.add_argument("--runs-dir", default="runs/compare")
    p.add_argument("--no-train", action="store_true",
                   help="only summarise the newest existing run of every (task, core, seed)")
    p.add_argument("--eval-lengths", metavar="L1,L2,...",
                   help="also evaluate every run's final checkpoint at these corridor "
                        "lengths (envs with a `length` argument, e.g. 10,30,100,300,1000)")
    p.add_argument("--baseline", action="append", default=[], metavar="TASK=FILE",
                   help="a RecurrentPPO row for TASK from `training.baseline_sb3 --out FILE` "
                        "(same env, kwargs and budget; repeatable)")
    p.add_argument("--eval-trials", action="store_true",
                   help="also evaluate every run's final checkpoint on its own env settings "
                        "for fast adaptation: steps to the goal in trial 1 vs later trials "
                        "(envs that report info['trial_steps'], e.g. dnc/ProceduralMaze-v0)")
    p.add_argument("--eval-episodes", type=int, default=100,
                   help="episodes per length for --eval-lengths, and per run for "
                        "--eval-trials (default 100)")
    a = p.parse_args(argv)
    tasks = [t for t in a.tasks.split(",") if t]
    cores = [c for c in a.cores.split(",") if c]
    if a.seeds < 1 or a.jobs < 1:
        p.error("--seeds and --jobs must be >= 1")
    lengths = []
    if a.eval_lengths:
        try:
            lengths = sorted({int(x) for x in a.eval_lengths.split(",") if x.strip()})
        except ValueError:
            p.error(f"--eval-lengths: expected comma-separated integers, got {a.eval_lengths!r}")
        if not lengths or lengths[0] < 1:
            p.error(f"--eval-lengths: expected lengths >= 1, got {a.eval_lengths!r}")
    if not 1 <= a.eval_episodes <= 100_000:
        p.error(f"--eval-episodes: expected 1 to 100,000, got {a.eval_episodes}")
    try:
        paths = config_paths(tasks, cores)
        thresholds = parse_per_task("--threshold", a.threshold, tasks, float, 0.9, (0, 1))
        budgets = parse_per_task("--budget", a.budget or "", tasks, int, None, (1, math.inf))
    except ValueError as e:
        p.error(str(e))
    configs = {key: TrainConfig.load(path) for key, path in paths.items()}
    if lengths:
        from training.envs import env_kwarg_names
        no_length = sorted({c.env for c in configs.values()
                            if "length" not in env_kwarg_names(c.env)})
        if no_length:
            p.error(f"--eval-lengths: {', '.join(no_length)} take no `length` argument")
    for (task, core), c in configs.items():  # the same budget for every core of a task
        budgets[task] = budgets[task] or c.total_steps
    baselines: dict[str, list[dict]] = {}
    for item in a.baseline:  # checked before any training starts
        task, sep, file = item.partition("=")
        if not sep or task not in tasks:
            p.error(f"--baseline: expected TASK=FILE with TASK in --tasks {tasks}, got {item!r}")
        c = configs[task, cores[0]]
        try:
            baselines[task] = load_baseline(Path(file), c.env, c.env_kwargs, budgets[task])
        except ValueError as e:
            p.error(str(e))

    runs = [Run(task, core, seed, paths[task, core],
                Path(a.runs_dir) / task / core / f"seed{seed}",
                budgets[task], a.compile)
            for task in tasks for seed in range(1, a.seeds + 1) for core in cores]
    metrics: dict[tuple[str, str, int], Path] = {}
    start = time.perf_counter()
    if a.no_train:
        metrics = {(r.task, r.core, r.seed): latest_metrics(r.folder) for r in runs}
    else:
        order = sorted(runs, key=lambda r: -r.total_steps)  # longest first: better packing
        with ThreadPoolExecutor(a.jobs) as pool, \
                tqdm(total=len(runs), unit="run", desc="compare") as bar:
            futures = {pool.submit(execute, r): r for r in order}
            for fut in as_completed(futures):
                r = futures[fut]
                metrics[r.task, r.core, r.seed] = fut.result()
                bar.set_postfix_str(f"{r.task}/{r.core}/seed{r.seed}")
                bar.update()
    evaluated: dict[tuple[str, str, int], dict[int, float]] = {}
    if lengths:  # one process per run (torch on one thread each), --jobs at once
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(a.jobs) as pool, \
                tqdm(total=len(metrics), unit="run", desc="lengths") as bar:
            futures = {pool.submit(evaluate_lengths, m.parent, lengths, a.eval_episodes): key
                       for key, m in metrics.items()}
            for fut in as_completed(futures):
                evaluated[futures[fut]] = fut.result()
                bar.update()
    adapted: dict[tuple[str, str, int], dict] = {}
    if a.eval_trials:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(a.jobs) as pool, \
                tqdm(total=len(metrics), unit="run", desc="trials") as bar:
            futures = {pool.submit(evaluate_trials, m.parent, a.eval_episodes): key
                       for key, m in metrics.items()}
            for fut in as_completed(futures):
                adapted[futures[fut]] = fut.result()
                bar.update()
    elapsed = time.perf_counter() - start

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m training.compare " + " ".join(argv if argv is not None else sys.argv[1:])
    sections = [
        "# Cores at an equal budget: episodes to a success threshold (or final return)", "",
        f"Command: `{command.strip()}`" + (
            f" (summarising the newest run of each task/core/seed in `{a.runs_dir}`, trained "
            f"by earlier `python -m training.compare` calls; each run's folder holds its "
            f"config.yaml)" if a.no_train else
            f" ({elapsed / 60:.1f} min wall, {a.jobs} jobs)"),
        "", (f"Threshold: rolling success (last 100 episodes) >= the task's threshold "
             f"({', '.join(f'{t}: {thresholds[t]:g}' for t in tasks)}), counted "
             f"once at least {a.min_episodes} episodes have finished. Every run spends its "
             f"whole budget (stop_at_success=0), one torch thread per run"
             f"{', the core step compiled (compile=true)' if a.compile else ''}. Seeds "
             f"1..{a.seeds}. Wall times are for {a.jobs} runs sharing the machine at once."),
        ""]
    summaries = {}
    for task in tasks:
        results = {core: [summarize_run(metrics[task, core, s], thresholds[task],
                                        a.min_episodes)
                          for s in range(1, a.seeds + 1)] for core in cores}
        summaries[task] = results
        # Describe the runs by the configs they were trained with (their config.yaml),
        # which may differ from today's config files under --no-train.
        used = {core: [run_config(metrics[task, core, s]) for s in range(1, a.seeds + 1)]
                for core in cores}
        c = used[cores[0]][0]
        differ = settings_differ([u for core in cores for u in used[core]])
        algo = c.get("algo", "a2c").upper()
        same = (f"identical env and {algo} settings for every core and seed" if not differ else
                f"**settings differ between runs: {', '.join(differ)}**")
        counts = {core: parameter_count(metrics[task, core, 1]) for core in cores}
        env_line = (f"`{c['env']}` {c['env_kwargs']}; budget {budgets[task]:,} env steps per "
                    f"run; {same}; "
                    + "; ".join(f"{core}: `{_shown(paths[task, core])}` "
                                f"core_config={used[core][0]['core_config']}, "
                                f"{'?' if counts[core] is None else f'{counts[core]:,}'} "
                                f"parameters" for core in cores)
                    + f"; {parameters_line(counts)}"
                    + f"; {algo}: num_envs={c['num_envs']}, rollout_steps={c['rollout_steps']}, "
                    f"lr={c['lr']:g} ({c['lr_schedule']}), "
                    f"entropy_coef={c['entropy_coef']:g}.")
        changed = sorted({k for core in cores for k in settings_differ(
            [configs[task, core], used[core][0]], cores_too=True)} - {"total_steps"})
        if changed:
            env_line += (f" **The config files have changed since these runs (keys: "
                         f"{', '.join(changed)}); the settings above are the runs' own.**")
        per_update = c["num_envs"] * c["rollout_steps"]
        short = sorted({r.total_steps for rs in results.values() for r in rs
                        if not budgets[task] <= r.total_steps < budgets[task] + per_update})
        if short:  # e.g. --no-train over runs trained with another budget, or cut short
            env_line += f" **Runs that did not spend this budget: {short} env steps.**"
        versions = sorted({run_code_version(metrics[task, core, seed]) for core in cores
                           for seed in range(1, a.seeds + 1)})
        env_line += f" Code version(s) at launch: {', '.join(versions)}."
        if any(r.has_success for runs in results.values() for r in runs):
            sections.append(task_report(task, results, thresholds[task], env_line,
                                        baselines.get(task)))
        else:
            sections.append(return_report(task, results, env_line, baselines.get(task)))
        sections.append(f"![{task}](compare_{task}.png)\n")
        if lengths:
            by_core = {core: [evaluated[task, core, s] for s in range(1, a.seeds + 1)]
                       for core in cores}
            summaries[task, "lengths"] = by_core
            sections.append(lengths_report(task, by_core, lengths, a.eval_episodes,
                                           c["env_kwargs"].get("length")))
            sections.append(f"![{task} lengths](compare_{task}_lengths.png)\n")
            plot_lengths(by_core, lengths, out / f"compare_{task}_lengths.png",
                         f"{task}: trained on length {c['env_kwargs'].get('length')}; "
                         f"{a.eval_episodes} deterministic episodes per length")
        if a.eval_trials:
            by_core = {core: [adapted[task, core, s] for s in range(1, a.seeds + 1)]
                       for core in cores}
            summaries[task, "trials"] = by_core
            sections.append(trials_report(task, by_core, a.eval_episodes))
            sections.append(f"![{task} trials](compare_{task}_trials.png)\n")
            plot_trials(by_core, out / f"compare_{task}_trials.png",
                        f"{task}: {c['env']} {c['env_kwargs']}; {a.eval_episodes} "
                        f"deterministic episodes per seed")
        plot_task(task, results, thresholds[task], out / f"compare_{task}.png",
                  f"{task}: {c['env']} {c['env_kwargs']}\nthin lines: seeds; band: min-max; "
                  f"thick: mean")
    text = "\n".join(sections)
    (out / "compare.md").write_text(text + "\n")
    print(text)
    print(f"wrote {out / 'compare.md'} and "
          f"{len(tasks) * (1 + bool(lengths) + bool(a.eval_trials))} PNG(s)")
    return {"markdown": out / "compare.md", "summaries": summaries, "seconds": elapsed}


if __name__ == "__main__":
    main()
