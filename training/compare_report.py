"""A study's report (for :mod:`training.compare`): the markdown tables of a task (episodes
to a threshold, or final return, with RecurrentPPO's row and the ratio lines of the
claim), of length generalisation and of fast adaptation, and their PNGs."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from training.compare_stats import (
    CLAIMED_RATIO,
    RunSummary,
    baselines_of,
    censored_episodes,
    episode_ratio,
    permutation_p,
    ratio_pairs,
    verdict,
)

ADAPTED = 0.6  # the target: later trials in <= 0.6x trial 1's steps


def trials_report(task: str, results: dict[str, list[dict]], episodes: int,
                  reference: dict | None = None) -> str:
    """The markdown section of a task's fast adaptation (steps per trial), with a perfect
    memory's row where there is one (``reference``: ``compare_runs.memory_agent_trials``)
    and, per seed, that memory's ratio on the seed's own episodes and the share of its
    saving the seed gets (``paired_reference``)."""
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
             "| later / first per seed | perfect memory on the same episodes "
             "| share of its saving |",
             "|---|---|---|---|---|---|---|---|---|"]
    for core, runs in results.items():
        ratios = [r["later_over_first"] for r in runs]
        paired = [paired_reference(r, reference) for r in runs]
        lines.append(
            f"| {core} | {cell([r['episodes'] for r in runs], '.0f')} "
            f"| {cell([r['trial1_steps_mean'] for r in runs], '.1f')} "
            f"| {cell([r['later_steps_mean'] for r in runs], '.1f')} "
            f"| {cell(ratios, '.2f')} "
            f"| {cell([r['later_shorter_fraction'] for r in runs], '.2f')} "
            f"| {', '.join('—' if x is None else f'{x:.2f}' for x in ratios)} "
            f"| {cell([p and p[0] for p in paired], '.2f')} "
            f"| {cell([p and p[1] for p in paired], '.0%')} |")
    if reference is not None and reference["later_over_first"] is not None:
        ref = reference["later_over_first"]
        lines.append(f"| perfect memory (`sim.oracles.MazeMemoryAgent`, scripted) "
                     f"| {reference['episodes']} | {reference['trial1_steps_mean']:.1f} "
                     f"| {reference['later_steps_mean']:.1f} | {ref:.2f} "
                     f"| {reference['later_shorter_fraction']:.2f} | — | {ref:.2f} | 100% |")
        lines += ["", "The scripted agent sees only the observations, maps every view, "
                  "explores the nearest unknown square until it has seen the goal and then "
                  "walks the known route: the shortest path in every later trial, so its "
                  "later / first is what a perfect memory reaches with that explorer: "
                  f"{ref:.2f} on all {episodes} episodes (the nearest unknown square first "
                  "is not the shortest search: a policy that searches better in trial 1 has "
                  "less to save, one that searches worse more). A core's ratio counts only "
                  "the episodes in which it finished two trials, so each seed is set beside "
                  "the agent on those same episodes (\"perfect memory on the same "
                  "episodes\"), and its share of the agent's saving is (1 - its "
                  "later/first) / (1 - the agent's there)."
                  + (f" On all {episodes} episodes the target {ADAPTED} needs "
                     f"{(1 - ADAPTED) / (1 - ref):.0%} of the agent's saving." if ref <= ADAPTED
                     else f" On all {episodes} episodes the target {ADAPTED} lies below what "
                     f"a perfect memory reaches: out of reach.")]
    lines.append("")
    return "\n".join(lines)


def paired_reference(run: dict, reference: dict | None) -> tuple[float, float | None] | None:
    """A perfect memory's later/first on the episodes in which ``run`` (a seed's
    ``evaluate_trials``) finished two or more trials, and the share of its saving the
    seed gets, ``(1 - run's) / (1 - the memory's)`` (None where it saves nothing there);
    None without a reference, per-episode trials or such episodes."""
    if reference is None or "trial_steps" not in run or run["later_over_first"] is None:
        return None
    from training.evaluate import adaptation_summary
    same = [ref for own, ref in zip(run["trial_steps"], reference["trial_steps"])
            if own is not None and len(own) >= 2]
    ratio = adaptation_summary(same)["later_over_first"]
    if ratio is None:
        return None
    return ratio, ((1 - run["later_over_first"]) / (1 - ratio) if ratio < 1 else None)


def plot_trials(results: dict[str, list[dict]], path: Path, title: str,
                reference: dict | None = None) -> None:
    """Mean steps to the goal per trial index: each core's mean over seeds (thick), each
    seed (thin), and a perfect memory's (``reference``, dashed) where there is one."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

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
    if reference is not None and reference["per_trial_steps_mean"]:
        ref = reference["per_trial_steps_mean"]
        ax.plot(range(1, len(ref) + 1), ref, color="black", linestyle="--", marker="x",
                label="perfect memory (scripted)")
    ax.set(xlabel="trial within the episode", ylabel="steps to the goal (mean)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(textwrap.fill(title, 80), fontsize=9)  # the env's kwargs: wider than 6 in
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


def _mean_std(values) -> str:
    """Mean ± sample standard deviation (0 for a single value)."""
    if len(values) == 0:
        return "—"
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):,.0f} ± {std:,.0f}"

def _after(r: RunSummary) -> str:
    """The lowest success after reaching the threshold; "stopped" for a run that stopped
    there, "—" for an unreached one."""
    if not r.reached:
        return "—"
    return "stopped" if r.lowest_after is None else f"{r.lowest_after:.2f}"


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
            f"| {', '.join(_after(r) for r in runs)} "
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
        rnns = baselines_of(mem, results)
        best = (f" ({rnn}: the better of {', '.join(sorted(rnns))} by mean "
                f"episodes)" if len(rnns) > 1 else "")
        lines.append(f"**{mem.upper()}/{rnn.upper()} episodes to {threshold:g}: {ratio:.2f}**"
                     f"{best} (mean over seeds; {counted}; the claim is ≈ {CLAIMED_RATIO}) — "
                     f"{verdict(ratio, dnc, lstm, (mem.upper(), rnn.upper()))}. {test}")
        lines.append("")
    return "\n".join(lines)

BASELINE = "RecurrentPPO (sb3-contrib)"
WITHIN = 0.1  # "within 10% of RecurrentPPO's return": ours >= theirs - 0.1 * |theirs|

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
    lowest = ", ".join("—" if r["min_after"] is None else f"{r['min_after']:.2f}"
                       for r in lines)
    return (f"| {BASELINE} | {len(lines)} | {len(reached)}/{len(lines)} "
            f"| {_mean_std([r['episodes_to_threshold'] for r in reached])} "
            f"| {_mean_std([r['steps_to_threshold'] for r in reached])} | {per_seed} "
            f"| {_pm([r['final_success'] for r in lines])} | — | {lowest} "
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
    that solve and runs that fail hides both); each run from the row where the threshold
    starts to count (:meth:`RunSummary.curve`)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_return = not any(r.has_success for runs in results.values() for r in runs)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for core, runs in results.items():
        grid = np.unique(np.concatenate([r.steps for r in runs]))
        xys = [r.curve(by_return) for r in runs]
        curves = np.stack([np.interp(grid, x, y, left=np.nan) if len(x) else
                           np.full(len(grid), np.nan) for x, y in xys])
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

