"""The small policies most tests share: trained by the real trainer (small and quick),
tweaked and exported to ONNX once per session (:func:`get_model`), and helpers that step
them. The fixtures that hand them out (``models``, ``one_thread``) are in conftest.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnx
import torch
from dnc_policy.contract import CONTRACT_KEY
from gymnasium import spaces

import sim  # noqa: F401  (registers the dnc/ envs)
from export.onnx import build_contract, export_policy, sha256_of
from training import checkpoint as ckpt_io
from training.a2c import train
from training.config import resolve
from training.spaces import ObsFlattener


# -- a tiny MultiDiscrete env (registered for these tests only) ---------------------------
class DialEnv(gym.Env):
    """A cue in {0, 1, 2} is shown on the first step only; each step the agent sets two
    dials (MultiDiscrete [3, 2]) and is rewarded when dial 0 shows the cue."""

    observation_space = spaces.Box(0.0, 1.0, (4,), np.float32)
    action_space = spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t, self._cue = 0, int(self.np_random.integers(3))
        return self._obs(), {}

    def _obs(self):
        o = np.zeros(4, np.float32)
        if self._t == 0:
            o[self._cue] = 1.0
        o[3] = self._t / 5
        return o

    def step(self, action):
        self._t += 1
        hit = int(action[0]) == self._cue
        done = self._t >= 5
        return self._obs(), float(hit), done, False, ({"is_success": hit} if done else {})


DIAL = "dnctest/Dial-v0"
if DIAL not in gym.registry:
    gym.register(id=DIAL, entry_point=DialEnv)


# -- the policies --------------------------------------------------------------------------
LSTM16 = ["core=lstm", "core_config.hidden_size=16"]
FEW = ["num_envs=4", "rollout_steps=16", "total_steps=1024"]  # 16 updates: no learning
SPECS = {
    # A trained LSTM on a short T-maze (learns in ~50k steps, seconds on one core).
    "lstm": LSTM16 + ["env_kwargs.length=3", "env_kwargs.bump_penalty=0.1", "lr=3e-3",
                      "num_envs=8", "stop_at_success=0.95", "total_steps=200000"],
    # A small DNC, a few updates (learning not needed).
    "dnc": ["core=dnc",
            ("core_config={hidden_size: 16, memory_slots: 8, word_size: 8, read_heads: 1}"),
            "env_kwargs.length=3"] + FEW,
    "nav": LSTM16 + ["env=dnc/MemoryNav-v0", "env_kwargs.max_steps=40"] + FEW,  # Box
    "copy": LSTM16 + ["env=dnc/Copy-v0", "env_kwargs={bits: 3, length: 3}"] + FEW,  # MultiBinary
    "multi": LSTM16 + [f"env={DIAL}"] + FEW,  # MultiDiscrete
    # A small GRU (state h only), a few updates. Built through the config overrides (the
    # core's name comes from dnc_core.CORES), not the trainer's --core flag.
    "gru": ["core=gru", "core_config.hidden_size=16", "env_kwargs.length=3"] + FEW,
    # That GRU with a separate critic GRU: the graph carries both cores' states; and two
    # tanh layers in each head (head_layers).
    "critic": ["core=gru", "core_config.hidden_size=16", "separate_critic=true",
               "head_hidden=8", "head_layers=2", "env_kwargs.length=3"] + FEW,
}
KINDS = {"lstm": "discrete", "dnc": "discrete", "nav": "box", "copy": "multi_binary",
         "multi": "multi_discrete", "gru": "discrete", "critic": "discrete"}
CORE_OF = {"dnc": "dnc", "gru": "gru", "critic": "gru"}  # the others are LSTMs
STATE_NAMES = {"dnc": ["h", "c", "memory", "usage", "link", "precedence", "read_weights",
                       "write_weights", "read_vectors"], "gru": ["h"], "lstm": ["h", "c"],
               "critic": ["h", "critic_h"]}  # by model name, else by its core
# Box means forced outside the bounds in dim 0 (high 0.5), inside in dim 1 (|w| <= 2).
NAV_BIAS = (3.0, 0.3)


@dataclass
class Model:
    name: str
    run_dir: Path
    checkpoint: Path
    onnx: Path

    def load(self):
        """A fresh ``(policy, checkpoint dict)``: tests may change their copy."""
        return ckpt_io.load_policy(self.checkpoint)

    def contract(self) -> dict:
        return json.loads({p.key: p.value for p in onnx.load(str(self.onnx)).metadata_props}
                          [CONTRACT_KEY])


def _tweak_checkpoint(name: str, path: Path) -> None:
    """Untrained heads give near-tied logits (gain 0.01); give the untrained policies
    decisive, state-dependent logits (gain 1), and force the Box means described at
    NAV_BIAS. Written back into the checkpoint so checkpoint and export agree."""
    if name == "lstm":
        return
    ck = torch.load(path, weights_only=True)
    st = ck["policy_state"]
    # The actor's output layer: "actor" itself, or the last Linear of a head with hidden
    # layers ("actor.<i>"), the last actor weight in the state dict's (module) order.
    out = [k for k in st if k.startswith("actor.") and k.endswith("weight")][-1][:-len("weight")]
    if name == "nav":
        st[out + "weight"] *= 0.1
        st[out + "bias"] = torch.tensor(NAV_BIAS, dtype=st[out + "bias"].dtype)
    else:
        st[out + "weight"] *= 100.0
    ckpt_io.atomic_save(ck, path)


_MODELS: dict[str, Model] = {}


def get_model(name: str, tmp_path_factory) -> Model:
    """Train (real trainer), tweak and export the named policy once per session."""
    if name not in _MODELS:
        base = tmp_path_factory.mktemp(f"model_{name}")
        ckpt, out = train_and_export(SPECS[name], base, f"{name}.onnx",
                                     tweak=lambda path: _tweak_checkpoint(name, path))
        _MODELS[name] = Model(name, base / "run", ckpt, out)
    return _MODELS[name]


def train_and_export(overrides: list[str], base: Path, onnx_name: str,
                     tweak=None) -> tuple[Path, Path]:
    """Train with A2C (``overrides`` over the embedded default, one thread, seed 1) in
    ``base/run``, call ``tweak(checkpoint)`` if given, export to ``base/export``:
    ``(checkpoint, onnx file)``."""
    threads = torch.get_num_threads()
    try:
        cfg = resolve(None, overrides + ["threads=1", "seed=1", "checkpoint_every=100000000",
                                         f"run_dir={base}"])
        ckpt = Path(train(cfg, progress=False, run_dir=base / "run")["checkpoint"])
        if tweak is not None:
            tweak(ckpt)
        policy, ck = ckpt_io.load_policy(ckpt)
        out = export_policy(policy, build_contract(policy, ck, sha256_of(ckpt)),
                            base / "export" / onnx_name)
    finally:
        torch.set_num_threads(threads)
    return ckpt, out


def env_observations(env_id: str, env_kwargs: dict, n: int, seed: int = 0) -> np.ndarray:
    """``n`` flat observations from random-action episodes of the env."""
    env = gym.make(env_id, **env_kwargs)
    flat = ObsFlattener(env.observation_space)
    env.action_space.seed(seed)
    out, (o, _), k = [], env.reset(seed=seed), 0
    while len(out) < n:
        out.append(flat(np.asarray(o)[None])[0])
        o, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            k += 1
            o, _ = env.reset(seed=seed + k)
    env.close()
    return np.stack(out).astype(np.float32)


def torch_tick(policy, obs: np.ndarray, state, reset: np.ndarray):
    """The PyTorch policy's tick: ``(env action, PolicyOutput, new state)``."""
    from dnc_core.policy import deterministic_action

    with torch.no_grad():
        out, state = policy(torch.from_numpy(obs), state, torch.from_numpy(reset))
        action = policy.env_action(deterministic_action(policy.action, out.dist))
    return action.numpy(), out, state


def ort_feed(policy, obs: np.ndarray, reset: np.ndarray, state=None) -> dict:
    b = obs.shape[0]
    state = policy.initial_state(b) if state is None else state
    return {"obs": obs, "reset": reset,
            **{f"state_in.{n}": s.numpy() for (n, _), s in zip(policy.state_spec, state)}}
