"""training.continual: a task sequence through the trainers' own loop, resumed exactly
(also after a stop between a checkpoint and the buffer), its metrics, its config errors,
and a final policy that exports and runs like any other."""

import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from dnc_policy.runtime import PolicyRuntime

from export.onnx import main as export_main
from training.checkpoint import load_policy
from training.config import ConfigError
from training.continual import ContinualConfig, first_policy, main, run, single_task, summarize
from training.continual_report import main as report_main
from training.evaluate import TorchActor, run_episodes

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = "training/configs/continual_tmaze.yaml"


def small(tmp_path, *more):
    """The shipped sequence at a test's size: 2 intervals of 512 steps per task."""
    return ContinualConfig.load(CONFIG).override([
        "steps_per_task=1024", "eval_every=512", "eval_episodes=8", "train.compile=false",
        "train.num_envs=4", "train.rollout_steps=16", "train.update_epochs=1",
        "train.num_minibatches=1", "train.threads=1", f"train.run_dir={tmp_path}",
        "train.core_config.hidden_size=16", "train.core_config.memory_slots=8",
        "train.core_config.word_size=8", "replay.capacity=24", *more])


def weights(checkpoint):
    return torch.load(checkpoint, weights_only=True)["policy_state"]


def test_a_continual_run_resumes_exactly(tmp_path):
    c = small(tmp_path, "replay.sampling=prioritized")
    a = run(c, tmp_path / "a", progress=False)
    b = tmp_path / "b"
    run(c, b, progress=False, stop_after=2)
    kept = tmp_path / "replay_at_1024.npz"
    shutil.copy(b / "replay.npz", kept)
    run(c, b, resume=True, progress=False, stop_after=1)
    # As if stopped after the checkpoint of step 1536 but before its buffer and
    # evaluation: the resume must redo that interval, from step 1024.
    shutil.copy(kept, b / "replay.npz")
    evals = json.loads((b / "evals.json").read_text())
    assert [e["step"] for e in evals] == [512, 1024, 1536]
    out = run(c, b, resume=True, progress=False)
    with pytest.raises(ConfigError, match="already holds a continual run"):
        run(c, b, progress=False)  # a second run never lands in a run's folder
    wa, wb = weights(a["checkpoint"]), weights(out["checkpoint"])
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert json.loads((tmp_path / "a" / "evals.json").read_text()) == \
        json.loads((b / "evals.json").read_text())
    assert out["tasks"] == a["tasks"] and out["complete"]
    steps = [int(line.split(",")[0]) for line in
             (b / "train" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 3072
    # Each evaluation is every task's, after every interval, from the same seeds.
    assert [e["task"] for e in evals] == [0, 0, 1]
    assert all(len(e["success"]) == 3 for e in evals)
    assert (tmp_path / "a" / "continual.png").stat().st_size > 1000
    # The replay ran: its figures are in the trainer's TensorBoard scalars via parts,
    # and the buffer holds sequences of every task (reservoir over the whole run).
    z = np.load(b / "replay.npz", allow_pickle=False)
    assert set(np.unique(z["task"])) == {0, 1, 2}


def test_replay_changes_training_and_no_replay_keeps_an_empty_buffer(tmp_path):
    on = run(small(tmp_path), tmp_path / "on", progress=False, stop_after=2)
    off = run(small(tmp_path, "replay.enabled=false"), tmp_path / "off", progress=False,
              stop_after=2)
    z = np.load(tmp_path / "off" / "replay.npz", allow_pickle=False)
    assert json.loads(str(z["meta"]))["size"] == 0
    # Same seed, same first interval (the buffer is empty until the first rollout is
    # in), then the replay loss makes the weights differ.
    won, woff = weights(on["checkpoint"]), weights(off["checkpoint"])
    assert any(not torch.equal(won[k], woff[k]) for k in won)
    # The study's report reads both, groups them by mode and leaves unfinished runs out
    # of the means, saying so.
    text = report_main([str(tmp_path), "--out", str(tmp_path / "report" / "r.md")])
    assert "## tmaze, dnc, no replay" in text and "## tmaze, dnc, replay" in text
    assert "| 1 (stopped at 1024) | " in text
    assert "Unfinished runs (not in the means): off, on" in text
    assert (tmp_path / "report" / "r.png").stat().st_size > 1000


def test_forgetting_and_final_success_follow_continual_world():
    c = ContinualConfig.load(CONFIG).override(["steps_per_task=61440", "eval_every=30720"])
    k = 61440
    evals = [{"step": s, "success": v} for s, v in [
        (k // 2, [0.5, 0.0, 0.0]), (k, [1.0, 0.0, 0.1]),
        (3 * k // 2, [0.6, 0.8, 0.2]), (2 * k, [0.2, 1.0, 0.4]),
        (5 * k // 2, [0.1, 0.9, 0.9]), (3 * k, [0.0, 0.9, 1.0])]]
    s = summarize(evals, c)
    assert [t["end_of_task"] for t in s["tasks"]] == [1.0, 1.0, 1.0]
    assert [t["final"] for t in s["tasks"]] == [0.0, 0.9, 1.0]
    assert [t["forgetting"] for t in s["tasks"]] == pytest.approx([1.0, 0.1, 0.0])
    assert s["mean_forgetting"] == pytest.approx(0.55)  # over the tasks that can be forgotten
    assert s["average_final_success"] == pytest.approx(1.9 / 3)
    assert [t["auc"] for t in s["tasks"]] == pytest.approx([0.75, 0.9, 0.95])
    part = summarize(evals[:3], c)
    assert not part["complete"] and part["tasks"][0]["forgetting"] is None


def test_the_final_policy_exports_and_runs(tmp_path):
    out = run(small(tmp_path), tmp_path / "run", progress=False)
    onnx_path = tmp_path / "policy.onnx"
    assert export_main([out["checkpoint"], "-o", str(onnx_path), "--parity-steps", "50"]) == 0
    policy, _ = load_policy(out["checkpoint"])
    for task in small(tmp_path).tasks:  # the runtime acts as the trained policy on each task
        rt = PolicyRuntime(str(onnx_path), providers=["CPUExecutionProvider"])
        onnx_run = run_episodes(lambda obs, reset: rt.step(obs, reset), task.env,
                                task.env_kwargs, 6, 0, 1)
        torch_run = run_episodes(TorchActor(policy, 1), task.env, task.env_kwargs, 6, 0, 1)
        assert onnx_run["successes"] == torch_run["successes"]
        assert onnx_run["lengths"] == torch_run["lengths"]


@pytest.mark.parametrize("sets, message", [
    (["steps_per_tsk=1024"], "unknown key 'steps_per_tsk' (did you mean 'steps_per_task'?)"),
    (["train.env=CartPole-v1"], "train.env cannot be set: each task names its env"),
    (["train.lr_schedule=linear"], "must be 'constant'"),
    (["eval_every=3584"], "eval_every (3584) must divide steps_per_task (61440)"),
    (["eval_every=1000"], "eval_every: must be a multiple of num_envs x rollout_steps = 512"),
    (["replay.mix=1.5"], "replay.mix: expected a number in [0, 0.95], got 1.5"),
    (["replay.samplin=uniform"], "unknown key replay.samplin (did you mean 'sampling'?)"),
    (["replay.sampling=uniform"], "replay.sampling: expected one of ['reservoir', "
                                  "'prioritized']"),
    (["train.lr=nan"], "lr: must be a finite number"),
])
def test_config_mistakes_are_one_line_errors(sets, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--config", CONFIG, "--no-progress", *[x for s in sets for x in ("--set", s)]])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err


def test_tasks_must_share_their_spaces(tmp_path, capsys):
    text = open(CONFIG).read().replace(
        "  - name: mirrored-long\n    env: dnc/TMaze-v0\n",
        "  - name: mirrored-long\n    env: dnc/ProceduralMaze-v0\n")
    text = text.replace("{length: [20, 40], cue_steps: 3, bump_penalty: 0.1, goal_arm: opposite}",
                        "{size: 3}")
    path = tmp_path / "continual_bad.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit):
        main(["--config", str(path)])
    err = capsys.readouterr().err
    assert "tasks[2] (mirrored-long): its observation and action spaces differ" in err
    with pytest.raises(SystemExit):
        main(["--resume", str(tmp_path)])
    assert "is not a continual run folder" in capsys.readouterr().err


def _fake_run(root, name, ccfg, evals):
    """A finished run's small files, as training.continual writes them."""
    folder = root / name
    folder.mkdir()
    (folder / "continual.yaml").write_text(yaml.safe_dump(ccfg.to_dict(), sort_keys=False))
    (folder / "evals.json").write_text(json.dumps(
        [{"step": s, "success": v, "return": [0.0] * len(v)} for s, v in evals]))
    (folder / "code_version.txt").write_text("abc1234 from step 0\n")


def test_the_report_computes_the_targets_from_run_folders(tmp_path):
    """Hand-made curves (two evaluations per task of 1024 steps): the forgetting ratio
    counts each task's forgetting from 0 up (a task learned late does not hide another's
    loss; Continual World's signed mean is shown beside it), final success against the
    single-task runs, forward transfer as a difference of areas with the normalised
    figure only where the single-task curve leaves room."""
    c = small(tmp_path, "train.seed=1")
    _fake_run(tmp_path, "replay", c, [
        (512, [0.5, 0, 0]), (1024, [1.0, 0, 0]), (1536, [1.0, 0.0, 0.0]),
        (2048, [0.9, 0.2, 0.1]), (2560, [0.9, 0.8, 0.9]), (3072, [0.9, 1.0, 1.0])])
    _fake_run(tmp_path, "plain", c.override(["replay.enabled=false"]), [
        (512, [1, 0, 0]), (1024, [1, 0, 0]), (1536, [0, 1, 0]), (2048, [0, 1, 0]),
        (2560, [0, 1, 1]), (3072, [0, 1, 1])])
    for k, curve in enumerate([(1.0, 1.0), (0.0, 0.5), (1.0, 1.0)]):
        _fake_run(tmp_path, f"single{k}", single_task(c, k),
                  list(zip((512, 1024), [[v] for v in curve])))
    text = report_main([str(tmp_path)])
    params = sum(p.numel() for p in first_policy(c.task_config(0)).parameters())
    assert f"Parameters: {params:,}." in text
    # replay: forgetting 0.1 and -0.8, clipped mean 0.05; plain: 1.0 and 0.0, mean 0.5
    assert ("- tmaze, dnc: forgetting with replay 0.05, without 0.50: ratio **0.10**"
            in text)
    assert "signed mean forgetting -0.35 and 0.50: ratio -0.70" in text
    assert "task 1's forgetting per seed 1: 1.00 " in text
    assert ("task cued: final success with replay 0.90, single-task 1.00: ratio **0.90**"
            in text)
    assert ("task mirrored: final success with replay 1.00, single-task 0.50: ratio **2.00** "
            "(target ≥ 0.9); forward transfer: mean success over its own interval 0.10, "
            "single-task 0.25: difference -0.15, normalised (Continual World) -0.20 "
            "(1 seed(s))") in text
    assert ("task mirrored-long: final success with replay 1.00, single-task 1.00: ratio "
            "**1.00** (target ≥ 0.9); forward transfer: mean success over its own interval "
            "0.95, single-task 1.00: difference -0.05, normalised not shown") in text
    assert "Unfinished runs" not in text
