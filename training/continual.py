"""Continual learning: one policy trained on a sequence of tasks, with CLEAR replay.

    python -m training.continual --config training/configs/continual_tmaze.yaml
    python -m training.continual --config ... --no-replay      # plain sequential training
    python -m training.continual --config ... --single-task 1  # task 1 alone, from scratch
    python -m training.continual --config ... --seed 2 --set replay.sampling=prioritized
    python -m training.continual --resume runs/continual_tmaze_dnc_s1_20261202-230000

A config (``training/configs/continual_*.yaml``) names a trainer config (``train:``, the
keys of ``training.ppo`` / ``training.a2c`` but the env), a list of ``tasks`` (``name``,
``env``, ``env_kwargs``; every task's observation and action spaces must be the same),
``steps_per_task``, ``eval_every`` / ``eval_episodes`` and the ``replay`` settings
(training/clear.py, docs/CONTINUAL.md). The run is the trainer's own loop
(training/runner.py: the same update, logs, checkpoints and TensorBoard) called once
per evaluation interval on the current task, resuming its own checkpoint, so the policy,
the optimiser state and the random streams run on unbroken from task to task. Between
intervals every task is evaluated deterministically (``eval_episodes`` episodes each,
the same seeds every time) from the checkpoint just written.

With replay, every gradient step of the trainer adds the replay loss of a batch of
stored sequences (``mix``: the replayed share of the sequences in a step, 0.5 = as many
replayed as new), and every rollout is offered to the buffer after its update.

The run folder ``<run_dir>/continual_<config>_<core>_s<seed>[_noreplay|_task<k>]_<time>``
holds ``continual.yaml`` (the resolved config), ``code_version.txt``, ``train/`` (the
trainer's run folder: checkpoints, metrics.csv, TensorBoard events), ``replay.npz``
(the buffer after the last completed interval), ``evals.json`` (every evaluation),
``summary.json`` and ``continual.png`` (each task's success over the run, the task
boundaries marked). The final checkpoint is ``train/checkpoints/latest.pt``: it exports
and deploys like any other (``python -m export.onnx``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dnc_policy.files import atomic_write
from tqdm import tqdm

import sim  # noqa: F401  (registers the dnc/ envs)
from training import checkpoint as ckpt_io
from training.clear import SAMPLING, ReplayBuffer, ReplayError, ReplayLoss, ReplaySettings
from training.config import ConfigError, TrainConfig, suggest
from training.envs import make_env
from training.evaluate import TorchActor, run_episodes
from training.spaces import describe_space

EVAL_BATCH = 16


# --------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------
@dataclass
class Task:
    name: str
    env: str
    env_kwargs: dict = field(default_factory=dict)


@dataclass
class ReplayConfig:
    enabled: bool = True
    capacity: int = 4096  # sequences
    sampling: str = "reservoir"  # or "prioritized"
    alpha: float = 0.6  # prioritized: P(i) ~ priority_i ** alpha
    beta: float = 0.4  # prioritized: importance-weight exponent
    mix: float = 0.5  # replayed share of the sequences of a gradient step
    rho_bar: float = 1.0  # V-trace truncation of the importance weights
    c_bar: float = 1.0
    policy_cloning: float = 0.01  # CLEAR's weights
    value_cloning: float = 0.005


TOP_KEYS = ("train", "tasks", "steps_per_task", "eval_every", "eval_episodes", "eval_seed",
            "replay")
REPLAY_KEYS = [f.name for f in dataclasses.fields(ReplayConfig)]
# Train keys a continual config does not take: the tasks, the interval loop or the run
# itself set them.
DERIVED = {"env": "each task names its env", "env_kwargs": "each task names its env_kwargs",
           "total_steps": "the budget is steps_per_task per task",
           "stop_at_success": "every task trains for its whole budget",
           "checkpoint_every": "a checkpoint is written at every evaluation"}


@dataclass
class ContinualConfig:
    name: str
    train: dict  # TrainConfig keys (but DERIVED)
    tasks: list[Task]
    steps_per_task: int
    eval_every: int
    eval_episodes: int = 100
    eval_seed: int = 1_000_000
    replay: ReplayConfig = field(default_factory=ReplayConfig)

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, name: str, source: str) -> "ContinualConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of keys to values, got "
                              f"{type(data).__name__}")
        for key in data:
            if key not in TOP_KEYS:
                raise ConfigError(f"{source}: unknown key {key!r}{suggest(key, list(TOP_KEYS))}")
        missing = [k for k in ("tasks", "steps_per_task", "eval_every") if k not in data]
        if missing:
            raise ConfigError(f"{source}: {missing[0]!r} is missing (a continual config needs "
                              f"tasks, steps_per_task and eval_every)")
        train = data.get("train") or {}
        if not isinstance(train, dict):
            raise ConfigError(f"{source}: train: expected a mapping of trainer keys, got "
                              f"{type(train).__name__}")
        for key, why in DERIVED.items():
            if key in train:
                raise ConfigError(f"{source}: train.{key} cannot be set: {why}")
        tasks = data["tasks"]
        if not isinstance(tasks, list) or not tasks:
            raise ConfigError(f"{source}: tasks: expected a non-empty list of "
                              f"{{name, env, env_kwargs}}")
        parsed = []
        for i, t in enumerate(tasks):
            if not isinstance(t, dict) or set(t) - {"name", "env", "env_kwargs"} or \
                    "name" not in t or "env" not in t:
                raise ConfigError(f"{source}: tasks[{i}]: expected a mapping with name, env "
                                  f"and optionally env_kwargs, got {t!r}")
            if not isinstance(t.get("env_kwargs", {}), dict):
                raise ConfigError(f"{source}: tasks[{i}].env_kwargs: expected a mapping")
            parsed.append(Task(str(t["name"]), str(t["env"]), dict(t.get("env_kwargs") or {})))
        replay = data.get("replay") or {}
        if not isinstance(replay, dict):
            raise ConfigError(f"{source}: replay: expected a mapping")
        for key in replay:
            if key not in REPLAY_KEYS:
                raise ConfigError(f"{source}: unknown key replay.{key}{suggest(key, REPLAY_KEYS)}")
        cfg = cls(name, dict(train), parsed, data["steps_per_task"], data["eval_every"],
                  data.get("eval_episodes", 100), data.get("eval_seed", 1_000_000),
                  ReplayConfig(**replay))
        return cfg.validate(source)

    @classmethod
    def load(cls, path: str | Path) -> "ContinualConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} "
                              + ("is a folder" if path.is_dir() else "does not exist"))
        try:
            data = yaml.safe_load(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as e:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: "
                              f"{' '.join(str(e).split())[:200]}") from None
        name = path.stem.removeprefix("continual_")
        return cls.from_dict(data, name, str(path))

    def to_dict(self) -> dict:
        return {"name": self.name, "train": self.train,
                "tasks": [dataclasses.asdict(t) for t in self.tasks],
                "steps_per_task": self.steps_per_task, "eval_every": self.eval_every,
                "eval_episodes": self.eval_episodes, "eval_seed": self.eval_seed,
                "replay": dataclasses.asdict(self.replay)}

    def override(self, assignments: list[str]) -> "ContinualConfig":
        """``key=value`` strings: ``train.lr=5e-4``, ``train.core_config.hidden_size=32``,
        ``replay.mix=0.25``, ``steps_per_task=20480`` (values parsed as YAML)."""
        data = self.to_dict()
        name = data.pop("name")
        for item in assignments:
            if "=" not in item:
                raise ConfigError(f"override {item!r}: expected key=value")
            key, raw = (s.strip() for s in item.split("=", 1))
            try:
                value = yaml.safe_load(raw) if raw else ""
            except yaml.YAMLError:
                value = raw
            parts = key.split(".")
            if parts[0] not in TOP_KEYS or parts[0] == "tasks":
                raise ConfigError(f"override: unknown key {key!r}"
                                  f"{suggest(parts[0], [k for k in TOP_KEYS if k != 'tasks'])}")
            node = data
            for p in parts[:-1]:
                node = node.setdefault(p, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"override {key!r}: {p!r} is not a mapping")
            node[parts[-1]] = value
        return type(self).from_dict(data, name, "override")

    def validate(self, source: str) -> "ContinualConfig":
        cfg = self.task_config(0, source=source)
        unit = cfg.num_envs * cfg.rollout_steps
        for key in ("steps_per_task", "eval_every", "eval_episodes", "eval_seed"):
            v = getattr(self, key)
            least = 0 if key == "eval_seed" else 1
            if not isinstance(v, int) or isinstance(v, bool) or v < least:
                raise ConfigError(f"{source}: {key}: expected a positive integer, got {v!r}")
        for key in ("steps_per_task", "eval_every"):
            if getattr(self, key) % unit:
                raise ConfigError(f"{source}: {key}: must be a multiple of num_envs x "
                                  f"rollout_steps = {unit} (one update), got {getattr(self, key)}")
        if self.steps_per_task % self.eval_every:
            raise ConfigError(f"{source}: eval_every ({self.eval_every}) must divide "
                              f"steps_per_task ({self.steps_per_task})")
        if cfg.lr_schedule != "constant" or (cfg.algo == "ppo" and cfg.clip_schedule != "constant"):
            raise ConfigError(f"{source}: train.lr_schedule and train.clip_schedule must be "
                              f"'constant': a continual run has no end for a schedule to "
                              f"reach (got {cfg.lr_schedule!r}, {cfg.clip_schedule!r})")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"{source}: tasks: names must differ, got {names}")
        spaces = None
        for i, _ in enumerate(self.tasks):
            c = self.task_config(i, source=source)
            try:
                env = make_env(c.env, c.env_kwargs, f"{source}: tasks[{i}] ({c.env})")
            except ValueError as e:
                raise ConfigError(str(e)) from None
            these = (describe_space(env.observation_space), describe_space(env.action_space))
            env.close()
            if spaces is None:
                spaces = these
            elif these != spaces:
                raise ConfigError(f"{source}: tasks[{i}] ({self.tasks[i].name}): its "
                                  f"observation and action spaces differ from tasks[0]'s; "
                                  f"one policy learns every task, so they must be the same")
        r = self.replay
        checks = [("enabled", isinstance(r.enabled, bool), "true or false"),
                  ("capacity", isinstance(r.capacity, int) and not isinstance(r.capacity, bool)
                   and r.capacity >= 1, "an integer >= 1 (sequences)"),
                  ("sampling", r.sampling in SAMPLING, f"one of {list(SAMPLING)}"),
                  ("alpha", _number(r.alpha, 0.0, 10.0), "a number in [0, 10]"),
                  ("beta", _number(r.beta, 0.0, 1.0), "a number in [0, 1]"),
                  ("mix", _number(r.mix, 0.0, 0.95), "a number in [0, 0.95]"),
                  ("rho_bar", _number(r.rho_bar, 1e-6, 1e6), "a number > 0"),
                  ("c_bar", _number(r.c_bar, 1e-6, 1e6), "a number > 0"),
                  ("policy_cloning", _number(r.policy_cloning, 0.0, 1e6), "a number >= 0"),
                  ("value_cloning", _number(r.value_cloning, 0.0, 1e6), "a number >= 0")]
        for key, ok, want in checks:
            if not ok:
                raise ConfigError(f"{source}: replay.{key}: expected {want}, got "
                                  f"{getattr(r, key)!r}")
        return self

    def task_config(self, i: int, total_steps: int | None = None,
                    source: str = "config") -> TrainConfig:
        """The trainer config of task ``i``, run up to ``total_steps``."""
        t = self.tasks[i]
        data = {"algo": "ppo", **copy.deepcopy(self.train), "env": t.env,
                "env_kwargs": copy.deepcopy(t.env_kwargs), "stop_at_success": 0.0,
                "checkpoint_every": 2**62}
        if total_steps is not None:
            data["total_steps"] = total_steps
        try:
            return TrainConfig.from_dict(data, source=f"{source}: train (task {t.name})")
        except ConfigError as e:
            raise ConfigError(str(e)) from None

    @property
    def total_steps(self) -> int:
        return self.steps_per_task * len(self.tasks)


def _number(v: Any, lo: float, hi: float) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
        and lo <= v <= hi


def replay_settings(ccfg: ContinualConfig, cfg: TrainConfig) -> ReplaySettings:
    """The replayed sequences per gradient step: ``mix / (1 - mix)`` times the new ones
    (a PPO minibatch, or A2C's whole rollout)."""
    new = cfg.num_envs * cfg.sequences_per_env
    if cfg.algo == "ppo":
        new = math.ceil(new / cfg.num_minibatches)
    r = ccfg.replay
    return ReplaySettings(batch=max(1, round(new * r.mix / (1.0 - r.mix))), gamma=cfg.gamma,
                          lam=cfg.gae_lambda, rho_bar=r.rho_bar, c_bar=r.c_bar,
                          value_coef=cfg.value_coef, entropy_coef=cfg.entropy_coef,
                          policy_cloning=r.policy_cloning, value_cloning=r.value_cloning)


# --------------------------------------------------------------------------------------
# Evaluation and metrics (Continual World's definitions)
# --------------------------------------------------------------------------------------
def evaluate_tasks(checkpoint: Path, ccfg: ContinualConfig) -> dict:
    """Deterministic success and return of a checkpoint on every task (eager policy,
    ``eval_episodes`` episodes from the same seeds each time)."""
    policy, _ = ckpt_io.load_policy(checkpoint)
    n = min(EVAL_BATCH, ccfg.eval_episodes)
    out = {"success": [], "return": []}
    for t in ccfg.tasks:
        r = run_episodes(TorchActor(policy, n), t.env, t.env_kwargs, ccfg.eval_episodes,
                         ccfg.eval_seed, n)
        out["success"].append(r["success_rate"])
        out["return"].append(r["return_mean"])
    return out


def summarize(evals: list[dict], ccfg: ContinualConfig) -> dict:
    """Per task: success at the end of its own training, at the end of the run,
    forgetting (the difference) and the mean success over its own training interval
    (the area under its curve there, for forward transfer against a single-task run)."""
    by_step = {row["step"]: row for row in evals}
    n, k = len(ccfg.tasks), ccfg.steps_per_task
    last = max(by_step) if by_step else 0
    tasks = []
    for i, t in enumerate(ccfg.tasks):
        end = by_step.get((i + 1) * k)
        inside = [row["success"][i] for s, row in sorted(by_step.items())
                  if i * k < s <= (i + 1) * k]
        final = by_step[last]["success"][i] if by_step else None
        own = None if end is None else end["success"][i]
        tasks.append({"task": t.name, "end_of_task": own, "final": final,
                      "forgetting": None if own is None or final is None or last < n * k
                      else own - final,
                      "auc": sum(inside) / len(inside) if inside and None not in inside else None})
    finals = [t["final"] for t in tasks]
    forgets = [t["forgetting"] for t in tasks[:-1]]
    return {"tasks": tasks, "step": last, "complete": last >= n * k,
            "average_final_success": sum(finals) / n if None not in finals else None,
            "mean_forgetting": (sum(forgets) / len(forgets)
                                if forgets and None not in forgets else None)}


def plot(evals: list[dict], ccfg: ContinualConfig, path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=120)
    steps = [row["step"] for row in evals]
    for i, t in enumerate(ccfg.tasks):
        ax.plot(steps, [row["success"][i] for row in evals], marker=".", label=t.name)
    for i in range(1, len(ccfg.tasks)):
        ax.axvline(i * ccfg.steps_per_task, color="0.5", ls="--", lw=0.8)
    ax.set(xlabel="env steps", ylabel="deterministic success", ylim=(-0.03, 1.03), title=title)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()

    def write(f):
        fig.savefig(f, format="png")
    atomic_write(path, write)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------
def run_label(ccfg: ContinualConfig, seed: int) -> str:
    core = ccfg.train.get("core", "dnc")
    tag = "" if ccfg.replay.enabled else "_noreplay"
    return f"continual_{ccfg.name}_{core}_s{seed}{tag}"


def new_folder(ccfg: ContinualConfig, seed: int) -> Path:
    from training.run_files import unique_folder
    return unique_folder(Path(ccfg.train.get("run_dir", "runs")) / run_label(ccfg, seed))


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=1) + "\n").encode()))


def run(ccfg: ContinualConfig, folder: Path | None = None, resume: bool = False,
        progress: bool = True, stop_after: int | None = None) -> dict:
    """Train ``ccfg`` task after task in ``folder`` (new under ``train.run_dir`` when
    None); ``resume`` continues the run in ``folder`` from its last completed interval.
    ``stop_after``: return after that many intervals of this call (a planned stop, as a
    kill would leave it). Returns the summary (:func:`summarize`) with ``folder``."""
    from training.a2c import a2c_update
    from training.compare_runs import code_version
    from training.config import compile_chunk, compile_enabled
    from training.ppo import ppo_update
    from training.runner import pick_device, train

    first = ccfg.task_config(0, total_steps=ccfg.total_steps)
    # compile "auto" decided once for the whole run (each interval is a short call of the
    # trainer, which alone would stay eager); the policy keeps its compiled step.
    device_type = pick_device(first.device).type
    compiled, why = compile_enabled(first, device_type)
    chunk, why_chunk = compile_chunk(first, device_type)
    if compiled:
        why = f"{why}; {why_chunk}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("training.continual runs in one process (torchrun is not supported)")
    base_update = ppo_update if first.algo == "ppo" else a2c_update
    step, evals, point = 0, [], None
    if resume:
        evals, step, point, buffer = _resume_state(folder, ccfg)
    else:
        if folder is not None and (folder / "continual.yaml").exists():
            raise ConfigError(f"{str(folder)!r} already holds a continual run; resume it, or "
                              f"train in another folder")
        folder = folder or new_folder(ccfg, first.seed)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "continual.yaml",
                     lambda f: f.write(yaml.safe_dump(ccfg.to_dict(), sort_keys=False).encode()))
        buffer = ReplayBuffer(ccfg.replay.capacity, ccfg.replay.sampling, ccfg.replay.alpha,
                              ccfg.replay.beta, seed=first.seed)
    with open(folder / "code_version.txt", "a") as f:
        f.write(f"{code_version()} from step {step}\n")
    if resume and point is None and (folder / "train").exists():
        shutil.rmtree(folder / "train")  # an unfinished first interval (nothing completed)

    settings = replay_settings(ccfg, first)
    current = {"task": 0}
    losses: dict[str, ReplayLoss] = {}

    def update(learner, rollout):
        use = ccfg.replay.enabled and ccfg.replay.mix > 0 and buffer.size > 0
        if use:
            key = id(learner)
            if key not in losses:
                losses.clear()
                losses[key] = ReplayLoss(buffer, learner.policy, learner.model, settings)
            learner.extra_loss = losses[key]
        try:
            parts = base_update(learner, rollout)
        finally:
            learner.extra_loss = None
        if use:
            parts.update(losses[id(learner)].drain())
        if ccfg.replay.enabled:
            buffer.add(rollout, current["task"])
        return parts

    ends = list(range(ccfg.eval_every, ccfg.total_steps + 1, ccfg.eval_every))
    todo = [e for e in ends if e > step]
    bar = tqdm(total=ccfg.total_steps, initial=step, disable=not progress, unit="step",
               dynamic_ncols=True, desc=run_label(ccfg, first.seed))
    policy, done = first_policy(first), 0
    if progress or compiled:
        print(f"{why} (decided for the run's {ccfg.total_steps:,} steps)", file=sys.stderr,
              flush=True)
    try:
        for end in todo:
            if stop_after is not None and done >= stop_after:
                break
            current["task"] = (end - 1) // ccfg.steps_per_task
            cfg = dataclasses.replace(ccfg.task_config(current["task"], total_steps=end),
                                      compile=compiled, compile_chunk=chunk)
            train(cfg, update, resume=point, progress=False, run_dir=folder / "train",
                  policy=policy)
            ckpt = folder / "train" / "checkpoints" / f"step_{end:010d}.pt"
            buffer.save(folder / "replay.npz", end)
            row = {"step": end, "task": current["task"], **evaluate_tasks(ckpt, ccfg)}
            evals = [e for e in evals if e["step"] < end] + [row]
            _write_json(folder / "evals.json", evals)
            point = ckpt_io.ResumePoint(ckpt, ckpt_io.load(ckpt), folder / "train")
            done += 1
            bar.update(end - bar.n)
            bar.set_postfix(task=ccfg.tasks[current["task"]].name,
                            success=" ".join(f"{s:.2f}" for s in row["success"] if s is not None))
            if len(evals) == 1 and ccfg.replay.enabled:
                print(buffer.describe(), file=sys.stderr, flush=True)
    finally:
        bar.close()
    summary = summarize(evals, ccfg)
    summary["folder"] = str(folder)
    summary["checkpoint"] = str(folder / "train" / "checkpoints" / "latest.pt")
    _write_json(folder / "summary.json", summary)
    if evals:
        plot(evals, ccfg, folder / "continual.png",
             f"{ccfg.name}: {first.core}, seed {first.seed}, "
             + (f"replay ({ccfg.replay.sampling}, mix {ccfg.replay.mix})"
                if ccfg.replay.enabled else "no replay"))
    return summary


def first_policy(cfg: TrainConfig):
    """The policy the runner would build for ``cfg`` (same seed, same weights), kept
    across the intervals so that its compiled step is compiled once."""
    import torch

    from training.runner import build_policy, pick_device
    from training.spaces import ObsFlattener, action_spec

    env = make_env(cfg.env, cfg.env_kwargs, f"env_kwargs: {cfg.env} refuses {cfg.env_kwargs}")
    dim, spec = ObsFlattener(env.observation_space).dim, action_spec(env.action_space)
    env.close()
    torch.manual_seed(cfg.seed)
    try:
        return build_policy(cfg, dim, spec).to(pick_device(cfg.device))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"train.core_config: core {cfg.core!r} refuses {cfg.core_config}: "
                          f"{' '.join(str(e).split())}") from None


def _resume_state(folder: Path | None, ccfg: ContinualConfig):
    """``(evals, step, resume point, buffer)`` of a run folder's last completed interval:
    the step ``replay.npz`` was saved at, whose checkpoint (``train/checkpoints/
    step_<n>.pt``) the trainer continues. A later checkpoint (a run stopped between the
    checkpoint and the buffer) is redone, exactly; evaluations after the step are dropped
    and missing ones recomputed from their checkpoints."""
    if folder is None or not (folder / "continual.yaml").is_file():
        raise ConfigError(f"--resume: {str(folder)!r} is not a continual run folder (it has no "
                          f"continual.yaml)")
    replay = folder / "replay.npz"
    if not replay.is_file():
        return [], 0, None, ReplayBuffer(ccfg.replay.capacity, ccfg.replay.sampling,
                                         ccfg.replay.alpha, ccfg.replay.beta,
                                         seed=ccfg.task_config(0).seed)
    try:
        buffer, step = ReplayBuffer.load(replay, first_policy(ccfg.task_config(0)))
    except ReplayError as e:
        raise ConfigError(str(e)) from None
    ckpt = folder / "train" / "checkpoints" / f"step_{step:010d}.pt"
    point = ckpt_io.ResumePoint(ckpt, ckpt_io.load(ckpt), folder / "train")
    problem = ckpt_io.training_state_problem(point.checkpoint)
    if problem:
        raise ConfigError(f"--resume: checkpoint {str(ckpt)!r} cannot be resumed: {problem}")
    evals = []
    if (folder / "evals.json").is_file():
        try:
            evals = json.loads((folder / "evals.json").read_text())
        except (ValueError, OSError) as e:
            raise ConfigError(f"--resume: {folder / 'evals.json'} is not readable JSON: {e}") \
                from None
    evals = [e for e in evals if e["step"] <= step]
    have = {e["step"] for e in evals}
    for end in range(ccfg.eval_every, step + 1, ccfg.eval_every):
        if end not in have:
            c = folder / "train" / "checkpoints" / f"step_{end:010d}.pt"
            evals.append({"step": end, "task": (end - 1) // ccfg.steps_per_task,
                          **evaluate_tasks(c, ccfg)})
    evals.sort(key=lambda e: e["step"])
    return evals, step, point, buffer


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m training.continual",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", help="a continual config (training/configs/continual_*.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key: train.lr=5e-4, replay.mix=0.25 (repeatable)")
    p.add_argument("--seed", type=int, help="train.seed")
    p.add_argument("--no-replay", action="store_true", help="plain sequential training")
    p.add_argument("--single-task", type=int, metavar="K",
                   help="train task K alone from scratch (its reference run), no replay")
    p.add_argument("--resume", metavar="RUN", help="continue a continual run folder")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    try:
        if a.resume:
            if (a.config or a.set or a.seed is not None or a.no_replay
                    or a.single_task is not None):
                p.error("--resume takes the run's own config (continual.yaml); give only the "
                        "folder")
            folder = Path(a.resume)
            path = folder / "continual.yaml"
            if not path.is_file():
                raise ConfigError(f"--resume: {str(folder)!r} is not a continual run folder "
                                  f"(it has no continual.yaml)")
            data = yaml.safe_load(path.read_text())
            ccfg = ContinualConfig.from_dict({k: v for k, v in data.items() if k != "name"},
                                             data.get("name", folder.name), str(path))
            summary = run(ccfg, folder, resume=True, progress=not a.no_progress)
        else:
            if not a.config:
                p.error("--config is required (or --resume)")
            ccfg = ContinualConfig.load(a.config)
            sets = list(a.set)
            if a.seed is not None:
                sets.append(f"train.seed={a.seed}")
            if a.no_replay:
                sets.append("replay.enabled=false")
            ccfg = ccfg.override(sets) if sets else ccfg
            if a.single_task is not None:
                ccfg = single_task(ccfg, a.single_task)
            summary = run(ccfg, progress=not a.no_progress)
    except (ConfigError, ckpt_io.CheckpointError) as e:
        p.exit(2, f"error: {e}\n")
    except ckpt_io.NonFiniteError as e:
        p.exit(1, f"error: {e}\n")
    print(format_summary(summary))
    return summary


def single_task(ccfg: ContinualConfig, k: int) -> ContinualConfig:
    """Task ``k`` alone, from scratch, with the same budget and evaluations, no replay:
    the reference for forward transfer and final success."""
    if not 0 <= k < len(ccfg.tasks):
        raise ConfigError(f"--single-task: expected a task index in 0..{len(ccfg.tasks) - 1}, "
                          f"got {k}")
    return dataclasses.replace(ccfg, name=f"{ccfg.name}_task{k}", tasks=[ccfg.tasks[k]],
                               replay=dataclasses.replace(ccfg.replay, enabled=False))


def format_summary(s: dict) -> str:
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [f"run: {s['folder']}", f"checkpoint: {s['checkpoint']}",
             "task                end of task   final   forgetting"]
    for t in s["tasks"]:
        lines.append(f"{t['task']:<20}{f(t['end_of_task']):>11}{f(t['final']):>8}"
                     f"{f(t['forgetting']):>13}")
    lines.append(f"average final success {f(s['average_final_success'])}, mean forgetting "
                 f"(all but the last task) {f(s['mean_forgetting'])}"
                 + ("" if s["complete"] else f" (stopped at step {s['step']})"))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
