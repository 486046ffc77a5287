"""The trainer end to end: configs, checkpoints, learning, evaluation, resume, spaces,
multi-process training and the command lines."""

import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from gymnasium import spaces

from training import checkpoint as ckpt_io
from training.a2c import train
from training.config import CONFIG_DIR, ConfigError, TrainConfig, resolve
from training.evaluate import evaluate
from training.ppo import train as ppo_train

ROOT = Path(__file__).resolve().parents[1]
# Small and quick: an LSTM on a short T-maze whose wall bumps cost enough that the
# deterministic policy walks straight (see sim/tmaze.py).
QUICK = ["core=lstm", "core_config.hidden_size=32", "env_kwargs.length=4",
         "env_kwargs.bump_penalty=0.1", "threads=1", "stop_at_success=0.95",
         "total_steps=400000", "checkpoint_every=1000000"]


def quick_cfg(tmp_path, *extra):
    return resolve(None, QUICK + [f"run_dir={tmp_path}"] + list(extra))


# -- configuration ------------------------------------------------------------------------
def test_embedded_default_is_the_tmaze_dnc_file_and_every_config_validates():
    assert TrainConfig.load(CONFIG_DIR / "tmaze_dnc.yaml") == TrainConfig().validate()
    assert TrainConfig.load(CONFIG_DIR / "ppo_tmaze_dnc.yaml") == TrainConfig.default("ppo")
    assert resolve(None, [], algo="ppo") == TrainConfig.default("ppo")
    assert TrainConfig().env_kwargs["length"] == [5, 30]  # randomised: no counting
    files = sorted(CONFIG_DIR.glob("*.yaml"))
    assert len(files) >= 2
    for f in files:
        if f.stem.startswith("continual_"):  # a task sequence (training.continual)
            from training.continual import ContinualConfig
            ContinualConfig.load(f)
            continue
        cfg = TrainConfig.load(f)
        row = f.stem.rpartition("_")[2]  # <task>_<core> or <task>_<core>-<label>
        assert row.partition("-")[0] == cfg.core, f"{f.name} trains a {cfg.core} core"


@pytest.mark.parametrize("text, message", [
    ("lr: 0.001\nlearning_rate: 3\n", r"unknown key 'learning_rate'"),
    ("num_env: 4\n", r"unknown key 'num_env' \(did you mean 'num_envs'\?\)"),
    ("lr: fast\n", r"lr: expected float, got str 'fast'"),
    ("num_envs: 2.5\n", r"num_envs: expected int, got float 2.5"),
    ("normalize_obs: 1\n", r"normalize_obs: expected bool, got int 1"),
    ("core_config: {hidden: 3}\n", r"core_config.hidden: unknown option for core 'dnc'"),
    ("core_config: {hidden_size: big}\n", r"core_config.hidden_size: expected int"),
    ("gamma: 1.5\n", r"gamma: must be in \[0, 1\]"),
    ("head_layers: 0\n", r"head_layers: must be >= 1, got 0"),
    ("head_layers: 2\n", r"head_layers: 2 needs head_hidden > 0"),
    ("device: tpu\n", r"device: 'tpu' is not one of"),
    ("env: NoSuchEnv-v9\n", r"env: 'NoSuchEnv-v9' is not a registered Gymnasium id"),
    ("compile: yes please\n", r'compile: expected true, false or "auto", got \'yes please\''),
    ("compile: 1\n", r'compile: expected true, false or "auto", got 1'),
    ("- a\n- b\n", r"expected a mapping"),
    ("lr: [1\n", r"is not valid YAML"),
])
def test_bad_config_files_are_errors_naming_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        TrainConfig.load(path)


def test_compile_auto_compiles_the_memory_cores_on_long_cpu_runs_only(monkeypatch):
    """``compile: auto`` (the default) turns torch.compile on exactly where
    training.bench measured that it pays, and says why; a bool forces it."""
    from training.config import COMPILE_MIN_STEPS, compile_enabled
    assert TrainConfig().compile == "auto" == TrainConfig.default("ppo").compile
    long = resolve(None, [f"total_steps={COMPILE_MIN_STEPS}"])
    for core in ("dnc", "ntm"):
        assert compile_enabled(long.override([f"core={core}"]), "cpu")[0]
    for cfg, device, why in [
            (resolve(None, ["core=lstm"]), "cpu", "off for the lstm core"),
            (resolve(None, ["core=gru"]), "cpu", "off for the gru core"),
            (long, "cuda", "off on cuda"),
            (resolve(None, [f"total_steps={COMPILE_MIN_STEPS - 1}"]), "cpu",
             "off below 50,000 total_steps")]:
        assert compile_enabled(cfg, device) == (False, f"compile: auto, {why}" + (
            " (measured on the CPU only)" if device == "cuda" else ""))
    assert compile_enabled(resolve(None, ["compile=true", "core=lstm"]), "cuda")[0]
    assert not compile_enabled(resolve(None, ["compile=false"]), "cpu")[0]
    monkeypatch.setenv("CXX", "no-such-c++-compiler")  # inductor's compiler, not found
    assert compile_enabled(long, "cpu") == (
        False, "compile: auto, off: no C++ compiler 'no-such-c++-compiler' on the PATH")


def test_compile_chunk_auto_takes_several_steps_per_graph_on_long_runs_only():
    from training.config import CHUNK_MIN_STEPS, COMPILE_CHUNK, compile_chunk
    assert TrainConfig().compile_chunk == "auto"
    assert compile_chunk(resolve(None, [f"total_steps={CHUNK_MIN_STEPS}"])) == (
        COMPILE_CHUNK, f"compile_chunk: auto, {COMPILE_CHUNK} steps per graph "
                       f"(total_steps >= {CHUNK_MIN_STEPS:,})")
    assert compile_chunk(resolve(None, [f"total_steps={CHUNK_MIN_STEPS - 1}"]))[0] == 1
    assert compile_chunk(resolve(None, [f"total_steps={CHUNK_MIN_STEPS}"]), "cuda") == (
        1, "compile_chunk: auto, 1 on cuda (measured on the CPU only)")
    assert compile_chunk(resolve(None, ["compile_chunk=3"])) == (3, "compile_chunk: 3")
    for bad in ("0", "true", "'eight'", "2.5"):
        with pytest.raises(ConfigError, match="compile_chunk: expected an integer >= 1 or "):
            resolve(None, [f"compile_chunk={bad}"])


def test_overrides_and_flags():
    cfg = resolve(None, ["lr=3e-4", "core_config.hidden_size=32", "env_kwargs.length=20"],
                  seed=7, total_steps=1000)
    assert cfg.lr == 3e-4 and cfg.core_config["hidden_size"] == 32
    assert cfg.env_kwargs == {"length": 20, "bump_penalty": 0.1}
    assert cfg.seed == 7 and cfg.total_steps == 1000
    # Switching core or env drops the other one's options instead of failing on them.
    assert resolve(None, [], core="lstm").core_config == {}
    assert resolve(None, [], env="CartPole-v1").env_kwargs == {}
    with pytest.raises(ConfigError, match="unknown key 'lrate'"):
        resolve(None, ["lrate=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        resolve(None, ["lr"])
    with pytest.raises(ConfigError, match="is not a dict-valued key"):
        resolve(None, ["lr.x=1"])
    with pytest.raises(ConfigError, match="does not exist"):
        resolve("no/such/file.yaml")


# -- checkpoints ----------------------------------------------------------------------------
def test_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(ckpt_io.CheckpointError, match="does not exist"):
        ckpt_io.load(tmp_path / "missing.pt")
    with pytest.raises(ckpt_io.CheckpointError, match="has no checkpoints/latest.pt"):
        ckpt_io.load(tmp_path)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ckpt_io.CheckpointError, match="not a dnc-policy checkpoint"):
        ckpt_io.load(foreign)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": ckpt_io.FORMAT, "payload": Path("/etc")}, unsafe)  # an object
    with pytest.raises(ckpt_io.CheckpointError, match="never loaded"):
        ckpt_io.load(unsafe)
    newer = tmp_path / "newer.pt"
    torch.save({"format": ckpt_io.FORMAT, "version": 99}, newer)
    with pytest.raises(ckpt_io.CheckpointError, match="format version 99"):
        ckpt_io.load(newer)
    partial = tmp_path / "partial.pt"
    torch.save({"format": ckpt_io.FORMAT, "version": ckpt_io.VERSION}, partial)
    with pytest.raises(ckpt_io.CheckpointError, match="lacks"):
        ckpt_io.load(partial)


def test_atomic_save_never_leaves_half_a_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    ckpt_io.atomic_save({"x": torch.ones(3)}, path)
    with pytest.raises(Exception):
        ckpt_io.atomic_save({"x": lambda: 0}, path)  # cannot be pickled: save fails
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary left


# -- learning, evaluation, resume -------------------------------------------------------------
TRAINERS = {"a2c": train, "ppo": ppo_train}


@pytest.fixture(scope="module", params=["a2c", "ppo"])
def trained(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    extra = ["update_epochs=4", "num_minibatches=2"] if request.param == "ppo" else []
    cfg = resolve(None, QUICK + [f"run_dir={tmp}"] + extra, algo=request.param)
    result = TRAINERS[cfg.algo](cfg, progress=False)
    return cfg, result


def test_trainer_learns_the_short_tmaze_and_evaluates_deterministically(trained):
    cfg, result = trained
    assert result["success"] >= 0.95  # stopped early on the rolling training success
    run = Path(result["run_dir"])
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert list(run.glob("events.out.tfevents.*")), "TensorBoard events"
    assert yaml.safe_load((run / "config.yaml").read_text()) == cfg.to_dict()
    ev = evaluate(result["run_dir"], episodes=100)
    assert ev["success_rate"] >= 0.9, ev
    # The same episodes give the same results whatever the batch: memory is per row.
    ev1 = evaluate(result["run_dir"], episodes=20, batch=1)
    assert ev1["returns"] == ev["returns"][:20] and ev1["successes"] == ev["successes"][:20]


def test_checkpoint_holds_what_export_needs(trained):
    _, result = trained
    policy, ck = ckpt_io.load_policy(result["checkpoint"])
    assert ck["env"] == "dnc/TMaze-v0" and ck["env_kwargs"]["length"] == 4
    assert ck["observation_space"]["type"] == "Box" and ck["action_space"]["n"] == 3
    assert ck["policy_config"]["core"] == "lstm" and ck["policy_config"]["core_config"]
    assert {"obs_norm.mean", "obs_norm.var", "obs_norm.count"} <= set(ck["policy_state"])
    assert ck["policy_state"]["obs_norm.count"] > 0
    assert {"torch", "gymnasium", "numpy", "dnc_policy"} <= set(ck["versions"])


def test_resume_continues_step_counter_optimiser_and_rng(trained, tmp_path):
    cfg0, result = trained
    fit = TRAINERS[cfg0.algo]
    ck = ckpt_io.load(result["checkpoint"])
    steps, updates = ck["global_step"], ck["update"]
    adam_step = ck["optimizer_state"]["state"][0]["step"]
    extra = 3 * cfg0.num_envs * cfg0.rollout_steps  # three more updates
    steps_per_update = 1 if cfg0.algo == "a2c" else cfg0.update_epochs * cfg0.num_minibatches
    outs = []
    for i in range(2):
        cfg = TrainConfig.from_dict(ck["config"]).override(
            [f"total_steps={steps + extra}", "stop_at_success=0"])
        run = tmp_path / f"resume{i}"
        outs.append(fit(cfg, resume=result["checkpoint"], progress=False, run_dir=run))
        new = ckpt_io.load(outs[-1]["checkpoint"])
        assert new["global_step"] == steps + extra and new["update"] == updates + 3
        assert new["optimizer_state"]["state"][0]["step"] == adam_step + 3 * steps_per_update
        rows = (run / "metrics.csv").read_text().splitlines()
        assert int(rows[-1].split(",")[0]) == steps + extra
    # Same checkpoint, same RNG state and env seeds: the two resumed runs are identical.
    assert outs[0]["param_checksum"] == outs[1]["param_checksum"]
    # ...and the saved RNG state is what drives them: another state, another run.
    other = dict(ck, torch_rng_state=torch.Generator().manual_seed(12345).get_state())
    ckpt_io.atomic_save(other, tmp_path / "other_rng.pt")
    out = fit(cfg, resume=str(tmp_path / "other_rng.pt"), progress=False,
              run_dir=tmp_path / "resume_other")
    assert out["param_checksum"] != outs[0]["param_checksum"]


# -- every kind of space ----------------------------------------------------------------------
class MultiSpaceEnv(gym.Env):
    """MultiBinary observations, MultiDiscrete actions: reward for echoing the bits."""

    def __init__(self):
        self.observation_space = spaces.MultiBinary(3)
        self.action_space = spaces.MultiDiscrete([2, 2, 2])
        self.obs, self.t = None, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.obs = 0, self.np_random.integers(0, 2, 3).astype(np.int8)
        return self.obs, {}

    def step(self, action):
        reward = float((np.asarray(action) == self.obs).mean())
        self.t += 1
        self.obs = self.np_random.integers(0, 2, 3).astype(np.int8)
        return self.obs, reward, self.t >= 5, False, {"is_success": reward == 1.0}


if "test/MultiSpace-v0" not in gym.registry:
    gym.register("test/MultiSpace-v0", entry_point=MultiSpaceEnv)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "FrozenLake-v1", "dnc/MemoryNav-v0",
                                    "dnc/Copy-v0", "test/MultiSpace-v0"])
@pytest.mark.parametrize("core", ["dnc", "lstm", "gru"])
def test_trainer_accepts_every_space_kind(tmp_path, env_id, core):
    cfg = resolve(None, ["threads=1", "num_envs=2", "rollout_steps=8", "total_steps=48",
                         f"run_dir={tmp_path}", "checkpoint_every=16"], env=env_id, core=core)
    result = train(cfg, progress=False)
    assert result["global_step"] == 48
    ev = evaluate(result["checkpoint"], episodes=2, batch=2)
    assert ev["episodes"] == 2 and len(ev["returns"]) == 2


def test_a_module_env_id_trains_evaluates_and_names_its_run_folder_without_the_module(tmp_path):
    """Gymnasium's "module:EnvId" form (POPGym registers its envs on import): the trainer,
    its checkpoint and the evaluator take it; the run folder carries the id alone."""
    env_id = "popgym:popgym-RepeatPreviousEasy-v0"
    cfg = resolve(None, ["threads=1", "num_envs=2", "rollout_steps=8", "total_steps=32",
                         f"run_dir={tmp_path}", "env_kwargs={}"], algo="ppo", env=env_id,
                  core="gru")
    result = ppo_train(cfg, progress=False)
    run = Path(result["run_dir"])
    assert run.parent == tmp_path and run.name.startswith("popgym-RepeatPreviousEasy-v0_gru_")
    assert ckpt_io.load(result["checkpoint"])["env"] == env_id
    ev = evaluate(result["checkpoint"], episodes=2, batch=2)
    assert ev["episodes"] == 2 and ev["lengths"] == [51, 51]  # one deck: 52 cards, 51 steps


def test_a_module_env_id_whose_module_is_missing_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"env: 'nosuchpkg:Thing-v0' is not a registered "
                                          r"Gymnasium id \(the module 'nosuchpkg' of env "):
        resolve(None, [], env="nosuchpkg:Thing-v0")


# -- several processes -----------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["a2c", "ppo"])
def test_torchrun_two_processes_stay_in_sync(tmp_path, algo):
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "DNC_DIST_BACKEND": "gloo", "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", f"training.{algo}",
           "--no-progress", "--core", "lstm", "--total-steps", "4096",
           "--set", "threads=1", "--set", "num_envs=4", "--set", "rollout_steps=16",
           "--set", "stop_at_success=0", "--set", f"run_dir={tmp_path}"]
    if algo == "ppo":  # several minibatch steps and the pooled KL early stop, in sync
        cmd += ["--set", "update_epochs=3", "--set", "target_kl=0.02"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    # The two ranks share stdout, so their lines may interleave mid-line: match, not split.
    sums = dict(re.findall(r"rank (\d): parameter checksum ([-+0-9.eE]+)", out.stdout))
    assert sorted(sums) == ["0", "1"], out.stdout
    assert sums["0"] == sums["1"], out.stdout  # gradients were all-reduced
    ckpts = list(tmp_path.glob("*/checkpoints/latest.pt"))
    assert len(ckpts) == 1 and len(list(tmp_path.iterdir())) == 1  # rank 0 alone writes
    ck = ckpt_io.load(ckpts[0])
    assert ck["global_step"] == 4096 and ck["update"] == 4096 // (4 * 16 * 2)
    # The observation normaliser pooled both ranks' rollouts: it counted every env step of
    # the run (one rank's alone would be half).
    assert float(ck["policy_state"]["obs_norm.count"]) == 4096


# -- command lines -----------------------------------------------------------------------------
def test_cli_errors_name_the_problem(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    out = run("-m", "training.a2c", "--set", "lrr=1")
    assert out.returncode == 2 and "unknown key 'lrr' (did you mean 'lr'?)" in out.stderr
    out = run("-m", "training.evaluate", str(tmp_path / "nothing.pt"))
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = run("-m", "training.a2c", "--resume", str(tmp_path))
    assert out.returncode == 2 and "has no checkpoints/latest.pt" in out.stderr
    out = run("-m", "training.ppo", "--set", "bptt=5")
    assert out.returncode == 2 and "bptt: 5 must divide rollout_steps (32)" in out.stderr
    out = run("-m", "training.a2c", "--set", "algo=ppo")
    assert out.returncode == 2 and "algo: 'ppo' cannot be set on the a2c trainer" in out.stderr
    out = run("-m", "training.a2c", "--set", "env_kwargs.lenght=5")
    assert out.returncode == 2 and "env_kwargs:" in out.stderr and "lenght" in out.stderr
    assert "Traceback" not in out.stderr
    out = run("-m", "training.a2c", "--set", "env_kwargs.length=[30,5]", "--total-steps", "8")
    assert out.returncode == 2 and "env_kwargs: dnc/TMaze-v0 refuses" in out.stderr
    assert "Traceback" not in out.stderr
    ppo_file = tmp_path / "ppo.yaml"
    ppo_file.write_text("algo: ppo\n")
    out = run("-m", "training.a2c", "--config", str(ppo_file))
    assert out.returncode == 2 and "algo is 'ppo', but this is the a2c trainer" in out.stderr


def test_a_checkpoint_resumes_only_with_its_own_trainer_and_policy(trained):
    cfg, result = trained
    other = "ppo" if cfg.algo == "a2c" else "a2c"

    def resume(trainer, *sets):
        return subprocess.run([sys.executable, "-m", f"training.{trainer}", "--resume",
                               result["run_dir"], *sets], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    out = resume(other)
    assert out.returncode == 2
    assert f"was trained by {cfg.algo}; resume it with python -m training.{cfg.algo}" in out.stderr
    out = resume(cfg.algo, "--set", "core_config.hidden_size=8")
    assert out.returncode == 2 and "would change the policy" in out.stderr
    out = resume(cfg.algo, "--set", "separate_critic=true")  # a second core to load
    assert out.returncode == 2 and "'separate_critic=true' would change the policy" in out.stderr
    out = resume(cfg.algo, "--set", "head_layers=2")  # other head modules to load
    assert out.returncode == 2 and "'head_layers=2' would change the policy" in out.stderr


def test_env_and_core_flags_keep_the_sets_for_them():
    cfg = resolve(None, ["core_config.hidden_size=32", "env_kwargs.length=7"], core="lstm")
    assert cfg.core_config == {"hidden_size": 32} and cfg.env_kwargs["length"] == 7
    cfg = resolve(None, ["env_kwargs.sutton_barto_reward=true"], env="CartPole-v1")
    assert cfg.env_kwargs == {"sutton_barto_reward": True}
    with pytest.raises(ConfigError, match="env_kwargs: .*'lenght'"):
        resolve(None, ["env_kwargs.lenght=3"])


def test_async_vector_env_trains_like_sync(tmp_path):
    """Same seeds, same env streams: the async (subprocess) vector env gives the very
    same run as the sync one."""
    results = []
    for mode in ("sync", "async"):
        cfg = resolve(None, ["threads=1", "num_envs=2", "rollout_steps=8", "total_steps=64",
                             "core=lstm", f"vector_env={mode}", f"run_dir={tmp_path / mode}",
                             "stop_at_success=0"])
        results.append(train(cfg, progress=False))
    assert results[0]["param_checksum"] == results[1]["param_checksum"]
    assert results[0]["episodes"] == results[1]["episodes"]


def test_runs_started_together_get_their_own_folders(tmp_path):
    from training.run_files import new_run_dir
    cfg = resolve(None, [f"run_dir={tmp_path}"])
    folders = {new_run_dir(cfg) for _ in range(3)}
    assert len(folders) == 3 and all(f.is_dir() and "_dnc_s1_" in f.name for f in folders)


@pytest.mark.parametrize("algo", ["a2c", "ppo"])
def test_the_default_trains_on_drawn_lengths_and_evaluates_at_others(tmp_path, algo):
    cfg = resolve(None, ["threads=1", "num_envs=2", "rollout_steps=8", "total_steps=32",
                         "num_minibatches=2", f"run_dir={tmp_path}"], algo=algo)
    assert cfg.env_kwargs["length"] == [5, 30] and cfg.algo == algo
    result = TRAINERS[algo](cfg, progress=False)
    ck = ckpt_io.load(result["checkpoint"])
    assert ck["env_kwargs"]["length"] == [5, 30] and ck["config"]["algo"] == algo
    ev = evaluate(result["checkpoint"], episodes=4, batch=2, env_kwargs={"length": 3})
    assert ev["env_kwargs"]["length"] == 3 and max(ev["lengths"]) <= 4 * (3 + 1)


def test_rmsprop_is_deepmind_dncs_and_trains_and_resumes(tmp_path):
    """optimizer: rmsprop trains with RMSProp at deepmind/dnc's settings, stores its
    state in the checkpoint and resumes with it; another name is a one-line error."""
    from training.runner import make_optimizer
    cfg = quick_cfg(tmp_path, "optimizer=rmsprop", "total_steps=1024", "num_envs=4")
    opt = make_optimizer(cfg, [torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.RMSprop)
    g = opt.param_groups[0]
    assert (g["alpha"], g["eps"], g["momentum"], g["lr"]) == (0.9, 1e-10, 0, cfg.lr)
    assert isinstance(make_optimizer(quick_cfg(tmp_path), [torch.nn.Parameter(torch.zeros(1))]),
                      torch.optim.Adam)
    result = train(cfg, progress=False)
    ck = ckpt_io.load(result["checkpoint"])
    state = ck["optimizer_state"]["state"]
    assert state and all(set(s) == {"step", "square_avg"} for s in state.values())
    steps = int(state[0]["step"])
    resumed = train(TrainConfig.from_dict(ck["config"]).override(["total_steps=2048"]),
                    progress=False, resume=result["checkpoint"], run_dir=tmp_path / "resumed")
    new = ckpt_io.load(resumed["checkpoint"])
    assert new["global_step"] == 2048 and new["config"]["optimizer"] == "rmsprop"
    assert int(new["optimizer_state"]["state"][0]["step"]) == 2 * steps  # state carried on
    with pytest.raises(ConfigError, match=r"optimizer: 'sgd' is not one of \['adam', 'rmsprop'\]"):
        quick_cfg(tmp_path, "optimizer=sgd")


def test_training_bench_times_each_variant_in_its_own_process(capsys):
    from training import bench
    out = bench.main(["--algos", "ppo", "--updates", "3", "--warmup", "1", "--repeats", "1",
                      "--variants", "LSTM (eager),GRU (eager)"])
    assert set(out["rates"]) == {"PPO LSTM (eager)", "PPO GRU (eager)"}
    assert all(r > 0 for r in out["rates"].values())
    assert all(m > 50 for m in out["peak_rss_mib"].values())  # torch alone is more
    text = capsys.readouterr().out
    assert "PPO GRU (eager)" in text and "cost/LSTM" in text and "1.00x" in text
    with pytest.raises(SystemExit):
        bench.main(["--variants", "LSTM"])
    assert "--variants: unknown ['LSTM']" in capsys.readouterr().err
    for args, message in [(["--sb3-python", "/nonexistent/python"],
                           "--sb3-python: /nonexistent/python cannot import sb3_contrib"),
                          (["--algos", "a2c", "--sb3-python", sys.executable],
                           "--algos must include ppo")]:
        with pytest.raises(SystemExit):
            bench.main(args)
        assert message in capsys.readouterr().err


def test_the_sb3_baselines_steady_rate_leaves_out_the_warmup_updates(tmp_path):
    """RecurrentPPO's steady rate is timed as training.bench times ours: marks are (env
    steps, time) at the start and after each update, and the first ``warmup`` updates
    (with sb3's set-up before them) are not counted."""
    from training.baseline_sb3 import steady_rate
    marks = [(0, 0.0), (512, 9.0), (1024, 10.0), (1536, 10.5), (2048, 11.0)]
    assert steady_rate(marks, 0) == 2048 / 11.0
    assert steady_rate(marks, 1) == 1536 / 2.0  # the first update's 9 s left out
    assert steady_rate(marks, 3) == 512 / 0.5
    assert steady_rate(marks, 4) is None  # nothing left to time
    # training.bench passes its --warmup + 1: the same window as its steady_rate of our
    # runs, whose metrics.csv has one row after each update (marks[1:])
    from training import bench
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("global_step,wall_s\n" + "".join(f"{s},{t}\n" for s, t in marks[1:]))
    for warmup in range(3):
        assert bench.steady_rate(str(csv_path), warmup) == steady_rate(marks, warmup + 1)


def test_memory_stats_follow_the_cores_debug_state():
    """The memory/ scalars come from what each core names in debug_state (and its
    state_bounds), not from DNC field names: a DNC logs usage and both weightings, an
    NTM its two weightings, an LSTM or GRU nothing."""
    import torch

    from dnc_core import make_core
    from training.runner import memory_stats
    dnc = make_core("dnc", input_size=3, hidden_size=4, memory_slots=4, word_size=2)
    s = dnc.initial_state(2)
    s = s._replace(usage=torch.tensor([[0.9, 0.6, 0.1, 0.0], [1.0, 0.0, 0.0, 0.0]]),
                   write_weights=torch.tensor([[0.5, 0.2, 0.0, 0.0], [0.0, 0.0, 0.1, 0.1]]))
    got = memory_stats(dnc, s)
    assert got == pytest.approx({
        "memory/usage_mean": 0.325, "memory/usage_above_half": 3 / 8,
        "memory/write_weights_focus": 0.3, "memory/write_weights_total": 0.45,
        "memory/read_weights_focus": 0.0, "memory/read_weights_total": 0.0})
    ntm = make_core("ntm", input_size=3, hidden_size=4, memory_slots=4, word_size=2)
    assert sorted(memory_stats(ntm, ntm.reset_state(ntm.initial_state(1), torch.ones(1)))) == [
        "memory/read_weights_focus", "memory/read_weights_total",
        "memory/write_weights_focus", "memory/write_weights_total"]
    for kind in ("lstm", "gru"):
        core = make_core(kind, input_size=3, hidden_size=4)
        assert memory_stats(core, core.initial_state(1)) == {}
