"""Supervised copy task: the learning check of a memory core (Graves et al. 2016, §"copy").

The model sees L random ``bits``-bit vectors (L uniform in 1..max_length), then a
delimiter flag, then must emit the L vectors in order while its input is blank. Loss is
binary cross-entropy on the output phase only; the figure of merit is the per-bit error
(the fraction of output bits on the wrong side of 0.5).

    python -m training.copy_task                 # DNC, default sizes, until < 1% error
    python -m training.copy_task --core ntm      # NTM: lengths 1-20 (issue 13), < 1% error
    python -m training.copy_task --core lstm --max-iters 3000   # or --core gru
    python -m training.copy_task --core ntm --plot docs/results/ntm_copy_weights.png

The maximum length, learning rate, gradient clipping and iteration budget default per
core (``TRAIN_DEFAULTS``); the flags override them. ``--plot`` draws, after training, the
write and read weights (and for an NTM the heads' shift distributions) over one fresh
sequence of the maximum length.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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

#: Training settings where ``train_copy``'s arguments (the command line's flags) leave them
#: unset; other cores get ``OTHER_TRAIN_DEFAULTS``.
TRAIN_DEFAULTS = {
    # The NTM's copy task is issue 13's acceptance: lengths 1-20. With the gradient norm
    # clipped to 10 (the DNC's setting) it reached 4% error at lr 3e-3 and then diverged
    # (seed 0), and took 1250 iterations at lr 1e-3; clipped to 1 at lr 3e-3 it is below
    # 1% after 400, 300, 300, 750, 450 iterations for seeds 0-4 (40-90 s on one CPU thread).
    "ntm": {"max_length": 20, "lr": 3e-3, "grad_clip": 1.0, "max_iters": 2000},
}
OTHER_TRAIN_DEFAULTS = {"max_length": 8, "lr": 3e-3, "grad_clip": 10.0, "max_iters": 4000}


def train_defaults(core: str) -> dict:
    """The copy-task training settings of ``core`` (see ``TRAIN_DEFAULTS``)."""
    return dict(TRAIN_DEFAULTS.get(core, OTHER_TRAIN_DEFAULTS))


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


def train_copy(core: str = "dnc", bits: int = 8, max_length: int | None = None,
               batch: int = 32, lr: float | None = None, max_iters: int | None = None,
               target_error: float = 0.01, eval_every: int = 100, eval_batch: int = 512,
               seed: int = 0, progress: bool = True, core_config: dict | None = None,
               grad_clip: float | None = None) -> dict:
    """Train until the held-out per-bit error is below ``target_error`` (or ``max_iters``).

    ``max_length``, ``lr``, ``max_iters`` and ``grad_clip`` (the gradient-norm clip)
    default to the core's :func:`train_defaults`.

    Returns a dict with ``error`` (the last held-out per-bit error), ``iters``,
    ``seconds``, the ``history`` of ``(iteration, error)``, the trained ``model`` and the
    ``settings`` used (``max_length``, ``lr``, ``max_iters``, ``grad_clip``, ``batch``).
    """
    given = {"max_length": max_length, "lr": lr, "max_iters": max_iters, "grad_clip": grad_clip}
    settings = {**train_defaults(core), **{k: v for k, v in given.items() if v is not None}}
    max_length, lr, max_iters, grad_clip = (settings[k] for k in given)
    settings["batch"] = batch
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
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        if it % eval_every == 0 or it == max_iters:  # and the last one
            with torch.no_grad():
                error = bit_error(model(held_out.inputs), held_out)
            history.append((it, error))
            bar.set_postfix(loss=f"{loss.item():.3f}", bit_error=f"{error:.4f}")
            if error < target_error:
                break
    return {"error": error, "iters": it, "seconds": time.perf_counter() - start,
            "history": history, "model": model, "settings": settings}


# -- one episode, drawn ------------------------------------------------------------------
def record_copy_episode(model: CopyModel, bits: int, length: int, seed: int = 0) -> dict:
    """One fresh copy sequence of exactly ``length`` vectors through a trained model, one
    step at a time (T = 2·length + 1 steps). Returns ``inputs [T, bits + 1]``,
    ``targets [T, bits]``, ``mask [T]``, ``probs [T, bits]`` (the model's output
    probabilities), ``error`` (its per-bit error on this sequence), ``state.<name>
    [T, ...]`` (the core's state after each step), for an NTM ``ntm.write_shift [T, S]``
    and ``ntm.read_shift [T, R, S]`` (:func:`training.visualize.ntm_commands`), and
    ``core`` (kind and config)."""
    from training.visualize import ntm_commands

    b = copy_batch(1, bits, length, torch.Generator().manual_seed(seed), min_length=length)
    core = model.core
    names = [n for n, _ in core.state_spec]
    state, states, logits = core.initial_state(1), {n: [] for n in names}, []
    with torch.no_grad():
        for t in range(b.inputs.shape[1]):
            features, state = core.step(b.inputs[:, t], state)
            logits.append(model.readout(features))
            for n, v in zip(names, state):
                states[n].append(v[0].numpy().copy())
    logits = torch.cat(logits).unsqueeze(0)  # [1, T, bits]
    rec = {"inputs": b.inputs[0].numpy(), "targets": b.targets[0].numpy(),
           "mask": b.mask[0].numpy(), "probs": torch.sigmoid(logits)[0].numpy(),
           "error": bit_error(logits, b), "core": {"kind": core.kind, "config": core.config()}}
    rec.update({f"state.{n}": np.stack(v) for n, v in states.items()})
    if core.kind == "ntm":
        rec.update(ntm_commands(core, rec["state.h"]))
    return rec


def copy_figure(rec: dict, caption: str = ""):
    """The episode of :func:`record_copy_episode` as a figure (the caller closes it):
    the input, the write weights, each read head's weights, for an NTM each head's shift
    distribution, the target and the output. Each heatmap's axes carry a ``gid``
    (``"inputs"``, ``"write"``, ``"read0"``, ``"write_shift"``, ``"read0_shift"``,
    ``"targets"``, ``"output"``): the drawn array is ``ax.images[0].get_array()``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnc_core.addressing import shift_offsets

    ww, rw = rec["state.write_weights"], rec["state.read_weights"]
    t_len, n = ww.shape
    length = int(rec["mask"].sum())
    rows = [("inputs", "input (bits, then the delimiter channel)", rec["inputs"].T, "Greys")]
    rows.append(("write", "write weights (slot × step)", ww.T, "viridis"))
    rows += [(f"read{i}", f"read weights of read head {i} (slot × step)", rw[:, i].T, "magma")
             for i in range(rw.shape[1])]
    if "ntm.write_shift" in rec:
        rows.append(("write_shift", "shift distribution of the write head (offset × step)",
                     rec["ntm.write_shift"].T, "Greens"))
        rows += [(f"read{i}_shift", f"shift distribution of read head {i} (offset × step)",
                  rec["ntm.read_shift"][:, i].T, "Greens") for i in range(rw.shape[1])]
    rows.append(("targets", "target", (rec["targets"] * rec["mask"][:, None]).T, "Greys"))
    rows.append(("output", "output probability (red: a wrong bit)",
                 (rec["probs"] * rec["mask"][:, None]).T, "Greys"))
    heights = [max(1.0, 0.09 * a.shape[0]) for _, _, a, _ in rows]
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 1.2 + 0.75 * sum(heights)), dpi=100,
                             sharex=True, gridspec_kw={"height_ratios": heights, "hspace": 0.55},
                             squeeze=False)
    for ax, (gid, title, arr, cmap) in zip(axes[:, 0], rows):
        ax.set_gid(gid)
        im = ax.imshow(arr, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0, vmax=1,
                       extent=(-0.5, t_len - 0.5, arr.shape[0] - 0.5, -0.5))
        fig.colorbar(im, ax=ax, pad=0.01, fraction=0.02)
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(axis="y", labelsize=6)
        for x in (length - 0.5, length + 0.5):  # the delimiter step
            ax.axvline(x, color="tab:red", lw=0.6, alpha=0.6)
        if gid.endswith("_shift"):
            ax.set_yticks(range(arr.shape[0]))
            ax.set_yticklabels([f"{o:+d}" for o in shift_offsets(arr.shape[0])])
            ax.set_ylabel("offset", fontsize=8)
        elif gid == "write" or gid.startswith("read"):
            ax.set_yticks(range(0, n, max(1, -(-n // 16))))
            ax.set_ylabel("slot", fontsize=8)
        else:
            ax.set_ylabel("bit", fontsize=8)
    wrong = ((rec["probs"] > 0.5) != (rec["targets"] > 0.5)) & (rec["mask"][:, None] > 0)
    tt, bb = np.nonzero(wrong)
    axes[-1, 0].plot(tt, bb, "s", mfc="none", mec="tab:red", ms=5)
    axes[-1, 0].set_xlabel("step t (the red lines frame the delimiter step)")
    cfg, kind = rec["core"]["config"], rec["core"]["kind"].upper()
    sizes = ", ".join(f"{k}={cfg[k]}" for k in ("memory_slots", "word_size", "read_heads",
                                                "shift_range", "hidden_size") if k in cfg)
    fig.suptitle(f"copy task, {kind} ({sizes}): one fresh sequence of {length} "
                 f"{rec['targets'].shape[1]}-bit vectors, per-bit error "
                 f"{rec['error']:.2%} on it" + (f"\n{caption}" if caption else ""), fontsize=10)
    return fig


def plot_copy_episode(rec: dict, path: str | Path, caption: str = "") -> Path:
    """:func:`copy_figure` saved as a PNG."""
    import matplotlib.pyplot as plt

    fig = copy_figure(rec, caption)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--core", choices=list(CORES), default="dnc")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--max-length", type=int, default=None,
                   help="sequence lengths 1..this (default per core: ntm 20, others 8)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=None, help="Adam's learning rate "
                   "(default per core: 3e-3)")
    p.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm "
                   "to this (default per core: ntm 1, others 10)")
    p.add_argument("--max-iters", type=int, default=None,
                   help="iteration budget (default per core: ntm 2000, others 4000)")
    p.add_argument("--target-error", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--plot", metavar="PNG", help="after training, draw the write and read "
                   "weights over one fresh sequence of the maximum length (dnc, ntm)")
    a = p.parse_args(argv)
    if a.plot and a.core not in ("dnc", "ntm"):
        p.error(f"--plot draws read and write weights: the {a.core} core has none "
                "(use --core dnc or --core ntm)")
    torch.set_num_threads(a.threads)
    r = train_copy(a.core, a.bits, a.max_length, a.batch, a.lr, a.max_iters, a.target_error,
                   seed=a.seed, grad_clip=a.grad_clip)
    verdict = "PASS" if r["error"] < a.target_error else "FAIL"
    length = r["settings"]["max_length"]
    line = (f"copy task [{a.core}] {a.bits}-bit, length 1-{length}: per-bit error "
            f"{r['error']:.4%} after {r['iters']} iterations, {r['seconds']:.0f} s")
    print(f"{line}  -> {verdict} (target < {a.target_error:.0%})")
    if a.plot:
        rec = record_copy_episode(r["model"], a.bits, length, seed=a.seed + 20_000)
        cmd = "python -m training.copy_task " + " ".join(argv if argv is not None
                                                         else sys.argv[1:])
        print(f"wrote {plot_copy_episode(rec, a.plot, f'{line}; {cmd}')}")
    if verdict == "FAIL":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
