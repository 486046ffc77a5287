"""training.compare and its parts (compare_stats, compare_runs, compare_report): the
per-run summary, the DNC/LSTM ratio, and one tiny real study."""

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from training import compare, compare_report, compare_runs, compare_stats
from training.compare_stats import episode_ratio, summarize_run

COLUMNS = ["global_step", "episodes", "return", "success", "length", "fps", "policy_loss",
           "value_loss", "entropy", "grad_norm", "lr", "wall_s"]


def write_metrics(path, rows):
    """rows: (global_step, episodes, success, wall_s); success None = NaN (no episode yet)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for step, episodes, success, wall in rows:
            w.writerow([step, episodes, -0.5, "nan" if success is None else success, 12.0,
                        1000, 0.1, 0.2, 1.0, 0.3, 1e-3, wall])
    return path


def test_threshold_reached_uses_the_first_row_at_or_above_it(tmp_path):
    path = write_metrics(tmp_path / "m.csv", [
        (512, 0, None, 0.5), (1024, 120, 0.5, 1.0), (1536, 250, 0.89, 1.5),
        (2048, 400, 0.9, 2.0), (2560, 560, 0.95, 2.5), (3072, 700, 0.85, 3.1)])
    s = summarize_run(path, threshold=0.9)
    assert s.reached
    assert s.episodes_to_threshold == 400 and s.steps_to_threshold == 2048
    assert s.final_success == pytest.approx(0.85)  # the last row, not the best
    assert s.wall_s == pytest.approx(3.1)
    assert s.total_episodes == 700 and s.total_steps == 3072
    assert np.isnan(s.success[0]) and len(s.steps) == 6


def test_threshold_not_reached(tmp_path):
    path = write_metrics(tmp_path / "m.csv", [(512, 50, 0.4, 1.0), (1024, 150, 0.89, 2.0)])
    s = summarize_run(path, threshold=0.9)
    assert not s.reached
    assert s.episodes_to_threshold is None and s.steps_to_threshold is None
    assert s.final_success == pytest.approx(0.89) and s.total_episodes == 150


def test_an_early_lucky_window_does_not_count(tmp_path):
    # 1.0 after 20 episodes is luck, not learning: it only counts once the window is full.
    path = write_metrics(tmp_path / "m.csv", [
        (512, 20, 1.0, 1.0), (1024, 90, 0.6, 2.0), (1536, 130, 0.92, 3.0)])
    assert summarize_run(path, 0.9).episodes_to_threshold == 130
    assert summarize_run(path, 0.9, min_episodes=1).episodes_to_threshold == 20
    # The plotted curve starts where the threshold starts to count.
    steps, success = summarize_run(path, 0.9).curve()
    assert steps.tolist() == [1536] and success.tolist() == [0.92]
    steps, success = summarize_run(path, 0.9, min_episodes=1).curve()
    assert steps.tolist() == [512, 1024, 1536] and success.tolist() == [1.0, 0.6, 0.92]
    assert summarize_run(path, 0.9, min_episodes=500).curve()[0].tolist() == []


def test_ratio_counts_unreached_runs_at_their_total_episodes(tmp_path):
    def run(name, rows):
        return summarize_run(write_metrics(tmp_path / name, rows), threshold=0.9)

    dnc = [run("d1", [(100, 100, 0.5, 1), (200, 300, 0.9, 2)]),   # reached at 300
           run("d2", [(100, 100, 0.5, 1), (200, 500, 0.95, 2)])]  # reached at 500
    lstm = [run("l1", [(100, 200, 0.5, 1), (200, 1000, 0.91, 2)]),  # reached at 1000
            run("l2", [(100, 200, 0.5, 1), (200, 600, 0.7, 2)])]   # not reached: counts 600
    assert episode_ratio(dnc, lstm) == pytest.approx(400 / 800)
    assert episode_ratio(lstm, dnc) == pytest.approx(2.0)
    # The LSTM's unreached seed makes 0.5 an upper bound: support holds, a miss is unclear.
    assert compare_stats.verdict(0.5, dnc, lstm).startswith("supports")
    assert compare_stats.verdict(0.85, dnc, lstm).startswith("inconclusive")
    both = lstm[:1]  # every seed reached on both sides
    assert compare_stats.verdict(0.5, dnc, both).startswith("supports")
    assert compare_stats.verdict(0.85, dnc, both).startswith("does not support")
    assert "30% more episodes" in compare_stats.verdict(1.3, dnc, both)
    assert compare_stats.verdict(0.5, lstm, dnc).startswith("inconclusive")  # a lower bound
    never = [run("n", [(100, 100, 0.1, 1)])]
    assert compare_stats.verdict(1.0, never, never).startswith("no verdict")


def test_unknown_task_or_core_names_what_exists():
    with pytest.raises(ValueError, match=r"unknown task 'nope'.*tmaze \(dnc/gru/lstm\)"):
        compare_runs.config_paths(["nope"], ["dnc", "lstm"])
    with pytest.raises(ValueError, match=r"unknown core 'nope'; cores: dnc, gru, lstm"):
        compare_runs.config_paths(["tmaze"], ["nope"])
    with pytest.raises(ValueError, match=r"task 'tmaze_long' has no config for core 'gru'"):
        compare_runs.config_paths(["tmaze_long"], ["gru"])
    with pytest.raises(SystemExit):
        compare.main(["--tasks", "nope", "--out", "/nonexistent/never-written"])


def test_end_to_end_tiny_study(tmp_path):
    out, runs = tmp_path / "results", tmp_path / "runs"
    result = compare.main(["--tasks", "tmaze", "--seeds", "2", "--budget", "4096",
                           "--threshold", "0.0", "--min-episodes", "1",
                           "--out", str(out), "--runs-dir", str(runs)])
    md = (out / "compare.md").read_text()
    png = out / "compare_tmaze.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows] == ["core", "dnc", "lstm"]
    for r in rows[1:]:
        cells = [c.strip() for c in r.split("|")[1:-1]]
        assert cells[1] == "2" and cells[2] == "2/2"  # seeds; threshold 0 reached by both
    assert "DNC/LSTM episodes to 0" in md
    summaries = result["summaries"]["tmaze"]
    for r in rows[1:]:  # the last column: final return, mean ± std, then each seed's
        core = r.split("|")[1].strip()
        finals = [s.final_return for s in summaries[core]]
        stats, each = r.split("|")[-2].split(";")
        mean, std = (float(x) for x in stats.split("±"))
        shown = [float(x) for x in each.split(",")]
        assert len(shown) == 2 and max(abs(v) for v in finals) < 10  # T-maze: 3 decimals
        np.testing.assert_allclose(shown, finals, atol=5e-4)
        np.testing.assert_allclose([mean, std], [np.mean(finals), np.std(finals, ddof=1)],
                                   atol=5e-4)
    for core in ("dnc", "lstm"):
        for seed in (1, 2):
            csvs = list((runs / "tmaze" / core / f"seed{seed}").glob("*/metrics.csv"))
            assert len(csvs) == 1
            s = summarize_run(csvs[0], 0.0, min_episodes=1)
            assert s.total_steps == 4096  # the budget override and stop_at_success=0 held
            assert s.total_steps // (4 * 32) == len(s.steps)  # log_every=1: a row per update
            assert (csvs[0].parent / "code_version.txt").read_text().strip()
    assert all(s.reached for core in ("dnc", "lstm") for s in summaries[core])
    # --resume with the same arguments keeps every finished run: nothing is trained again
    folders = sorted(runs.glob("tmaze/*/seed*/*/"))
    kept = compare.main(["--tasks", "tmaze", "--seeds", "2", "--budget", "4096",
                         "--threshold", "0.0", "--min-episodes", "1", "--resume",
                         "--out", str(tmp_path / "kept"), "--runs-dir", str(runs)])
    assert sorted(runs.glob("tmaze/*/seed*/*/")) == folders
    assert [s.episodes_to_threshold for s in kept["summaries"]["tmaze"]["dnc"]] == [
        s.episodes_to_threshold for s in summaries["dnc"]]
    # --no-train re-summarises the same runs without training.
    again = compare.main(["--tasks", "tmaze", "--seeds", "2", "--no-train",
                          "--out", str(tmp_path / "again"), "--runs-dir", str(runs)])
    assert again["summaries"]["tmaze"]["dnc"][0].total_steps == 4096
    # "reached" is not a given: at 1 (100 successes in a row), which 4096 steps of a barely
    # trained policy never give, no seed reaches it, and each is
    # reported as censored at its own episode count.
    never = compare.main(["--tasks", "tmaze", "--seeds", "2", "--no-train", "--threshold", "1",
                          "--out", str(tmp_path / "never"), "--runs-dir", str(runs)])
    rows = [line for line in (tmp_path / "never" / "compare.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| core")]
    for r in rows:
        cells = [c.strip() for c in r.split("|")[1:-1]]
        core = cells[0]
        episodes = [s.total_episodes for s in never["summaries"]["tmaze"][core]]
        assert cells[2] == "0/2" and cells[3] == "—", r
        assert cells[5] == ", ".join(f"not reached (>{e:,})" for e in episodes), r
    assert not any(s.reached for ss in never["summaries"]["tmaze"].values() for s in ss)


def test_per_task_thresholds_and_budgets():
    def parse(text):
        return compare.parse_per_task("--threshold", text, ["tmaze", "maze"], float, 0.9,
                                      (0, 1))
    assert parse("0.8,maze=0.6") == {"tmaze": 0.8, "maze": 0.6}
    assert parse("maze=0.6") == {"tmaze": 0.9, "maze": 0.6}
    with pytest.raises(ValueError, match="not in --tasks"):
        parse("0.9,nope=0.5")
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        parse("1.5")
    budgets = compare.parse_per_task("--budget", "maze=1000", ["tmaze", "maze"], int, None,
                                     (1, float("inf")))
    assert budgets == {"tmaze": None, "maze": 1000}
    with pytest.raises(ValueError, match="is not X or TASK=X"):
        compare.parse_per_task("--budget", "1e5", ["tmaze"], int, None, (1, float("inf")))


def test_every_task_gives_its_cores_the_same_settings():
    from training.config import TrainConfig
    # ppo_tmaze_dm compares deepmind/dnc's training practices, ppo_tmaze100's, ppo_maze's
    # and ppo_memorynav's -ctx rows a context before each gradient window (MemoryNav's with
    # longer rollouts, the window, too), ppo_cartpole_po's -rnorm
    # rows reward normalisation (with PPO's default value_coef in place of the lowered
    # one), its -crit row a separate critic core besides (-crit64 with RecurrentPPO's
    # head layers too, -head2 two head layers) and its -rnclip row the clip range linear
    # to 0, ppo_tmaze10's -mb1 row one minibatch per epoch, and the -kl rows of ppo_tmaze10
    # and ppo_cartpole_po an early stop on the KL: their rows differ in exactly the
    # settings each one tries.
    practices = {"ppo_tmaze_dm": ["optimizer"], "ppo_tmaze100": ["bptt_context"],
                 "ppo_tmaze10": ["num_minibatches", "target_kl"],
                 "ppo_maze": ["bptt_context"],
                 "ppo_memorynav": ["bptt_context", "rollout_steps"],
                 "ppo_cartpole_po": ["clip_schedule", "head_hidden", "head_layers",
                                     "normalize_rewards", "separate_critic", "target_kl",
                                     "value_coef"]}
    for task, cores in compare_runs.available_configs().items():
        paths = compare_runs.config_paths([task], cores)
        differ = compare_runs.settings_differ([TrainConfig.load(p) for p in paths.values()])
        assert differ == practices.get(task, []), task
    a, b = TrainConfig(), TrainConfig().override(["lr=0.003", "core=lstm"])
    assert compare_runs.settings_differ([a, b]) == ["lr"]  # the core itself may differ
    assert compare_runs.settings_differ([a, b], cores_too=True) == ["core", "core_config", "lr"]
    assert compare_runs.settings_differ([a.to_dict(), {**a.to_dict(), "seed": 7}]) == []
    # A run saved before a key existed ran with its default: no difference, unless the
    # other run set it otherwise.
    old = {k: v for k, v in a.to_dict().items() if k != "head_layers"}
    assert compare_runs.settings_differ([old, a.to_dict()]) == []
    assert compare_runs.settings_differ([old, {**a.to_dict(), "head_layers": 2}]) == ["head_layers"]


def test_permutation_p():
    assert compare_stats.permutation_p([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    # Completely separated 5 vs 5: only the observed split and its mirror are as extreme.
    assert compare_stats.permutation_p([1, 2, 3, 4, 5],
                                       [11, 12, 13, 14, 15]) == pytest.approx(2 / 252)
    assert compare_stats.permutation_p([1, 2, 3], [2, 3, 4]) > 0.3


def test_length_generalisation_evaluates_each_final_checkpoint_and_caches_it(tmp_path):
    import json

    from training.evaluate import evaluate
    runs = tmp_path / "runs"
    compare.main(["--tasks", "tmaze", "--cores", "lstm", "--seeds", "2", "--budget", "1024",
                  "--out", str(tmp_path / "r"), "--runs-dir", str(runs)])
    args = ["--tasks", "tmaze", "--cores", "lstm", "--seeds", "2", "--no-train",
            "--runs-dir", str(runs), "--eval-lengths", "40,5", "--eval-episodes", "6"]
    result = compare.main(args + ["--out", str(tmp_path / "a")])
    folders = [next((runs / "tmaze" / "lstm" / f"seed{s}").glob("*/metrics.csv")).parent
               for s in (1, 2)]
    # The same numbers as training.evaluate on each run's checkpoint at each length.
    expected = [{n: evaluate(str(f), episodes=6, env_kwargs={"length": n})["success_rate"]
                 for n in (5, 40)} for f in folders]
    assert result["summaries"]["tmaze", "lengths"]["lstm"] == expected
    md = (tmp_path / "a" / "compare.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| lstm |") and "/2)" in line)
    cells = [c.strip() for c in row.split("|")[1:-1]]
    for cell, n in zip(cells[1:3], (5, 40)):
        values = [e[n] for e in expected]
        assert cell == f"{np.mean(values):.2f} ({sum(v >= 0.9 for v in values)}/2)"
    png = tmp_path / "a" / "compare_tmaze_lengths.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Cached beside the checkpoint, keyed by its sha256: a second report re-uses it...
    cache = folders[0] / "lengths.json"
    data = json.loads(cache.read_text())
    data["success"]["40"] = 0.125  # a value no evaluation of 6 episodes can give
    cache.write_text(json.dumps(data))
    again = compare.main(args + ["--out", str(tmp_path / "b")])
    assert again["summaries"]["tmaze", "lengths"]["lstm"][0][40] == 0.125
    # ... unless the checkpoint is another one (or the episode count differs).
    data["sha256"] = "0" * 64
    cache.write_text(json.dumps(data))
    third = compare.main(args + ["--out", str(tmp_path / "c")])
    assert third["summaries"]["tmaze", "lengths"]["lstm"][0] == expected[0]


def test_eval_lengths_needs_an_env_with_a_length(capsys):
    with pytest.raises(SystemExit):
        compare.main(["--tasks", "maze", "--cores", "lstm", "--no-train", "--eval-lengths",
                      "10", "--runs-dir", "/nonexistent"])
    assert "take no `length` argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.main(["--tasks", "tmaze", "--eval-lengths", "ten"])
    assert "--eval-lengths: expected comma-separated integers" in capsys.readouterr().err


def test_a_task_without_success_is_compared_by_return_against_recurrent_ppo(tmp_path):
    """POPGym's envs report no success: the table holds final rolling returns, and a
    RecurrentPPO baseline file adds its row and the within-10% line per core."""
    import json
    out, runs, base = tmp_path / "results", tmp_path / "runs", tmp_path / "rppo.jsonl"
    lines = [{"seed": s, "env": "popgym:popgym-RepeatPreviousEasy-v0", "env_kwargs": {},
              "steps": 1024, "final_return": r, "final_success": None,
              "episodes_to_threshold": None, "steps_to_threshold": None, "min_after": None,
              "episodes": 20} for s, r in ((1, 0.5), (2, 0.7))]
    base.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = compare.main(["--tasks", "popgym_repeatprev", "--cores", "gru", "--seeds", "1",
                           "--budget", "1024", "--out", str(out), "--runs-dir", str(runs),
                           "--baseline", f"popgym_repeatprev={base}"])
    (run,) = result["summaries"]["popgym_repeatprev"]["gru"]
    assert not run.has_success and run.total_steps == 1024
    ours = run.final_return
    assert -1.0 <= ours <= 1.0  # POPGym scales an episode's return to [-1, 1]
    md = (out / "compare.md").read_text()
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[1:-1]]
            for r in md.splitlines() if r.startswith("| ") and "---" not in r}
    assert rows["gru"][2].startswith(f"{ours:.3f} ± 0.000")
    assert rows[compare_report.BASELINE][2] == "0.600 ± 0.141"  # mean and sample std of 0.5, 0.7
    verdict = "within" if ours >= 0.6 - 0.06 else "**not within**"
    assert f"- gru: {ours:.3f}, difference {ours - 0.6:+.3f} — {verdict} 10%" in md
    assert (out / "compare_popgym_repeatprev.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("edit, message", [
    ({"env": "dnc/TMaze-v0"}, "ran on dnc/TMaze-v0"),
    ({"env_kwargs": {"x": 1}}, "ran on popgym:popgym-RepeatPreviousEasy-v0 {'x': 1}"),
    ({"steps": 5000}, "ran 5000 env steps, not the task's budget 1,024")])
def test_a_baseline_of_another_env_or_budget_is_refused_before_training(tmp_path, capsys,
                                                                        edit, message):
    import json
    base = tmp_path / "rppo.jsonl"
    base.write_text(json.dumps({"seed": 1, "env": "popgym:popgym-RepeatPreviousEasy-v0",
                                "env_kwargs": {}, "steps": 1024, **edit}) + "\n")
    with pytest.raises(SystemExit) as e:
        compare.main(["--tasks", "popgym_repeatprev", "--cores", "gru", "--seeds", "1",
                      "--budget", "1024", "--runs-dir", str(tmp_path / "runs"),
                      "--out", str(tmp_path / "o"), "--baseline", f"popgym_repeatprev={base}"])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_compile_flag_reaches_every_training_command():
    run = compare_runs.Run("tmaze", "dnc", 3, compare_runs.CONFIG_DIR / "tmaze_dnc.yaml",
                      Path("/tmp/x"), 4096, compile=True)
    cmd = compare_runs.train_command(run)
    assert cmd[cmd.index("compile=true") - 1] == "--set"
    assert "compile=true" not in compare_runs.train_command(
        compare_runs.Run("tmaze", "dnc", 3, run.config, run.folder, 4096))


def test_a_labelled_variant_is_its_own_row_of_the_core_its_file_names(tmp_path):
    body = "env: dnc/TMaze-v0\ncore_config: {hidden_size: 8}\n"
    (tmp_path / "t_dnc.yaml").write_text("core: dnc\n" + body)
    (tmp_path / "t_dnc-mds.yaml").write_text("core: dnc\n" + body)
    (tmp_path / "t_lstm-wrong.yaml").write_text("core: gru\n" + body)
    (tmp_path / "t_nope-x.yaml").write_text("core: dnc\n" + body)
    assert sorted(compare_runs.available_configs(tmp_path)["t"]) == ["dnc", "dnc-mds", "lstm-wrong"]
    paths = compare_runs.config_paths(["t"], ["dnc", "dnc-mds"], tmp_path)
    assert paths["t", "dnc-mds"] == tmp_path / "t_dnc-mds.yaml"
    with pytest.raises(ValueError, match=r"core 'gru', but the row 'lstm-wrong' is a variant "
                                         r"of 'lstm'"):
        compare_runs.config_paths(["t"], ["lstm-wrong"], tmp_path)
    with pytest.raises(ValueError, match=r"unknown core 'nope-x'.*<core>-<label>"):
        compare_runs.config_paths(["t"], ["nope-x"], tmp_path)


def test_the_length_study_rows_are_parameter_matched():
    """Issue 12's rows (ppo_tmaze_matched_*): the same settings, and every core's policy
    within 10% of the DNC's parameters, as the report's line says."""
    import gymnasium as gym

    from training.config import TrainConfig
    from training.runner import build_policy
    from training.spaces import action_spec

    cores = compare_runs.available_configs()["ppo_tmaze_matched"]
    assert set(cores) == {"dnc", "dnc-mds", "dnc-mask", "dnc-dealloc", "dnc-sharp", "lstm", "gru",
                          "ntm"}
    counts = {}
    for core in ["dnc"] + [c for c in cores if c != "dnc"]:
        cfg = TrainConfig.load(compare_runs.CONFIG_DIR / f"ppo_tmaze_matched_{core}.yaml")
        env = gym.make(cfg.env, **cfg.env_kwargs)
        policy = build_policy(cfg, env.observation_space.shape[0], action_spec(env.action_space))
        counts[core] = sum(p.numel() for p in policy.parameters())
    assert counts["dnc"] == 27_020  # the 2016 DNC (de-allocation adds no parameters)
    line = compare_stats.parameters_line(counts)
    assert line.startswith("parameter counts matched within 10% of dnc's"), (line, counts)
    assert "NOT matched" in compare_stats.parameters_line({"dnc": 100, "lstm": 89})
    assert "could not be read" in compare_stats.parameters_line({"dnc": 100, "lstm": None})


def test_each_memory_row_is_compared_with_the_better_of_lstm_and_gru(tmp_path):
    def run(name, episodes):
        return summarize_run(write_metrics(tmp_path / name, [(100, episodes, 0.95, 1)]),
                             threshold=0.9, min_episodes=1)

    results = {"dnc": [run("d1", 300), run("d2", 340)],
               "dnc-mds": [run("m1", 200), run("m2", 260)],
               "lstm": [run("l1", 900), run("l2", 1000)],
               "gru": [run("g1", 500), run("g2", 700)]}
    assert compare_stats.ratio_pairs(results) == [("dnc", "gru"), ("dnc-mds", "gru")]
    assert compare_stats.ratio_pairs({"lstm": results["lstm"], "gru": results["gru"]}) == []
    md = compare_report.task_report("t", results, 0.9, "env")
    assert "**DNC/GRU episodes to 0.9: 0.53** (gru: the better of gru, lstm" in md
    assert "**DNC-MDS/GRU episodes to 0.9: 0.38**" in md
    assert "the DNC-MDS needs 62% fewer episodes" in md
    assert "DNC/LSTM" not in md
    # Only the LSTM beside the DNC: the line of the first studies, unchanged.
    md = compare_report.task_report("t", {"dnc": results["dnc"], "lstm": results["lstm"]}, 0.9,
                                    "env")
    assert "**DNC/LSTM episodes to 0.9: 0.34** (mean over seeds" in md
    # A variant (a training practice, e.g. -ctx) is compared with the LSTM and GRU rows
    # of the same practice where the table has them, never with the plain ones.
    ctx = {**results, "dnc-ctx": [run("c1", 400), run("c2", 400)],
           "lstm-ctx": [run("lc1", 300), run("lc2", 300)],
           "gru-ctx": [run("gc1", 800), run("gc2", 800)]}
    assert compare_stats.ratio_pairs(ctx) == [("dnc", "gru"), ("dnc-mds", "gru"),
                                              ("dnc-ctx", "lstm-ctx")]
    md = compare_report.task_report("t", ctx, 0.9, "env")
    assert ("**DNC-CTX/LSTM-CTX episodes to 0.9: 1.33** (lstm-ctx: the better of gru-ctx, "
            "lstm-ctx by mean episodes)") in md
    # A core variant trained with the context (dnc-mds-ctx) is compared with the -ctx
    # baselines too, and the plain variant (dnc-mds) still with the plain ones.
    ctx["dnc-mds-ctx"] = [run("mc1", 150), run("mc2", 150)]
    assert compare_stats.ratio_pairs(ctx)[-2:] == [("dnc-ctx", "lstm-ctx"),
                                                   ("dnc-mds-ctx", "lstm-ctx")]
    assert compare_stats.baselines_of("dnc-mds", ctx) == ["lstm", "gru"]


def test_fast_adaptation_evaluates_steps_per_trial_and_caches_them(tmp_path):
    import json

    from training.evaluate import evaluate
    runs = tmp_path / "runs"
    compare.main(["--tasks", "ppo_maze", "--cores", "gru", "--seeds", "1", "--budget", "1024",
                  "--out", str(tmp_path / "r"), "--runs-dir", str(runs)])
    args = ["--tasks", "ppo_maze", "--cores", "gru", "--seeds", "1", "--no-train",
            "--runs-dir", str(runs), "--eval-trials", "--eval-episodes", "8"]
    result = compare.main(args + ["--out", str(tmp_path / "a")])
    folder = next((runs / "ppo_maze" / "gru" / "seed1").glob("*/metrics.csv")).parent
    evaluated = evaluate(str(folder), episodes=8)
    expected = evaluated["adaptation"]
    assert result["summaries"]["ppo_maze", "trials"]["gru"] == [
        {**expected, "trial_steps": evaluated["trial_steps"]}]
    md = (tmp_path / "a" / "compare.md").read_text()
    assert "#### ppo_maze: fast adaptation" in md
    row = next(line for line in md.splitlines()
               if line.startswith("| gru |") and "later" not in line and line.count("|") == 10)
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == f"{expected['episodes']} ± 0"
    ratio = expected["later_over_first"]
    assert cells[6] == ("—" if ratio is None else f"{ratio:.2f}")
    png = tmp_path / "a" / "compare_ppo_maze_trials.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The perfect memory's row: on each of the same 8 episodes (seed k) every later trial
    # of the agent is the shortest path from the start to the goal on the true maze, and
    # its first trial no shorter; the row summarises exactly those trials.
    import gymnasium as gym

    from sim.oracles import bfs_path
    from training.evaluate import adaptation_summary
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    env = gym.make(cfg["env"], **cfg["env_kwargs"])
    reference = result["summaries"]["ppo_maze", "trials_reference"]
    alone_trials = reference["trial_steps"]
    assert len(alone_trials) == 8 and reference["success"] == 1.0
    for k, trials in enumerate(alone_trials):
        env.reset(seed=k)
        u = env.unwrapped
        w = u.grid_width
        shortest = len(bfs_path(divmod(u.start, w), divmod(u.goal, w),
                                lambda p: not u.walls[p[0], p[1]]))
        assert len(trials) == cfg["env_kwargs"]["n_trials"]
        assert trials[0] >= shortest and trials[1:] == [shortest] * (len(trials) - 1)
    alone = adaptation_summary(alone_trials)
    assert {k: reference[k] for k in alone} == alone
    ref = alone["later_over_first"]
    assert 0.3 < ref < 0.9  # later trials take the shortest path, the first explores
    (ref_row,) = [line for line in md.splitlines() if line.startswith("| perfect memory")]
    assert [c.strip() for c in ref_row.split("|")[1:-1]][4] == f"{ref:.2f}"
    assert (f"the target 0.6 needs {0.4 / (1 - ref):.0%} of the agent's saving" in md
            if ref <= 0.6 else "the target 0.6 lies below what a perfect memory reaches" in md)
    # Paired: the agent on the episodes where the trained seed finished two trials.
    used = [k for k, t in enumerate(evaluated["trial_steps"]) if t and len(t) >= 2]
    if used:
        same = adaptation_summary([alone_trials[k] for k in used])["later_over_first"]
        assert cells[7] == f"{same:.2f} ± 0.00"
        assert cells[8] == (f"{(1 - ratio) / (1 - same):.0%} ± 0%" if same < 1 else "—")
    else:
        assert cells[7] == cells[8] == "—"
    cache = folder / "trials.json"
    data = json.loads(cache.read_text())
    data["adaptation"]["episodes"] = 99  # no evaluation of 8 episodes gives this
    cache.write_text(json.dumps(data))
    again = compare.main(args + ["--out", str(tmp_path / "b")])
    assert again["summaries"]["ppo_maze", "trials"]["gru"][0]["episodes"] == 99


def test_perfect_memory_is_paired_on_the_episodes_each_seed_finished():
    """A seed's ratio counts only its episodes with two trials or more; the perfect
    memory beside it is measured on those same episodes, not on all of them."""
    from training.evaluate import adaptation_summary
    own = [[10, 5, 5], [4], [8, 8, 8], None]
    run = {**adaptation_summary(own), "trial_steps": own}
    assert run["later_over_first"] == pytest.approx(6.5 / 9)
    ref_trials = [[12, 6, 6], [20, 4, 4], [10, 5, 5], [9, 3, 3]]
    reference = {**adaptation_summary(ref_trials), "trial_steps": ref_trials}
    ratio, share = compare_report.paired_reference(run, reference)
    assert ratio == pytest.approx(5.5 / 11)  # episodes 0 and 2 only
    assert share == pytest.approx((1 - 6.5 / 9) / (1 - 0.5))
    assert compare_report.paired_reference(run, None) is None
    flat = [[5, 5], [4], [8, 8], None]  # a memory that saves nothing there: no share
    assert compare_report.paired_reference(run, {"trial_steps": flat}) == (1.0, None)
    md = compare_report.trials_report("t", {"dnc": [run, run]}, 4, reference)
    (row,) = [line for line in md.splitlines() if line.startswith("| dnc |")]
    assert [c.strip() for c in row.split("|")[1:-1]][7:] == ["0.50 ± 0.00", "56% ± 0%"]
    no_ref = compare_report.trials_report("t", {"dnc": [run]}, 4)
    assert "perfect memory (" not in no_ref and no_ref.count("| — | — |") == 1


def test_stop_at_threshold_ends_each_run_at_the_row_the_table_counts(tmp_path, capsys):
    """--stop-at-threshold: the trainer stops at the first update where the table's test
    holds (rolling success >= the threshold with >= --min-episodes finished), not
    earlier (its default stop needs only 20 episodes) and not later; the report says
    "stopped" instead of a lowest success after it, and does not flag the run as one
    that missed its budget."""
    out, runs = tmp_path / "out", tmp_path / "runs"
    result = compare.main(["--tasks", "tmaze", "--cores", "lstm", "--seeds", "1",
                           "--budget", "16384", "--threshold", "0.3", "--min-episodes", "30",
                           "--stop-at-threshold", "--jobs", "1", "--out", str(out),
                           "--runs-dir", str(runs)])
    (csv_path,) = (runs / "tmaze" / "lstm" / "seed1").glob("*/metrics.csv")
    rows = list(csv.DictReader(open(csv_path)))
    ok = [int(r["episodes"]) >= 30 and r["success"] != "" and float(r["success"]) >= 0.3
          for r in rows]
    assert ok[-1] and not any(ok[:-1])  # stopped at the first row that counts
    assert int(rows[-1]["global_step"]) < 16384
    s = result["summaries"]["tmaze"]["lstm"][0]
    assert s.reached and s.episodes_to_threshold == int(rows[-1]["episodes"])
    md = (out / "compare.md").read_text()
    (row,) = [line for line in md.splitlines() if line.startswith("| lstm")]
    assert row.split("|")[9].strip() == "stopped"
    assert "did not spend this budget" not in md and "Runs stop at the threshold" in md
    cfg = yaml.safe_load((csv_path.parent / "config.yaml").read_text())
    assert (cfg["stop_at_success"], cfg["stop_min_episodes"]) == (0.3, 30)
    # a full window is the most the trainer can count
    with pytest.raises(SystemExit) as e:
        compare.main(["--tasks", "tmaze", "--cores", "lstm", "--seeds", "1",
                      "--min-episodes", "101", "--stop-at-threshold",
                      "--out", str(tmp_path / "never"), "--runs-dir", str(tmp_path / "r2")])
    assert e.value.code == 2
    assert "--min-episodes must be in [1, 100]" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_resume_keeps_finished_runs_continues_cut_short_ones_and_retrains_changed_ones(
        tmp_path):
    """--resume (:func:`compare_runs.prior_run`): no run is "train"; a run killed after a
    checkpoint is continued in its folder to the budget (steps logged once each); then
    it is "done" and kept; a run of other settings (here a stop threshold) is not it."""
    import signal
    import subprocess
    import time

    config = tmp_path / "t_lstm.yaml"
    config.write_text("env: dnc/TMaze-v0\nenv_kwargs: {length: 4}\ncore: lstm\n"
                      "core_config: {hidden_size: 8}\nnum_envs: 2\nrollout_steps: 16\n"
                      "checkpoint_every: 256\n")
    run = compare_runs.Run("t", "lstm", 1, config, tmp_path / "runs" / "seed1", 30_000)
    assert compare_runs.prior_run(run) == ("train", None)
    run.folder.mkdir(parents=True)
    proc = subprocess.Popen(compare_runs.train_command(run), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 120
        while not list(run.folder.glob("*/checkpoints/*.pt")) and time.monotonic() < end:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (cut,) = (p for p in run.folder.iterdir() if p.is_dir())
    rows = list(csv.DictReader(open(cut / "metrics.csv")))
    assert rows and int(rows[-1]["global_step"]) < 30_000, "the run was not cut short"
    assert compare_runs.prior_run(run) == ("resume", cut)
    metrics = compare_runs.execute(run, cut)
    assert metrics == cut / "metrics.csv"
    assert [p for p in run.folder.iterdir() if p.is_dir()] == [cut]
    steps = [int(r["global_step"]) for r in csv.DictReader(open(metrics))]
    assert steps[-1] >= 30_000 and steps == sorted(set(steps))  # each step logged once
    assert "resumed at" in (cut / "code_version.txt").read_text()
    assert compare_runs.prior_run(run) == ("done", metrics)
    other = compare_runs.Run("t", "lstm", 1, config, run.folder, 30_000, stop_at=0.5,
                             stop_min_episodes=50)
    assert compare_runs.prior_run(other) == ("train", None)
