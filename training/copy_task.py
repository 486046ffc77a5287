"""Supervised copy task: the learning check of a memory core (Graves et al. 2016, §"copy").

The model sees L random ``bits``-bit vectors (L uniform in 1..max_length), then a
delimiter flag, then must emit the L vectors in order while its input is blank. Loss is
binary cross-entropy on the output phase only; the figure of merit is the per-bit error
(the fraction of output bits on the wrong side of 0.5).

    python -m training.copy_task                 # DNC, default sizes, until < 1% error
    python -m training.copy_task --core lstm --max-iters 3000   # or --core gru, --core ntm
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm import tqdm

from dnc_core import CORES, make_core

#: The core sizes used unless ``core_config`` says otherwise (other cores: hidden_size 128).
CORE_DEFAULTS = {
    "dnc": {"hidden_size": 64, "memory_slots": 16, "word_size": 16, "read_heads": 1},
    # N = 32 slots: room for sequences of up to 32 vectors without the write head wrapping.
    "ntm": {"hidden_size": 64, "memory_slots": 32, "word_size": 16, "read_heads": 1},
}


@dataclass
class CopyBatch:
    inputs: Tensor  # [B, T, bits + 1]: bits, then the delimiter channel
    targets: Tensor  # [B, T, bits]
    mask: Tensor  # [B, T]: 1 on output steps


def copy_batch(batch: int, bits: int, max_length: int, generator: torch.Generator,
               min_length: int = 1) -> CopyBatch:
    """A padded batch of copy sequences of total length ``2 * max_length + 1``."""
    t_total = 2 * max_length + 1
    lengths = torch.randint(min_length, max_length + 1, (batch,), generator=generator)
    seq = torch.randint(0, 2, (batch, max_length, bits), generator=generator).float()
    steps = torch.arange(max_length)
    seq = seq * (steps[None, :] < lengths[:, None]).unsqueeze(-1)  # zero past each length
    inputs = torch.zeros(batch, t_total, bits + 1)
    targets = torch.zeros(batch, t_total, bits)
    mask = torch.zeros(batch, t_total)
    inputs[:, :max_length, :bits] = seq
    rows = torch.arange(batch)
    inputs[rows, lengths, bits] = 1.0  # delimiter right after each sequence
    for i in range(batch):  # outputs follow the delimiter
        n = int(lengths[i])
        targets[i, n + 1:2 * n + 1] = seq[i, :n]
        mask[i, n + 1:2 * n + 1] = 1.0
    return CopyBatch(inputs, targets, mask)


class CopyModel(nn.Module):
    """A core with a linear read-out of one logit per bit."""

    def __init__(self, core: nn.Module, bits: int):
        super().__init__()
        self.core, self.readout = core, nn.Linear(core.feature_size, bits)

    def forward(self, inputs: Tensor) -> Tensor:
        state = self.core.initial_state(inputs.shape[0])
        features, _ = self.core.unroll(inputs, state)
        return self.readout(features)


def bit_error(logits: Tensor, batch: CopyBatch) -> float:
    """Fraction of output-phase bits predicted wrongly."""
    wrong = ((logits > 0).float() != batch.targets).float().mean(-1)
    return float((wrong * batch.mask).sum() / batch.mask.sum())


def train_copy(core: str = "dnc", bits: int = 8, max_length: int = 8, batch: int = 32,
               lr: float = 3e-3, max_iters: int = 4000, target_error: float = 0.01,
               eval_every: int = 100, eval_batch: int = 512, seed: int = 0,
               progress: bool = True, core_config: dict | None = None) -> dict:
    """Train until the held-out per-bit error is below ``target_error`` (or ``max_iters``).

    Returns a dict with ``error`` (the last held-out per-bit error), ``iters``,
    ``seconds`` and the ``history`` of ``(iteration, error)``.
    """
    torch.manual_seed(seed)
    gen, eval_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 10_000)
    config = dict(CORE_DEFAULTS.get(core, {"hidden_size": 128}))
    config.update(core_config or {})
    model = CopyModel(make_core(core, input_size=bits + 1, **config), bits)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    held_out = copy_batch(eval_batch, bits, max_length, eval_gen)
    history, error, start = [], 1.0, time.perf_counter()
    bar = tqdm(range(1, max_iters + 1), disable=not progress, desc=f"copy[{core}]")
    it = 0
    for it in bar:
        b = copy_batch(batch, bits, max_length, gen)
        logits = model(b.inputs)
        loss = (nn.functional.binary_cross_entropy_with_logits(logits, b.targets, reduction="none")
                .mean(-1) * b.mask).sum() / b.mask.sum()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        if it % eval_every == 0:
            with torch.no_grad():
                error = bit_error(model(held_out.inputs), held_out)
            history.append((it, error))
            bar.set_postfix(loss=f"{loss.item():.3f}", bit_error=f"{error:.4f}")
            if error < target_error:
                break
    return dict(error=error, iters=it, seconds=time.perf_counter() - start, history=history)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--core", choices=list(CORES), default="dnc")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--max-length", type=int, default=8)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--max-iters", type=int, default=4000)
    p.add_argument("--target-error", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    r = train_copy(a.core, a.bits, a.max_length, a.batch, a.lr, a.max_iters, a.target_error,
                   seed=a.seed)
    verdict = "PASS" if r["error"] < a.target_error else "FAIL"
    print(f"copy task [{a.core}] {a.bits}-bit, length 1-{a.max_length}: per-bit error "
          f"{r['error']:.4%} after {r['iters']} iterations, {r['seconds']:.0f} s  -> {verdict} "
          f"(target < {a.target_error:.0%})")
    if verdict == "FAIL":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
