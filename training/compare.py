"""DNC vs LSTM: the same A2C budget, several seeds, episodes to reach a success threshold.

    python -m training.compare                                  # tmaze and maze, 5 seeds
    python -m training.compare --tasks tmaze_long --seeds 3 --jobs 2
    python -m training.compare --tasks tmaze --budget 4096 --seeds 2 --out /tmp/r
    python -m training.compare --budget 600000,maze=1000000 --threshold 0.9,maze=0.5
    python -m training.compare --no-train                       # re-summarise runs/compare
    python -m training.compare --tasks ppo_tmaze100 --cores dnc,lstm,gru --budget 2000000 \
        --stop-at-threshold --resume        # stop each run at 0.9; continue after a break

A task ``T`` and a core ``C`` name the config ``training/configs/T_C.yaml``. Every
(task, core, seed) is one ``python -m training.<algo>`` subprocess (the trainer the
config names) with ``threads=1``,
``stop_at_success=0`` (every run spends the whole budget; with ``--stop-at-threshold``
it stops at the first update where the threshold test below holds), ``log_every=1``
(one metrics row per update) and ``run_dir=<runs-dir>/<task>/<core>/seed<k>``;
``--jobs`` of them run at once. ``--resume`` keeps the finished runs of the same
settings in ``--runs-dir``, continues those cut short from their newest checkpoint and
trains the rest, so that a study of hours survives interruption. From each run's
``metrics.csv`` (:func:`summarize_run`):

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
On the maze the table and the plot also hold a perfect memory's row, a scripted agent
that sees only the observations (``sim.oracles.MazeMemoryAgent``) on the same episodes,
and, per seed, that agent on the episodes the seed finished two trials in and the share
of its saving in later trials the seed gets: a yardstick for the target
(``later / first <= 0.6``), not a floor (the agent's search in trial 1 is not the
shortest possible).

Rows: a core of ``dnc_core`` or a labelled variant, ``<core>-<label>`` (config
``<task>_<core>-<label>.yaml``, e.g. ``dnc-mds``). Each task's line says whether the
parameter counts are within 10% of the first core's; every memory row (not LSTM or GRU)
gets a ratio line against the better of the LSTM and GRU rows present.

This module is the command, top to bottom: arguments, the runs, their evaluations, the
report. The statistics are :mod:`training.compare_stats`, the runs' machinery
(configs, trainer subprocesses, evaluation caches) :mod:`training.compare_runs`, the
tables and plots :mod:`training.compare_report`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from training.compare_report import (
    lengths_report,
    plot_lengths,
    plot_task,
    plot_trials,
    return_report,
    task_report,
    trials_report,
)
from training.compare_runs import (
    Run,
    config_paths,
    evaluate_lengths,
    evaluate_trials,
    execute,
    latest_metrics,
    load_baseline,
    memory_agent_trials,
    parameter_count,
    prior_run,
    run_code_version,
    run_config,
    settings_differ,
)
from training.compare_stats import parameters_line, summarize_run
from training.config import CONFIG_DIR, TrainConfig


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


def arguments() -> argparse.ArgumentParser:
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
    p.add_argument("--stop-at-threshold", action="store_true",
                   help="stop each run once it reaches its task's threshold (after "
                        "--min-episodes episodes, the test the table uses) instead of "
                        "spending the whole budget: for studies of episodes to threshold "
                        "at large budgets; the table then has no 'lowest success after'")
    p.add_argument("--resume", action="store_true",
                   help="keep the runs in --runs-dir that this study would train and that "
                        "finished, continue those cut short from their newest checkpoint, "
                        "and train the rest: a long study survives interruption (a resumed "
                        "run starts fresh episodes, so it is not bit-identical to an "
                        "uninterrupted one)")
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
    return p


def main(argv=None) -> dict:
    p = arguments()
    a = p.parse_args(argv)
    tasks = [t for t in a.tasks.split(",") if t]
    cores = [c for c in a.cores.split(",") if c]
    seeds = range(1, a.seeds + 1)
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
        if a.stop_at_threshold and not 1 <= a.min_episodes <= c.success_window:
            p.error(f"--stop-at-threshold: --min-episodes must be in [1, {c.success_window}] "
                    f"(the success_window of {_shown(paths[task, core])}), got "
                    f"{a.min_episodes}")
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

    # Train every (task, core, seed), or find the newest run of each.
    runs = [Run(task, core, seed, paths[task, core],
                Path(a.runs_dir) / task / core / f"seed{seed}", budgets[task], a.compile,
                thresholds[task] if a.stop_at_threshold else 0.0, a.min_episodes)
            for task in tasks for seed in seeds for core in cores]
    start = time.perf_counter()
    if a.no_train:
        metrics = {(r.task, r.core, r.seed): latest_metrics(r.folder) for r in runs}
    else:
        metrics = train(runs, a.jobs, a.resume)
    # Evaluate the final checkpoints: one process per run (torch on one thread each).
    evaluated = in_processes(evaluate_lengths, metrics, a.jobs, "lengths", lengths,
                             a.eval_episodes) if lengths else {}
    adapted = in_processes(evaluate_trials, metrics, a.jobs, "trials",
                           a.eval_episodes) if a.eval_trials else {}
    elapsed = time.perf_counter() - start

    # The report: a section per task, its PNGs beside it.
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
             f"once at least {a.min_episodes} episodes have finished. "
             f"{stop_line(metrics)}, one torch thread per run"
             f"{', the core step compiled (compile=true)' if a.compile else ''}. Seeds "
             f"1..{a.seeds}. Wall times are for {a.jobs} runs sharing the machine at once."),
        ""]
    summaries = {}
    for task in tasks:
        results = {core: [summarize_run(metrics[task, core, s], thresholds[task],
                                        a.min_episodes) for s in seeds] for core in cores}
        summaries[task] = results
        # Describe the runs by the configs they were trained with (their config.yaml),
        # which may differ from today's config files under --no-train.
        used = {core: [run_config(metrics[task, core, s]) for s in seeds] for core in cores}
        for core in cores:  # a run that stopped at the threshold has no "after"
            for r in results[core]:
                if stopped_there(r, budgets[task]):
                    r.lowest_after = None
        c = used[cores[0]][0]
        env_line = describe_runs(task, cores, seeds, metrics, used, paths, configs,
                                 budgets[task], results)
        if any(r.has_success for runs in results.values() for r in runs):
            sections.append(task_report(task, results, thresholds[task], env_line,
                                        baselines.get(task)))
        else:
            sections.append(return_report(task, results, env_line, baselines.get(task)))
        sections.append(f"![{task}](compare_{task}.png)\n")
        if lengths:
            by_core = {core: [evaluated[task, core, s] for s in seeds] for core in cores}
            summaries[task, "lengths"] = by_core
            sections.append(lengths_report(task, by_core, lengths, a.eval_episodes,
                                           c["env_kwargs"].get("length")))
            sections.append(f"![{task} lengths](compare_{task}_lengths.png)\n")
            plot_lengths(by_core, lengths, out / f"compare_{task}_lengths.png",
                         f"{task}: trained on length {c['env_kwargs'].get('length')}; "
                         f"{a.eval_episodes} deterministic episodes per length")
        if a.eval_trials:
            by_core = {core: [adapted[task, core, s] for s in seeds] for core in cores}
            summaries[task, "trials"] = by_core
            reference = memory_agent_trials(c["env"], c["env_kwargs"], a.eval_episodes)
            if reference is not None:
                summaries[task, "trials_reference"] = reference
            sections.append(trials_report(task, by_core, a.eval_episodes, reference))
            sections.append(f"![{task} trials](compare_{task}_trials.png)\n")
            plot_trials(by_core, out / f"compare_{task}_trials.png",
                        f"{task}: {c['env']} {c['env_kwargs']}; {a.eval_episodes} "
                        f"deterministic episodes per seed", reference)
        plot_task(task, results, thresholds[task], out / f"compare_{task}.png",
                  f"{task}: {c['env']} {c['env_kwargs']}\nthin lines: seeds; band: min-max; "
                  f"thick: mean")
    text = "\n".join(sections)
    (out / "compare.md").write_text(text + "\n")
    print(text)
    print(f"wrote {out / 'compare.md'} and "
          f"{len(tasks) * (1 + bool(lengths) + bool(a.eval_trials))} PNG(s)")
    return {"markdown": out / "compare.md", "summaries": summaries, "seconds": elapsed}


def train(runs: list[Run], jobs: int, resume: bool = False
          ) -> dict[tuple[str, str, int], Path]:
    """Train every run, ``jobs`` trainer subprocesses at once, longest budget first (better
    packing); ``{(task, core, seed): metrics.csv}``. With ``resume``, a finished run of
    the same config is kept and a cut-short one continued (:func:`prior_run`)."""
    metrics, todo = {}, []
    for r in sorted(runs, key=lambda r: -r.total_steps):
        what, path = prior_run(r) if resume else ("train", None)
        if resume:
            print(f"{r.task}/{r.core}/seed{r.seed}: "
                  + {"done": f"finished, kept ({path})", "resume": f"continued ({path})",
                     "train": "trained"}[what], file=sys.stderr, flush=True)
        if what == "done":
            metrics[r.task, r.core, r.seed] = path
        else:
            todo.append((r, path))
    with ThreadPoolExecutor(jobs) as pool, \
            tqdm(total=len(todo), unit="run", desc="compare") as bar:
        futures = {pool.submit(execute, r, path): r for r, path in todo}
        for fut in as_completed(futures):
            r = futures[fut]
            metrics[r.task, r.core, r.seed] = fut.result()
            bar.set_postfix_str(f"{r.task}/{r.core}/seed{r.seed}")
            bar.update()
    return metrics


def in_processes(evaluate, metrics: dict, jobs: int, desc: str, *args) -> dict:
    """``{key: evaluate(run folder, *args)}`` for every run of ``metrics``, ``jobs``
    processes at once."""
    done = {}
    with ProcessPoolExecutor(jobs) as pool, \
            tqdm(total=len(metrics), unit="run", desc=desc) as bar:
        futures = {pool.submit(evaluate, m.parent, *args): key for key, m in metrics.items()}
        for fut in as_completed(futures):
            done[futures[fut]] = fut.result()
            bar.update()
    return done


def describe_runs(task: str, cores: list[str], seeds, metrics: dict, used: dict, paths: dict,
                  configs: dict, budget: int, results: dict) -> str:
    """The line under a task's heading: env, budget, whether every run had the same
    settings, each core's config file, core_config and parameter count, whether the counts
    are matched, the trainer's main settings, config files changed since the runs, runs
    that did not spend the budget, and the code versions the runs were launched at."""
    c = used[cores[0]][0]
    differ = settings_differ([u for core in cores for u in used[core]])
    algo = c.get("algo", "a2c").upper()
    same = (f"identical env and {algo} settings for every core and seed" if not differ else
            f"**settings differ between runs: {', '.join(differ)}**")
    counts = {core: parameter_count(metrics[task, core, 1]) for core in cores}
    line = (f"`{c['env']}` {c['env_kwargs']}; budget {budget:,} env steps per run; {same}; "
            + "; ".join(f"{core}: `{_shown(paths[task, core])}` "
                        f"core_config={used[core][0]['core_config']}, "
                        f"{'?' if counts[core] is None else f'{counts[core]:,}'} "
                        f"parameters" for core in cores)
            + f"; {parameters_line(counts)}"
            + f"; {algo}: num_envs={c['num_envs']}, rollout_steps={c['rollout_steps']}, "
            f"lr={c['lr']:g} ({c['lr_schedule']}), entropy_coef={c['entropy_coef']:g}.")
    changed = sorted({k for core in cores for k in settings_differ(
        [configs[task, core], used[core][0]], cores_too=True)} - {"total_steps"})
    if changed:
        line += (f" **The config files have changed since these runs (keys: "
                 f"{', '.join(changed)}); the settings above are the runs' own.**")
    per_update = c["num_envs"] * c["rollout_steps"]
    short = sorted({r.total_steps for rs in results.values() for r in rs
                    if not budget <= r.total_steps < budget + per_update
                    and not stopped_there(r, budget)})
    if short:  # e.g. --no-train over runs trained with another budget, or cut short
        line += f" **Runs that did not spend this budget: {short} env steps.**"
    versions = sorted({run_code_version(metrics[task, core, seed]) for core in cores
                       for seed in seeds})
    return line + f" Code version(s) at launch: {', '.join(versions)}."


def stopped_there(r, budget: int) -> bool:
    """A run that ended before its budget at the row where it reached the threshold: it
    stopped there (--stop-at-threshold), so it has no "after" and did not miss its
    budget."""
    return r.reached and r.steps_to_threshold == r.total_steps < budget


def stop_line(metrics: dict) -> str:
    """How the runs ended (from their own config.yaml), for the threshold line."""
    stops = sorted({(u.get("stop_at_success", 0), u.get("stop_min_episodes", 20))
                    for u in map(run_config, metrics.values())})
    if stops == [(0, 20)] or all(x == 0 for x, _ in stops):
        return "Every run spends its whole budget (stop_at_success=0)"
    return ("Runs stop at the threshold or at their budget (--stop-at-threshold; "
            "stop_at_success, stop_min_episodes: "
            + ", ".join(f"{x:g}, {n}" for x, n in stops)
            + "), so a reached run has no lowest success after it")


def _shown(path: Path) -> str:
    """A config path relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(CONFIG_DIR.parent.parent))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()
