"""Learning check: the DNC learns the copy task (8-bit vectors, length 1-8) to < 1% error."""

import torch

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
