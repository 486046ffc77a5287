"""The robot-side runtime of an exported policy: numpy + onnxruntime only.

    rt = PolicyRuntime("policy.onnx")            # validates the contract, picks providers
    action = rt.step(obs)                        # the memory is carried to the next tick
    rt.reset()                                   # the next tick starts a new episode
    snap = rt.snapshot(); rt.restore(snap)       # copy of the memory state
    rt.save_state("mem.npz"); rt.load_state("mem.npz")   # atomic file, validated on load

Everything about the model comes from the file: input and output names, state names and
shapes, the action space and the distribution are read from the JSON contract in
``metadata_props["dnc_policy.contract"]`` and checked against the graph.

The state lives in two preallocated sets of buffers (on the GPU with the CUDA or TensorRT
provider) and two IOBindings made once: tick t reads set A and writes set B, tick t+1
reads B and writes A. No state tensor is allocated or copied to the host per tick.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write

CONTRACT_KEY = "dnc_policy.contract"
SUPPORTED_MAJOR = 1
DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider",
                     "CPUExecutionProvider")


class ContractError(ValueError):
    """The ONNX file has no contract, another major version, or one its graph breaks."""


def read_contract(session) -> dict:
    """The contract dict of an ``onnxruntime.InferenceSession`` (raises ContractError)."""
    meta = session.get_modelmeta().custom_metadata_map
    if CONTRACT_KEY not in meta:
        raise ContractError(f"the model has no metadata_props[{CONTRACT_KEY!r}]: it was not "
                            "written by `python -m export.onnx` (or the metadata was stripped)")
    try:
        contract = json.loads(meta[CONTRACT_KEY])
    except json.JSONDecodeError as e:
        raise ContractError(f"metadata_props[{CONTRACT_KEY!r}] is not valid JSON: {e}") from None
    version = str(contract.get("contract_version", ""))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise ContractError(f"contract_version {version!r} is not of the form MAJOR.MINOR") from None
    if major != SUPPORTED_MAJOR:
        raise ContractError(f"contract version {version} is not supported: this runtime "
                            f"reads major version {SUPPORTED_MAJOR}")
    return contract


def check_graph(session, contract: dict) -> None:
    """Raise ContractError naming the first input or output that disagrees."""
    for key in ("inputs", "outputs", "state", "obs_dim", "action"):
        if key not in contract:
            raise ContractError(f"contract lacks {key!r}")
    got_in = [i.name for i in session.get_inputs()]
    got_out = [o.name for o in session.get_outputs()]
    if got_in != contract["inputs"]:
        raise ContractError(f"graph inputs {got_in} disagree with the contract's "
                            f"{contract['inputs']}")
    if got_out != contract["outputs"]:
        raise ContractError(f"graph outputs {got_out} disagree with the contract's "
                            f"{contract['outputs']}")
    want = {"obs": ("tensor(float)", [contract["obs_dim"]]), "reset": ("tensor(float)", [])}
    for s in contract["state"]:
        want[f"state_in.{s['name']}"] = ("tensor(float)", list(s["shape"]))
        want[f"state_out.{s['name']}"] = ("tensor(float)", list(s["shape"]))
    action_type = "tensor(int64)" if contract["action"]["dtype"] == "int64" else "tensor(float)"
    for node in list(session.get_inputs()) + list(session.get_outputs()):
        if node.name == "action" and node.type != action_type:
            raise ContractError(f"graph output 'action' is {node.type}, contract says "
                                f"{contract['action']['dtype']}")
        if node.name not in want:
            continue
        dtype, dims = want[node.name]
        if node.type != dtype:
            raise ContractError(f"graph {node.name!r} is {node.type}, expected {dtype}")
        if [d for d in node.shape[1:]] != dims:
            raise ContractError(f"graph {node.name!r} has shape {node.shape}, the contract "
                                f"says [batch, {', '.join(map(str, dims))}]")


def pick_providers(requested: Sequence | None, model_path: Path) -> list:
    """Requested providers (names or ``(name, options)``), or TensorRT > CUDA > CPU,
    filtered by what this onnxruntime build has. TensorRT gets an engine cache next to
    the model, so the (slow) engine build happens once per model and device."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    if requested is None:
        chosen = [p for p in DEFAULT_PROVIDERS if p in available]
    else:
        chosen = list(requested)
        missing = [p if isinstance(p, str) else p[0] for p in chosen
                   if (p if isinstance(p, str) else p[0]) not in available]
        if missing:
            raise ValueError(f"execution providers {missing} are not in this onnxruntime "
                             f"build; available: {sorted(available)}")
    out = []
    for p in chosen:
        if p == "TensorrtExecutionProvider":
            cache = model_path.parent / "trt_cache"
            out.append((p, {"trt_engine_cache_enable": True,
                            "trt_engine_cache_path": str(cache),
                            "trt_timing_cache_enable": True}))
        else:
            out.append(p)
    return out


class PolicyRuntime:
    """A stateful policy over an ONNX file written by ``export.onnx``.

    Args:
        path: the ``.onnx`` file.
        providers: execution providers (names or ``(name, options)``); default
            TensorRT > CUDA > CPU, whichever this onnxruntime has.
        batch: rows stepped together (1 on a robot; more for evaluation).
        deterministic: default for :meth:`step`: the graph's deterministic action, or
            an action sampled from the distribution outputs.
        threads: onnxruntime intra-op threads (1 suits a control loop).
        seed: seed of the sampling RNG.
    """

    def __init__(self, path: str | os.PathLike, providers: Sequence | None = None,
                 batch: int = 1, deterministic: bool = True, threads: int = 1,
                 seed: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {str(self.path)!r} does not exist")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), opts,
                                                providers=pick_providers(providers, self.path))
        except ValueError:
            raise
        except Exception as e:  # onnxruntime raises its own types for a corrupt file
            raise ContractError(f"{str(self.path)!r} is not a loadable ONNX model: "
                                f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
        self.contract = read_contract(self.session)
        check_graph(self.session, self.contract)
        self.batch, self.deterministic = batch, deterministic
        self.obs_dim = int(self.contract["obs_dim"])
        self.action_spec = self.contract["action"]
        self.state_spec = [(s["name"], tuple(s["shape"])) for s in self.contract["state"]]
        self.providers = self.session.get_providers()
        self._rng = np.random.default_rng(seed)
        self._build_bindings()

    # -- set-up ------------------------------------------------------------------------
    def _build_bindings(self) -> None:
        import onnxruntime as ort

        on_gpu = self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        device, device_id = ("cuda", 0) if on_gpu else ("cpu", 0)
        b = self.batch

        def buffer(shape, dtype=np.float32):
            return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, device, device_id)

        # Host-side inputs (copied in place each tick) and outputs (read each tick).
        self._obs_host = np.zeros((b, self.obs_dim), np.float32)
        self._reset_host = np.zeros(b, np.float32)
        self._obs = buffer((b, self.obs_dim)) if on_gpu else ort.OrtValue.ortvalue_from_numpy(self._obs_host)
        self._reset = buffer((b,)) if on_gpu else ort.OrtValue.ortvalue_from_numpy(self._reset_host)
        head = [o for o in self.contract["outputs"] if not o.startswith("state_out.")]
        self.outputs: dict[str, np.ndarray] = {}
        for out in self.session.get_outputs():
            if out.name in head:
                shape = [b if not isinstance(d, int) else d for d in out.shape]
                dtype = np.int64 if out.type == "tensor(int64)" else np.float32
                self.outputs[out.name] = np.zeros(shape, dtype)
        # Two sets of state buffers; two bindings that read one set and write the other.
        self._states = [[buffer((b,) + shape) for _, shape in self.state_spec] for _ in range(2)]
        self._bindings = []
        for src, dst in ((0, 1), (1, 0)):
            io = self.session.io_binding()
            io.bind_ortvalue_input("obs", self._obs)
            io.bind_ortvalue_input("reset", self._reset)
            for (name, _), s_in, s_out in zip(self.state_spec, self._states[src], self._states[dst]):
                io.bind_ortvalue_input(f"state_in.{name}", s_in)
                io.bind_ortvalue_output(f"state_out.{name}", s_out)
            for name, arr in self.outputs.items():
                io.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(arr))
            self._bindings.append(io)
        self._on_gpu = on_gpu
        self._current = 0  # the set holding the current state
        self._pending_reset = np.ones(b, np.float32)  # the first tick starts an episode
        self._can_undo = False
        self.reset()

    # -- ticks -------------------------------------------------------------------------
    def check_obs(self, obs) -> np.ndarray:
        """``obs`` as float32 ``[batch, obs_dim]``; ValueError on a wrong size or a
        non-finite value (the state is then left untouched)."""
        arr = np.asarray(obs, dtype=np.float32)
        if arr.ndim == 1 and self.batch == 1:
            arr = arr[None]
        if arr.shape != (self.batch, self.obs_dim):
            raise ValueError(f"observation has shape {np.shape(obs)}, expected "
                             f"({self.batch}, {self.obs_dim})"
                             + (f" or ({self.obs_dim},)" if self.batch == 1 else ""))
        if not np.isfinite(arr).all():
            raise ValueError("observation contains NaN or Inf")
        return arr

    def step(self, obs, reset=False, deterministic: bool | None = None) -> np.ndarray:
        """One tick: the action for ``obs`` (``[batch, obs_dim]``, or ``[obs_dim]`` at
        batch 1). ``reset`` (bool or ``[batch]``) starts an episode in those rows first.
        Returns the env-ready action (``[batch, ...]``; a scalar row for Discrete at
        batch 1 is returned as shape ``[1]``). The heads of the tick stay in
        :attr:`outputs` (``value``, ``logits`` or ``action_mean``/``action_log_std``)."""
        arr = self.check_obs(obs)
        np.copyto(self._obs_host, arr)
        if reset is False:  # the usual tick: a plain copy (broadcast_to costs ~3 us)
            np.copyto(self._reset_host, self._pending_reset)
        else:
            np.maximum(self._pending_reset,
                       np.broadcast_to(np.asarray(reset, np.float32), (self.batch,)),
                       out=self._reset_host)
        if self._on_gpu:
            self._obs.update_inplace(self._obs_host)
            self._reset.update_inplace(self._reset_host)
        self.session.run_with_iobinding(self._bindings[self._current])
        self._current = 1 - self._current
        self._pending_reset.fill(0.0)
        self._can_undo = True
        det = self.deterministic if deterministic is None else deterministic
        return self.outputs["action"].copy() if det else self._sample()

    def _sample(self) -> np.ndarray:
        kind, rng = self.action_spec["kind"], self._rng
        if kind == "box":
            mean, log_std = self.outputs["action_mean"], self.outputs["action_log_std"]
            a = mean + np.exp(log_std) * rng.standard_normal(mean.shape).astype(np.float32)
            return np.clip(a, np.asarray(self.action_spec["low"], np.float32),
                           np.asarray(self.action_spec["high"], np.float32))
        logits = self.outputs["logits"].astype(np.float64)
        if kind == "multi_binary":
            return (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(np.int64)
        splits = [logits] if kind == "discrete" else np.split(
            logits, np.cumsum(self.action_spec["nvec"])[:-1], axis=-1)
        picks = []
        for lg in splits:
            p = np.exp(lg - lg.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            u = rng.random((lg.shape[0], 1))
            picks.append(np.minimum((p.cumsum(-1) < u).sum(-1), lg.shape[-1] - 1))
        return picks[0] if kind == "discrete" else np.stack(picks, -1)

    # -- state -------------------------------------------------------------------------
    def undo_step(self) -> None:
        """Go back to the state before the last :meth:`step` (its input state is still in
        the other buffer set, so this copies nothing), for a caller that refuses that
        step's outputs. Allowed once, right after a step."""
        if not self._can_undo:
            raise RuntimeError("undo_step() must follow a step() (once, with no reset, "
                               "restore or load_state in between)")
        self._current = 1 - self._current
        np.maximum(self._pending_reset, self._reset_host, out=self._pending_reset)
        self._can_undo = False

    def reset(self, rows: Sequence[int] | None = None) -> None:
        """Start a new episode at the next tick (all rows, or ``rows``); the state
        reads as the initial (zero) state from now on."""
        idx = slice(None) if rows is None else np.asarray(rows)
        snap = self.snapshot()
        for arr in snap.values():
            arr[idx] = 0.0
        self._write_state(snap)
        self._pending_reset[idx] = 1.0

    def snapshot(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """A host copy of the current state, ``{name: [batch, ...]}`` (only ``names``,
        if given)."""
        return {name: v.numpy().copy() for (name, _), v in
                zip(self.state_spec, self._states[self._current])
                if names is None or name in names}

    def restore(self, snapshot: dict[str, np.ndarray]) -> None:
        """Make ``snapshot`` (from :meth:`snapshot` or :meth:`load_state`) the state."""
        want = {n: (self.batch,) + s for n, s in self.state_spec}
        if set(snapshot) != set(want):
            raise ValueError(f"snapshot has tensors {sorted(snapshot)}, this model's state is "
                             f"{sorted(want)}")
        for name, shape in want.items():
            if tuple(np.shape(snapshot[name])) != shape:
                raise ValueError(f"snapshot tensor {name!r} has shape "
                                 f"{tuple(np.shape(snapshot[name]))}, expected {shape}")
        self._write_state(snapshot)
        self._pending_reset[:] = 0.0

    def _write_state(self, values: dict[str, np.ndarray]) -> None:
        self._can_undo = False
        for (name, _), v in zip(self.state_spec, self._states[self._current]):
            v.update_inplace(np.ascontiguousarray(values[name], dtype=np.float32))

    def state_identity(self) -> dict[str, Any]:
        """What a saved state must match to be restored into this model."""
        return {"state": [[n, list(s)] for n, s in self.state_spec], "batch": self.batch,
                "checkpoint_sha256": self.contract.get("checkpoint", {}).get("sha256")}

    def save_state(self, path: str | os.PathLike,
                   snapshot: dict[str, np.ndarray] | None = None) -> Path:
        """Write the state (or ``snapshot``, taken earlier with :meth:`snapshot`) to
        ``path`` (``.npz``) atomically: a temporary file in the same folder, fsync,
        rename. A crash leaves the old file or the new one. With ``snapshot`` given it
        reads nothing of the live state, so another thread may write it while ticks go on."""
        arrays = dict(self.snapshot() if snapshot is None else snapshot)
        arrays["__identity__"] = np.frombuffer(json.dumps(self.state_identity()).encode(), np.uint8)
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    def load_state(self, path: str | os.PathLike) -> None:
        """Restore a state written by :meth:`save_state` for this model (ValueError if
        it belongs to another model, batch or state layout, or is unreadable)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception as e:  # missing, empty, truncated zip, not an npz...
            raise ValueError(f"state file {str(path)!r} could not be read: "
                             f"{type(e).__name__}: {e}") from None
        ident = arrays.pop("__identity__", None)
        if ident is None:
            raise ValueError(f"state file {str(path)!r} was not written by PolicyRuntime")
        saved = json.loads(ident.tobytes().decode())
        if saved != self.state_identity():
            raise ValueError(f"state file {str(path)!r} belongs to another model or batch: "
                             f"{saved} != {self.state_identity()}")
        self.restore(arrays)
