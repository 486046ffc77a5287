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
from test_runtime import with_contract

import sim  # noqa: F401  (registers the dnc/ envs)
from dnc_core import ActionSpec, ActorCritic, make_core
from export import evaluate as onnx_evaluate
from export import onnx as onnx_export
from dnc_policy.contract import CONTRACT_KEY
from export.onnx import build_contract, export_policy, sha256_of
from export.parity import check_parity
from training import checkpoint as ckpt_io
from training import evaluate as torch_evaluate
from training.spaces import describe_space


pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
ENV = "dnc/TMaze-v0"
STORED = {"length": 3}
FAST = ["--parity-steps", "5", "--batches", "1"]  # a real but short parity check




def make_policy(seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(make_core("lstm", input_size=4, hidden_size=8), 4,
                       ActionSpec.discrete(3))


def save_checkpoint(path: Path, policy: ActorCritic | None = None, env: str = ENV,
                    env_kwargs: dict | None = None) -> Path:
    """A checkpoint with the keys the trainers write (training/runner.py); its env
    kwargs ``env_kwargs`` (default STORED)."""
    policy = policy or make_policy()
    space_env = gymnasium.make(ENV, **STORED)
    data = {"format": ckpt_io.FORMAT, "version": ckpt_io.VERSION,
            "policy_config": policy.config(),
            "policy_state": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
            "env": env, "env_kwargs": dict(STORED if env_kwargs is None else env_kwargs),
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


# -- issue 14 follow-up: stored env kwargs, nested contracts, NaN models, the output ----
def one_error(capsys, main, *args) -> str:
    """``main(args)`` exits 2 with one ``error:`` line on stderr (and no output)."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    assert e.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert not captured.out
    return captured.err.strip()


@pytest.mark.parametrize("kwargs, words", [
    ({"length": -1}, ["env_kwargs {\"length\": -1}", "length must be an integer"]),
    ({"bogus": 1}, ["has no keyword argument 'bogus'", "it accepts: length"]),
])
def test_training_evaluate_names_refused_stored_env_kwargs(tmp_path, capsys, kwargs, words):
    """Was a ValueError (TypeError) traceback from the first gymnasium.make."""
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt",
                           env_kwargs=kwargs)
    line = one_error(capsys, torch_evaluate.main, ckpt, "--episodes", "2")
    assert f"checkpoint {str(ckpt)!r}: its env_kwargs" in line
    for w in words:
        assert w in line, line
    # an override that replaces the refused value makes the evaluation run
    if "length" in kwargs:
        r = torch_evaluate.main([str(ckpt), "--episodes", "2", "--env-kwargs", "length=3",
                                 "--json"])
        capsys.readouterr()
        assert r["episodes"] == 2 and r["env_kwargs"] == {"length": 3}


def test_the_issue_command_with_stored_length_minus_1_ends_without_a_traceback(tmp_path):
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt",
                           env_kwargs={"length": -1})
    p = run_cli("training.evaluate", ckpt, "--episodes", "2")
    assert p.returncode == 2
    assert_one_error_line(p, str(ckpt), "length must be an integer").startswith("error: ")


CONTRACT_ENVS = {
    "length_minus_1": ({"id": ENV, "kwargs": {"length": -1}},
                       ["its contract's env.kwargs {\"length\": -1}", "length must be"]),
    "bogus_kwarg": ({"id": ENV, "kwargs": {"bogus": 1}},
                    ["its contract's env.kwargs", "no keyword argument 'bogus'"]),
    "cartpole_with_kwargs": ({"id": "CartPole-v1", "kwargs": {"length": 3}},
                             ["CartPole-v1 has no keyword argument 'length'"]),
    "cartpole_other_actions": ({"id": "CartPole-v1", "kwargs": {}},
                               ["env CartPole-v1 with {} takes the actions",
                                "\"n\": 2", "\"n\": 3", "'action_space'"]),
    "copy_other_observations": ({"id": "dnc/Copy-v0", "kwargs": {}},
                                ["env dnc/Copy-v0", "the model reads 4", "'obs_dim'"]),
}


@pytest.mark.parametrize("case", list(CONTRACT_ENVS))
def test_export_evaluate_names_a_contract_env_that_does_not_fit(good, tmp_path, capsys, case):
    """Env kwargs the env refuses, or an env whose spaces are not the model's: one line
    naming the file (these were tracebacks, or episodes run on the wrong env)."""
    env, words = CONTRACT_ENVS[case]
    path = with_contract(good[1], tmp_path / f"{case}.onnx", lambda c: {**c, "env": env})
    line = one_error(capsys, onnx_evaluate.main, path, "--episodes", "2")
    assert str(path) in line
    for w in words:
        assert w in line, line


def test_export_evaluate_refuses_a_contract_nested_100k_deep(good, tmp_path, capsys):
    path = with_contract(good[1], tmp_path / "nested.onnx",
                        lambda c: "[" * 100_000 + "]" * 100_000)
    line = one_error(capsys, onnx_evaluate.main, path)
    assert str(path) in line and "nested too deeply" in line


def test_export_evaluate_of_a_model_that_outputs_inf_is_one_error_line(tmp_path, capsys):
    """The runtime refuses the tick (NonFiniteOutput) instead of acting on it."""
    policy = overflowing_policy()
    ck = ckpt_io.load(save_checkpoint(tmp_path / "ref.pt"))
    path = export_policy(policy, build_contract(policy, ck, "0" * 64), tmp_path / "inf.onnx")
    line = one_error(capsys, onnx_evaluate.main, path, "--episodes", "2")
    assert str(path) in line and "NaN or Inf values (value: " in line


@pytest.mark.parametrize("name", ["config.yaml", "policy", "policy.onnx.bak"])
def test_an_output_that_is_not_an_onnx_name_is_refused(tmp_path, capsys, name):
    """``-o config.yaml`` replaced the run's config with a model."""
    run = tmp_path / "run"
    ckpt = save_checkpoint(run / "checkpoints" / "latest.pt")
    out = run / name
    out.write_text("lr: 0.001\n")
    with pytest.raises(SystemExit) as e:
        onnx_export.main([str(ckpt), "-o", str(out), *FAST])
    assert e.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == (f"error: output {str(out)!r} does not end in .onnx: expected the "
                            "name of an ONNX file (e.g. -o policy.onnx), so that no other "
                            "file is overwritten\n")
    assert "exporting" not in captured.out
    assert out.read_text() == "lr: 0.001\n" and no_temp_files(run)


def test_an_export_removes_the_temporary_files_an_interrupted_one_left(good, tmp_path,
                                                                       capsys):
    """A kill -9 during export.onnx left ``.policy.onnx.<random>.tmp`` (a complete but
    unchecked model) in the run folder. The next export removes such files (its own
    pattern only), except one that a running export holds (locked)."""
    import fcntl

    run = tmp_path / "run"
    ckpt = save_checkpoint(run / "checkpoints" / "latest.pt")
    model_bytes = good[1].read_bytes()
    stale = [run / ".policy.onnx.k9x2ab.tmp", run / ".policy.onnx.zz.tmp"]
    for f in stale:
        f.write_bytes(model_bytes)
    running = run / ".policy.onnx.running.tmp"  # another export's, in progress
    running.write_bytes(b"")
    others = [run / ".other.onnx.abc.tmp", run / "notes.tmp", run / ".policy.onnx.tmp",
              run / "policy.onnx.x.tmp"]
    for f in others:
        f.write_bytes(b"keep")
    fd = os.open(running, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert onnx_export.main([str(ckpt), *FAST]) == 0
    finally:
        os.close(fd)
    out = capsys.readouterr().out
    for f in stale:
        assert not f.exists()
        assert f"  removed {f.name}, left beside the output by an interrupted export" in out
    assert running.exists() and all(f.read_bytes() == b"keep" for f in others)
    assert out.splitlines()[-1] == f"OK: {run / 'policy.onnx'}"
    onnx.checker.check_model(onnx.load(str(run / "policy.onnx")), full_check=True)
    assert sorted(f.name for f in run.iterdir() if f.name.endswith(".tmp")) == sorted(
        f.name for f in [running, *others])
    # what the export itself writes: a file of that pattern, gone when it ends
    assert onnx_export.temp_pattern(run / "policy.onnx") == ".policy.onnx.*.tmp"
