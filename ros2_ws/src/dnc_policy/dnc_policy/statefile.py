"""The recurrent state at rest: checking a state before it replaces the live one, and the
``.npz`` state file. numpy only; :class:`~dnc_policy.runtime.PolicyRuntime` calls it for
``restore``, ``save_state`` and ``load_state``.

A state is checked whole before anything changes: exactly the model's state tensors,
each of its shape, real and finite in float32, and within the ranges the contract's
``state_bounds`` declare for the core (contract 1.2; ``dnc_core``'s cores declare them,
e.g. a DNC's usage in [0, 1] and its weightings summing to at most 1 over the slots). A
refusal is a :class:`StateError` of one line naming the tensor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .contract import _describe
from .files import atomic_write

#: Rounding allowed beyond a bound, and beyond a sum of 1 (plus one float32 rounding
#: step per summed slot); a bound's ``low_tolerance`` overrides it below ``low``.
STATE_TOLERANCE = 1e-5


class StateError(ValueError):
    """A state (a snapshot or a state file) that this runtime refuses; nothing was changed."""


def check_state(values, spec: Sequence[tuple[str, tuple]], batch: int,
                bounds: Mapping[str, dict], source: str = "snapshot") -> dict[str, np.ndarray]:
    """``values`` as ``{name: float32 [batch, *shape]}`` (C-contiguous), or a
    :class:`StateError` (one line, naming the tensor) unless it has exactly the tensors
    of ``spec`` (``[(name, shape)]``), each of its shape, of real numbers (bool, int or
    float: not complex, string or object), all finite in float32, and within ``bounds``
    (the contract's ``state_bounds``; :data:`STATE_TOLERANCE` for rounding)."""
    names = [n for n, _ in spec]
    if not isinstance(values, Mapping):
        raise StateError(f"{source} is {type(values).__name__}, expected a dict of the "
                         f"state tensors {names}")
    missing = [n for n in names if n not in values]
    extra = sorted(repr(k) for k in values if k not in names)
    if missing or extra:
        raise StateError(f"{source} " + "; ".join(
            ([f"lacks the state tensors {missing}"] if missing else [])
            + ([f"has unknown entries {', '.join(extra)}"] if extra else []))
            + f" (this model's state is {names})")
    out = {}
    for name, shape in spec:
        want = (batch,) + tuple(shape)
        try:
            arr = np.asarray(values[name])
        except (TypeError, ValueError) as e:  # a ragged list, say
            raise StateError(f"{source} tensor {name!r} is not an array: "
                             f"{first_line(e)}") from None
        if arr.dtype.kind not in "biuf":
            raise StateError(f"{source} tensor {name!r} has dtype {arr.dtype}, expected "
                             "real numbers (float32)")
        if arr.shape != want:
            raise StateError(f"{source} tensor {name!r} has shape {arr.shape}, "
                             f"expected {want}")
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.ascontiguousarray(arr, dtype=np.float32)
        finite = np.isfinite(arr)
        if not finite.all():
            first = np.unravel_index(int(np.argmin(finite)), arr.shape)
            raise StateError(f"{source} tensor {name!r} has {arr.size - int(finite.sum())} "
                             f"NaN or Inf value(s) (in float32), first at index "
                             f"{tuple(int(i) for i in first)}: refused, the policy would "
                             "output NaN from then on")
        if name in bounds:
            check_bound(arr, bounds[name], f"{source} tensor {name!r}")
        out[name] = arr
    return out


def check_bound(arr: np.ndarray, bound: Mapping, where: str) -> None:
    """Raise :class:`StateError` (one line) unless the finite float32 ``[batch, ...]``
    ``arr`` is within ``bound`` (one ``state_bounds`` entry of the contract: ``low``,
    ``high``, ``sums`` of ``"none"``, ``"last_axis"`` or ``"link"``, ``what``)."""
    low, high, what = bound["low"], bound["high"], bound["what"]
    tol = STATE_TOLERANCE
    bad = (arr < low - bound.get("low_tolerance", tol)) | (arr > high + tol)
    if bad.any():
        first = int(np.argmax(bad))
        raise StateError(f"{where} has {int(bad.sum())} value(s) outside [{low:g}, {high:g}], "
                         f"first {float(arr.flat[first]):.6g} at index "
                         f"{_index(first, arr.shape)}: refused, {what} is always within it "
                         "(up to rounding); such a memory makes the policy's outputs NaN or "
                         "meaningless")
    if bound["sums"] == "none":
        return
    n = arr.shape[-1]
    sum_tol = tol + n * 2.0 ** -23
    # (label, sums, where the summed axis goes in the index shown)
    checks = [("sums to", arr.sum(-1, dtype=np.float64), arr.ndim - 1)]
    if bound["sums"] == "link":
        diag = np.abs(np.diagonal(arr, axis1=-2, axis2=-1))
        if (diag > tol).any():
            *lead, i = _index(int(np.argmax(diag > tol)), diag.shape)
            at = (*lead, i, i)
            raise StateError(f"{where} has a non-zero diagonal, {float(arr[at]):.6g} at "
                             f"index {at}: refused, {what} has a zero diagonal")
        checks = [("has a row summing to", checks[0][1], arr.ndim - 1),
                  ("has a column summing to", arr.sum(-2, dtype=np.float64), arr.ndim - 2)]
    for label, sums, axis in checks:
        over = sums > 1.0 + sum_tol
        if over.any():
            idx = [str(i) for i in _index(int(np.argmax(over)), sums.shape)]
            idx.insert(axis, ":")
            raise StateError(f"{where} {label} {float(sums[over][0]):.6g} at index "
                             f"({', '.join(idx)}): refused, {what} sums to at most 1 over "
                             "the memory slots")


def write_state_file(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
                     identity: dict) -> Path:
    """Write ``arrays`` and ``identity`` (what a reader must match) to ``path`` (``.npz``)
    atomically: a temporary file in the same folder, fsync, rename. A crash leaves the
    old file or the new one."""
    arrays = dict(arrays)
    arrays["__identity__"] = np.frombuffer(json.dumps(identity).encode(), np.uint8)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def read_state_file(path: str | os.PathLike, identity: dict) -> dict[str, np.ndarray]:
    """The arrays of a state file :func:`write_state_file` wrote with this ``identity``,
    read with ``allow_pickle=False``; a :class:`StateError` (one line saying why) for a
    file that is missing, unreadable, pickled, or another model's or batch's. The arrays
    themselves are not checked here (:func:`check_state` does)."""
    where = f"state file {str(path)!r}"
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # missing, empty, truncated zip, pickled, not an npz...
        raise StateError(f"{where} could not be read: {type(e).__name__}: "
                         f"{first_line(e)}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise StateError(f"{where} is a single .npy array, not the .npz archive "
                         "PolicyRuntime.save_state writes")
    try:
        with data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # a bad CRC, a pickled (object) array, a corrupt header...
        raise StateError(f"{where} could not be read: {type(e).__name__}: "
                         f"{first_line(e)}") from None
    ident = arrays.pop("__identity__", None)
    if ident is None:
        raise StateError(f"{where} was not written by PolicyRuntime (no __identity__)")
    try:
        if ident.dtype != np.uint8 or ident.ndim != 1:
            raise ValueError(f"dtype {ident.dtype}, shape {ident.shape}")
        saved = json.loads(ident.tobytes().decode())
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError
        raise StateError(f"{where} has an unreadable __identity__: {type(e).__name__}: "
                         f"{first_line(e)}") from None
    if saved != identity:
        if not isinstance(saved, dict):
            raise StateError(f"{where} has an __identity__ of {_describe(saved)}, "
                             "expected an object")
        try:
            diff = "; ".join(f"{k}: file {json.dumps(saved.get(k))}, model "
                             f"{json.dumps(v)}" for k, v in identity.items()
                             if saved.get(k) != v) or _describe(saved)
        except RecursionError:
            diff = "its __identity__ is nested too deeply to show"
        raise StateError(f"{where} belongs to another model or batch ({diff})")
    return arrays


def _index(flat: int, shape) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (for one-line errors)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else "(no message)"
