"""Issue 14, training side: resume continues in the folder it was given, from the newest
complete checkpoint, with clean logs; a NaN or an infinity is never saved; ordinary
mistakes are one-line errors that create nothing; a run killed at random moments
resumes without losing a step. Real training runs with tiny budgets, no mocks."""

import csv
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from training import checkpoint as ckpt_io
from training.a2c import a2c_update, train
from training.a2c import main as a2c_main
from training.config import ConfigError, TrainConfig, resolve
from training.run_files import save_checkpoint
from training.runner import build_policy
from training.runner import train as run_train
from training.spaces import ObsFlattener, action_spec

ROOT = Path(__file__).resolve().parents[1]
# 2 envs x 8 steps = 16 env steps per update; checkpoints every 2 updates.
TINY = ["core=lstm", "core_config.hidden_size=8", "env_kwargs.length=4", "threads=1",
        "num_envs=2", "rollout_steps=8", "stop_at_success=0", "log_every=1",
        "checkpoint_every=32", "total_steps=128"]


def sets(items) -> list[str]:
    """``--set`` before each item."""
    return [arg for item in items for arg in ("--set", item)]


def tiny(run_dir, *extra) -> TrainConfig:
    return resolve(None, TINY + [f"run_dir={run_dir}", *extra])


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` and a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def cli(args, cwd, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "training.a2c", "--no-progress", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A finished tiny run: checkpoints at steps 32, 64, 96, 128. Tests copy it."""
    result = train(tiny(tmp_path_factory.mktemp("base")), progress=False)
    return Path(result["run_dir"])


def copy_run(base_run: Path, tmp_path: Path, name="run") -> Path:
    return Path(shutil.copytree(base_run, tmp_path / name))


def test_normalize_rewards_statistics_are_checkpointed_and_continued_by_a_resume(tmp_path):
    # Off by default: no statistics in the checkpoint.
    plain = train(tiny(tmp_path / "plain", "total_steps=32"), progress=False)
    assert ckpt_io.load(plain["checkpoint"])["reward_norm"] is None
    # On: a session of 64 env steps folds in at most 64 returns (one per real row), so a
    # resumed run holding more than 64 has continued the first session's statistics.
    first = train(tiny(tmp_path / "norm", "normalize_rewards=true", "total_steps=64"),
                  progress=False)
    n1 = float(ckpt_io.load(first["checkpoint"])["reward_norm"]["count"])
    assert 0 < n1 <= 64
    cfg = TrainConfig.from_dict(ckpt_io.load(first["checkpoint"])["config"])
    again = train(cfg.override(["total_steps=128"]), resume=first["run_dir"], progress=False)
    norm = ckpt_io.load(again["checkpoint"])["reward_norm"]
    assert 64 < float(norm["count"]) <= n1 + 64
    assert float(norm["var"][0]) > 0


# -- 1. resume writes the run it was given -------------------------------------------------
def test_resume_continues_in_the_folder_given_never_the_one_stored(tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "a", tmp_path / "b"
    work.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(work)  # a relative run_dir, as in the default config
    result = train(tiny("runs"), progress=False)
    original = work / result["run_dir"]
    copy = Path(shutil.copytree(original, tmp_path / "copy"))
    before = snapshot(original)

    # From another folder: the copy is continued, the original and the cwd untouched.
    out = cli(["--resume", str(copy), "--set", "lr=5e-4", "--total-steps", "192"], elsewhere)
    assert out.returncode == 0, out.stderr[-2000:]
    assert snapshot(original) == before
    assert list(elsewhere.iterdir()) == []  # no partial ./runs/<run>
    assert f"resuming {copy / 'checkpoints' / 'latest.pt'} at step 128 in {copy}" in out.stderr
    ck = ckpt_io.load(copy)
    assert ck["global_step"] == 192 and ck["config"]["lr"] == 5e-4
    assert (copy / "checkpoints" / "step_0000000192.pt").is_file()
    assert yaml.safe_load((copy / "config.yaml").read_text())["lr"] == 5e-4

    # A checkpoint file inside <run>/checkpoints/ continues that run (the copy).
    monkeypatch.chdir(elsewhere)
    cfg = TrainConfig.from_dict(ck["config"]).override(["total_steps=224"])
    out2 = train(cfg, resume=copy / "checkpoints" / "latest.pt", progress=False)
    assert out2["run_dir"] == str(copy) and ckpt_io.load(copy)["global_step"] == 224
    assert snapshot(original) == before and list(elsewhere.iterdir()) == []

    # An absolute run_dir stored in the checkpoint: the copy is still the one written.
    result = train(tiny(tmp_path / "abs"), progress=False)
    original = Path(result["run_dir"])
    copy = Path(shutil.copytree(original, tmp_path / "copy2"))
    before = snapshot(original)
    cfg = TrainConfig.from_dict(ckpt_io.load(copy)["config"]).override(["lr=5e-4",
                                                                        "total_steps=160"])
    assert train(cfg, resume=copy, progress=False)["run_dir"] == str(copy)
    assert snapshot(original) == before
    assert ckpt_io.load(copy)["global_step"] == 160


def test_a_loose_checkpoint_starts_a_new_run_and_an_older_one_is_refused(base_run, tmp_path):
    run = copy_run(base_run, tmp_path)
    before = snapshot(run)
    loose = Path(shutil.copy(run / "checkpoints" / "step_0000000064.pt", tmp_path / "loose.pt"))
    cfg = tiny(tmp_path / "new", "total_steps=96")
    out = train(cfg, resume=loose, progress=False)
    new = Path(out["run_dir"])
    assert new.parent == tmp_path / "new" and ckpt_io.load(new)["global_step"] == 96
    assert [int(r["global_step"]) for r in metrics(new)] == [80, 96]
    # Resuming an older checkpoint of a run in place would rewind it: refused.
    with pytest.raises(ckpt_io.CheckpointError, match="is older than its run's newest") as e:
        train(cfg, resume=run / "checkpoints" / "step_0000000064.pt", progress=False)
    assert "\n" not in str(e.value)
    assert snapshot(run) == before


# -- 2. non-finite values are never saved ----------------------------------------------------
@pytest.mark.parametrize("poison", ["weights", "optimiser"])
def test_a_diverged_update_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, poison):
    """The 4th update (step 64, a checkpoint step) turns NaN: nothing of it is saved."""
    count = [0]

    def update(learner, rollout):
        parts = a2c_update(learner, rollout)
        count[0] += 1
        if count[0] == 4:
            param = next(iter(learner.policy.parameters()))
            with torch.no_grad():
                if poison == "weights":
                    param.fill_(float("nan"))
                else:
                    learner.optimizer.state[param]["exp_avg"].fill_(float("inf"))
        return parts

    with pytest.raises(ckpt_io.NonFiniteError) as e:
        run_train(tiny(tmp_path), update, progress=False)
    (run,) = tmp_path.iterdir()
    message = str(e.value)
    assert "\n" not in message and "at update 4 (step 64)" in message
    what = "policy tensor 'core.cell.weight_ih'" if poison == "weights" else \
        "optimiser state 'core.cell.weight_ih.exp_avg'"
    assert what in message
    assert f"the last good checkpoint is {str(run / 'checkpoints' / 'latest.pt')!r}" in message
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        ["latest.pt", "step_0000000032.pt"]
    ck = ckpt_io.load(run)
    assert ck["global_step"] == 32
    assert all(torch.isfinite(t).all() for t in ck["policy_state"].values())
    assert ckpt_io.first_non_finite(ck["optimizer_state"]) is None
    assert [int(r["global_step"]) for r in metrics(run)] == [16, 32, 48]  # 64 never logged
    # The last good checkpoint resumes.
    out = train(tiny(tmp_path, "total_steps=64"), resume=run, progress=False)
    assert out["global_step"] == 64 and ckpt_io.load(run)["global_step"] == 64


def test_save_checkpoint_refuses_non_finite_weights_and_writes_nothing(tmp_path):
    cfg = tiny(tmp_path)
    env = gym.make(cfg.env, **cfg.env_kwargs)
    flatten = ObsFlattener(env.observation_space)
    policy = build_policy(cfg, flatten.dim, action_spec(env.action_space))
    optimizer = torch.optim.Adam(policy.parameters())
    with torch.no_grad():
        policy.critic.bias.fill_(float("-inf"))
    with pytest.raises(ckpt_io.NonFiniteError, match="policy tensor 'critic.bias'"):
        save_checkpoint(cfg, policy, optimizer, tmp_path / "run", flatten,
                        env.observation_space, env.action_space, 16, 1)
    assert not (tmp_path / "run").exists()


def test_finite_weights_whose_outputs_diverge_stop_the_run_in_one_line(tmp_path):
    """After the 3rd update the weights are huge but finite (the weight check passes):
    the LSTM's gates saturate open (h near 1 in every unit) and the actor's weights are
    3e38, so the next rollout's logits overflow to inf, and sampling from them is refused
    in one line, not a traceback from torch's sampler, whatever ran in the process
    before."""
    count = [0]

    def update(learner, rollout):
        parts = a2c_update(learner, rollout)
        count[0] += 1
        if count[0] == 3:
            with torch.no_grad():
                learner.policy.core.cell.bias_ih.fill_(20.0)
                learner.policy.actor.weight.fill_(3e38)
        return parts

    with pytest.raises(ckpt_io.NonFiniteError) as e:
        run_train(tiny(tmp_path), update, progress=False)
    message = str(e.value)
    assert "\n" not in message, message
    assert message.startswith("training diverged at update 4: the discrete action "
                              "distribution has "), message
    assert "non-finite parameter(s) of" in message and "no checkpoint yet" not in message


def test_a_diverging_config_is_one_error_line_and_every_checkpoint_stays_finite(tmp_path):
    """A real divergence: Adam at lr 1e30 blows the weights up within a few updates."""
    out = cli(["--set", f"run_dir={tmp_path}", *sets(TINY),
               "--set", "checkpoint_every=16", "--set", "total_steps=2048",
               "--set", "lr=1e30", "--set", "max_grad_norm=1e30",
               "--set", "lr_schedule=constant"], ROOT)
    assert out.returncode == 1, out.stderr[-2000:]
    assert one_error_line(out.stderr).startswith("error: training diverged at update ")
    (run,) = tmp_path.iterdir()
    steps = []
    for f in (run / "checkpoints").glob("*.pt"):
        ck = ckpt_io.load(f)  # refuses non-finite weights
        assert ckpt_io.first_non_finite(ck["optimizer_state"]) is None
        steps.append(ck["global_step"])
    assert steps and ckpt_io.load(run)["global_step"] == max(steps) < 2048


# -- 3. ordinary mistakes: one line naming the key, nothing created --------------------------
@pytest.mark.parametrize("item, message", [
    ("lr=.inf", "lr: must be a finite number, got inf"),
    ("lr=nan", "lr: must be a finite number, got nan"),
    ("max_grad_norm=nan", "max_grad_norm: must be a finite number, got nan"),
    ("core_config.clip=nan", "core_config.clip: must be a finite number, got nan"),
    ("core_config.forget_bias=.inf", "core_config.forget_bias: must be a finite number"),
    ("env_kwargs.length=[4,.inf]", "env_kwargs.length[1]: must be a finite number, got inf"),
    ("core_config.hidden_size=-4", "core_config.hidden_size: must be a positive integer, got -4"),
    ("core_config.memory_slots=0", "core_config.memory_slots: must be a positive integer, got 0"),
    ("core_config.read_top_k=99",
     "core_config.read_top_k: must be an integer in [0, memory_slots=16]"),
    ("env_kwargs.length=-1", "env_kwargs: dnc/TMaze-v0 refuses"),
    ("env_kwargs.bogus=1", "env_kwargs: dnc/TMaze-v0 has no keyword argument 'bogus'"),
    ("seed=-3", "seed: must be an integer in [0, 2**32 - 1 = 4294967295], got -3"),
    # Finite, but beyond float32 (training's dtype): torch would overflow on them.
    ("lr=1e300", ("lr: must be a finite number within float32 range "
                  "(|x| <= 3.4028234663852886e+38, float32's largest), got 1e+300")),
    ("lr=1e39", "lr: must be a finite number within float32 range"),
    ("lr=3.4028235e38", "lr: must be a finite number within float32 range"),
    ("value_coef=-1e39", "value_coef: must be a finite number within float32 range"),
    ("core_config.forget_bias=1e39", "core_config.forget_bias: must be a finite number within"),
    ("core_config.forget_bias=" + "1" * 400, "core_config.forget_bias: must be a finite number"),
    ("env_kwargs.bump_penalty=-1e39", "env_kwargs.bump_penalty: must be a finite number within"),
    ("env_kwargs.length=[4,1.0e+300]", "env_kwargs.length[1]: must be a finite number within"),
    ("seed=4294967296", "seed: must be an integer in [0, 2**32 - 1 = 4294967295], got 4294967296"),
    ("seed=99999999999999999999", "seed: must be an integer in [0, 2**32 - 1"),
])
def test_config_mistakes_are_one_line_errors_and_create_no_folder(item, message, tmp_path,
                                                                 monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        a2c_main(["--no-progress", "--set", "run_dir=runs", "--set", "num_envs=2",
                  "--set", "rollout_steps=8", "--set", "total_steps=32", "--set", item])
    assert e.value.code == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_a_config_mistake_from_the_command_line_has_no_traceback(tmp_path):
    out = cli(["--set", "run_dir=runs", "--seed", "-3"], tmp_path)
    assert out.returncode == 2
    assert "seed: must be an integer in [0, 2**32 - 1" in one_error_line(out.stderr)
    assert list(tmp_path.iterdir()) == []


def test_the_float32_and_seed_limits_are_inclusive():
    cfg = resolve(None, ["lr=3.4028234663852886e38", "core_config.forget_bias=-3.4e38",
                         f"seed={2**32 - 1}"])
    assert cfg.lr == 3.4028234663852886e38 and cfg.seed == 2**32 - 1
    assert torch.tensor(cfg.lr, dtype=torch.float32).isfinite()


@pytest.mark.parametrize("args, message", [
    (["--seed", "99999999999999999999"], "seed: must be an integer in [0, 2**32 - 1"),
    (["--config", "huge.yaml"], "lr: must be a finite number within float32 range"),
    (["--config", "binary.yaml"], ("config file 'binary.yaml' is not a YAML file: it is "
                                   "not UTF-8 text (byte 0x89 at offset 0)")),
    (["--config", "."], "config file '.' is a folder; expected a YAML file"),
    (["--config", "missing.yaml"], "config file 'missing.yaml' does not exist"),
])
def test_out_of_range_values_and_unreadable_config_files_are_one_line_errors(tmp_path, args,
                                                                            message):
    (tmp_path / "huge.yaml").write_text("{lr: 1e300}\n")
    (tmp_path / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 8)
    before = sorted(tmp_path.iterdir())
    out = cli(["--set", "run_dir=runs", *args], tmp_path)
    assert out.returncode == 2
    assert message in one_error_line(out.stderr)
    assert sorted(tmp_path.iterdir()) == before  # no ./runs, no partial run folder


class ResetRefusesEnv(gym.Env):
    """Constructs fine; ``reset`` refuses ``bad=True`` (a value only a reset can check)."""

    observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, bad: bool = False):
        self.bad = bad

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.bad:
            raise ValueError("bad=True cannot be reset")
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, True, False, {}


if "test/ResetRefuses-v0" not in gym.registry:
    gym.register("test/ResetRefuses-v0", entry_point=ResetRefusesEnv)


def test_no_run_folder_before_the_envs_are_built(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        a2c_main(["--no-progress", "--env", "test/ResetRefuses-v0", "--core", "gru",
                  "--set", "env_kwargs.bad=true", "--set", "run_dir=runs",
                  "--set", "num_envs=2", "--set", "rollout_steps=8"])
    assert e.value.code == 2
    assert "bad=True cannot be reset" in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["0\n", "false\n", "[]\n"])
def test_a_yaml_file_that_is_not_a_mapping_is_not_a_config(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="expected a mapping of keys to values") as e:
        TrainConfig.load(path)
    assert "\n" not in str(e.value)
    path.write_text("# only a comment\n")  # an empty file is the defaults
    assert TrainConfig.load(path) == TrainConfig().validate()


def _missing(name):
    return lambda ck: ck["policy_state"].pop(name)


BROKEN = [  # (break it, message, also refused by --resume)
    (lambda ck: ck["policy_config"].update(core="bogus"),
     "policy_config.core 'bogus' is not one of", True),
    (lambda ck: ck["policy_config"].pop("obs_dim"), "policy_config lacks 'obs_dim'", True),
    (lambda ck: ck.update(policy_config="lstm"), "policy_config is a str, expected a dict", True),
    (lambda ck: ck["policy_config"].update(critic_core="lstm"),
     "policy_config.critic_core is 'lstm', expected None or a dict", True),
    (lambda ck: ck["policy_config"].update(critic_core={"kind": "bogus", "config": {}}),
     "policy_config.critic_core.kind 'bogus' is not one of", True),
    (lambda ck: ck["policy_config"].update(head_layers=0),
     "policy_config.head_layers is 0, expected an integer >= 1", True),
    (lambda ck: ck["policy_config"]["core_config"].update(hidden_size=-4),
     "its policy_config does not build a policy: ValueError: hidden_size must be a positive", False),
    (_missing("actor.weight"),
     "weights do not fit its policy config: tensor 'actor.weight' is missing", False),
    (lambda ck: ck["policy_state"].update({"actor.bias": torch.zeros(7)}),
     "tensor 'actor.bias' has shape [7], the policy expects [3]", False),
    (lambda ck: ck["policy_state"]["critic.weight"].fill_(float("nan")),
     "policy_state['critic.weight'] holds NaN or infinite values", True),
]


@pytest.mark.parametrize("break_it, message, _", BROKEN)
def test_broken_checkpoint_contents_are_one_line_checkpoint_errors(base_run, tmp_path,
                                                                   break_it, message, _):
    ck = torch.load(base_run / "checkpoints" / "latest.pt", weights_only=True)
    break_it(ck)
    path = ckpt_io.atomic_save(ck, tmp_path / "broken.pt")
    with pytest.raises(ckpt_io.CheckpointError) as e:
        ckpt_io.load_policy(path)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("break_it, message", [
    *[(b, m) for b, m, cli_too in BROKEN if cli_too],
    (lambda ck: ck.update(env="NoSuchEnv-v9"),
     "was trained on env 'NoSuchEnv-v9', which is not a registered Gymnasium id"),
    (lambda ck: ck["config"]["core_config"].update(hidden_size=16),  # builds another policy
     ("weights do not fit the policy this config builds: tensor 'core.cell.weight_ih' has "
      "shape [32, 4], the policy expects [64, 4]")),
    (lambda ck: ck.pop("optimizer_state"), "not the training state a resume needs"),
    # The fields only a resume uses: checked before anything is created or changed.
    (lambda ck: ck.update(optimizer_state="x"),
     "cannot be resumed: optimizer_state is str 'x', expected an optimiser state dict"),
    (lambda ck: ck["optimizer_state"].update(state=[1]),
     "cannot be resumed: optimizer_state['state'] is list [1], expected a dict"),
    (lambda ck: ck["optimizer_state"].update(param_groups="x"),
     "optimizer_state['param_groups'] is str 'x', expected a list of dicts"),
    (lambda ck: ck["optimizer_state"]["param_groups"][0].update(eps=float("nan")),
     "optimizer_state['param_groups'][0].eps is NaN or infinite"),
    (lambda ck: ck["optimizer_state"].update(param_groups=[]),
     ("its optimizer_state does not fit the policy: loaded state dict has a different "
      "number of parameter groups")),
    (lambda ck: ck["optimizer_state"]["state"][0].update(exp_avg=torch.zeros(3)),
     ("its optimizer_state does not fit the policy: core.cell.weight_ih.exp_avg is of "
      "shape [3], the parameter's is [32, 4]")),
    (lambda ck: ck["optimizer_state"]["state"][0]["exp_avg"].fill_(float("nan")),
     ("cannot be resumed: optimiser state 'core.cell.weight_ih.exp_avg' holds NaN or "
      "infinite values")),
    (lambda ck: ck["optimizer_state"]["state"][3]["exp_avg_sq"].fill_(float("inf")),
     "cannot be resumed: optimiser state 'core.cell.bias_hh.exp_avg_sq' holds NaN"),
    (lambda ck: ck.update(reward_norm=[1.0]),
     "cannot be resumed: reward_norm is list [1.0], expected None or a dict of mean, var, count"),
    (lambda ck: ck.update(reward_norm={"mean": torch.zeros(1, dtype=torch.float64),
                                       "var": torch.tensor([-1.0], dtype=torch.float64),
                                       "count": torch.tensor(3.0, dtype=torch.float64)}),
     "reward_norm['var'] is Tensor tensor([-1.], dtype=torch.float64), expected a finite "
     "float64 tensor of shape [1] >= 0"),
    (lambda ck: ck.update(reward_norm={"mean": torch.zeros(2, dtype=torch.float64),
                                       "var": torch.ones(1, dtype=torch.float64),
                                       "count": torch.tensor(3.0, dtype=torch.float64)}),
     "reward_norm['mean'] is Tensor tensor([0., 0.], dtype=torch.float64), expected a "
     "finite float64 tensor of shape [1]"),
    (lambda ck: ck.update(episodes="x"), "cannot be resumed: episodes is str 'x', expected a dict"),
    (lambda ck: ck["episodes"].update(count="x"),
     "episodes['count'] is 'x', expected an integer >= 0"),
    (lambda ck: ck["episodes"].update(returns=[1.0, "a"]),
     "episodes['returns'] is list [1.0, 'a'], expected a list of finite numbers"),
    (lambda ck: ck["episodes"].update(successes=[float("nan")]),
     "episodes['successes'] is list [nan], expected a list of finite numbers"),
    (lambda ck: ck.update(torch_rng_state=torch.zeros(3, dtype=torch.uint8)),
     ("torch_rng_state is not a CPU generator state: RuntimeError: Expected a "
      "CPUGeneratorImplState of size")),
    (lambda ck: ck.update(torch_rng_state="x"),
     "torch_rng_state is str 'x', expected a uint8 tensor"),
    (lambda ck: ck.update(torch_rng_state=torch.zeros(5056)),
     "torch_rng_state is Tensor"),
    (lambda ck: ck.update(cuda_rng_state=[1, 2]),
     "cuda_rng_state is list [1, 2], expected None or a uint8 tensor"),
    (lambda ck: ck.update(update="x"), "cannot be resumed: update is 'x', expected an integer >= 0"),
    (lambda ck: ck.update(update=-1), "update is -1, expected an integer >= 0"),
    (lambda ck: ck.update(update=True), "update is True, expected an integer >= 0"),
    (lambda ck: ck["config"].update(lr=1e300), "lr: must be a finite number within float32"),
])
def test_resuming_a_broken_checkpoint_is_one_error_line(base_run, tmp_path, monkeypatch,
                                                        capsys, break_it, message):
    run = copy_run(base_run, tmp_path)
    path = run / "checkpoints" / "latest.pt"
    ck = torch.load(path, weights_only=True)
    break_it(ck)
    for f in (run / "checkpoints").glob("step_*.pt"):
        f.unlink()  # the broken one is the run's only checkpoint
    ckpt_io.atomic_save(ck, path)
    before = snapshot(run)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        a2c_main(["--no-progress", "--resume", str(path), "--total-steps", "160"])
    assert e.value.code == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert snapshot(run) == before


# -- 4. logs and checkpoints after a resume --------------------------------------------------
class Crash(Exception):
    """Stands for the process dying (the 7th update never finishes)."""


def test_metrics_after_a_crash_and_resume_have_each_step_once_and_episodes_continue(tmp_path):
    count = [0]

    def crash_at_7(learner, rollout):
        count[0] += 1
        if count[0] == 7:
            raise Crash
        return a2c_update(learner, rollout)

    cfg = tiny(tmp_path, "checkpoint_every=64")
    with pytest.raises(Crash):
        run_train(cfg, crash_at_7, progress=False)
    (run,) = tmp_path.iterdir()
    rows = metrics(run)
    assert [int(r["global_step"]) for r in rows] == [16, 32, 48, 64, 80, 96]  # 80, 96 unsaved
    at_checkpoint = int(rows[3]["episodes"])
    assert at_checkpoint > 0 and ckpt_io.load(run)["global_step"] == 64
    out = train(cfg, resume=run, progress=False)
    assert out["global_step"] == 128
    rows = metrics(run)
    assert [int(r["global_step"]) for r in rows] == list(range(16, 129, 16))
    episodes = [int(r["episodes"]) for r in rows]
    assert episodes == sorted(episodes) and episodes[-1] >= at_checkpoint
    assert rows[4]["return"] != "nan"  # the rolling figures came back with the checkpoint
    ck = ckpt_io.load(run)
    assert ck["episodes"]["count"] == out["episodes"] == episodes[-1]


def test_resume_takes_the_newest_complete_checkpoint_and_removes_temporaries(base_run, tmp_path,
                                                                           capsys):
    run = copy_run(base_run, tmp_path)
    folder = run / "checkpoints"
    # Killed while writing latest.pt at step 128: step_128 complete, latest.pt from step 96.
    shutil.copy(folder / "step_0000000096.pt", folder / "latest.pt")
    newest = hashlib.sha256((folder / "step_0000000128.pt").read_bytes()).hexdigest()
    leftovers = [folder / ".latest.pt.k2j3h4_q.tmp", folder / ".step_0000000144.pt.x9y8z7.tmp",
                 run / ".metrics.csv.ab12cd.tmp"]
    for f in leftovers:
        f.write_bytes(b"PK\x03\x04 half a file")
    out = train(tiny(tmp_path, "total_steps=160"), resume=run, progress=False)
    assert out["global_step"] == 160 and ckpt_io.load(run)["update"] == 10
    # step_128 was resumed from, never rewritten; each step logged once.
    assert hashlib.sha256((folder / "step_0000000128.pt").read_bytes()).hexdigest() == newest
    assert [int(r["global_step"]) for r in metrics(run)] == list(range(16, 161, 16))
    assert not any(f.exists() for f in leftovers)
    assert f"resuming {folder / 'step_0000000128.pt'} at step 128" in capsys.readouterr().err
    # No latest.pt at all (killed during the first one): the newest step file.
    (folder / "latest.pt").unlink()
    assert ckpt_io.resume_point(run).path == folder / "step_0000000160.pt"


# -- 5. kill -9 at random moments -------------------------------------------------------------
def test_killed_at_random_moments_the_run_resumes_and_loses_no_checkpointed_step(tmp_path):
    """Checkpoints at every update (so kills often land in a checkpoint write); three
    kill -9s at random points; each resume starts at the newest checkpoint on disk."""
    rng = random.Random(14)
    total, per_update = 960, 16
    train_cmd = [sys.executable, "-m", "training.a2c", "--no-progress",
                 *sets([*TINY, f"run_dir={tmp_path / 'runs'}", "checkpoint_every=16",
                        f"total_steps={total}"])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    deadline = time.monotonic() + 120

    def start(cmd, k):
        err = tmp_path / f"stderr{k}.txt"
        with open(err, "w") as f:
            return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=f), err

    def wait_for(condition, proc):
        while not condition():
            assert proc.poll() is None or condition(), "trainer ended early"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    def step_files():
        return list((tmp_path / "runs").glob("*/checkpoints/step_*.pt"))

    proc, err = start(train_cmd, 0)
    kills = 0
    for k in range(1, 4):
        # Kill once a random number more checkpoints exist, a random moment later.
        target = len(step_files()) + rng.randint(1, 8)
        wait_for(lambda t=target, p=proc: len(step_files()) >= t or p.poll() is not None, proc)
        time.sleep(rng.uniform(0.0, 0.03))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        (run,) = (tmp_path / "runs").iterdir()
        steps = [ckpt_io.load(f)["global_step"] for f in (run / "checkpoints").glob("*.pt")]
        expected = max(steps)  # every checkpoint present loads; the newest is resumed
        proc, err = start([sys.executable, "-m", "training.a2c", "--no-progress",
                           "--resume", str(run)], k)
        wait_for(lambda e=err: "resuming" in e.read_text(), proc)
        assert f"at step {expected} in {run}" in err.read_text()
    assert kills == 3, "the run finished before it could be killed three times"
    assert proc.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, err.read_text()

    (run,) = (tmp_path / "runs").iterdir()
    assert ckpt_io.load(run)["global_step"] == total
    for f in (run / "checkpoints").glob("*.pt"):
        ckpt_io.load(f)
    rows = metrics(run)
    assert [int(r["global_step"]) for r in rows] == list(range(per_update, total + 1, per_update))
    episodes = [int(r["episodes"]) for r in rows]
    assert episodes == sorted(episodes)
    assert not list(run.rglob(".*.tmp"))


# -- 6. config.yaml describes the newest checkpoint; resume options ------------------------
def config_yaml(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def test_a_fresh_run_writes_config_yaml_at_start(tmp_path):
    def crash(learner, rollout):
        raise Crash

    cfg = tiny(tmp_path)
    with pytest.raises(Crash):
        run_train(cfg, crash, progress=False)
    (run,) = tmp_path.iterdir()
    assert config_yaml(run) == cfg.to_dict() and not (run / "checkpoints").exists()


def test_a_resume_that_fails_before_its_first_checkpoint_leaves_config_yaml_as_it_was(
        base_run, tmp_path):
    """config.yaml is rewritten with the resumed session's first checkpoint, never at
    start: a resume that crashes, or diverges, first keeps it equal to latest.pt's."""
    run = copy_run(base_run, tmp_path)
    before = (run / "config.yaml").read_bytes()
    assert config_yaml(run) == ckpt_io.load(run)["config"]
    count = [0]

    def crash_at_2(learner, rollout):  # the first checkpoint would come at update 2
        count[0] += 1
        if count[0] == 2:
            raise Crash
        return a2c_update(learner, rollout)

    with pytest.raises(Crash):
        run_train(tiny(tmp_path, "lr=5e-4", "total_steps=2048"), crash_at_2, resume=run,
                  progress=False)
    assert (run / "config.yaml").read_bytes() == before
    assert ckpt_io.load(run)["global_step"] == 128

    # A real divergence after the resume (Adam at lr 1e30): stopped before any checkpoint
    # of it was written; config.yaml still describes latest.pt, not lr 1e30.
    out = cli(["--resume", str(run), *sets(["lr=1e30", "max_grad_norm=1e30",
                                            "lr_schedule=constant", "checkpoint_every=4096"]),
               "--total-steps", "8192"], tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    resuming, line = out.stderr.strip().splitlines()  # the info line, then one error line
    assert resuming.startswith("resuming ") and "Traceback" not in out.stderr
    assert line.startswith("error: training diverged at update ")
    assert f"the last good checkpoint is {str(run / 'checkpoints' / 'latest.pt')!r}" in line
    assert (run / "config.yaml").read_bytes() == before
    assert config_yaml(run) == ckpt_io.load(run)["config"]
    assert ckpt_io.load(run)["global_step"] == 128

    # A resume that saves: config.yaml is the new checkpoint's config.
    out = cli(["--resume", str(run), "--set", "lr=5e-4", "--total-steps", "160"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    ck = ckpt_io.load(run)
    assert ck["global_step"] == 160 and ck["config"]["lr"] == 5e-4
    assert config_yaml(run) == ck["config"]


def test_a_resume_refuses_a_checkpoint_whose_optimiser_state_is_not_finite_and_creates_nothing(
        base_run, tmp_path):
    """Only policy_state used to be checked: a NaN Adam moment was resumed and then named
    "the last good checkpoint" when the run diverged."""
    ck = torch.load(base_run / "checkpoints" / "latest.pt", weights_only=True)
    ck["optimizer_state"]["state"][1]["exp_avg"][0, 0] = float("nan")
    loose = ckpt_io.atomic_save(ck, tmp_path / "loose.pt")  # would start a new run folder
    out = cli(["--resume", str(loose), "--set", f"run_dir={tmp_path / 'new'}",
               "--total-steps", "160"], tmp_path)
    assert out.returncode == 2
    assert ("cannot be resumed: optimiser state 'core.cell.weight_hh.exp_avg' holds NaN or "
            "infinite values") in one_error_line(out.stderr)
    assert not (tmp_path / "new").exists() and sorted(tmp_path.iterdir()) == [loose]
    with pytest.raises(ckpt_io.CheckpointError, match="core.cell.weight_hh.exp_avg"):
        train(tiny(tmp_path / "new2", "total_steps=160"), resume=loose, progress=False)
    assert not (tmp_path / "new2").exists()


def test_run_dir_is_refused_when_a_resume_continues_a_run_folder(base_run, tmp_path):
    run = copy_run(base_run, tmp_path)
    before = snapshot(run)
    for target in (run, run / "checkpoints" / "latest.pt"):
        out = cli(["--resume", str(target), "--set", f"run_dir={tmp_path / 'x'}",
                   "--total-steps", "160"], tmp_path)
        assert out.returncode == 2
        assert (f"error: --resume: run_dir cannot be set when continuing the run folder "
                f"{str(run)!r}: the run continues there") in one_error_line(out.stderr)
    assert snapshot(run) == before and not (tmp_path / "x").exists()
    # A checkpoint file from outside a run starts a new run folder: run_dir places it.
    loose = Path(shutil.copy(run / "checkpoints" / "latest.pt", tmp_path / "loose.pt"))
    out = cli(["--resume", str(loose), "--set", f"run_dir={tmp_path / 'x'}",
               "--total-steps", "144"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (new,) = (tmp_path / "x").iterdir()
    ck = ckpt_io.load(new)
    assert ck["global_step"] == 144 and config_yaml(new) == ck["config"]
    assert ck["config"]["run_dir"] == str(tmp_path / "x")
    assert snapshot(run) == before


@pytest.mark.parametrize("trainer", ["a2c", "ppo"])
def test_the_resume_help_states_the_rule(trainer):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", f"training.{trainer}", "--help"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    text = " ".join(out.stdout.split())
    for part in ("a run folder continues in that folder from its newest complete checkpoint",
                 ("a checkpoint file in <run>/checkpoints continues that run and must be "
                  "its newest"), "any other checkpoint file starts a new run folder",
                 "docs/TRAINING.md"):
        assert part in text, text
