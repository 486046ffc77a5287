"""``python -m training.visualize``: one recorded episode of a policy (PyTorch checkpoint
or exported ONNX through the runtime), its memory drawn as a PNG and a GIF
(``training.memory_plots``).

The policies are the ones ``test_export.py`` trains with the real trainer and exports,
once per session: "dnc" (a small DNC on a length-3 T-maze), "nav" (an LSTM with Box
actions on MemoryNav) and "gru" (a small GRU on a length-3 T-maze); and
``test_ntm.py``'s small NTM policy on a length-3 T-maze."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import test_ntm
import torch
from PIL import Image

from training import memory_plots, visualize
from training.evaluate import TorchActor, run_episodes

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]

ntm_policy = test_ntm.ntm_policy


def core_sizes(m) -> tuple[int, int, int]:
    cfg = m.contract()["core"]["config"]
    return cfg["memory_slots"], cfg["word_size"], cfg["read_heads"]


def cli(argv, capsys) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    try:
        visualize.main([str(a) for a in argv] + ["--no-progress"])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


# -- recording -----------------------------------------------------------------------------
def test_recorded_arrays_have_the_episode_and_memory_shapes(models):
    m = models("dnc")
    n, w, r = core_sizes(m)
    rec = visualize.record_episode(m.checkpoint, seed=3)
    meta = rec["meta"]
    t = meta["length"]
    assert t >= 1 and meta["source"] == "pt"
    assert meta["env_id"] == "dnc/TMaze-v0" and meta["env_kwargs"]["length"] == 3
    assert meta["terminated"] or meta["truncated"]
    assert rec["obs"].shape == (t, 4) and rec["action"].shape == (t,)
    assert rec["reward"].shape == rec["value"].shape == (t,)
    assert rec["logits"].shape == (t, 3)
    shapes = {"h": (16,), "c": (16,), "memory": (n, w), "usage": (n,), "link": (n, n),
              "precedence": (n,), "read_weights": (r, n), "write_weights": (n,),
              "read_vectors": (r, w)}
    assert meta["state_names"] == list(shapes)
    for name, shape in shapes.items():
        assert rec[f"state.{name}"].shape == (t,) + shape, name
    frames = rec["frames"]
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[0] == t
    assert frames.shape[-1] == 3
    assert np.isclose(meta["return"], rec["reward"].sum())
    # The first observation shows the cue, the later ones do not.
    assert rec["obs"][0, :2].sum() == 1.0 and rec["obs"][1:, :2].sum() == 0.0


def test_memory_invariants_hold_at_every_step(models):
    m = models("dnc")
    rec = visualize.record_episode(m.checkpoint, seed=0, render=False)
    ww, usage = rec["state.write_weights"], rec["state.usage"]
    assert (ww >= -1e-6).all() and (ww.sum(1) <= 1 + 1e-5).all()
    assert (usage >= -1e-6).all() and (usage <= 1 + 1e-6).all()
    rw = rec["state.read_weights"]
    assert (rw >= -1e-6).all() and (rw.sum(-1) <= 1 + 1e-5).all()
    link = rec["state.link"]
    assert np.allclose(np.diagonal(link, axis1=1, axis2=2), 0.0)
    assert (link >= -1e-6).all() and (link <= 1 + 1e-6).all()
    # The state after step 0 is the first step from the zero state: usage before the
    # step was 0, so the usage after it is what was written before it, 0.
    np.testing.assert_allclose(usage[0], 0.0, atol=1e-7)


def test_episode_is_the_one_evaluate_runs_with_the_same_seed(models):
    """Seeding and deterministic actions as in training.evaluate (episode 0 = seed)."""
    m = models("dnc")
    policy, ck = m.load()
    for seed in (0, 5):
        rec = visualize.record_episode(m.checkpoint, seed=seed, render=False)
        ref = run_episodes(TorchActor(policy, 1), ck["env"], ck["env_kwargs"], 1, seed, 1)
        assert rec["meta"]["length"] == ref["lengths"][0]
        assert rec["meta"]["return"] == pytest.approx(ref["returns"][0])
        assert rec["meta"]["success"] == ref["successes"][0]
    # The cue the first observation shows is the one the env draws for that seed.
    env = gym.make(ck["env"], **ck["env_kwargs"])
    for seed in range(6):
        rec = visualize.record_episode(m.onnx, seed=seed, render=False)
        _, info = env.reset(seed=seed)
        assert rec["obs"][0, info["cue"]] == 1.0, seed
    env.close()


def test_checkpoint_and_onnx_recordings_agree(models):
    m = models("dnc")
    for seed in (0, 1, 2):
        pt = visualize.record_episode(m.checkpoint, seed=seed)
        ox = visualize.record_episode(m.onnx, seed=seed)
        assert pt["meta"]["source"] == "pt" and ox["meta"]["source"] == "onnx"
        for key in ("length", "return", "success", "env_id", "env_kwargs", "core",
                    "state_names"):
            assert pt["meta"][key] == ox["meta"][key], key
        assert set(pt) == set(ox)
        np.testing.assert_array_equal(pt["action"], ox["action"])
        np.testing.assert_array_equal(pt["frames"], ox["frames"])
        for k in pt:
            if k not in ("meta", "action", "frames"):
                np.testing.assert_allclose(pt[k], ox[k], atol=1e-4, rtol=0, err_msg=k)


def test_env_override_and_kwargs(models):
    m = models("dnc")
    # The recorded env with a longer corridor: kwargs merged over the recorded ones.
    rec = visualize.record_episode(m.onnx, "dnc/TMaze-v0", {"length": 5}, render=False)
    assert rec["meta"]["env_kwargs"] == {**m.contract()["env"]["kwargs"], "length": 5}
    assert rec["meta"]["length"] >= 6  # at least the corridor and the turn
    rec = visualize.record_episode(m.checkpoint, env_kwargs={"length": 4}, render=False)
    assert rec["meta"]["env_kwargs"]["length"] == 4


def test_sampled_episodes_are_reproducible_from_the_seed(models):
    m = models("dnc")
    a = visualize.record_episode(m.checkpoint, seed=4, deterministic=False, render=False)
    b = visualize.record_episode(m.checkpoint, seed=4, deterministic=False, render=False)
    np.testing.assert_array_equal(a["action"], b["action"])
    np.testing.assert_array_equal(a["state.memory"], b["state.memory"])
    assert not a["meta"]["deterministic"]


# -- pictures ------------------------------------------------------------------------------
def check_png(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 10  # not a blank page
    return im.size


def check_gif(path: Path) -> int:
    with Image.open(path) as im:
        assert im.format == "GIF" and im.is_animated
        frames = im.n_frames
        im.seek(frames - 1)
        im.convert("RGB")
    return frames


@pytest.mark.parametrize("kind", ["checkpoint", "onnx"])
def test_cli_writes_a_png_and_a_gif_with_a_frame_per_step(models, tmp_path, capsys, kind):
    m = models("dnc")
    src = m.checkpoint if kind == "checkpoint" else m.onnx
    code, out, _ = cli([src, "--seed", "1", "--out", tmp_path / "pics"], capsys)
    assert code == 0
    png, gif = tmp_path / "pics" / "memory.png", tmp_path / "pics" / "memory.gif"
    assert f"wrote {png}" in out and f"wrote {gif}" in out
    w, h = check_png(png)
    assert w >= 1000 and h >= 600
    rec = visualize.record_episode(src, seed=1, render=False)
    assert check_gif(gif) == rec["meta"]["length"]
    assert "return" in out and "success" in out


def test_cli_no_gif_and_the_default_output_folder(models, tmp_path, capsys):
    m = models("dnc")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "latest.pt"
    shutil.copy(m.checkpoint, ckpt)
    code, out, _ = cli([ckpt, "--no-gif"], capsys)
    assert code == 0
    assert (run / "pictures" / "memory.png").is_file()
    assert not (run / "pictures" / "memory.gif").exists()
    assert f"wrote {run / 'pictures' / 'memory.png'}" in out
    # A run folder is accepted too, and an .onnx writes next to itself.
    assert visualize.default_out_dir(run) == run / "pictures"
    assert visualize.default_out_dir(run / "policy.onnx") == run / "pictures"


def test_lstm_core_plots_controller_activations(models, tmp_path, capsys):
    m = models("nav")  # LSTM core, Box actions, MemoryNav renders rgb_array
    rec = visualize.record_episode(m.checkpoint, seed=0)
    t = rec["meta"]["length"]
    assert not memory_plots.has_memory(rec)
    assert rec["state.h"].shape == rec["state.c"].shape == (t, 16)
    assert "state.write_weights" not in rec and rec["action_mean"].shape == (t, 2)
    code, _, err = cli([m.onnx, "--out", tmp_path], capsys)
    assert code == 0
    assert "no DNC memory" in err and "h and c" in err
    check_png(tmp_path / "memory.png")
    assert check_gif(tmp_path / "memory.gif") == t


def test_gru_core_plots_its_hidden_state_only(models, tmp_path, capsys):
    m = models("gru")  # GRU core (state h only) on a length-3 T-maze
    rec = visualize.record_episode(m.checkpoint, seed=0)
    t = rec["meta"]["length"]
    assert not memory_plots.has_memory(rec) and rec["meta"]["core"]["kind"] == "gru"
    assert rec["meta"]["state_names"] == ["h"] and rec["state.h"].shape == (t, 16)
    assert "state.c" not in rec and memory_plots.unit_states(rec) == ["h"]
    # The ONNX file through the runtime records the same hidden state.
    rec_onnx = visualize.record_episode(m.onnx, seed=0)
    np.testing.assert_allclose(rec_onnx["state.h"], rec["state.h"], atol=1e-5)
    code, _, err = cli([m.onnx, "--out", tmp_path], capsys)
    assert code == 0
    assert "no DNC memory" in err and "its h activations" in err and "h and c" not in err
    check_png(tmp_path / "memory.png")
    assert check_gif(tmp_path / "memory.gif") == t


# -- errors --------------------------------------------------------------------------------
def test_bad_inputs_exit_2_with_a_message_naming_the_problem(models, tmp_path, capsys):
    m = models("dnc")
    missing = tmp_path / "nope.pt"
    code, _, err = cli([missing], capsys)
    assert code == 2 and str(missing) in err and "does not exist" in err

    bad_pt = tmp_path / "corrupt.pt"
    bad_pt.write_bytes(b"\x00garbage" * 10)
    code, _, err = cli([bad_pt], capsys)
    assert code == 2 and str(bad_pt) in err and "could not be read" in err

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(m.checkpoint.read_bytes()[:2000])
    code, _, err = cli([truncated], capsys)
    assert code == 2 and str(truncated) in err

    bad_onnx = tmp_path / "corrupt.onnx"
    bad_onnx.write_bytes(b"not an onnx model")
    code, _, err = cli([bad_onnx], capsys)
    assert code == 2 and str(bad_onnx) in err and "not a loadable ONNX model" in err

    code, _, err = cli([m.checkpoint, "--env", "dnc/NoSuchEnv-v0"], capsys)
    assert code == 2 and "unknown env id 'dnc/NoSuchEnv-v0'" in err

    code, _, err = cli([m.onnx, "--env-kwargs", "{length: 3"], capsys)
    assert code == 2 and "--env-kwargs is not valid JSON" in err

    code, _, err = cli([m.checkpoint, "--env-kwargs", json.dumps({"length": -1})], capsys)
    assert code == 2 and "could not make env 'dnc/TMaze-v0'" in err and "length" in err

    code, _, err = cli([m.checkpoint, "--env", "dnc/MemoryNav-v0"], capsys)
    assert code == 2 and "'dnc/MemoryNav-v0'" in err and "takes 4" in err
    assert not any(tmp_path.rglob("*.png"))


def test_module_entry_point(models, tmp_path):
    """``python -m training.visualize`` itself: an error exits 2, a run writes files."""
    m = models("dnc")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "training.visualize"]
    p = subprocess.run(base + [str(tmp_path / "missing.onnx")], check=False,
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert p.returncode == 2 and "missing.onnx" in p.stderr and "does not exist" in p.stderr
    p = subprocess.run(base + [str(m.onnx), "--out", str(tmp_path), "--no-progress"],
                       check=False, capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"wrote {tmp_path / 'memory.png'}" in p.stdout
    assert f"wrote {tmp_path / 'memory.gif'}" in p.stdout



# -- the NTM -------------------------------------------------------------------------------
def drawn(fig) -> dict[str, np.ndarray]:
    """The array each named heatmap of a figure draws: ``{gid: image array}``."""
    return {ax.get_gid(): np.asarray(ax.images[0].get_array()) for ax in fig.axes
            if ax.get_gid() and ax.images}


def replay_ntm_addressing(policy, rec: dict) -> tuple[np.ndarray, np.ndarray]:
    """The write and read weights each step's addressing gives from the recorded state
    before it (the core's initial state at step 0), with the core's own commands of that
    step but the *recorded* shift distributions in place of its own: they reproduce the
    recorded weights only if the recorded shifts are the ones the step applied."""
    from dnc_core.ntm import address

    core = policy.core
    init = core.initial_state(1)
    mem0, ww0, rw0 = (init.memory[0].numpy(), init.write_weights[0].numpy(),
                      init.read_weights[0].numpy())
    t_len = rec["meta"]["length"]
    out_w, out_r = [], []
    with torch.no_grad():
        for t in range(t_len):
            prev_mem = torch.from_numpy(rec["state.memory"][t - 1] if t else mem0)[None]
            prev_w = torch.from_numpy(rec["state.write_weights"][t - 1] if t else ww0)[None]
            prev_r = torch.from_numpy(rec["state.read_weights"][t - 1] if t else rw0)[None]
            cmd = core.commands(torch.from_numpy(rec["state.h"][t])[None])
            write = cmd.write._replace(
                shift=torch.from_numpy(rec["ntm.write_shift"][t])[None, None])
            read = cmd.read._replace(shift=torch.from_numpy(rec["ntm.read_shift"][t])[None])
            out_w.append(address(prev_mem, prev_w[:, None], write)[0, 0].numpy())
            new_mem = torch.from_numpy(rec["state.memory"][t])[None]
            out_r.append(address(new_mem, prev_r, read)[0].numpy())
    return np.stack(out_w), np.stack(out_r)


@pytest.mark.parametrize("kind", ["checkpoint", "onnx"])
def test_ntm_episode_records_its_weights_and_the_shifts_that_made_them(ntm_policy, kind):
    src = ntm_policy.checkpoint if kind == "checkpoint" else ntm_policy.onnx
    rec = visualize.record_episode(src, seed=1, render=False)
    t = rec["meta"]["length"]
    cfg = ntm_policy.contract()["core"]["config"]
    n, w, r, s = cfg["memory_slots"], cfg["word_size"], cfg["read_heads"], cfg["shift_range"]
    assert rec["meta"]["core"]["kind"] == "ntm" and memory_plots.memory_kind(rec) == "ntm"
    assert memory_plots.has_memory(rec)
    shapes = {"h": (16,), "c": (16,), "memory": (n, w), "read_weights": (r, n),
              "write_weights": (n,), "read_vectors": (r, w)}
    assert rec["meta"]["state_names"] == list(shapes)
    for name, shape in shapes.items():
        assert rec[f"state.{name}"].shape == (t,) + shape, name
    assert rec["ntm.write_shift"].shape == (t, s) and rec["ntm.read_shift"].shape == (t, r, s)
    for key in ("ntm.write_shift", "ntm.read_shift", "state.write_weights",
                "state.read_weights"):  # distributions
        assert (rec[key] >= 0).all(), key
        np.testing.assert_allclose(rec[key].sum(-1), 1.0, atol=1e-5, err_msg=key)
    policy, _ = ntm_policy.load()
    want_w, want_r = replay_ntm_addressing(policy, rec)
    np.testing.assert_allclose(want_w, rec["state.write_weights"], atol=1e-5)
    np.testing.assert_allclose(want_r, rec["state.read_weights"], atol=1e-5)
    # A shift the step did not apply (one step late) does not reproduce the weights.
    late = {**rec, "ntm.write_shift": np.roll(rec["ntm.write_shift"], 1, axis=0),
            "ntm.read_shift": np.roll(rec["ntm.read_shift"], 1, axis=0)}
    assert not np.allclose(replay_ntm_addressing(policy, late)[0], rec["state.write_weights"],
                           atol=1e-5)


def test_ntm_checkpoint_and_onnx_recordings_agree(ntm_policy):
    for seed in (0, 1):
        pt = visualize.record_episode(ntm_policy.checkpoint, seed=seed)
        ox = visualize.record_episode(ntm_policy.onnx, seed=seed)
        assert set(pt) == set(ox) and pt["meta"]["length"] == ox["meta"]["length"]
        np.testing.assert_array_equal(pt["action"], ox["action"])
        for k in pt:
            if k not in ("meta", "action", "frames"):
                np.testing.assert_allclose(pt[k], ox[k], atol=1e-5, rtol=0, err_msg=k)


@pytest.mark.parametrize("kind", ["checkpoint", "onnx"])
def test_ntm_picture_draws_the_recorded_weights_shifts_and_memory(ntm_policy, tmp_path,
                                                                  kind):
    import matplotlib.pyplot as plt

    src = ntm_policy.checkpoint if kind == "checkpoint" else ntm_policy.onnx
    rec = visualize.record_episode(src, seed=1, render=False)
    fig = memory_plots.memory_figure(rec)
    try:
        d = drawn(fig)
        r = rec["state.read_weights"].shape[1]
        assert set(d) == {"obs", "action", "write", "write_shift", "memory"} | {
            f"read{i}" for i in range(r)} | {f"read{i}_shift" for i in range(r)}
        np.testing.assert_array_equal(d["write"], rec["state.write_weights"].T)
        np.testing.assert_array_equal(d["write_shift"], rec["ntm.write_shift"].T)
        for i in range(r):
            np.testing.assert_array_equal(d[f"read{i}"], rec["state.read_weights"][:, i].T)
            np.testing.assert_array_equal(d[f"read{i}_shift"], rec["ntm.read_shift"][:, i].T)
        np.testing.assert_array_equal(d["memory"], rec["state.memory"][-1])
        # The episode's mean shift distributions, one bar per head and offset.
        ax = next(a for a in fig.axes if a.get_gid() == "mean_shift")
        heights = np.array([p.get_height() for p in ax.patches]).reshape(1 + r, -1)
        want = np.concatenate([rec["ntm.write_shift"][None],
                               rec["ntm.read_shift"].transpose(1, 0, 2)])
        np.testing.assert_allclose(heights, want.mean(1), atol=1e-6)
        labels = [lab.get_text() for lab in next(a for a in fig.axes if a.get_gid()
                                                 == "write_shift").get_yticklabels()]
        assert labels == ["-1", "+0", "+1"]
    finally:
        plt.close(fig)
    check_png(memory_plots.plot_memory(rec, tmp_path / "ntm.png"))


@pytest.mark.parametrize("kind", ["checkpoint", "onnx"])
def test_ntm_cli_draws_memory_without_the_no_memory_note(ntm_policy, tmp_path, capsys, kind):
    src = ntm_policy.checkpoint if kind == "checkpoint" else ntm_policy.onnx
    code, out, err = cli([src, "--seed", "1", "--out", tmp_path], capsys)
    assert code == 0, err
    assert "no DNC memory" not in err and "note:" not in err
    png, gif = tmp_path / "memory.png", tmp_path / "memory.gif"
    assert f"wrote {png}" in out and f"wrote {gif}" in out
    w, h = check_png(png)
    assert w >= 1000 and h >= 600
    rec = visualize.record_episode(src, seed=1, render=False)
    assert check_gif(gif) == rec["meta"]["length"]


def test_ntm_interface_weights_missing_from_an_onnx_file_is_a_clear_error(ntm_policy, models):
    cfg = ntm_policy.contract()["core"]["config"]
    core = visualize.ntm_core_from_onnx(ntm_policy.onnx, cfg)
    policy, _ = ntm_policy.load()
    torch.testing.assert_close(core.interface.weight, policy.core.interface.weight)
    torch.testing.assert_close(core.interface.bias, policy.core.interface.bias)
    with pytest.raises(visualize.VisualizeError, match="cannot find the NTM's interface weight"):
        visualize.ntm_core_from_onnx(models("dnc").onnx, cfg)
