"""The continual-learning study's tables and figure, from run folders.

    python -m training.continual_report RUNS_DIR [--out docs/results/issue17/report.md]

Reads every continual run folder under ``RUNS_DIR`` (``continual.yaml``, ``evals.json``,
``code_version.txt``; see training/continual.py) and groups them by config, core and
mode: with replay, without (``--no-replay``), and the single-task reference runs
(``--single-task K``). Prints, as markdown: per row and seed, each task's success at
the end of its own training and at the end of the run, forgetting and average final
success (Continual World's definitions); the issue's targets (forgetting with replay
over forgetting without, each task's counted from 0 up, Continual World's signed mean
beside it; final success with replay over the single-task run's, per task; forward
transfer against the single-task run, per task, paired by seed); the cores side by
side; and which runs are unfinished. Parameters are counted on the policy each run's
config builds, so the small files alone (no checkpoints) rebuild the report. ``--out``
also writes the markdown there, with a PNG of every task's success over the run per
mode (seeds as thin lines, the mean thick).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml
from dnc_policy.files import atomic_write

from training.continual import ContinualConfig, first_policy, summarize


def load_runs(root: Path) -> list[dict]:
    runs = []
    for cfg_path in sorted(root.glob("*/continual.yaml")):
        folder = cfg_path.parent
        data = yaml.safe_load(cfg_path.read_text())
        name = data.pop("name")
        ccfg = ContinualConfig.from_dict(data, name, str(cfg_path))
        evals_path = folder / "evals.json"
        evals = json.loads(evals_path.read_text()) if evals_path.is_file() else []
        base, _, task = name.rpartition("_task")
        single = bool(base) and task.isdigit()
        version = (folder / "code_version.txt").read_text().split()[0] \
            if (folder / "code_version.txt").is_file() else "not recorded"
        # counted on the policy the run's config builds: no checkpoint needed, so that
        # the study's small files alone (docs/results/issue17/runs) rebuild the tables
        params = sum(p.numel() for p in first_policy(ccfg.task_config(0)).parameters())
        runs.append({"folder": folder, "ccfg": ccfg, "evals": evals, "parameters": params,
                     "config": base if single else name,
                     "core": ccfg.train.get("core", "dnc"), "seed": ccfg.task_config(0).seed,
                     "mode": f"single task {task}" if single else
                     ("replay" if ccfg.replay.enabled else "no replay"),
                     "single": int(task) if single else None,
                     "summary": summarize(evals, ccfg), "version": version})
    return runs


def _ms(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _clipped_forgetting(run: dict) -> float:
    """The mean over the tasks that can be forgotten of max(0, forgetting)."""
    f = [t["forgetting"] for t in run["summary"]["tasks"][:-1]]
    return statistics.mean(max(0.0, x) for x in f)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "- (nothing to divide by)"


def _transfer(aucs: list, refs: list) -> str:
    """Forward transfer from the mean success over a task's own interval (the area
    under its curve there) against the single-task run's. Continual World normalises the
    difference by (1 - reference); that blows up as the reference nears 1 (it learned at
    once), so the normalised figure is shown only where the reference leaves 0.1 room."""
    a, b = statistics.mean(aucs), statistics.mean(refs)
    text = (f"forward transfer: mean success over its own interval {a:.2f}, single-task "
            f"{b:.2f}: difference {a - b:+.2f}")
    if 1 - b >= 0.1:
        return text + f", normalised (Continual World) {(a - b) / (1 - b):+.2f}"
    return text + ", normalised not shown (the single-task curve is within 0.1 of 1)"


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def report(runs: list[dict], command: str) -> tuple[str, dict]:
    lines = ["# Continual learning: forgetting with and without replay", "",
             f"Command: `{command}`", ""]
    seq = [r for r in runs if r["single"] is None]
    refs = {(r["config"], r["core"], r["seed"], r["single"]): r for r in runs
            if r["single"] is not None}
    versions = sorted({r["version"] for r in runs})
    lines += [f"Runs: {len(runs)} folders; code version(s) at launch: {', '.join(versions)}.", ""]
    groups: dict = {}
    for r in seq:
        groups.setdefault((r["config"], r["core"], r["mode"]), []).append(r)
    figures = {}
    for (config, core, mode), rows in sorted(groups.items()):
        ccfg = rows[0]["ccfg"]
        names = [t.name for t in ccfg.tasks]
        counts = sorted({r["parameters"] for r in rows if r["parameters"]})
        lines += [f"## {config}, {core}, {mode}", "",
                  f"Parameters: {', '.join(f'{c:,}' for c in counts) or 'no checkpoint yet'}.",
                  "",
                  "| seed | " + " | ".join(f"{n}: end / final" for n in names)
                  + " | forgetting per task | mean forgetting | average final success |",
                  "|---" * (len(names) + 4) + "|"]
        for r in sorted(rows, key=lambda r: r["seed"]):
            s = r["summary"]
            cells = [f"{_f(t['end_of_task'])} / {_f(t['final'])}" for t in s["tasks"]]
            forget = ", ".join(_f(t["forgetting"]) for t in s["tasks"][:-1])
            done = "" if s["complete"] else f" (stopped at {s['step']})"
            lines.append(f"| {r['seed']}{done} | " + " | ".join(cells)
                         + f" | {forget} | {_f(s['mean_forgetting'])} | "
                         f"{_f(s['average_final_success'])} |")
        complete = [r for r in rows if r["summary"]["complete"]]
        mf = [r["summary"]["mean_forgetting"] for r in complete]
        af = [r["summary"]["average_final_success"] for r in complete]
        lines += ["", f"Mean forgetting {_ms(mf)}, average final success {_ms(af)} "
                  f"({len(complete)} complete run(s)).", ""]
        figures[(config, core, mode)] = {"mean_forgetting": mf, "final": af, "rows": complete}
    lines += ["## Targets", ""]
    cores = sorted({(c, k) for c, k, _ in figures})
    for config, core in cores:
        with_r = figures.get((config, core, "replay"))
        without = figures.get((config, core, "no replay"))
        if with_r and without and with_r["rows"] and without["rows"]:
            cw, co = (statistics.mean(_clipped_forgetting(r) for r in g["rows"])
                      for g in (with_r, without))
            fw, fo = (statistics.mean(g["mean_forgetting"]) for g in (with_r, without))
            lines.append(f"- {config}, {core}: forgetting with replay {cw:.2f}, without {co:.2f}: "
                         f"ratio **{_ratio(cw, co)}** (target ≤ 0.2; each task's forgetting "
                         f"counted from 0 up, so that a task learned late (negative "
                         f"forgetting) cannot hide another task's loss); Continual World's "
                         f"signed mean forgetting {fw:.2f} and {fo:.2f}: ratio {_ratio(fw, fo)}")
        if without and without["rows"]:  # the problem: task 1 forgotten by >= 0.3 without replay
            drops = [(r["seed"], r["summary"]["tasks"][0]["forgetting"]) for r in without["rows"]]
            lines.append(f"- {config}, {core}, no replay: task 1's forgetting per seed "
                         + ", ".join(f"{s}: {_f(d)}" for s, d in drops)
                         + " (the problem is shown where ≥ 0.3)")
        if with_r:
            ccfg = with_r["rows"][0]["ccfg"] if with_r["rows"] else None
            for i, t in enumerate(ccfg.tasks if ccfg else []):
                pairs = [(r["summary"]["tasks"][i]["final"],
                          refs[(config, core, r["seed"], i)]["summary"]["tasks"][0]["final"],
                          r["summary"]["tasks"][i]["auc"],
                          refs[(config, core, r["seed"], i)]["summary"]["tasks"][0]["auc"])
                         for r in with_r["rows"] if (config, core, r["seed"], i) in refs
                         and refs[(config, core, r["seed"], i)]["summary"]["complete"]]
                if not pairs:
                    lines.append(f"- {config}, {core}, task {t.name}: no complete single-task "
                                 f"reference run")
                    continue
                final = statistics.mean(p[0] for p in pairs)
                ref = statistics.mean(p[1] for p in pairs)
                lines.append(f"- {config}, {core}, task {t.name}: final success with replay "
                             f"{final:.2f}, single-task {ref:.2f}: ratio "
                             f"**{_ratio(final, ref)}** (target ≥ 0.9); "
                             + _transfer([p[2] for p in pairs], [p[3] for p in pairs])
                             + f" ({len(pairs)} seed(s))")
    if len(cores) > 1:
        lines += ["", "Cores side by side (complete runs; mean ± sd over seeds):", ""]
        for config, core in cores:
            for mode in ("replay", "no replay"):
                g = figures.get((config, core, mode))
                if g and g["rows"]:
                    lines.append(f"- {config}, {core}, {mode}: average final success "
                                 f"{_ms(g['final'])}, forgetting "
                                 f"{_ms([_clipped_forgetting(r) for r in g['rows']])} "
                                 f"({len(g['rows'])} seed(s), "
                                 f"{g['rows'][0]['parameters']:,} parameters)")
    unfinished = [r for r in runs if not r["summary"]["complete"]]
    if unfinished:
        lines += ["", "Unfinished runs (not in the means): "
                  + ", ".join(r["folder"].name for r in unfinished)]
    return "\n".join(lines) + "\n", figures


def plot(figures: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panel_rows = sorted({key[:2] for key in figures})  # a row per config and core,
    modes = sorted({key[2] for key in figures})  # a column per mode
    fig, axes = plt.subplots(len(panel_rows), len(modes),
                             figsize=(5 * len(modes), 3.2 * len(panel_rows)), dpi=100,
                             squeeze=False)
    for key in figures:
        ax = axes[panel_rows.index(key[:2])][modes.index(key[2])]
        rows = figures[key]["rows"]
        if not rows:
            continue
        ccfg = rows[0]["ccfg"]
        for i, t in enumerate(ccfg.tasks):
            color = f"C{i}"
            curves = []
            for r in rows:
                steps = [e["step"] for e in r["evals"]]
                ys = [e["success"][i] for e in r["evals"]]
                ax.plot(steps, ys, color=color, lw=0.6, alpha=0.5)
                curves.append(ys)
            mean = [statistics.mean(c) for c in zip(*curves)]
            ax.plot(steps, mean, color=color, lw=2, label=t.name)
        for k in range(1, len(ccfg.tasks)):
            ax.axvline(k * ccfg.steps_per_task, color="0.5", ls="--", lw=0.8)
        ax.set(title=f"{key[0]}: {key[1]}, {key[2]} ({len(rows)} seeds)", xlabel="env steps",
               ylabel="deterministic success", ylim=(-0.03, 1.03))
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return path


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m training.continual_report",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("runs", help="a folder holding continual run folders")
    p.add_argument("--out", help="write the markdown here (and a PNG beside it)")
    a = p.parse_args(argv)
    root = Path(a.runs)
    if not root.is_dir():
        p.exit(2, f"error: {a.runs!r} is not a folder\n")
    runs = load_runs(root)
    if not runs:
        p.exit(2, f"error: no continual run folders (with continual.yaml) under {a.runs!r}\n")
    command = "python -m training.continual_report " + " ".join(argv if argv is not None
                                                                else sys.argv[1:])
    text, figures = report(runs, command)
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        png = plot(figures, out.with_suffix(".png"))
        text += f"\n![success over the run per mode]({png.name})\n"
        atomic_write(out, lambda f: f.write(text.encode()))
    print(text)
    return text


if __name__ == "__main__":
    main()
