"""Constructor-argument validation shared by every ``sim`` environment.

Each helper returns the value converted to a plain Python type, or raises
``ValueError`` with a message that names the argument and the accepted range, so
``gymnasium.make("dnc/TMaze-v0", length=0)`` fails with a message a user can act on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real


def _range_text(low: float | None, high: float | None, *, low_open: bool = False) -> str:
    left = "(" if low_open else "["
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    right = ")" if high is None else "]"
    return f"{left}{lo}, {hi}{right}"


def int_arg(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` in ``[low, high]`` (either bound may be ``None``)."""
    expected = f"an integer in {_range_text(low, high)}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        # ValueError for a wrong type too: one exception for every bad argument.
        raise ValueError(f"{name} must be {expected}, got {value!r}")  # noqa: TRY004
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def float_arg(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` in ``[low, high]``, or ``(low, high]`` if
    ``low_open``."""
    expected = f"a finite number in {_range_text(low, high, low_open=low_open)}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be {expected}, got {value!r}")  # noqa: TRY004
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if not math.isfinite(value) or too_low or too_high:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def int_range_arg(name: str, value: object, low: int, high: int) -> tuple[int, int]:
    """Return ``value`` as ``(lo, hi)`` with ``low <= lo <= hi <= high``.

    ``value`` is an integer (a fixed setting: ``(value, value)``) or a list or tuple of
    two integers ``[lo, hi]``, an inclusive range an environment draws from at every
    reset (see :func:`draw_int`).
    """
    expected = (f"an integer in {_range_text(low, high)} or a range [lo, hi] of two such "
                "integers with lo <= hi")

    def is_int(v: object) -> bool:
        return isinstance(v, Integral) and not isinstance(v, bool)

    if is_int(value):
        bounds = (int(value), int(value))
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(map(is_int, value)):
        bounds = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if not low <= bounds[0] <= bounds[1] <= high:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return bounds


def draw_int(rng, bounds: tuple[int, int]) -> int:
    """An integer drawn uniformly from the inclusive range ``bounds`` with ``rng`` (an
    env's ``np_random``); a fixed setting (``lo == hi``) draws nothing, so it leaves the
    env's random stream exactly as it was before ranges existed."""
    lo, hi = bounds
    return lo if lo == hi else int(rng.integers(lo, hi + 1))


def choice_arg(name: str, value: object, choices: Iterable[object]) -> object:
    """Return ``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices!r}, got {value!r}")
    return value


def render_mode_arg(value: object, metadata: dict) -> str | None:
    """Validate ``render_mode`` against ``metadata["render_modes"]`` (``None`` allowed)."""
    modes = (None, *metadata["render_modes"])
    return choice_arg("render_mode", value, modes)  # type: ignore[return-value]
