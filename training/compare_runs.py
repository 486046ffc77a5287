"""A study's runs (for :mod:`training.compare`): which config each (task, core) row
trains, the trainer subprocess of one (task, core, seed) with the code version it ran,
what a finished run holds (its config, parameter count, newest metrics), the
evaluations of its final checkpoint (length generalisation, fast adaptation), cached
beside the checkpoint by its sha256, and RecurrentPPO's result lines, checked against the
task."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from training.config import CONFIG_DIR, TrainConfig


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
    # stop at this rolling success once stop_min_episodes have finished (0: spend the
    # whole budget, the default)
    stop_at: float = 0.0
    stop_min_episodes: int = 20


def settings_differ(configs: list[TrainConfig | dict], cores_too: bool = False) -> list[str]:
    """Config keys, other than the run machinery (and the core, unless ``cores_too``),
    that differ between configs (TrainConfig or dicts such as a run's config.yaml):
    empty when every core of a task gets the same env, A2C settings and budget."""
    ignore = {"seed", "run_dir", "threads", "device", "compile", "compile_chunk", "vector_env",
              "log_every", "checkpoint_every", "stop_at_success", "stop_min_episodes"}
    ignore |= set() if cores_too else {"core", "core_config"}
    dicts = [c if isinstance(c, dict) else c.to_dict() for c in configs]
    keys = sorted(set().union(*dicts) - ignore)
    # A key that a run's config.yaml lacks was added to the trainer after the run, with a
    # default that keeps the old behaviour (e.g. head_layers 1): compare that default.
    defaults = TrainConfig().to_dict()

    def value(d: dict, k: str):
        return d[k] if k in d else defaults.get(k)

    return [k for k in keys if any(value(d, k) != value(dicts[0], k) for d in dicts[1:])]


def parameter_count(metrics_csv: Path) -> int | None:
    """Trainable parameters of a run's policy (from its latest checkpoint), or None."""
    from training.checkpoint import CheckpointError, load_policy
    try:
        policy, _ = load_policy(Path(metrics_csv).parent)
    except CheckpointError:
        return None
    return sum(p.numel() for p in policy.parameters())


def run_config(metrics_csv: Path) -> dict:
    """The config a run was trained with (its ``config.yaml``), as a dict."""
    import yaml
    return yaml.safe_load((Path(metrics_csv).parent / "config.yaml").read_text())


def train_command(run: Run) -> list[str]:
    algo = TrainConfig.load(run.config).algo  # the trainer the config was written for
    cmd = [sys.executable, "-m", f"training.{algo}", "--config", str(run.config),
           "--seed", str(run.seed), "--no-progress", "--set", "threads=1",
           "--set", f"stop_at_success={run.stop_at:g}",
           "--set", f"stop_min_episodes={run.stop_min_episodes}", "--set", "log_every=1",
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


# Config keys a run may differ in from the config a study would train it with and still
# count as that run (--resume): where it ran, not what it learned.
_PLACE = ("run_dir", "device", "vector_env")


def prior_run(run: Run) -> tuple[str, Path | None]:
    """What ``training.compare --resume`` does with a run's seed folder, from its newest
    run: ``("done", metrics.csv)`` when that was trained with exactly the config this
    run would get and finished (spent the budget, or stopped at its stop_at_success);
    ``("resume", run folder)`` when it matches but was cut short (it continues from its
    newest checkpoint); ``("train", None)`` otherwise (no run, no checkpoint yet, or
    other settings: a new run beside it)."""
    import csv

    try:
        metrics = latest_metrics(run.folder)
    except FileNotFoundError:
        return "train", None
    cmd = train_command(run)
    sets = [cmd[i + 1] for i, x in enumerate(cmd) if x == "--set"]
    import yaml

    from training.config import ConfigError

    def written(cfg: TrainConfig) -> dict:  # as config.yaml holds it
        return yaml.safe_load(yaml.safe_dump(cfg.to_dict()))

    want = written(TrainConfig.load(run.config).override(
        sets + [f"seed={run.seed}", f"total_steps={run.total_steps}"]))
    try:  # loaded as a config: a key added since the run has its default, the old way
        got = written(TrainConfig.load(metrics.parent / "config.yaml"))
        with open(metrics, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError, ConfigError):
        return "train", None
    if any(got.get(k) != v for k, v in want.items() if k not in _PLACE):
        return "train", None
    if rows:
        last = rows[-1]
        spent = int(last["global_step"]) >= run.total_steps
        stopped = (run.stop_at > 0 and last["success"] not in ("", "nan")
                   and float(last["success"]) >= run.stop_at
                   and int(last["episodes"]) >= run.stop_min_episodes)
        if spent or stopped:
            return "done", metrics
    if not any((metrics.parent / "checkpoints").glob("*.pt")):
        return "train", None
    return "resume", metrics.parent


def execute(run: Run, resume: Path | None = None) -> Path:
    """Train one run in a subprocess (or continue the cut-short run ``resume`` from its
    newest checkpoint); return its ``metrics.csv``. The code version at launch goes to
    ``code_version.txt`` in the run's folder (a resume adds the one it continued at)."""
    run.folder.mkdir(parents=True, exist_ok=True)
    before = set(run.folder.iterdir())
    version = code_version()
    log = run.folder / "train.log"
    cmd = train_command(run) if resume is None else [
        sys.executable, "-m", f"training.{TrainConfig.load(run.config).algo}", "--resume",
        str(resume), "--no-progress", "--set", "threads=1"]
    with open(log, "a" if resume else "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False).returncode
    if rc != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(f"{run.task}/{run.core}/seed{run.seed} failed (exit {rc}); "
                           f"{log}:\n{tail}")
    if resume is not None:
        was = run_code_version(resume / "metrics.csv")
        if was != version:
            (resume / "code_version.txt").write_text(f"{was}, resumed at {version}\n")
        return resume / "metrics.csv"
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
    (sha256) and episode count, else evaluated and written there. ``trial_steps``: each
    episode's steps per finished trial, in seed order (what the perfect memory's row is
    paired on)."""
    import torch

    from training.evaluate import evaluate
    cache = _EvalCache(run_folder, "trials.json", episodes)
    if "adaptation" in cache.data and "trial_steps" in cache.data:
        return {**cache.data["adaptation"], "trial_steps": cache.data["trial_steps"]}
    torch.set_num_threads(1)
    r = evaluate(str(cache.ckpt), episodes=episodes, seed=0)
    if "adaptation" not in r:
        raise ValueError(f"--eval-trials: {r['env']} reports no info['trial_steps']")
    cache.save(success=r["success_rate"], adaptation=r["adaptation"],
               trial_steps=r["trial_steps"])
    return {**r["adaptation"], "trial_steps": r["trial_steps"]}


def memory_agent_trials(env_id: str, env_kwargs: dict, episodes: int) -> dict | None:
    """The fast adaptation a perfect memory reaches on a task with a simple search:
    ``sim.oracles``' ``MazeMemoryAgent`` (observations only: it maps every view, explores
    the nearest unknown square until it has seen the goal, then walks the known route) on the
    episodes ``evaluate_trials`` runs (seeds 0..episodes-1), summarised the same way
    (``training.evaluate.adaptation_summary``), with each episode's ``trial_steps``. None
    for any other env, and for the maze with ``respawn="random"`` (the agent dead-reckons
    from the trial's start)."""
    if env_id != "dnc/ProceduralMaze-v0" or env_kwargs.get("respawn", "start") != "start":
        return None
    import gymnasium as gym

    from sim.oracles import MazeMemoryAgent, run_episode
    from training.evaluate import adaptation_summary
    env = gym.make(env_id, **env_kwargs)
    ends = [run_episode(env, MazeMemoryAgent(), seed=k)[2] for k in range(episodes)]
    env.close()
    trials = [[int(t) for t in info["trial_steps"]] for info in ends]
    return {**adaptation_summary(trials), "trial_steps": trials,
            "success": sum(bool(info["is_success"]) for info in ends) / episodes}


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

