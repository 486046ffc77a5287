"""The step interface that every recurrent core (DNC, LSTM, GRU, NTM) implements.

A core is an ``nn.Module`` with

* ``state_spec``: the ordered ``(name, shape_without_batch)`` list of its state
  tensors (DESIGN.md §3). It is the single source of truth for state names and shapes:
  export writes it into the ONNX file and the robot runtime reads it back from there.
* ``state_type``: a ``NamedTuple`` class whose fields are those names, in that order.
* ``feature_size``: the width F of the features the policy heads read.
* ``step(x [B, D], state, reset [B]) -> (features [B, F], new_state)``: one time step.
  Rows with ``reset = 1`` start an episode: their state is replaced by the initial state
  *before* the step.

Training, export and deployment only use this interface, so they treat every core alike.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor, nn

StateSpec = tuple[tuple[str, tuple[int, ...]], ...]


def state_spec_of(state_type: type, **shapes: tuple[int, ...]) -> StateSpec:
    """The ``state_spec`` of a core whose state is the NamedTuple ``state_type``: its
    fields, in their order, each with its shape without the batch axis. The names are
    declared once, by the NamedTuple; a shape for a name it lacks, or a field without a
    shape, is a ValueError."""
    fields = state_type._fields
    if set(shapes) != set(fields):
        raise ValueError(f"{state_type.__name__} has the fields {list(fields)}; shapes were "
                         f"given for {list(shapes)}")
    return tuple((name, tuple(int(d) for d in shapes[name])) for name in fields)


def apply_reset(state: NamedTuple, reset: Tensor, initial: NamedTuple | None = None) -> Any:
    """Replace the rows of ``state`` where ``reset [B]`` is set by the initial state.

    ``initial`` defaults to all zeros. Works for any state named tuple; ``reset`` may be
    bool or float (0/1). Built from ``where`` (not a multiply), so a replaced row is
    clean even if it held NaN, no gradient flows into it, and it exports to ONNX.

    For the zero initial state, the tensors are flattened to ``[B, -1]`` and go through
    one ``where`` together: exact, and in ONNX Runtime one Where plus cheap reshapes cost
    less than one Where per state tensor.
    """
    keep = (reset == 0).reshape(-1, 1)  # [B, 1]: rows that carry their state on
    if initial is not None:
        return type(state)(*(torch.where(keep.reshape((-1,) + (1,) * (s.dim() - 1)), s, i)
                             for s, i in zip(state, initial)))
    flat = torch.where(keep, torch.cat([s.flatten(1) for s in state], dim=1), 0.0)
    parts = flat.split([s[0].numel() for s in state], dim=1)
    return type(state)(*(p.reshape((-1,) + tuple(s.shape[1:])) for p, s in zip(parts, state)))


def state_bound(low: float, high: float, what: str, sums: str = "none",
                low_tolerance: float | None = None) -> dict:
    """One entry of :attr:`RecurrentCore.state_bounds`, as the ONNX contract carries it.

    Every value is within ``[low, high]``; ``sums`` adds ``"last_axis"`` (a weighting
    over the memory slots: the last axis sums to at most 1) or ``"link"`` (a temporal
    link matrix ``[N, N]``: every row and column sums to at most 1, the diagonal is 0).
    ``what`` names the tensor in a refusal. ``low_tolerance``: rounding allowed below
    ``low`` where the reader's default would be too loose. The schema is the contract's
    (``dnc_policy.contract``, which checks every exported entry)."""
    bound = {"low": float(low), "high": float(high), "sums": sums, "what": what}
    if low_tolerance is not None:
        bound["low_tolerance"] = float(low_tolerance)
    return bound


#: The range of an LSTM's ``h = o * tanh(c)`` (the baseline's and every memory core's
#: controller) and of a GRU's ``h`` (a convex mix of tanh values, from 0).
HIDDEN_BOUND = state_bound(-1.0, 1.0, "the hidden state h, a tanh")


class RecurrentCore(nn.Module):
    """Base class: state bookkeeping shared by all cores. Subclasses set
    ``state_type`` and ``state_spec`` and implement :meth:`_step`."""

    kind: str  # the name make_core knows it by
    state_type: type
    state_spec: StateSpec
    feature_size: int
    #: The state entries that show where the memory is read and written (a DNC's usage
    #: and weightings): exported in the ONNX contract as ``debug_state``, published by
    #: the node on ``~/debug/<name>``. Cores without an addressed memory have none.
    debug_state: tuple[str, ...] = ()
    #: The ranges the state tensors always stay within, ``{name: state_bound(...)}``:
    #: exported in the ONNX contract as ``state_bounds``; the robot runtime refuses a
    #: restored or loaded state outside them. Tensors not named are unbounded.
    state_bounds: Mapping[str, dict] = {}

    def initial_state(self, batch_size: int, device: torch.device | str | None = None,
                      dtype: torch.dtype | None = None) -> Any:
        """All-zero state ``[batch_size, *shape]`` for every entry of ``state_spec``."""
        ref = next(self.parameters())
        device = ref.device if device is None else device
        dtype = ref.dtype if dtype is None else dtype
        return self.state_type(*(torch.zeros((batch_size,) + tuple(shape), device=device,
                                             dtype=dtype) for _, shape in self.state_spec))

    def reset_state(self, state: Any, reset: Tensor) -> Any:
        """The state with rows where ``reset [B]`` is set replaced by the initial state
        (all zeros here; a core with another initial state overrides this)."""
        return apply_reset(state, reset)

    _compiled_step = None
    _compiled_chunk = None
    _chunk = 1

    def compile_step(self, enabled: bool = True, chunk: int = 1, **options) -> "RecurrentCore":
        """Run :meth:`step` through ``torch.compile`` (inductor) from now on.

        The memory update is a long chain of small ops; compiling fuses them and runs
        training 2-3x faster on CPU (see docs/BENCHMARKS.md), at a one-off compile cost
        of tens of seconds. Results equal the eager step to float rounding. Export and
        deployment never use this: they trace the eager step.

        ``chunk`` > 1 also compiles ``chunk`` steps at a time as one graph for
        :meth:`unroll` (a training replay): it saves the compiled step's per-call
        overhead (guards, autograd wrapper) and fuses across steps, forward and
        backward, at a one-off compile that grows with ``chunk`` (minutes at 8; the
        figures are in docs/TRAINING.md, Speed). A sequence whose length is not a
        multiple of ``chunk`` compiles one more graph for its last, shorter chunk.
        """
        if not isinstance(chunk, numbers.Integral) or isinstance(chunk, bool) or chunk < 1:
            raise ValueError(f"chunk: expected an integer >= 1, got {chunk!r}")
        self._compiled_step = torch.compile(self._step, dynamic=False, **options) if enabled else None
        self._chunk = int(chunk) if enabled else 1
        self._compiled_chunk = (torch.compile(self._unroll_chunk, dynamic=False, **options)
                                if enabled and self._chunk > 1 else None)
        return self

    @property
    def compiled(self) -> bool:
        """Whether :meth:`step` runs through ``torch.compile`` (:meth:`compile_step`)."""
        return self._compiled_step is not None

    def step(self, x: Tensor, state: Any, reset: Tensor | None = None) -> tuple[Tensor, Any]:
        """One step: ``x [B, D]``, ``state``, ``reset [B]`` -> ``(features [B, F], new_state)``."""
        # Eager: skip the reset when no row starts an episode (most ticks); traced or
        # exported graphs always contain it.
        if reset is not None and (torch.compiler.is_compiling() or bool(reset.any())):
            state = self.reset_state(state, reset)
        if self._compiled_step is not None and not torch.compiler.is_compiling():
            return self._compiled_step(x, state)
        return self._step(x, state)

    def _step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def unroll(self, xs: Tensor, state: Any, resets: Tensor | None = None) -> tuple[Tensor, Any]:
        """Run ``T`` steps: ``xs [B, T, D]``, ``resets [B, T]`` -> ``(features [B, T, F], state)``.

        The reset mask is applied at every step, so sequences that hold several episodes
        (as training rollouts do) never leak memory from one episode into the next.
        """
        if self._compiled_chunk is not None and not torch.compiler.is_compiling():
            if resets is None:
                resets = torch.zeros(xs.shape[:2], dtype=torch.bool, device=xs.device)
            k, chunks = self._chunk, []
            for s in range(0, xs.shape[1], k):
                f, state = self._compiled_chunk(xs[:, s:s + k], state, resets[:, s:s + k])
                chunks.append(f)
            return torch.cat(chunks, dim=1), state
        features = []
        for t in range(xs.shape[1]):
            f, state = self.step(xs[:, t], state, None if resets is None else resets[:, t])
            features.append(f)
        return torch.stack(features, dim=1), state

    def _unroll_chunk(self, xs: Tensor, state: Any, resets: Tensor) -> tuple[Tensor, Any]:
        """The steps of :meth:`unroll`, each with its reset, as one function for
        ``torch.compile`` (``compile_step(chunk=...)``)."""
        features = []
        for t in range(xs.shape[1]):
            f, state = self._step(xs[:, t], self.reset_state(state, resets[:, t]))
            features.append(f)
        return torch.stack(features, dim=1), state

    def check_state(self, state: Sequence[Tensor], batch_size: int) -> None:
        """Raise ``ValueError`` naming the first state tensor whose shape is wrong
        (tensors or arrays, in ``state_spec`` order; e.g. the sequence-start states a
        replay buffer file holds, checked when a continual run resumes)."""
        check_state_shapes(self.state_spec, state, batch_size)

    def config(self) -> dict:
        """The constructor arguments, enough to rebuild the core (stored in checkpoints)."""
        raise NotImplementedError


def check_state_shapes(spec: StateSpec, state: Sequence[Tensor], batch_size: int) -> None:
    """Raise ``ValueError`` naming the first tensor of ``state`` (in ``spec`` order) whose
    shape is not ``(batch_size, *shape)``, or if there are more or fewer tensors."""
    if len(state) != len(spec):
        raise ValueError(f"state has {len(state)} tensors, expected {len(spec)}: "
                         f"{[n for n, _ in spec]}")
    for (name, shape), s in zip(spec, state):
        want = (batch_size,) + tuple(shape)
        if tuple(s.shape) != want:
            raise ValueError(f"state tensor {name!r} has shape {tuple(s.shape)}, "
                             f"expected {want}")


def check_positive(**values: int) -> None:
    """Raise ``ValueError`` for the first argument that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_finite(**values: float) -> None:
    """Raise ``ValueError`` for the first argument that is not a finite real number."""
    for name, value in values.items():
        if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                or not math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_bool(**values: bool) -> None:
    """Raise ``ValueError`` for the first argument that is not ``True`` or ``False``."""
    for name, value in values.items():
        if not isinstance(value, bool):  # ValueError, as every core_config check raises
            raise ValueError(f"{name} must be True or False, got {value!r}")  # noqa: TRY004
