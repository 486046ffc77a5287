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

This module records the episode and runs the command line; the drawing is
:mod:`training.memory_plots`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from training.memory_plots import memory_kind, plot_memory, unit_states, write_gif

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
    total = (getattr(env.spec, "max_episode_steps", None)
             or getattr(env.unwrapped, "max_steps", None))
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
