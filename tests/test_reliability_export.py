"""Reliability of the export and evaluation command lines (issue 14, items 3, 6, 7, 9).

- Parity fails on non-finite outputs (a NaN or an overflow must not read as a difference
  of 0), and a failed export leaves an existing model byte for byte as it was.
- The default output path (``<run>/policy.onnx`` for ``<run>/checkpoints/X.pt``, else
  ``X.onnx`` next to the checkpoint), every option checked before any file is touched,
  the model written to a temporary file and renamed over the output only once it passed.
- An env id that is not registered (in a contract or a checkpoint) is a one-line error.
- ``--seed``, ``--episodes``, ``--batch``, ``--parity-steps``, ``--batches`` outside their
  ranges are argparse errors naming the flag; an unloadable checkpoint or model is one
  ``error:`` line. None of these ends in a traceback.

The checkpoints are built here, not trained: a tiny LSTM policy saved with the keys the
trainers write (as in tests/test_evaluate_cli.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import onnx
import pytest
import torch

import sim  # noqa: F401  (registers the dnc/ envs)
from dnc_core import ActionSpec, ActorCritic, make_core
from export import evaluate as onnx_evaluate
from export import onnx as onnx_export
from export.onnx import CONTRACT_KEY, build_contract, check_parity, export_policy, sha256_of
from training import checkpoint as ckpt_io
from training import evaluate as torch_evaluate
from training.spaces import describe_space

ROOT = Path(__file__).resolve().parents[1]
ENV = "dnc/TMaze-v0"
STORED = {"length": 3}
FAST = ["--parity-steps", "5", "--batches", "1"]  # a real but short parity check


@pytest.fixture(autouse=True)
def one_thread():
    """Torch on one thread; the CLIs called in-process set 2, put it back."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_policy(seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(make_core("lstm", input_size=4, hidden_size=8), 4,
                       ActionSpec.discrete(3))


def save_checkpoint(path: Path, policy: ActorCritic | None = None, env: str = ENV) -> Path:
    """A checkpoint with the keys the trainers write (training/runner.py)."""
    policy = policy or make_policy()
    space_env = gymnasium.make(ENV, **STORED)
    data = {"format": ckpt_io.FORMAT, "version": ckpt_io.VERSION,
            "policy_config": policy.config(),
            "policy_state": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
            "env": env, "env_kwargs": dict(STORED),
            "observation_space": describe_space(space_env.observation_space),
            "action_space": describe_space(space_env.action_space), "obs_dim": 4,
            "global_step": 0, "update": 0, "config": {}, "versions": ckpt_io.versions()}
    space_env.close()
    return ckpt_io.atomic_save(data, path)


def overflowing_policy() -> ActorCritic:
    """Finite weights (a checkpoint may hold them) whose value output overflows to inf:
    the LSTM's gates saturate at h > 0 in every unit and the critic multiplies by 3e38.
    Both back-ends then give inf, and inf - inf is NaN."""
    policy = make_policy()
    with torch.no_grad():
        for name, param in policy.core.named_parameters():
            param.fill_(10.0 if name == "cell.bias_ih" else 0.0)
        policy.critic.weight.fill_(3e38)
        policy.critic.bias.fill_(3e38)
    return policy


def run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def error_lines(stderr: str) -> list[str]:
    """stderr without the exporter's torchvision warnings."""
    return [ln for ln in stderr.splitlines() if ln and "torchvision" not in ln]


def assert_one_error_line(p: subprocess.CompletedProcess, *needles: str) -> str:
    assert p.returncode != 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    lines = error_lines(p.stderr)
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1, p.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def no_temp_files(folder: Path) -> bool:
    return not [f for f in folder.iterdir() if f.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A good checkpoint in a run folder and its export (``export_policy``)."""
    base = tmp_path_factory.mktemp("good")
    ckpt = save_checkpoint(base / "run" / "checkpoints" / "latest.pt")
    policy, ck = ckpt_io.load_policy(ckpt)
    model = export_policy(policy, build_contract(policy, ck, sha256_of(ckpt)),
                          base / "export" / "policy.onnx")
    return ckpt, model


# -- item 3: non-finite outputs fail the parity check -----------------------------------
def test_parity_fails_and_reports_nan_outputs(tmp_path):
    policy = make_policy()
    with torch.no_grad():
        policy.core.cell.weight_hh.fill_(float("nan"))
    ck = ckpt_io.load(save_checkpoint(tmp_path / "ref.pt"))  # the spaces and env
    path = export_policy(policy, build_contract(policy, ck, "0" * 64), tmp_path / "nan.onnx")
    r = check_parity(policy, path, ENV, STORED, steps=20, batch=2)
    assert r.nonfinite_torch > 0 and r.nonfinite_onnx > 0, r.line()
    assert not r.ok
    line = r.line()
    assert f"non-finite outputs: torch {r.nonfinite_torch}, onnx {r.nonfinite_onnx}" in line
    assert line.endswith("-> FAIL") and "nan" in line  # the differences show NaN, not 0


def test_parity_of_a_good_export_counts_no_non_finite_outputs(good):
    ckpt, model = good
    policy, _ = ckpt_io.load_policy(ckpt)
    r = check_parity(policy, model, ENV, STORED, steps=30, batch=2)
    assert r.ok and r.nonfinite_torch == r.nonfinite_onnx == 0, r.line()
    assert "non-finite" not in r.line() and r.line().endswith("-> PASS")


def test_export_with_overflowing_outputs_fails_and_keeps_the_existing_model(tmp_path):
    run = tmp_path / "run"
    ckpt = save_checkpoint(run / "checkpoints" / "latest.pt", overflowing_policy())
    previous = run / "policy.onnx"
    previous.write_bytes(b"the previous model")
    p = run_cli("export.onnx", ckpt, "--parity-steps", "20")
    assert p.returncode != 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    parity = [ln for ln in p.stdout.splitlines() if ln.startswith("  parity batch ")]
    assert len(parity) == 2 and all("non-finite outputs: torch " in ln and
                                    ln.endswith("-> FAIL") for ln in parity), p.stdout
    assert p.stdout.splitlines()[-1] == f"PARITY FAILED: {previous} left unchanged"
    assert previous.read_bytes() == b"the previous model"
    assert no_temp_files(run)


# -- item 6: where the model goes, and only once it passed ------------------------------
def test_default_output_is_the_run_folder_or_next_to_a_loose_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert onnx_export.default_output(run / "checkpoints" / "step_64.pt") == run / "policy.onnx"
    assert onnx_export.default_output(run / "checkpoints" / "latest.pt") == run / "policy.onnx"
    assert onnx_export.default_output(tmp_path / "a" / "best.pt") == tmp_path / "a" / "best.onnx"
    with pytest.raises(SystemExit) as e:
        onnx_export.main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "<run>/policy.onnx for <run>/checkpoints/<name>.pt" in text
    assert "<name>.onnx next to any other checkpoint file" in text


def test_a_loose_checkpoint_exports_next_to_itself_not_into_the_grandparent(tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "a" / "b" / "best.pt")
    grandparent = tmp_path / "a" / "policy.onnx"
    grandparent.write_bytes(b"someone else's model")
    assert onnx_export.main([str(ckpt), *FAST]) == 0, capsys.readouterr().out
    out = tmp_path / "a" / "b" / "best.onnx"
    assert capsys.readouterr().out.splitlines()[-1] == f"OK: {out}"
    model = onnx.load(str(out))
    contract = json.loads({q.key: q.value for q in model.metadata_props}[CONTRACT_KEY])
    assert contract["checkpoint"]["sha256"] == sha256_of(ckpt)
    assert grandparent.read_bytes() == b"someone else's model"
    assert no_temp_files(out.parent)


def test_a_passing_export_replaces_the_run_folders_model(tmp_path, capsys):
    run = tmp_path / "run"
    ckpt = save_checkpoint(run / "checkpoints" / "step_64.pt")
    out = run / "policy.onnx"
    out.write_bytes(b"the previous model")
    assert onnx_export.main([str(ckpt), *FAST]) == 0
    text = capsys.readouterr().out
    assert "(replacing it if the new model passes the checks)" in text
    assert text.splitlines()[-1] == f"OK: {out}"
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    assert no_temp_files(run)


BAD_EXPORT_OPTIONS = {  # option values the old code only looked at after writing
    "batches_not_a_number": (["--batches", "1,x"], "argument --batches"),
    "batches_empty": (["--batches", ""], "argument --batches"),
    "batches_zero": (["--batches", "0"], "argument --batches"),
    "parity_steps_negative": (["--parity-steps", "-5"], "argument --parity-steps"),
    "parity_steps_zero": (["--parity-steps", "0"], "argument --parity-steps"),
    "seed_negative": (["--seed", "-1"], "argument --seed"),
    "seed_too_large": (["--seed", str(2**32)], "argument --seed"),
}


@pytest.mark.parametrize("case", list(BAD_EXPORT_OPTIONS))
def test_a_bad_export_option_fails_before_any_file_is_touched(tmp_path, capsys, case):
    args, flag = BAD_EXPORT_OPTIONS[case]
    run = tmp_path / "run"
    ckpt = save_checkpoint(run / "checkpoints" / "latest.pt")
    out = run / "policy.onnx"
    out.write_bytes(b"the previous model")
    with pytest.raises(SystemExit) as e:
        onnx_export.main([str(ckpt), *args])
    assert e.value.code == 2
    captured = capsys.readouterr()
    assert flag in captured.err.splitlines()[-1] and "exporting" not in captured.out
    assert out.read_bytes() == b"the previous model"
    assert sorted(f.name for f in run.iterdir()) == ["checkpoints", "policy.onnx"]


def test_a_bad_later_option_on_the_command_line_is_one_argparse_error(tmp_path):
    run = tmp_path / "run"
    ckpt = save_checkpoint(run / "checkpoints" / "latest.pt")
    out = run / "policy.onnx"
    out.write_bytes(b"the previous model")
    p = run_cli("export.onnx", ckpt, "--parity-steps", "5", "--batches", "1,x")
    assert p.returncode == 2
    assert_one_error_line(p, "argument --batches", "'1,x'")
    assert out.read_bytes() == b"the previous model" and no_temp_files(run)


@pytest.mark.parametrize("target", ["checkpoint", "folder"])
def test_an_output_that_is_the_checkpoint_or_a_folder_is_refused(tmp_path, capsys, target):
    ckpt = save_checkpoint(tmp_path / "ckpt.pt")
    before = ckpt.read_bytes()
    out = ckpt if target == "checkpoint" else tmp_path
    with pytest.raises(SystemExit) as e:
        onnx_export.main([str(ckpt), "-o", str(out), *FAST])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: output {str(out)!r}") and err.count("\n") == 1
    assert ckpt.read_bytes() == before and no_temp_files(tmp_path)


# -- item 7: an env id that is not registered -------------------------------------------
def test_export_evaluate_names_an_unregistered_contract_env(good, tmp_path):
    _, model = good
    m = onnx.load(str(model))
    entry = next(q for q in m.metadata_props if q.key == CONTRACT_KEY)
    contract = json.loads(entry.value)
    contract["env"]["id"] = "dnc/Nope-v0"
    entry.value = json.dumps(contract)
    bad = tmp_path / "bad_env.onnx"
    onnx.save(m, str(bad))
    p = run_cli("export.evaluate", bad, "--episodes", "2")
    assert p.returncode == 2
    line = assert_one_error_line(p, "'dnc/Nope-v0'", "not registered", "dnc/TMaze-v0",
                                 "dnc/Copy-v0", str(bad))
    assert line.startswith("error: ")


def test_training_evaluate_and_export_name_an_unregistered_checkpoint_env(tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt", env="dnc/Nope-v0")
    with pytest.raises(SystemExit) as e:
        torch_evaluate.main([str(ckpt), "--episodes", "2"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: checkpoint {str(ckpt)!r} was trained on env "
                          "'dnc/Nope-v0', which is not registered; registered dnc/ envs: ")
    assert "dnc/TMaze-v0" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as e:
        onnx_export.main([str(ckpt), *FAST])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "'dnc/Nope-v0', which is not registered" in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "policy.onnx").exists() and no_temp_files(tmp_path / "run")


# -- item 9: option values and unloadable inputs of the evaluation CLIs ----------------
BAD_EVAL_OPTIONS = {
    "seed_negative": (["--seed", "-1"], "argument --seed"),
    "seed_too_large": (["--seed", str(2**32)], "argument --seed"),
    "last_seed_too_large": (["--seed", str(2**32 - 1), "--episodes", "2"], "argument --seed"),
    "episodes_huge": (["--episodes", "10000000000000"], "argument --episodes"),
    "episodes_zero": (["--episodes", "0"], "argument --episodes"),
    "episodes_not_a_number": (["--episodes", "ten"], "argument --episodes"),
    "batch_zero": (["--batch", "0"], "argument --batch"),
    "batch_negative": (["--batch", "-3"], "argument --batch"),
}


@pytest.mark.parametrize("case", list(BAD_EVAL_OPTIONS))
@pytest.mark.parametrize("cli", ["training.evaluate", "export.evaluate"])
def test_an_out_of_range_evaluation_option_is_an_argparse_error(good, capsys, cli, case):
    args, flag = BAD_EVAL_OPTIONS[case]
    ckpt, model = good
    main = torch_evaluate.main if cli == "training.evaluate" else onnx_evaluate.main
    with pytest.raises(SystemExit) as e:
        main([str(ckpt if cli == "training.evaluate" else model), *args])
    assert e.value.code == 2
    captured = capsys.readouterr()
    assert flag in captured.err.splitlines()[-1] and not captured.out


@pytest.mark.parametrize("cli", ["training.evaluate", "export.evaluate"])
@pytest.mark.parametrize("args", [["--seed", "-1"], ["--episodes", "10000000000000"]])
def test_the_issue_commands_end_without_a_traceback(good, cli, args):
    ckpt, model = good
    p = run_cli(cli, ckpt if cli == "training.evaluate" else model, *args)
    assert p.returncode == 2
    assert_one_error_line(p, f"argument {args[0]}", args[1])


@pytest.mark.parametrize("cli", ["training.evaluate", "export.onnx"])
def test_an_unloadable_checkpoint_is_one_error_line(good, tmp_path, cli):
    ckpt, _ = good
    data = ckpt.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    p = run_cli(cli, truncated)
    assert p.returncode == 2
    line = assert_one_error_line(p, str(truncated))
    assert line.startswith("error: checkpoint ")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["truncated.pt"]


def test_an_unloadable_model_is_one_error_line(good, tmp_path):
    _, model = good
    data = model.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    p = run_cli("export.evaluate", truncated)
    assert p.returncode == 2
    assert_one_error_line(p, str(truncated)).startswith("error: ")


def test_evaluation_within_the_bounds_still_runs(good, capsys):
    """The largest allowed seed for the episode count, a batch above it: accepted."""
    ckpt, model = good
    seed = str(2**32 - 3)
    torch_r = torch_evaluate.main([str(ckpt), "--episodes", "3", "--seed", seed,
                                   "--batch", "4096", "--json"])
    onnx_r = onnx_evaluate.main([str(model), "--episodes", "3", "--seed", seed, "--json"])
    capsys.readouterr()
    assert torch_r["episodes"] == onnx_r["episodes"] == 3
    assert torch_r["returns"] == onnx_r["returns"] and np.isfinite(torch_r["returns"]).all()
