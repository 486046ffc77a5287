"""Where a T-maze policy keeps the cue: ``python -m training.cue_probe CKPT [CKPT ...]
[--length 1000] [--out cue.png]``.

Two episodes of ``dnc/TMaze-v0`` at one corridor ``length`` that differ only in the cue
(goal left, goal right) are fed to the policy side by side, moving forward the whole
corridor (the same observations after the cue: the sequence a successful policy sees).
At every step, for every state tensor the core declares (``state_spec``: a DNC's
controller ``h`` and ``c``, its memory, usage, links, read and write weights and read
vectors; an LSTM's ``h`` and ``c``...), the root-mean-square difference between the two
episodes' values: whatever still differs at step t is all the policy can know about the
cue then. A tensor whose difference decays to ~0 has forgotten it; one that holds it
carries the cue. At the junction the policy's probability of the correct turn in each
episode says whether what is left is enough.

Prints a table per checkpoint (the difference of each tensor at a few steps, and the
junction's correct-turn probabilities) and draws ``--out`` (difference vs step, log
axes, one panel per checkpoint). Deterministic: no sampling, fixed cue seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import sim  # noqa: F401  (registers the dnc/ envs)
from sim.tmaze import FORWARD, LEFT, RIGHT
from training.checkpoint import CheckpointError, load_policy
from training.spaces import ObsFlattener


def cue_observations(length: int, bump_penalty: float = 0.0) -> tuple[np.ndarray, list[int]]:
    """``obs [T, 2, obs_dim]`` of two T-maze episodes walking forward to the junction
    (T = length + 1 observations, the last at the junction), row 0 with the goal on the
    left, row 1 on the right, and the correct turn of each row."""
    rows, turns = [], []
    for want in (0, 1):
        for seed in range(1000):
            env = gym.make("dnc/TMaze-v0", length=length, bump_penalty=bump_penalty)
            obs, _ = env.reset(seed=seed)
            if env.unwrapped._cue == want:
                break
        flat = ObsFlattener(env.observation_space)
        seq = [flat(np.asarray(obs)[None])[0]]
        for _ in range(length):
            obs, _, terminated, truncated, _ = env.step(FORWARD)
            if terminated or truncated:
                raise RuntimeError(f"the T-maze of length {length} ended before its junction")
            seq.append(flat(np.asarray(obs)[None])[0])
        rows.append(np.stack(seq))
        turns.append(LEFT if want == 0 else RIGHT)
    obs = np.stack(rows, 1).astype(np.float32)
    if not np.array_equal(obs[-1, 0], obs[-1, 1]) or np.array_equal(obs[0, 0], obs[0, 1]):
        raise RuntimeError("the two episodes should differ at the cue only")
    return obs, turns


@torch.no_grad()
def probe(checkpoint: str, length: int) -> dict:
    """``{"names": [...], "diff": [T, K] RMS difference per state tensor and step,
    "correct": [p_left_episode, p_right_episode]}`` (the correct turn's probability at
    the junction), ``"label"``: the core and its options."""
    policy, ck = load_policy(checkpoint)
    if ck["env"] != "dnc/TMaze-v0":
        raise ValueError(f"checkpoint {checkpoint!r} was trained on {ck['env']}, not the T-maze")
    obs, turns = cue_observations(length, float(ck["env_kwargs"].get("bump_penalty", 0.0)))
    names = [n for n, _ in policy.state_spec]
    state = policy.initial_state(2)
    reset = torch.ones(2)
    diff = np.zeros((len(obs), len(names)))
    for t, o in enumerate(obs):
        out, state = policy(torch.from_numpy(o), state, reset)
        reset = torch.zeros(2)
        for k, s in enumerate(state):
            d = (s[0] - s[1]).double()
            diff[t, k] = float(d.pow(2).mean().sqrt())
    probs = policy.distribution(out).log_prob(torch.tensor(turns)).exp()
    cfg = policy.core.config()
    options = [k for k in ("masked_lookup", "deallocation", "link_sharpness") if cfg.get(k)]
    label = policy.core.kind + (f" ({', '.join(options)})" if options else "")
    return {"names": names, "diff": diff, "correct": [float(p) for p in probs],
            "label": label, "checkpoint": str(checkpoint)}


def report(r: dict, steps: list[int]) -> str:
    t_max = len(r["diff"]) - 1
    steps = [s for s in steps if s <= t_max] + ([t_max] if t_max not in steps else [])
    lines = [f"{r['checkpoint']}: {r['label']}; correct-turn probability at the junction "
             f"(step {t_max}): goal left {r['correct'][0]:.3f}, goal right {r['correct'][1]:.3f}",
             f"  RMS difference between the two episodes' state, by tensor and step:",
             "  " + f"{'tensor':16}" + "".join(f"{'t=' + str(s):>11}" for s in steps)]
    for k, name in enumerate(r["names"]):
        lines.append("  " + f"{name:16}" + "".join(f"{r['diff'][s, k]:11.2e}" for s in steps))
    return "\n".join(lines)


def plot(results: list[dict], path: Path, length: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(results), 2)
    rows = -(-len(results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.2 * rows), squeeze=False,
                             sharey=True)
    t = np.arange(length + 1) + 1
    for ax, r in zip(axes.flat, results):
        for k, name in enumerate(r["names"]):
            ax.plot(t, np.maximum(r["diff"][:, k], 1e-12), label=name, linewidth=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 100)
        ax.set(xlabel="step + 1 (log)", ylabel="RMS difference, cue left vs right",
               title=f"{r['label']}, {Path(r['checkpoint']).parent.name}\ncorrect turn at "
                     f"the junction: goal left {r['correct'][0]:.2f}, goal right "
                     f"{r['correct'][1]:.2f}")
        ax.title.set_fontsize(8)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right", ncol=2)
    for ax in list(axes.flat)[len(results):]:
        ax.set_visible(False)
    fig.suptitle(f"dnc/TMaze-v0, corridor {length}: what still differs between the two cues",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="checkpoints (.pt) or run folders")
    p.add_argument("--length", type=int, default=1000, help="corridor length (default 1000)")
    p.add_argument("--out", help="PNG of the differences (default: none)")
    a = p.parse_args(argv)
    if not 1 <= a.length <= 100_000:
        p.error(f"--length: expected 1 to 100,000, got {a.length}")
    torch.set_num_threads(1)
    results = []
    for c in a.checkpoints:
        try:
            results.append(probe(c, a.length))
        except (CheckpointError, ValueError) as e:
            p.exit(2, f"error: {e}\n")
        print(report(results[-1], [0, 10, 30, 100, 300, 1000]))
    if a.out:
        plot(results, Path(a.out), a.length)
        print(f"wrote {a.out}")
    return results


if __name__ == "__main__":
    main()
