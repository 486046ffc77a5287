"""Learning checks: the DNC learns the copy task (8-bit vectors, length 1-8) and the NTM
the copy task of issue 13 (8-bit vectors, length 1-20) to < 1% error; the NTM's copy
episode drawn (``python -m training.copy_task --plot``)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from training import copy_task
from training.copy_task import bit_error, copy_batch, train_copy


def test_copy_batches_are_well_formed():
    g = torch.Generator().manual_seed(0)
    b = copy_batch(16, 8, 8, g)
    assert b.inputs.shape == (16, 17, 9) and b.targets.shape == (16, 17, 8)
    for i in range(16):
        n = int(b.mask[i].sum())
        assert 1 <= n <= 8
        assert b.inputs[i, n, 8] == 1 and b.inputs[i, :, 8].sum() == 1  # one delimiter
        torch.testing.assert_close(b.targets[i, n + 1:2 * n + 1], b.inputs[i, :n, :8])
        assert b.inputs[i, n + 1:].abs().sum() == 0  # blank while answering
    perfect = (b.targets * 2 - 1) * 10
    assert bit_error(perfect, b) == 0.0 and bit_error(-perfect, b) == 1.0


def test_dnc_learns_the_copy_task():
    torch.set_num_threads(2)
    result = train_copy("dnc", bits=8, max_length=8, max_iters=3000, progress=False, seed=0)
    # Held-out per-bit error on 512 fresh sequences.
    assert result["error"] < 0.01, result["history"][-5:]


@pytest.mark.slow
def test_ntm_learns_the_copy_task_on_lengths_1_to_20():
    """``python -m training.copy_task --core ntm``'s defaults: 8-bit vectors, lengths 1-20.
    Seed 0 is below 1% after 400 iterations (seeds 0-4: 300-750); the budget is 1000."""
    torch.set_num_threads(1)
    result = train_copy("ntm", max_iters=1000, progress=False, seed=0)
    assert result["settings"]["max_length"] == 20
    # Held-out per-bit error on 512 fresh sequences.
    assert result["error"] < 0.01, result["history"][-5:]


def test_ntm_copy_episode_is_recorded_and_drawn_as_it_ran(tmp_path, capsys):
    """A few iterations only: the episode's arrays are the model's own (its output equals
    the batched forward pass), and each heatmap draws exactly the recorded array."""
    torch.set_num_threads(1)
    assert copy_task.train_defaults("ntm")["max_length"] == 20
    model = train_copy("ntm", bits=4, max_length=3, batch=4, max_iters=2, eval_batch=8,
                       progress=False, core_config={"memory_slots": 8})["model"]
    rec = copy_task.record_copy_episode(model, bits=4, length=3, seed=5)
    t = 2 * 3 + 1
    assert rec["inputs"].shape == (t, 5) and rec["mask"].sum() == 3
    assert rec["state.write_weights"].shape == (t, 8) and rec["state.read_weights"].shape == (t, 1, 8)
    assert rec["ntm.write_shift"].shape == (t, 3) and rec["ntm.read_shift"].shape == (t, 1, 3)
    with torch.no_grad():
        probs = torch.sigmoid(model(torch.from_numpy(rec["inputs"])[None]))[0].numpy()
    np.testing.assert_allclose(rec["probs"], probs, atol=1e-6)
    fig = copy_task.copy_figure(rec)
    try:
        d = {ax.get_gid(): np.asarray(ax.images[0].get_array()) for ax in fig.axes
             if ax.get_gid() and ax.images}
        assert set(d) == {"inputs", "write", "read0", "write_shift", "read0_shift", "targets",
                          "output"}
        np.testing.assert_array_equal(d["write"], rec["state.write_weights"].T)
        np.testing.assert_array_equal(d["read0"], rec["state.read_weights"][:, 0].T)
        np.testing.assert_array_equal(d["write_shift"], rec["ntm.write_shift"].T)
        np.testing.assert_array_equal(d["read0_shift"], rec["ntm.read_shift"][:, 0].T)
        np.testing.assert_array_equal(d["inputs"], rec["inputs"].T)
    finally:
        plt.close(fig)

    png = tmp_path / "pics" / "copy.png"
    with pytest.raises(SystemExit) as e:  # 2 iterations: the check fails, the picture is drawn
        copy_task.main(["--core", "ntm", "--bits", "4", "--max-length", "3", "--max-iters", "2",
                        "--threads", "1", "--plot", str(png)])
    assert e.value.code == 1
    out = capsys.readouterr().out
    assert "length 1-3" in out and "FAIL" in out and f"wrote {png}" in out
    with Image.open(png) as im:
        assert im.format == "PNG" and np.asarray(im.convert("RGB")).std() > 10
    with pytest.raises(SystemExit) as e:
        copy_task.main(["--core", "lstm", "--plot", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "--plot draws read and write weights" in capsys.readouterr().err
