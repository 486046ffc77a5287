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

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .contract import (
    OBS,
    RESET,
    STATE_IN,
    STATE_OUT,
    ContractError,
    check_graph,
    read_contract,
)
from .statefile import StateError as StateError  # what restore and load_state raise
from .statefile import check_state, read_state_file, write_state_file

DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider",
                     "CPUExecutionProvider")


class NonFiniteOutput(ValueError):
    """A tick whose outputs (heads, or on the CPU also the new state) hold NaN or Inf.
    :meth:`PolicyRuntime.step` raises it after undoing the tick: the state and any
    pending reset are those before it, so the caller can act safely and try again."""


#: Provider options that capture CUDA graphs (CUDA EP, TensorRT EP): refused, see
#: :func:`pick_providers`.
CUDA_GRAPH_OPTIONS = ("enable_cuda_graph", "trt_cuda_graph_enable")


#: onnxruntime session settings of a tick (``PolicyRuntime(session=...)``): the graph
#: optimisation level ("disable", "basic", "extended", "all"), the execution mode
#: ("sequential", "parallel": independent nodes on ``inter_op_threads``), and whether idle
#: intra-op pool threads spin (only with ``threads`` > 1: spinning trades a core's worth of
#: CPU for a faster wake-up).
SESSION_DEFAULTS: dict[str, Any] = {"graph_optimization": "all", "execution_mode": "sequential",
                                    "inter_op_threads": 1, "allow_spinning": True}


def session_options(threads: int = 1, session: Mapping[str, Any] | None = None):
    """The ``onnxruntime.SessionOptions`` of a tick: ``threads`` intra-op threads and
    :data:`SESSION_DEFAULTS` updated by ``session``; a ``ValueError`` naming a key or
    value it does not know."""
    import onnxruntime as ort

    session = dict(session or {})
    unknown = sorted(set(session) - set(SESSION_DEFAULTS))
    if unknown:
        raise ValueError(f"session: unknown setting(s) {unknown}; known: "
                         f"{sorted(SESSION_DEFAULTS)}")
    cfg = {**SESSION_DEFAULTS, **session}
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    modes = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL,
             "parallel": ort.ExecutionMode.ORT_PARALLEL}
    if cfg["graph_optimization"] not in levels:
        raise ValueError(f"session: graph_optimization {cfg['graph_optimization']!r}, "
                         f"expected one of {list(levels)}")
    if cfg["execution_mode"] not in modes:
        raise ValueError(f"session: execution_mode {cfg['execution_mode']!r}, expected one "
                         f"of {list(modes)}")
    for key, value in (("threads", threads), ("inter_op_threads", cfg["inter_op_threads"])):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"session: {key} {value!r}, expected an integer >= 1")
    if not isinstance(cfg["allow_spinning"], bool):
        raise ValueError(f"session: allow_spinning {cfg['allow_spinning']!r}, expected "
                         "true or false")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = cfg["inter_op_threads"]
    opts.graph_optimization_level = levels[cfg["graph_optimization"]]
    opts.execution_mode = modes[cfg["execution_mode"]]
    opts.add_session_config_entry("session.intra_op.allow_spinning",
                                  "1" if cfg["allow_spinning"] else "0")
    return opts


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
        for p in chosen:
            options = {} if isinstance(p, str) else dict(p[1] or {})
            graph = [k for k in CUDA_GRAPH_OPTIONS if str(options.get(k, "0")).lower()
                     not in ("0", "false", "")]
            if graph:
                raise ValueError(
                    f"execution provider option {graph[0]}={options[graph[0]]!r} is not "
                    f"supported: the runtime alternates two IOBindings (state in, state "
                    f"out) every tick, and a captured CUDA graph would replay the first "
                    f"one's buffers, so the memory would not advance (docs/JETSON.md)")
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
        session: onnxruntime session settings beyond ``threads``, by the names of
            :data:`SESSION_DEFAULTS` (graph optimisation level, execution mode, inter-op
            threads, whether idle intra-op threads spin); the defaults are the ones
            ``python -m export.bench MODEL --options`` measured best for one tick.
    """

    def __init__(self, path: str | os.PathLike, providers: Sequence | None = None,
                 batch: int = 1, deterministic: bool = True, threads: int = 1,
                 seed: int | None = None, session: Mapping[str, Any] | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {str(self.path)!r} does not exist")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        opts = session_options(threads, session)
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
        #: The ranges a restored or loaded state is checked against (contract 1.2; a model
        #: exported before declares none: its state is checked for shape and finiteness).
        self.state_bounds = dict(self.contract.get("state_bounds", {}))
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
        host = ort.OrtValue.ortvalue_from_numpy
        self._obs = buffer((b, self.obs_dim)) if on_gpu else host(self._obs_host)
        self._reset = buffer((b,)) if on_gpu else host(self._reset_host)
        head = [o for o in self.contract["outputs"] if not o.startswith(STATE_OUT)]
        shapes = {o.name: ([b if not isinstance(d, int) else d for d in o.shape], o.type)
                  for o in self.session.get_outputs() if o.name in head}
        # Two sets of state buffers; two bindings that read one set and write the other.
        # On the CPU both sets and the float heads are views of one host block, laid out
        # [set 0 | heads | set 1] and bound without a copy: what a tick writes (the heads
        # and one set) is then one contiguous slice, which step() checks for NaN/Inf
        # with one dot product. On a GPU the state stays there; the block holds the
        # heads only. (An int64 action is always finite.)
        floats = [n for n in head if shapes[n][1] != "tensor(int64)"]
        sets = [] if on_gpu else [(b,) + shape for _, shape in self.state_spec]
        block, views = _block(sets + [shapes[n][0] for n in floats] + sets)
        k, h = len(sets), len(floats)
        self.outputs: dict[str, np.ndarray] = {}
        for name in head:
            self.outputs[name] = (views[k + floats.index(name)] if name in floats
                                  else np.zeros(shapes[name][0], np.int64))
        if on_gpu:
            self._states = [[buffer((b,) + shape) for _, shape in self.state_spec]
                            for _ in range(2)]
        else:
            self._states = [[ort.OrtValue.ortvalue_from_numpy(v) for v in part]
                            for part in (views[:k], views[k + h:])]
        n_set = sum(v.size for v in views[:k])
        n_heads = sum(v.size for v in views[k:k + h])
        # written[i]: what a tick that writes set i produces (heads included)
        self._block, self._written = block, [block[:n_set + n_heads], block[n_set:]]
        self._ones = np.ones(n_set + n_heads, np.float32)
        self._bindings = []
        for src, dst in ((0, 1), (1, 0)):
            io = self.session.io_binding()
            io.bind_ortvalue_input(OBS, self._obs)
            io.bind_ortvalue_input(RESET, self._reset)
            for (name, _), s_in, s_out in zip(self.state_spec, self._states[src],
                                              self._states[dst]):
                io.bind_ortvalue_input(STATE_IN + name, s_in)
                io.bind_ortvalue_output(STATE_OUT + name, s_out)
            for name, arr in self.outputs.items():
                io.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(arr))
            self._bindings.append(io)
        self._on_gpu = on_gpu
        self._build_tick_buffers(ort)
        for bufs in self._states:  # both sets start as the initial (zero) state
            for (_, shape), v in zip(self.state_spec, bufs):
                v.update_inplace(np.zeros((b,) + shape, np.float32))
        self._current = 0  # the set holding the current state
        self._pending_reset = np.ones(b, np.float32)  # the first tick starts an episode
        self._can_undo = False

    def _build_tick_buffers(self, ort) -> None:
        """What a tick reuses so that it allocates nothing: views of the observation
        buffer for a float32 ``[batch, obs_dim]`` or ``[obs_dim]`` input, a float64 copy
        and a preallocated result for its finiteness check (one BLAS dot), the same for
        the outputs' check, and onnxruntime's run call with a RunOptions made once."""
        b, d = self.batch, self.obs_dim
        self._obs_shape, self._obs_row_shape = (b, d), ((d,) if b == 1 else None)
        self._obs_row = self._obs_host[0]
        self._obs64 = np.zeros(b * d)
        self._obs64_row, self._obs64_col = self._obs64.reshape(1, -1), self._obs64.reshape(-1, 1)
        self._obs_flat = self._obs_host.reshape(-1)
        self._sumsq = np.zeros((1, 1))
        self._written_rows = [w.reshape(1, -1) for w in self._written]
        self._ones_col = self._ones.reshape(-1, 1)
        self._dot32 = np.zeros((1, 1), np.float32)
        # InferenceSession.run_with_iobinding (onnxruntime's Python wrapper) allocates a
        # few hundred bytes per call (its WebGPU graph-capture bookkeeping, a RunOptions
        # when none is given); its C binding with a RunOptions made once allocates 64.
        # Where this onnxruntime has those attributes the tick calls the binding itself
        # (the wrapper's own check, the binding belongs to the session, holds here: both
        # were made together); elsewhere the public call.
        self._run_options = ort.RunOptions()
        sess = getattr(self.session, "_sess", None)
        raw = [getattr(io, "_iobinding", None) for io in self._bindings]
        self._raw_run = (sess.run_with_iobinding if sess is not None and all(
            r is not None for r in raw) and hasattr(sess, "run_with_iobinding") else None)
        self._raw_bindings = raw

    # -- ticks -------------------------------------------------------------------------
    def _load_obs(self, obs) -> bool:
        """The fast path of :meth:`check_obs` for a float32 array of the right shape:
        copied into the input buffer and checked there (the float64 sum of squares of
        float32 values is finite exactly when every value is), allocating nothing.
        False: anything else, which takes :meth:`check_obs`."""
        if type(obs) is not np.ndarray or obs.dtype != np.float32:
            return False
        shape = obs.shape
        if shape == self._obs_shape:
            np.copyto(self._obs_host, obs)
        elif shape == self._obs_row_shape:
            np.copyto(self._obs_row, obs)
        else:
            return False
        np.copyto(self._obs64, self._obs_flat)
        np.dot(self._obs64_row, self._obs64_col, self._sumsq)
        if not math.isfinite(self._sumsq.item()):
            raise ValueError("observation contains NaN or Inf")
        return True

    def check_obs(self, obs) -> np.ndarray:
        """``obs`` as float32 ``[batch, obs_dim]``; ValueError on a wrong size, a value
        that is not a real number (complex, string, object) or a non-finite one (the
        state is then left untouched)."""
        arr = np.asarray(obs)
        if arr.dtype != np.float32:
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"observation has dtype {arr.dtype}, expected real numbers "
                                 "(float32)")
            with np.errstate(over="ignore"):  # beyond float32's range: Inf, refused below
                arr = arr.astype(np.float32)
        if arr.ndim == 1 and self.batch == 1:
            arr = arr[None]
        if arr.shape != (self.batch, self.obs_dim):
            raise ValueError(f"observation has shape {np.shape(obs)}, expected "
                             f"({self.batch}, {self.obs_dim})"
                             + (f" or ({self.obs_dim},)" if self.batch == 1 else ""))
        if not np.isfinite(arr).all():
            bad = np.flatnonzero(~np.isfinite(arr[0] if self.batch == 1 else arr))
            where = "index" if self.batch == 1 else "flat index"
            raise ValueError(f"observation has NaN or Inf at {where} {bad[:5].tolist()}")
        return arr

    def check_reset(self, reset) -> np.ndarray:
        """``reset`` as float32 ``[batch]`` of 0/1. Accepted: a bool, an int or float 0
        or 1, a numpy scalar of them, or an array of them of shape ``[batch]`` (a scalar
        applies to every row); anything else (None, -1, 0.3, NaN, a string, another
        shape) is a ValueError naming ``reset`` and what was expected."""
        expected = ("expected 0 or 1 (a bool, an int or a float), or an array of them of "
                    f"shape ({self.batch},)")
        if reset is True:
            return np.ones(self.batch, np.float32)
        arr = np.asarray(reset) if not isinstance(reset, (str, bytes)) else None
        if arr is None or arr.dtype.kind not in "biuf":
            what = (f"= {' '.join(repr(reset).split())[:60]}" if arr is None or arr.ndim == 0
                    else f"is an array of dtype {arr.dtype}, shape {arr.shape}")
            raise ValueError(f"reset {what}: {expected}")
        if arr.shape not in ((), (self.batch,)):
            raise ValueError(f"reset has shape {arr.shape}: {expected}")
        mask = np.broadcast_to(arr.astype(np.float32), (self.batch,))
        if not ((mask == 0.0) | (mask == 1.0)).all():
            bad = arr.reshape(-1)[~((arr.reshape(-1) == 0) | (arr.reshape(-1) == 1))]
            raise ValueError(f"reset has the value(s) {bad[:4].tolist()}: {expected}")
        return mask

    def step(self, obs, reset=False, deterministic: bool | None = None,
             out: np.ndarray | None = None, checked: bool = False) -> np.ndarray:
        """One tick: the action for ``obs`` (``[batch, obs_dim]``, or ``[obs_dim]`` at
        batch 1). ``reset`` (0/1: bool, int, float, or ``[batch]`` of them; see
        :meth:`check_reset`) starts an episode in those rows first.
        Returns the env-ready action (``[batch, ...]``; a scalar row for Discrete at
        batch 1 is returned as shape ``[1]``). The heads of the tick stay in
        :attr:`outputs` (``value``, ``logits`` or ``action_mean``/``action_log_std``).

        A tick whose heads (or, on the CPU, whose new state) hold NaN or Inf is undone
        and raises :class:`NonFiniteOutput` (a ValueError): no action comes from it, the
        state and any pending reset stay those before it (:attr:`outputs` shows the
        refused heads).

        ``out``: an array of the action's shape that the deterministic action is written
        into (cast to its dtype) and returned instead of a new copy, so a tick on a
        float32 observation of the right shape allocates nothing in Python
        (``dnc_policy_tools.bench --alloc``).

        ``checked``: the caller has already found every value of ``obs`` finite (the
        node's controller checks its bound on them), so a float32 ``[batch, obs_dim]``
        array is copied in unchecked; anything else is checked as usual."""
        if (checked and type(obs) is np.ndarray and obs.dtype == np.float32
                and obs.shape == self._obs_shape):
            np.copyto(self._obs_host, obs)
        elif not self._load_obs(obs):
            np.copyto(self._obs_host, self.check_obs(obs))
        mask = None if reset is False else self.check_reset(reset)
        if mask is None:  # the usual tick: a plain copy (broadcast_to costs ~3 us)
            np.copyto(self._reset_host, self._pending_reset)
        else:
            np.maximum(self._pending_reset, mask, out=self._reset_host)
        if self._on_gpu:
            self._obs.update_inplace(self._obs_host)
            self._reset.update_inplace(self._reset_host)
        if self._raw_run is not None:
            self._raw_run(self._raw_bindings[self._current], self._run_options)
        else:
            self.session.run_with_iobinding(self._bindings[self._current], self._run_options)
        written = 1 - self._current
        np.dot(self._written_rows[written], self._ones_col, self._dot32)
        if not (math.isfinite(self._dot32.item()) or np.isfinite(self._written[written]).all()):
            self._refuse_tick(written)  # (a finite sum is the usual tick; an overflowing
            # one is looked at element-wise)
        self._current = written
        self._pending_reset.fill(0.0)
        self._can_undo = True
        det = self.deterministic if deterministic is None else deterministic
        if not det:
            return self._sample()
        if out is not None:
            np.copyto(out, self.outputs["action"], casting="unsafe")  # to out's dtype
            return out
        return self.outputs["action"].copy()

    def _refuse_tick(self, written: int) -> None:
        """The tick just run produced NaN or Inf: keep the state (and any pending reset)
        it read as the current one, and raise :class:`NonFiniteOutput`."""
        self._can_undo = False  # the other set now holds the refused tick's outputs
        arrays = {k: v for k, v in self.outputs.items() if v.dtype == np.float32}
        if not self._on_gpu:
            arrays.update((STATE_OUT + name, v.numpy()) for (name, _), v in
                          zip(self.state_spec, self._states[written]))
        raise NonFiniteOutput(
            f"the model produced NaN or Inf values ({_count_nonfinite(arrays)}): step "
            "undone, the state and any pending reset are as before it")

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
    @property
    def buffer_set(self) -> int:
        """Which of the two state buffer sets (0 or 1) holds the current state: a tick
        reads it and writes the other; :meth:`undo_step`, :meth:`reset`,
        :meth:`restore` and :meth:`load_state` switch too. On the CPU onnxruntime's
        results may differ in the last bit between the two (their addresses differ), so
        a replay that must match another runtime bit for bit starts on the same set
        (``dnc_policy_tools.bench``'s shadow)."""
        return self._current

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

    def check_state(self, values, source: str = "snapshot") -> dict[str, np.ndarray]:
        """``values`` as ``{name: float32 [batch, *shape]}``, or a :class:`StateError`
        (one line, naming the tensor) unless it is a state this model can be in: its
        tensors, shapes, finite real values, and the ranges the contract's
        ``state_bounds`` declare (:func:`dnc_policy.statefile.check_state`)."""
        return check_state(values, self.state_spec, self.batch, self.state_bounds, source)

    def restore(self, snapshot: dict[str, np.ndarray]) -> None:
        """Make ``snapshot`` (from :meth:`snapshot` or :meth:`load_state`) the state.
        Every tensor is checked first (:meth:`check_state`); a refused snapshot raises
        :class:`StateError` and changes nothing (state, pending reset, undo)."""
        self._write_state(self.check_state(snapshot))
        self._pending_reset[:] = 0.0

    def _write_state(self, values: dict[str, np.ndarray]) -> None:
        """Write checked float32 ``values`` into the other buffer set, then make it the
        current one: the state changes in one step, or (on an error) not at all."""
        target = 1 - self._current
        for (name, _), v in zip(self.state_spec, self._states[target]):
            v.update_inplace(values[name])
        self._current = target
        self._can_undo = False  # the other set no longer holds the previous tick's input

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
        return write_state_file(path, self.snapshot() if snapshot is None else snapshot,
                                self.state_identity())

    def load_state(self, path: str | os.PathLike) -> None:
        """Restore a state written by :meth:`save_state` for this model. The file is read
        with ``allow_pickle=False`` and checked whole (identity, names, dtypes, shapes,
        finite values, bounds) before anything changes: a refused file raises
        :class:`StateError` (a ValueError; one line saying why) and leaves the state,
        the pending reset and undo as they were."""
        arrays = read_state_file(path, self.state_identity())
        self._write_state(self.check_state(arrays, f"state file {str(path)!r}"))
        self._pending_reset[:] = 0.0


def _block(shapes) -> tuple[np.ndarray, list[np.ndarray]]:
    """One zeroed float32 block and C-contiguous views of it, one per shape."""
    sizes = [math.prod(s) for s in shapes]
    block = np.zeros(sum(sizes), np.float32)
    ends = np.cumsum([0] + sizes)
    return block, [block[a:e].reshape(s) for a, e, s in zip(ends[:-1], ends[1:], shapes)]


def _count_nonfinite(arrays: Mapping[str, np.ndarray]) -> str:
    """``"value: 1, logits: 3"``: the tensors with NaN or Inf values and how many."""
    counts = {k: int((~np.isfinite(v)).sum()) for k, v in arrays.items()}
    return ", ".join(f"{k}: {n}" for k, n in counts.items() if n)
