"""The GPU check (``python -m export.gpu_check``, ``make gpu-check``) on a machine without
a GPU: its argument handling (one-line errors, exit 2, before any GPU probing), the
no-GPU failure (exit 1, one line saying what to install), and the CPU rows it prints with
``--providers cpu`` at tiny sizes, parity included. The GPU rows themselves need an
NVIDIA GPU and are not run here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import exported
import torch
from dnc_policy.runtime import PolicyRuntime

from export.gpu_check import BoundSession, check_bound_parity
from dnc_policy.contract import CONTRACT_KEY


pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
HAS_GPU = torch.cuda.is_available() or "CUDAExecutionProvider" in ort.get_available_providers()
no_gpu_here = pytest.mark.skipif(HAS_GPU, reason="checks the failure where there is no GPU")


def gpu_check(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "export.gpu_check", *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def table_rows(text: str) -> list[list[str]]:
    """The data rows of the markdown table in ``text``, as lists of cells."""
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:]]


# -- arguments: one line, exit 2, before any GPU probing --------------------------------------
@pytest.mark.parametrize("args,message", [
    (["--batch", "0"], "argument --batch: expects comma-separated batch sizes from 1 to 4096"),
    (["--batch", "1,x"], "argument --batch: expects comma-separated batch sizes"),
    (["--batch", "5000"], "got '5000'"),
    (["--batch", ""], "argument --batch: expects comma-separated batch sizes"),
    (["--steps", "0"], "argument --steps: must be an integer from 1 to 10,000,000, got '0'"),
    (["--steps", "many"], "argument --steps: must be an integer from 1"),
    (["--parity-steps", "0"], "argument --parity-steps: must be an integer from 1"),
    (["--providers", "cpu,cdua"], ("argument --providers: unknown provider 'cdua' (did you "
                                   "mean 'cuda'?): expected a comma-separated subset of cpu, "
                                   "cuda, tensorrt")),
    (["--providers", "rocm"], "unknown provider 'rocm'"),
    (["--train-seconds", "-1"], "argument --train-seconds: must be a number of seconds"),
    (["--train-set", "num_envz=4"], ("--train-set: override: unknown key 'num_envz' (did "
                                     "you mean 'num_envs'?)")),
    (["--train-set", "device=cuda"], "--train-set 'device=cuda': device is set by the check"),
    (["--model", "policy.onnx"], "--model needs --checkpoint"),
    (["--checkpoint", "/nonexistent/ckpt.pt"], "checkpoint '/nonexistent/ckpt.pt' does not exist"),
])
def test_a_bad_argument_is_one_line_and_exit_2_before_any_gpu_probing(args, message):
    """The default providers need a GPU and this machine has none: exit 2 (not 1) shows
    the arguments were refused before anything looked for one."""
    p = gpu_check(*args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stdout == "" and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert message in lines[0] and "no NVIDIA GPU" not in lines[0]


@pytest.mark.parametrize("case", ["truncated", "text", "other_torch_file"])
def test_a_corrupt_checkpoint_is_one_line_and_exit_2(models, tmp_path, case):
    path = tmp_path / "ckpt.pt"
    if case == "truncated":
        data = models("dnc").checkpoint.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "text":
        path.write_text("this is not a checkpoint\n")
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    p = gpu_check("--checkpoint", path, "--out", tmp_path / "out")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    [line] = p.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(path) in line
    assert re.search(r"could not be read|is not a dnc-policy checkpoint", line)
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_model_that_is_not_the_checkpoints_export_is_refused(models, tmp_path):
    other = tmp_path / "other.onnx"
    other.write_bytes(models("gru").onnx.read_bytes())
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    ckpt = models("dnc").checkpoint
    for model, message in ((other, "was not exported from checkpoint"),
                           (broken, "is not a loadable ONNX model")):
        p = gpu_check("--checkpoint", ckpt, "--model", model)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        [line] = p.stderr.strip().splitlines()
        assert line.startswith("error: --model") and message in line, line


# -- no GPU: exit 1 and one line -----------------------------------------------------------
@no_gpu_here
@pytest.mark.parametrize("args", [[], ["--providers", "cuda,cpu"]])
def test_without_a_gpu_it_fails_with_one_line_saying_what_to_install(args, tmp_path):
    p = gpu_check(*args, "--out", tmp_path / "out")
    assert p.returncode == 1 and p.stdout == "" and "Traceback" not in p.stderr, p.stderr
    [line] = p.stderr.strip().splitlines()
    assert line.startswith("error: no NVIDIA GPU to check: torch ")
    for what in ("has no CUDA", "has no CUDAExecutionProvider", "onnxruntime-gpu",
                 "the gpu extra", "make setup TORCH_SPEC=torch", "--providers cpu"):
        assert what in line, what
    assert not (tmp_path / "out").exists()  # failed before exporting anything


# -- the CPU rows ----------------------------------------------------------------------------
def test_cpu_rows_alone_print_the_table_with_parity_and_exit_0(models, tmp_path):
    m = models("dnc")
    out = tmp_path / "out"
    p = gpu_check("--providers", "cpu", "--checkpoint", m.checkpoint, "--steps", 20,
                  "--warmup", 5, "--batch", "1,4", "--parity-steps", 20, "--train-seconds", 0,
                  "--out", out)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    head = [ln for ln in p.stdout.splitlines() if ln.startswith("| row ")]
    assert head and "p50 µs" in head[0] and "parity (20 steps)" in head[0]
    rows = table_rows(p.stdout)
    assert [r[:2] for r in rows] == [["CPU EP", "1"], ["CPU EP", "4"]]  # nothing else
    for r in rows:
        p50, p99, first = float(r[2]), float(r[3]), float(r[4])
        assert 0 < p50 <= p99 and first > 0
        assert r[5] == "PASS" and r[6] == "0 mismatches", r
        assert all(float(x) <= 1e-4 for x in r[7:10]), r  # value, dist, state
    assert "parity: every required row that ran passed" in p.stdout
    assert (out / "gpu_check.md").read_text() == p.stdout
    contract = json.loads({q.key: q.value for q in onnx.load(str(out / "policy.onnx"))
                           .metadata_props}[CONTRACT_KEY])
    assert contract["checkpoint"]["sha256"] == m.contract()["checkpoint"]["sha256"]


def test_the_fresh_default_policy_and_the_training_row_on_the_cpu(tmp_path):
    """No checkpoint: the default DNC, freshly initialised, exported; and a few seconds of
    the real PPO trainer (made small with --train-set) for the training row."""
    from training.config import TrainConfig

    out = tmp_path / "out"
    p = gpu_check("--providers", "CPUExecutionProvider", "--steps", 10, "--warmup", 2,
                  "--batch", "2", "--parity-steps", 10, "--out", out, "--train-seconds", 4,
                  "--train-set", "num_envs=2", "--train-set", "rollout_steps=8",
                  "--train-set", "update_epochs=1", "--train-set", "num_minibatches=1")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    assert "the fresh default policy, seed 0" in p.stdout
    cpu, train = table_rows(p.stdout)
    assert cpu[:2] == ["CPU EP", "2"] and cpu[5] == "PASS"
    assert train[:2] == ["training.ppo, CPU", "2 envs"] and train[2:10] == [""] * 8
    rate = re.fullmatch(r"CPU ([\d,]+) env steps/s; 4 s each after start-up, dnc on "
                        r"dnc/TMaze-v0, 2 torch threads, first 2 updates not timed", train[10])
    assert rate and int(rate.group(1).replace(",", "")) > 0, train
    default = TrainConfig.default("ppo")
    contract = json.loads({q.key: q.value for q in onnx.load(str(out / "policy.onnx"))
                           .metadata_props}[CONTRACT_KEY])
    assert contract["env"]["id"] == default.env and contract["core"]["kind"] == "dnc"
    config = contract["core"]["config"]
    assert {k: config[k] for k in default.core_config} == default.core_config
    assert (out / "checkpoints" / "latest.pt").is_file()


# -- the bound session and its parity check, in-process ---------------------------------------
def test_the_bound_session_ticks_as_the_robot_runtime_does(models):
    """Fixed batch, two bindings swapped each tick: the same actions and values as
    PolicyRuntime over an episode's worth of ticks."""
    m = models("dnc")
    bound = BoundSession(m.onnx, ["CPUExecutionProvider"], batch=2)
    rt = PolicyRuntime(m.onnx, providers=["CPUExecutionProvider"], batch=2)
    obs = exported.env_observations("dnc/TMaze-v0", {"length": 3}, 40).reshape(20, 2, -1)
    first = np.ones(2, np.float32)
    for t, o in enumerate(obs):
        action = bound.step(o, first if t == 0 else np.zeros(2, np.float32))
        np.testing.assert_array_equal(action, rt.step(o))
        np.testing.assert_allclose(bound.head("value"), rt.outputs["value"], atol=1e-6)
    np.testing.assert_allclose(np.concatenate([s.ravel() for s in bound.state()]),
                               np.concatenate([s.ravel() for s in rt.snapshot().values()]),
                               atol=1e-6)


def test_the_parity_check_passes_for_the_export_and_fails_for_another_policy(models):
    m = models("dnc")
    policy, ck = m.load()
    bound = BoundSession(m.onnx, ["CPUExecutionProvider"], batch=3)
    ok = check_bound_parity(policy, bound, ck["env"], ck["env_kwargs"], steps=60)
    assert ok.ok and ok.steps == 60 and ok.batch == 3 and ok.resets > 3, ok.line()
    with torch.no_grad():
        policy.critic.bias += 1e-2  # the file holds the checkpoint; the policy now differs
    bad = check_bound_parity(policy, bound, ck["env"], ck["env_kwargs"], steps=20)
    assert not bad.ok and bad.max_value_diff > 1e-3 and "FAIL" in bad.line()
