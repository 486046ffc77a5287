"""Record one episode of a policy and draw what its memory did:
``python -m training.visualize CKPT_OR_ONNX [--env ID] [--env-kwargs JSON] [--seed 0]
[--out DIR] [--gif/--no-gif] [--deterministic/--no-deterministic]``.

Writes ``memory.png`` (over the steps of the episode: the observation, the action
probabilities and the action taken, the reward; for a DNC core the write weights and the
write intensity, the read weights of each read head, the usage, and at the end of the
episode the temporal link matrix and the memory; for an NTM core the write weights and
the write head's shift distribution, each read head's weights and shift distribution,
the memory at the end and the shift distributions averaged over the episode; for an
LSTM or GRU core, which has no external memory, its hidden activations h, and the LSTM's
cell state c) and ``memory.gif`` (the env's ``rgb_array`` frame at each step beside the
memory state at that step).

An NTM's shift distributions are not part of its state: they are the commands its
controller gave at each step, recomputed from the recorded controller output h with the
core's own interface layer (``NTMCore.commands``): the checkpoint's, or for an ONNX file
the interface weights stored in the file.

A checkpoint (``.pt`` or a run folder) runs the PyTorch policy; an ``.onnx`` file runs
the robot runtime (:class:`dnc_policy.runtime.PolicyRuntime`) and reads its state with
``snapshot()`` after each tick. Both record the same arrays for the same policy. The
episode is reset with ``--seed`` (as episode 0 of ``training.evaluate``); actions are the
distribution's mode unless ``--no-deterministic``. The env and its kwargs default to the
ones recorded in the checkpoint or the ONNX contract; ``--env`` picks another env (its
kwargs then start from the env's defaults, unless it is the recorded env), and
``--env-kwargs`` is merged over them. Pictures go to ``--out``, by default ``pictures/``
in the run folder (the folder above ``checkpoints/``, or the ``.onnx`` file's folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

MAX_STEPS = 100_000  # a safety stop for envs that never end an episode


class VisualizeError(ValueError):
    """A bad input: missing or unreadable model file, unknown env, mismatched spaces."""


# --------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------
class _TorchStepper:
    """One tick at a time through the PyTorch policy (batch 1)."""

    source = "pt"

    def __init__(self, path: Path, deterministic: bool, seed: int):
        import torch

        from training.checkpoint import CheckpointError, load_policy

        try:
            self.policy, ckpt = load_policy(path)
        except CheckpointError as e:
            raise VisualizeError(str(e)) from None
        from training.evaluate import TorchActor

        torch.manual_seed(seed)  # sampled actions are reproducible
        self.actor = TorchActor(self.policy, 1, deterministic)
        cfg = ckpt["policy_config"]
        self.env_id, self.env_kwargs = ckpt["env"], dict(ckpt["env_kwargs"])
        self.core = {"kind": cfg["core"], "config": dict(cfg["core_config"])}
        self.obs_dim = self.policy.obs_dim
        self.state_names = [n for n, _ in self.policy.state_spec]

    def ntm_core(self):
        """The NTM core, for :func:`ntm_commands`."""
        return self.policy.core

    def step(self, obs: np.ndarray, reset: bool) -> tuple[np.ndarray, dict, dict]:
        action = self.actor(np.asarray(obs, np.float32)[None], np.array([float(reset)],
                                                                       np.float32))
        out = self.actor.out
        heads = {"value": out.value.numpy()[0]}
        heads["action_mean" if self.policy.action.kind == "box" else "logits"] = \
            out.dist.numpy()[0]
        state = {n: s.numpy()[0].copy() for n, s in zip(self.state_names, self.actor.state)}
        return action, heads, state


class _OnnxStepper:
    """One tick at a time through the robot runtime (batch 1, CPU)."""

    source = "onnx"

    def __init__(self, path: Path, deterministic: bool, seed: int):
        try:
            from dnc_policy.runtime import ContractError, PolicyRuntime
        except ImportError as e:  # the ROS package is not installed in this environment
            raise VisualizeError(f"cannot read {str(path)!r}: the dnc_policy runtime is not "
                                 f"importable ({e}); install ros2_ws/src/dnc_policy") from None
        try:
            self.rt = PolicyRuntime(path, providers=["CPUExecutionProvider"], batch=1,
                                    deterministic=deterministic, threads=1, seed=seed)
        except (ContractError, FileNotFoundError) as e:
            raise VisualizeError(str(e)) from None
        c = self.rt.contract
        env = c.get("env") or {}
        self.env_id, self.env_kwargs = env.get("id"), dict(env.get("kwargs") or {})
        self.core = dict(c.get("core") or {"kind": "unknown", "config": {}})
        self.obs_dim = self.rt.obs_dim
        self.state_names = [n for n, _ in self.rt.state_spec]
        self.path = path

    def ntm_core(self):
        """An NTM core with the file's interface weights, for :func:`ntm_commands`."""
        return ntm_core_from_onnx(self.path, self.core.get("config") or {})

    def step(self, obs: np.ndarray, reset: bool) -> tuple[np.ndarray, dict, dict]:
        action = self.rt.step(obs[None], reset=reset)
        heads = {k: np.array(v[0]) for k, v in self.rt.outputs.items() if k != "action"}
        heads.pop("action_log_std", None)
        state = {n: v[0] for n, v in self.rt.snapshot().items()}
        return action, heads, state


def open_model(model_path: str | Path, deterministic: bool = True, seed: int = 0):
    """A stepper for a checkpoint / run folder (PyTorch) or an ``.onnx`` file (runtime)."""
    path = Path(model_path)
    if not path.exists():
        raise VisualizeError(f"model file {str(path)!r} does not exist")
    if path.is_file() and path.suffix.lower() == ".onnx":
        return _OnnxStepper(path, deterministic, seed)
    return _TorchStepper(path, deterministic, seed)


def make_env(env_id: str, env_kwargs: dict, render: bool):
    """``(env, renders)``: the env with ``render_mode="rgb_array"`` when it offers it."""
    import gymnasium as gym

    import sim  # noqa: F401  (registers the dnc/ envs)
    from training.envs import env_spec

    try:
        env_spec(env_id)
    except gym.error.Error as e:
        raise VisualizeError(f"unknown env id {env_id!r}: {e}") from None
    try:
        env = gym.make(env_id, **env_kwargs)
    except (gym.error.Error, TypeError, ValueError, AssertionError) as e:
        raise VisualizeError(f"could not make env {env_id!r} with kwargs {env_kwargs}: "
                             f"{type(e).__name__}: {e}") from None
    if not (render and "rgb_array" in env.metadata.get("render_modes", [])):
        return env, False
    env.close()
    return gym.make(env_id, **env_kwargs, render_mode="rgb_array"), True


def record_episode(model_path: str | Path, env_id: str | None = None,
                   env_kwargs: dict | None = None, seed: int = 0, deterministic: bool = True,
                   render: bool = True, progress: bool = False,
                   max_steps: int = MAX_STEPS) -> dict[str, Any]:
    """Run one episode of the policy in ``model_path`` and return what happened.

    ``env_id`` (default: the model's env) and ``env_kwargs`` (merged over the model's
    kwargs when the env is the model's, over ``{}`` otherwise). The episode is reset with
    ``seed``. Returns a dict of arrays over the T steps of the episode:

    - ``obs [T, D]`` (the flat observation the policy saw at step t), ``action [T, ...]``,
      ``reward [T]``, ``value [T]``, ``logits [T, K]`` or ``action_mean [T, A]``;
    - ``state.<name> [T, ...]`` for every state tensor (the state *after* step t, e.g.
      ``state.write_weights [T, N]``, ``state.read_weights [T, R, N]``,
      ``state.usage [T, N]``, ``state.link [T, N, N]``; ``state.h``/``state.c`` for LSTM,
      ``state.h`` for GRU);
    - for an NTM, ``ntm.write_shift [T, S]`` and ``ntm.read_shift [T, R, S]``: the shift
      distribution each head applied at step t (:func:`ntm_commands`);
    - ``frames [T, H, W, 3]`` uint8 (the env before step t) when the env renders, else
      absent;

    and ``meta``: env id and kwargs, seed, source (``"pt"``/``"onnx"``), core kind and
    config, ``length``, ``return``, ``success`` (None if the env reports none),
    ``terminated``, ``truncated``.
    """
    from tqdm import tqdm

    from training.spaces import ObsFlattener, to_env_actions

    stepper = open_model(model_path, deterministic, seed)
    if env_id is None:
        if not stepper.env_id:
            raise VisualizeError(f"{str(model_path)!r} records no env id: pass --env")
        env_id, base = stepper.env_id, stepper.env_kwargs
    else:
        base = stepper.env_kwargs if env_id == stepper.env_id else {}
    kwargs = {**base, **(env_kwargs or {})}
    env, renders = make_env(env_id, kwargs, render)
    try:
        flatten = ObsFlattener(env.observation_space)
    except ValueError as e:
        env.close()
        raise VisualizeError(f"env {env_id!r}: {e}") from None
    if flatten.dim != stepper.obs_dim:
        env.close()
        raise VisualizeError(f"env {env_id!r} (kwargs {kwargs}) gives observations of "
                             f"{flatten.dim} values, the policy in {str(model_path)!r} takes "
                             f"{stepper.obs_dim}")

    rec: dict[str, list] = {"obs": [], "action": [], "reward": [], "frames": []}
    heads: dict[str, list] = {}
    states: dict[str, list] = {n: [] for n in stepper.state_names}
    o, _ = env.reset(seed=seed)
    total = getattr(env.spec, "max_episode_steps", None) or getattr(env.unwrapped, "max_steps", None)
    terminated = truncated = False
    success = None
    bar = tqdm(total=total if isinstance(total, int) else None, disable=not progress,
               desc="recording", unit="step", file=sys.stderr, leave=False)
    try:
        for t in range(max_steps):
            if renders:
                rec["frames"].append(np.asarray(env.render(), np.uint8))
            obs = flatten(np.asarray(o)[None])[0]
            action, h, s = stepper.step(obs, reset=(t == 0))
            env_action = to_env_actions(np.asarray(action), env.action_space)[0]
            o, r, terminated, truncated, info = env.step(env_action)
            rec["obs"].append(obs)
            rec["action"].append(np.asarray(env_action))
            rec["reward"].append(float(r))
            for k, v in h.items():
                heads.setdefault(k, []).append(v)
            for k, v in s.items():
                states[k].append(v)
            bar.update(1)
            if terminated or truncated:
                if "is_success" in info:
                    success = bool(info["is_success"])
                break
    finally:
        bar.close()
        env.close()

    out: dict[str, Any] = {
        "obs": np.stack(rec["obs"]).astype(np.float32),
        "action": np.stack(rec["action"]),
        "reward": np.asarray(rec["reward"], np.float64),
    }
    for k, v in heads.items():
        out[k] = np.stack(v).astype(np.float32)
    for k, v in states.items():
        out[f"state.{k}"] = np.stack(v).astype(np.float32)
    if stepper.core.get("kind") == "ntm":
        out.update(ntm_commands(stepper.ntm_core(), out["state.h"]))
    if renders and rec["frames"]:
        out["frames"] = np.stack(rec["frames"])
    out["meta"] = {"env_id": env_id, "env_kwargs": kwargs, "seed": seed,
                   "source": stepper.source, "model": str(model_path),
                   "core": stepper.core, "deterministic": deterministic,
                   "state_names": stepper.state_names,
                   "length": len(rec["reward"]), "return": float(np.sum(rec["reward"])),
                   "success": success, "terminated": bool(terminated),
                   "truncated": bool(truncated)}
    return out


def ntm_commands(core, h: np.ndarray) -> dict[str, np.ndarray]:
    """The shift distributions of an NTM's heads at each step, from the recorded
    controller output ``h [T, H]`` (the state's h after each step):
    ``ntm.write_shift [T, S]`` and ``ntm.read_shift [T, R, S]``, over the offsets
    ``-(S-1)/2 .. (S-1)/2`` (:func:`dnc_core.addressing.shift_offsets`)."""
    import torch

    ref = next(core.parameters())
    with torch.no_grad():
        cmd = core.commands(torch.as_tensor(h, dtype=ref.dtype, device=ref.device))
    return {"ntm.write_shift": cmd.write.shift[:, 0].cpu().numpy().astype(np.float32),
            "ntm.read_shift": cmd.read.shift.cpu().numpy().astype(np.float32)}


def ntm_core_from_onnx(path: str | Path, config: dict):
    """An ``NTMCore`` of the contract's ``config`` whose interface layer (all that
    :meth:`NTMCore.commands` uses) holds the exported file's interface weights: the
    initializers ``policy.core.interface.weight`` ``[interface_size, H]`` and ``.bias``
    (the exporter keeps the module's parameter names), else the one float initializer
    pair of those shapes. Raises :class:`VisualizeError` if there is none, or several."""
    import onnx
    import torch
    from onnx import numpy_helper

    from dnc_core import make_core

    core = make_core("ntm", **config)
    shapes = {"weight": (core.interface_size, core.hidden_size), "bias": (core.interface_size,)}
    floats = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    floats = {k: a for k, a in floats.items() if a.dtype.kind == "f"}
    found = {}
    for part, shape in shapes.items():
        named = floats.get(f"policy.core.interface.{part}")
        same = [named] if named is not None and named.shape == shape else \
            [a for a in floats.values() if a.shape == shape]
        if len(same) != 1:
            raise VisualizeError(
                f"{str(path)!r}: cannot find the NTM's interface {part} ({list(shape)}) among "
                f"the graph's initializers ({len(same)} candidates); the shift "
                "distributions cannot be recomputed from this file")
        found[part] = torch.from_numpy(np.array(same[0]))
    with torch.no_grad():
        core.interface.weight.copy_(found["weight"])
        core.interface.bias.copy_(found["bias"])
    return core.eval()


def memory_kind(rec: dict) -> str | None:
    """``"dnc"`` (write and read weights, usage, links), ``"ntm"`` (write and read
    weights, the heads' shift distributions; no usage or links) or None (no external
    memory: an LSTM or GRU core)."""
    if all(f"state.{k}" in rec for k in ("write_weights", "read_weights", "usage", "link")):
        return "dnc"
    if all(k in rec for k in ("state.write_weights", "state.read_weights", "state.memory",
                              "ntm.write_shift", "ntm.read_shift")):
        return "ntm"
    return None


def has_memory(rec: dict) -> bool:
    """Whether the core has an external memory (a DNC or an NTM)."""
    return memory_kind(rec) is not None


# What a core without external memory shows: its hidden state h and, for an LSTM, its
# cell state c (a GRU has h only).
_UNIT_STATES = {"h": "hidden state h", "c": "cell state c"}


def unit_states(rec: dict) -> list[str]:
    """The recorded per-unit state names of a memoryless core, in drawing order."""
    return [n for n in _UNIT_STATES if f"state.{n}" in rec]


def _core_label(rec: dict) -> str:
    return str(rec["meta"]["core"].get("kind", "?")).upper()


# --------------------------------------------------------------------------------------
# Plotting
# --------------------------------------------------------------------------------------
def _title(rec: dict) -> str:
    m = rec["meta"]
    core = m["core"]
    cfg = core.get("config", {})
    if core.get("kind") == "dnc":
        desc = (f"DNC (N={cfg.get('memory_slots')} slots, W={cfg.get('word_size')}, "
                f"R={cfg.get('read_heads')} read head{'s' if cfg.get('read_heads') != 1 else ''}"
                f", H={cfg.get('hidden_size')})")
    elif core.get("kind") == "ntm":
        desc = (f"NTM (N={cfg.get('memory_slots')} slots, W={cfg.get('word_size')}, "
                f"R={cfg.get('read_heads')} read head{'s' if cfg.get('read_heads') != 1 else ''}"
                f", S={cfg.get('shift_range')} shifts, H={cfg.get('hidden_size')})")
    else:
        desc = f"{str(core.get('kind', '?')).upper()} (H={cfg.get('hidden_size')})"
    success = {None: "n/a", True: "yes", False: "no"}[m["success"]]
    kw = ", ".join(f"{k}={v}" for k, v in m["env_kwargs"].items())
    end = "terminated" if m["terminated"] else ("truncated" if m["truncated"] else "stopped")
    return (f"{m['env_id']}({kw}), seed {m['seed']}: return {m['return']:.2f}, "
            f"success {success}, {m['length']} steps ({end})\n"
            f"{desc} from {Path(m['model']).name} ({m['source']}), "
            f"{'deterministic' if m['deterministic'] else 'sampled'} actions")


def _probs(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _index_ticks(ax, n: int) -> None:
    """A tick per row (slot, unit, obs index) while they fit, every k-th beyond."""
    ax.set_yticks(range(0, n, max(1, -(-n // 16))))
    ax.tick_params(axis="y", labelsize=6)


def _head_colour(i: int):
    """The colour of read head ``i`` (the DNC's read-weight bars), -1 for the write head."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return cmap(1) if i < 0 else cmap(i % 10 if i % 10 != 1 else 3)


def _shift_ticks(ax, num_shifts: int) -> None:
    """Label the rows of a shift heatmap with their offsets (−1, +0, +1, ...)."""
    from dnc_core.addressing import shift_offsets

    ax.set_yticks(range(num_shifts))
    ax.set_yticklabels([f"{o:+d}" for o in shift_offsets(num_shifts)], fontsize=7)


def plot_memory(rec: dict, path: str | Path) -> Path:
    """The episode as one PNG (see the module docstring)."""
    import matplotlib.pyplot as plt

    fig = memory_figure(rec)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def memory_figure(rec: dict):
    """The figure :func:`plot_memory` saves (the caller closes it). Each panel's axes
    carry a ``gid`` naming what they draw (``"write"``, ``"read0"``, ``"write_shift"``,
    ``"read0_shift"``, ``"usage"``, ``"link"``, ``"memory"``, ``"h"``, ...), so a test
    can read the drawn arrays back."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec

    t_len = rec["meta"]["length"]
    steps = np.arange(t_len)
    kind = memory_kind(rec)
    memory = kind is not None
    obs = rec["obs"]
    discrete = "logits" in rec and rec["action"].ndim == 1

    # Rows: (name, height ratio). Heatmaps get a colourbar in column 1.
    rows = [("obs", max(1.2, 0.28 * obs.shape[1]))]
    rows.append(("action", max(1.2, 0.3 * rec["logits"].shape[1]) if discrete else 1.4))
    rows.append(("reward", 1.1))
    if kind == "dnc":
        n = rec["state.usage"].shape[1]
        r_heads = rec["state.read_weights"].shape[1]
        hm = max(1.6, 0.2 * n)
        rows += [("write", hm), ("intensity", 1.1)]
        rows += [(f"read{i}", hm) for i in range(r_heads)]
        rows += [("usage", hm)]
    elif kind == "ntm":
        n = rec["state.write_weights"].shape[1]
        r_heads = rec["state.read_weights"].shape[1]
        hm, hs = max(1.6, 0.2 * n), max(1.0, 0.3 * rec["ntm.write_shift"].shape[1])
        rows += [("write", hm), ("write_shift", hs)]
        for i in range(r_heads):
            rows += [(f"read{i}", hm), (f"read{i}_shift", hs)]
    else:
        units = unit_states(rec)
        hs = rec[f"state.{units[0]}"].shape[1]
        hm = max(1.6, min(5.0, 0.06 * hs))
        rows += [(n, hm) for n in units]
    ratios = [h for _, h in rows]
    fig_h = 1.6 + 0.62 * sum(ratios)
    fig = plt.figure(figsize=(16 if memory else 11, fig_h), dpi=100)
    outer = GridSpec(1, 2 if memory else 1, figure=fig,
                     width_ratios=[11, 4.6] if memory else [1], wspace=0.16,
                     left=0.06, right=0.96, top=1 - 1.0 / fig_h, bottom=0.55 / fig_h)
    left = outer[0].subgridspec(len(rows), 2, height_ratios=ratios, width_ratios=[40, 0.8],
                                hspace=0.62, wspace=0.03)
    ax0 = None
    axes = {}
    for i, (name, _) in enumerate(rows):
        ax = fig.add_subplot(left[i, 0], sharex=ax0)
        ax.set_gid(name)
        ax0 = ax0 or ax
        axes[name] = (ax, fig.add_subplot(left[i, 1]))
    extent = (-0.5, t_len - 0.5)

    def heat(name, arr, ylabel, label, vmax=None, cmap="viridis", title=None):
        ax, cax = axes[name]
        rows_n = arr.shape[0]
        im = ax.imshow(arr, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0,
                       vmax=vmax if vmax is not None else max(1e-6, float(arr.max())),
                       extent=(*extent, rows_n - 0.5, -0.5))
        ax.set_ylabel(ylabel)
        _index_ticks(ax, rows_n)
        fig.colorbar(im, cax=cax).set_label(label, fontsize=8)
        cax.tick_params(labelsize=7)
        if title:
            ax.set_title(title, fontsize=9, loc="left")
        return ax

    lo, hi = float(min(0.0, obs.min())), float(max(1.0, obs.max()))
    ax, cax = axes["obs"]
    im = ax.imshow(obs.T, aspect="auto", interpolation="nearest", cmap="Greys", vmin=lo,
                   vmax=hi, extent=(*extent, obs.shape[1] - 0.5, -0.5))
    ax.set_ylabel("obs index")
    _index_ticks(ax, obs.shape[1])
    fig.colorbar(im, cax=cax).set_label("value", fontsize=8)
    cax.tick_params(labelsize=7)
    ax.set_title("observation seen at step t (flattened)", fontsize=9, loc="left")

    ax, cax = axes["action"]
    if discrete:
        probs = _probs(rec["logits"])
        im = ax.imshow(probs.T, aspect="auto", interpolation="nearest", cmap="Blues", vmin=0,
                       vmax=1, extent=(*extent, probs.shape[1] - 0.5, -0.5))
        ax.plot(steps, rec["action"], "o", color="tab:red", ms=4, label="action taken")
        ax.set_yticks(range(probs.shape[1]))
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel("action")
        fig.colorbar(im, cax=cax).set_label("π(a)", fontsize=8)
        cax.tick_params(labelsize=7)
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
        ax.set_title("action probabilities, and the action taken (red)", fontsize=9, loc="left")
    else:
        a = rec["action"].reshape(t_len, -1).astype(np.float64)
        for j in range(min(a.shape[1], 8)):
            ax.step(steps, a[:, j], where="mid", label=f"a[{j}]")
        ax.set_ylabel("action")
        ax.legend(loc="upper right", fontsize=7, ncol=4)
        ax.set_title("action taken", fontsize=9, loc="left")
        cax.axis("off")

    ax, cax = axes["reward"]
    rew = rec["reward"]
    ax.bar(steps, rew, color=np.where(rew >= 0, "tab:green", "tab:red"), width=0.8)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("reward")
    ax2 = ax.twinx()
    ax2.plot(steps, rec["value"], color="tab:purple", lw=1.2, marker=".", ms=3)
    ax2.set_ylabel("value", color="tab:purple", fontsize=8)
    ax2.tick_params(axis="y", labelsize=7, colors="tab:purple")
    ax.set_title("reward per step (bars), value estimate V (line)", fontsize=9, loc="left")
    cax.axis("off")

    if kind == "dnc":
        ww = rec["state.write_weights"]
        heat("write", ww.T, "slot", "weight", title="write weights w_t (slot × step)")
        ax, cax = axes["intensity"]
        ax.plot(steps, ww.sum(1), color="tab:orange", marker=".", ms=4)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("Σ w")
        ax.set_title("write intensity Σᵢ wᵢ (write gate × how much of the address "
                     "is used; 0 = no write)", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
        cax.axis("off")
        rw = rec["state.read_weights"]
        for i in range(rw.shape[1]):
            heat(f"read{i}", rw[:, i].T, "slot", "weight", cmap="magma",
                 title=f"read weights of read head {i} (slot × step)")
        heat("usage", rec["state.usage"].T, "slot", "usage", vmax=1.0, cmap="cividis",
             title="usage u_t (0 free … 1 in use)")

        # The right column: the link matrix and the memory at the end of the episode.
        right = outer[1].subgridspec(2, 2, width_ratios=[20, 1], hspace=0.45, wspace=0.08)
        ax = fig.add_subplot(right[0, 0], gid="link")
        cax = fig.add_subplot(right[0, 1])
        link = rec["state.link"][-1]
        im = ax.imshow(link, cmap="viridis", vmin=0, vmax=max(1e-6, float(link.max())),
                       interpolation="nearest")
        ax.set_title(f"link matrix L at the end (step {t_len - 1})\n"
                     "L[i, j]: slot i was written right after slot j", fontsize=9)
        ax.set_xlabel("j (written before)")
        ax.set_ylabel("i (written after)")
        _index_ticks(ax, link.shape[0])
        ax.set_xticks(ax.get_yticks())
        ax.tick_params(axis="x", labelsize=6)
        fig.colorbar(im, cax=cax).set_label("link strength", fontsize=8)
        cax.tick_params(labelsize=7)
        _memory_at_end(fig, rec, right[1, 0], right[1, 1])
    elif kind == "ntm":
        ww, rw = rec["state.write_weights"], rec["state.read_weights"]
        shifts = [("write", "write head", rec["ntm.write_shift"])]
        shifts += [(f"read{i}", f"read head {i}", rec["ntm.read_shift"][:, i])
                   for i in range(rw.shape[1])]
        heat("write", ww.T, "slot", "weight", vmax=1.0,
             title="write weights w_t (slot × step): where the write head erases and adds")
        for i in range(rw.shape[1]):
            heat(f"read{i}", rw[:, i].T, "slot", "weight", vmax=1.0, cmap="magma",
                 title=f"read weights of read head {i} (slot × step)")
        for name, label, sh in shifts:
            ax = heat(f"{name}_shift", sh.T, "offset", "s(offset)", vmax=1.0, cmap="Greens",
                      title=f"shift distribution of the {label} (offset × step; +1 moves the "
                            "focus one slot forward)")
            _shift_ticks(ax, sh.shape[1])

        # The right column: the memory at the end, the shifts averaged over the episode.
        right = outer[1].subgridspec(2, 2, width_ratios=[20, 1], hspace=0.45, wspace=0.08)
        _memory_at_end(fig, rec, right[0, 0], right[0, 1])
        ax = fig.add_subplot(right[1, 0], gid="mean_shift")
        fig.add_subplot(right[1, 1]).axis("off")
        from dnc_core.addressing import shift_offsets

        offsets = shift_offsets(shifts[0][2].shape[1])
        width = 0.8 / len(shifts)
        for j, (_, label, sh) in enumerate(shifts):
            ax.bar(np.arange(len(offsets)) + (j - (len(shifts) - 1) / 2) * width,
                   sh.mean(0), width, color=_head_colour(j - 1), label=label)
        ax.set_xticks(range(len(offsets)))
        ax.set_xticklabels([f"{o:+d}" for o in offsets])
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("shift offset")
        ax.set_ylabel("mean s(offset)")
        ax.legend(fontsize=7)
        ax.set_title("shift distributions, averaged over the episode", fontsize=9)
    else:
        for name in unit_states(rec):
            arr = rec[f"state.{name}"]
            heat(name, arr.T, "unit", name, cmap="RdBu_r")
            ax, _ = axes[name]
            lim = max(1e-6, float(np.abs(arr).max()))
            ax.images[0].set_clim(-lim, lim)
            ax.set_title(f"{_core_label(rec)} {_UNIT_STATES[name]} "
                         "(unit × step): this core has no external memory", fontsize=9,
                         loc="left")
    for name, (ax, _) in axes.items():
        if name != rows[-1][0]:
            ax.tick_params(axis="x", labelbottom=False)
    last = axes[rows[-1][0]][0]
    last.set_xlabel("step t")
    last.set_xlim(*extent)
    if t_len <= 60:
        last.set_xticks(steps)
    fig.suptitle(_title(rec), fontsize=10)
    return fig


def _memory_at_end(fig, rec: dict, cell, cbar_cell) -> None:
    """The memory after the last step (slot × word) in one grid cell."""
    t_len = rec["meta"]["length"]
    ax = fig.add_subplot(cell, gid="memory")
    cax = fig.add_subplot(cbar_cell)
    mem = rec["state.memory"][-1]
    lim = max(1e-6, float(np.abs(mem).max()))
    im = ax.imshow(mem, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest",
                   aspect="auto")
    ax.set_title(f"memory M at the end (slot × word), step {t_len - 1}", fontsize=9)
    ax.set_xlabel("word element")
    ax.set_ylabel("slot")
    _index_ticks(ax, mem.shape[0])
    fig.colorbar(im, cax=cax).set_label("value", fontsize=8)
    cax.tick_params(labelsize=7)


def write_gif(rec: dict, path: str | Path, fps: float = 3.0, progress: bool = False) -> Path:
    """One GIF frame per step: the env's frame before step t (if it renders) beside the
    state after step t (DNC: usage, write and read weights as bars, the link matrix;
    NTM: write and read weights, each head's shift distribution as bars, the memory;
    LSTM: h and c; GRU: h)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image
    from tqdm import tqdm

    t_len = rec["meta"]["length"]
    frames = rec.get("frames")
    kind = memory_kind(rec)
    panels = (["frame"] if frames is not None else [])
    panels += {"dnc": ["bars", "link"], "ntm": ["bars", "shift", "memory"]}.get(kind, ["bars"])
    widths = {"frame": 4.0, "bars": 5.0, "link": 3.2, "shift": 2.6, "memory": 3.2}
    fig = plt.figure(figsize=(sum(widths[p] for p in panels), 3.8), dpi=85)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1, len(panels), width_ratios=[widths[p] for p in panels],
                          left=0.05, right=0.97, top=0.74, bottom=0.14, wspace=0.3)
    ax_of = {p: fig.add_subplot(gs[0, i]) for i, p in enumerate(panels)}
    artists = {}
    if frames is not None:
        ax = ax_of["frame"]
        artists["frame"] = ax.imshow(frames[0], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("env (before the action)", fontsize=9)
    ax = ax_of["bars"]
    if kind == "dnc":
        n = rec["state.usage"].shape[1]
        rw = rec["state.read_weights"]
        series = [("usage", rec["state.usage"], "tab:gray"),
                  ("write w", rec["state.write_weights"], "tab:orange")]
        cmap = plt.get_cmap("tab10")
        series += [(f"read w (head {i})", rw[:, i], cmap(i % 10 if i % 10 != 1 else 3))
                   for i in range(rw.shape[1])]
        k = len(series)
        width = 0.8 / k
        x = np.arange(n)
        artists["bars"] = [ax.bar(x + (j - (k - 1) / 2) * width, s[0], width, color=c, label=lab)
                           for j, (lab, s, c) in enumerate(series)]
        artists["series"] = [s for _, s, _ in series]
        ax.set_ylim(0, 1.02)
        ax.set_xticks(x if n <= 32 else x[:: max(1, n // 16)])
        ax.tick_params(labelsize=7)
        ax.set_xlabel("memory slot")
        ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=k,
                  frameon=False, title="memory state after the step", title_fontsize=9)
        link = rec["state.link"]
        ax = ax_of["link"]
        artists["image"] = ax.imshow(link[0], cmap="viridis", vmin=0,
                                     vmax=max(1e-6, float(link.max())), interpolation="nearest")
        artists["image_series"] = link
        ax.set_title("link matrix L[i, j]", fontsize=9)
        ax.set_xlabel("j (written before)", fontsize=8)
        ax.set_ylabel("i (written after)", fontsize=8)
        _index_ticks(ax, link.shape[1])
        ax.set_xticks(ax.get_yticks())
        ax.tick_params(labelsize=6)
    elif kind == "ntm":
        from dnc_core.addressing import shift_offsets

        rw = rec["state.read_weights"]
        color = [_head_colour(i) for i in range(-1, rw.shape[1])]
        labels = ["write"] + [f"read (head {i})" for i in range(rw.shape[1])]
        weights = [rec["state.write_weights"]] + [rw[:, i] for i in range(rw.shape[1])]
        shifts = [rec["ntm.write_shift"]] + [rec["ntm.read_shift"][:, i]
                                             for i in range(rw.shape[1])]
        artists["bars"], artists["series"] = [], []
        for ax, series, xlabel in ((ax_of["bars"], weights, "memory slot"),
                                   (ax_of["shift"], shifts, "shift offset")):
            k, x = len(series), np.arange(series[0].shape[1])
            width = 0.8 / k
            artists["bars"] += [ax.bar(x + (j - (k - 1) / 2) * width, sr[0], width,
                                       color=color[j], label=labels[j])
                                for j, sr in enumerate(series)]
            artists["series"] += series
            ax.set_ylim(0, 1.02)
            ax.set_xlabel(xlabel)
            ax.tick_params(labelsize=7)
        n = weights[0].shape[1]
        ax_of["bars"].set_xticks(np.arange(n) if n <= 32 else np.arange(n)[:: max(1, n // 16)])
        ax_of["bars"].legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                             ncol=len(weights), frameon=False,
                             title="head weights after the step", title_fontsize=9)
        ax = ax_of["shift"]
        ax.set_xticks(range(shifts[0].shape[1]))
        ax.set_xticklabels([f"{o:+d}" for o in shift_offsets(shifts[0].shape[1])])
        ax.set_title("shift distributions", fontsize=9)
        mem = rec["state.memory"]
        lim = max(1e-6, float(np.abs(mem).max()))
        ax = ax_of["memory"]
        artists["image"] = ax.imshow(mem[0], cmap="RdBu_r", vmin=-lim, vmax=lim,
                                     interpolation="nearest", aspect="auto")
        artists["image_series"] = mem
        ax.set_title("memory M (slot × word)", fontsize=9)
        ax.set_xlabel("word element", fontsize=8)
        ax.set_ylabel("slot", fontsize=8)
        _index_ticks(ax, mem.shape[1])
        ax.tick_params(labelsize=6)
    else:
        units = unit_states(rec)
        series = [rec[f"state.{n}"] for n in units]
        x = np.arange(series[0].shape[1])
        k = len(series)
        width = 0.8 / k
        colors = {"h": "tab:blue", "c": "tab:orange"}
        artists["bars"] = [ax.bar(x + (j - (k - 1) / 2) * width, s[0], width,
                                  color=colors[n], label=n)
                           for j, (n, s) in enumerate(zip(units, series))]
        artists["series"] = series
        lim = max(1e-6, max(float(np.abs(s).max()) for s in series))
        ax.set_ylim(-lim, lim)
        ax.set_xlabel(f"{_core_label(rec)} unit (no external memory)")
        ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=k,
                  frameon=False, title="controller state after the step", title_fontsize=9)
    head = fig.suptitle("", fontsize=9)
    m = rec["meta"]
    images = []
    for t in tqdm(range(t_len), disable=not progress, desc="gif", unit="frame",
                  file=sys.stderr, leave=False):
        if frames is not None:
            artists["frame"].set_data(frames[t])
        for bars, s in zip(artists["bars"], artists["series"]):
            for rect, v in zip(bars, s[t]):
                rect.set_height(float(v))
        if "image" in artists:
            artists["image"].set_data(artists["image_series"][t])
        a = rec["action"][t]
        a_txt = str(a.tolist() if np.ndim(a) else a.item())
        ret = float(rec["reward"][: t + 1].sum())
        head.set_text(f"{m['env_id']} seed {m['seed']}   step {t}/{t_len - 1}   "
                      f"action {a_txt}   reward {rec['reward'][t]:+.2f}   return so far "
                      f"{ret:+.2f}" + (f"\nsuccess: {m['success']}" if t == t_len - 1
                                        and m["success"] is not None else ""))
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()))
    plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = [int(1000 / fps)] * len(images)
    durations[-1] = max(durations[-1], 1500)  # linger on the outcome
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0,
                   optimize=True)
    return path


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
def default_out_dir(model_path: str | Path) -> Path:
    """``pictures/`` in the run folder: the folder above ``checkpoints/`` for a
    checkpoint, the folder itself for a run folder, the ``.onnx`` file's folder."""
    p = Path(model_path)
    if p.is_dir():
        return p / "pictures"
    parent = p.parent
    if parent.name == "checkpoints":
        parent = parent.parent
    return parent / "pictures"


def _parse_kwargs(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        kw = json.loads(text)
    except json.JSONDecodeError as e:
        raise VisualizeError(f"--env-kwargs is not valid JSON ({e}): {text!r}") from None
    if not isinstance(kw, dict):
        raise VisualizeError(f"--env-kwargs must be a JSON object, got {text!r}")
    return kw


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="checkpoint (.pt), run folder, or exported .onnx")
    p.add_argument("--env", help="env id (default: the one the model records)")
    p.add_argument("--env-kwargs", help='JSON object merged over the env kwargs, e.g. '
                                        '\'{"length": 20}\'')
    p.add_argument("--seed", type=int, default=0, help="the episode's reset seed")
    p.add_argument("--out", help="output folder (default: <run>/pictures)")
    p.add_argument("--gif", action=argparse.BooleanOptionalAction, default=True,
                   help="also write memory.gif (default: yes)")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                   help="the distribution's mode (default) or sampled actions")
    p.add_argument("--fps", type=float, default=3.0, help="GIF frames per second")
    p.add_argument("--max-steps", type=int, default=MAX_STEPS,
                   help="stop an episode that has not ended after this many steps")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    try:
        rec = record_episode(a.model, a.env, _parse_kwargs(a.env_kwargs), a.seed,
                             a.deterministic, render=a.gif, progress=not a.no_progress,
                             max_steps=a.max_steps)
    except VisualizeError as e:
        p.exit(2, f"error: {e}\n")
    m = rec["meta"]
    if memory_kind(rec) is None:
        print(f"note: the {m['core'].get('kind')} core has no DNC memory (no write/read "
              f"weights, usage or links); plotting its {' and '.join(unit_states(rec))} "
              f"activations instead",
              file=sys.stderr)
    out = Path(a.out) if a.out else default_out_dir(a.model)
    success = {None: "n/a", True: "yes", False: "no"}[m["success"]]
    print(f"{m['env_id']} seed {m['seed']} ({m['source']}): {m['length']} steps, return "
          f"{m['return']:.3f}, success {success}")
    written = [plot_memory(rec, out / "memory.png")]
    if a.gif:
        if "frames" not in rec:
            print(f"note: {m['env_id']} has no rgb_array render mode; the GIF shows the "
                  "memory only", file=sys.stderr)
        written.append(write_gif(rec, out / "memory.gif", a.fps, progress=not a.no_progress))
    for path in written:
        print(f"wrote {path}")
    return rec


if __name__ == "__main__":
    main()
