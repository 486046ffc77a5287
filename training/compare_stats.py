"""Study statistics (pure): one run's learning curve summarised, episodes to a threshold
with unreached seeds counted as censored, the ratio of two rows, an exact permutation test,
the verdict on the claim "the DNC needs about 40% fewer episodes", and whether parameter
counts are matched. No I/O beyond reading a ``metrics.csv``; used by
:mod:`training.compare` and its report (:mod:`training.compare_report`)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLAIMED_RATIO = 0.6  # "about 40% fewer episodes"
SUPPORT_BELOW = 0.7  # a ratio at or below this (>= 30% fewer) counts as support


@dataclass
class RunSummary:
    episodes_to_threshold: int | None  # None: not reached within the budget
    steps_to_threshold: int | None
    final_success: float
    wall_s: float
    total_episodes: int
    total_steps: int
    steps: np.ndarray  # the learning curve: global_step per row
    success: np.ndarray  # rolling success per row (NaN before the first episode ends)
    lowest_after: float | None = None  # lowest rolling success from the threshold row on
    returns: np.ndarray | None = None  # rolling return per row (NaN before the first episode)
    curve_start: int = 0  # the first row with at least min_episodes finished episodes

    def curve(self, by_return: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(env steps, rolling success or return)`` from ``curve_start`` on, rows without
        a value left out: the curve as the threshold counts it (the first rows' "rolling"
        figure holds only a few episodes)."""
        y = (self.returns if by_return else self.success)[self.curve_start:]
        keep = ~np.isnan(y)
        return self.steps[self.curve_start:][keep], y[keep]

    @property
    def reached(self) -> bool:
        return self.episodes_to_threshold is not None

    @property
    def has_success(self) -> bool:
        """False for an env that reports no ``is_success`` (POPGym's): compared by return."""
        return bool(np.any(~np.isnan(self.success)))

    @property
    def final_return(self) -> float:
        return float(self.returns[-1]) if self.returns is not None else math.nan


def summarize_run(csv_path: str | Path, threshold: float, min_episodes: int = 100) -> RunSummary:
    """Summarise one run's ``metrics.csv`` (columns as written by ``training.a2c``).

    The threshold counts as reached at the first row with ``success >= threshold`` and
    ``episodes >= min_episodes``.
    """
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{csv_path}: no metrics rows (did the run log anything?)")
    steps = np.array([int(r["global_step"]) for r in rows])
    episodes = np.array([int(r["episodes"]) for r in rows])
    success = np.array([float(r["success"]) if r["success"] else math.nan for r in rows])
    returns = np.array([float(r["return"]) if r["return"] else math.nan for r in rows])
    hit = np.flatnonzero((success >= threshold) & (episodes >= min_episodes))  # NaN: False
    first = int(hit[0]) if len(hit) else None
    return RunSummary(
        episodes_to_threshold=int(episodes[first]) if first is not None else None,
        steps_to_threshold=int(steps[first]) if first is not None else None,
        final_success=float(success[-1]), wall_s=float(rows[-1]["wall_s"]),
        total_episodes=int(episodes[-1]), total_steps=int(steps[-1]),
        steps=steps, success=success, returns=returns,
        lowest_after=float(np.nanmin(success[first:])) if first is not None else None,
        curve_start=int(np.searchsorted(episodes, min_episodes)))


def censored_episodes(runs: list[RunSummary]) -> list[int]:
    """Episodes to threshold per run, an unreached run counted as its total episodes
    (the budget): a lower bound of what that run would have needed."""
    return [r.episodes_to_threshold if r.reached else r.total_episodes for r in runs]


def episode_ratio(dnc: list[RunSummary], lstm: list[RunSummary]) -> float:
    """Mean episodes to threshold of the DNC over that of the LSTM (censored means)."""
    return float(np.mean(censored_episodes(dnc)) / np.mean(censored_episodes(lstm)))


def permutation_p(a: list[float], b: list[float]) -> float:
    """Two-sided exact permutation test of a difference in means (every split of the
    pooled values into groups of len(a) and len(b)): the share of splits whose |mean
    difference| is at least the observed one."""
    from itertools import combinations
    pooled, n = np.asarray(a + b, dtype=float), len(a)
    observed = abs(np.mean(a) - np.mean(b))
    total, count = pooled.sum(), 0
    splits = list(combinations(range(len(pooled)), n))
    for idx in splits:
        sa = pooled[list(idx)].sum()
        count += abs(sa / n - (total - sa) / len(b)) >= observed - 1e-9
    return count / len(splits)


def verdict(ratio: float, dnc: list[RunSummary], lstm: list[RunSummary],
            names: tuple[str, str] = ("DNC", "LSTM")) -> str:
    """One sentence on the claim "the DNC needs about 40% fewer episodes" (than the LSTM,
    or the rows ``names``)."""
    mem, rnn = names
    n_dnc, n_lstm = sum(r.reached for r in dnc), sum(r.reached for r in lstm)
    if n_dnc == 0 and n_lstm == 0:
        return "no verdict: neither core reached the threshold within the budget"
    if n_dnc == 0:
        return f"does not support the claim: the {mem} never reached the threshold, the {rnn} did"
    # Unreached seeds are counted at the budget, below what they would need: LSTM ones
    # make the ratio an upper bound, DNC ones a lower bound.
    if n_lstm < len(lstm) and n_dnc < len(dnc):
        bound = " (unreached seeds on both sides: the ratio is not a bound either way)"
    elif n_lstm < len(lstm):
        bound = f" (an upper bound of the ratio: the {rnn}'s unreached seeds need more)"
    elif n_dnc < len(dnc):
        bound = f" (a lower bound of the ratio: the {mem}'s unreached seeds need more)"
    else:
        bound = ""
    fewer = (1 - ratio) * 100
    upper = n_lstm < len(lstm) and n_dnc == len(dnc)
    lower = n_dnc < len(dnc) and n_lstm == len(lstm)
    if (upper and ratio > SUPPORT_BELOW) or (lower and ratio <= SUPPORT_BELOW) or (
            n_dnc < len(dnc) and n_lstm < len(lstm)):
        return f"inconclusive: ratio {ratio:.2f} with unreached seeds{bound}"
    if ratio <= SUPPORT_BELOW:
        return f"supports the claim: the {mem} needs {fewer:.0f}% fewer episodes{bound}"
    if ratio < 1:
        return (f"does not support the claim: the {mem} needs only {fewer:.0f}% fewer "
                f"episodes{bound}")
    return f"does not support the claim: the {mem} needs {-fewer:.0f}% more episodes{bound}"


RNN_ROWS = {"lstm", "gru"}  # the plain recurrent baselines of the claim


def _label(row: str) -> str:
    """A row's variant label (``dnc-ctx`` -> ``ctx``; a plain core: "")."""
    return row.split("-", 1)[1] if "-" in row else ""


def baselines_of(row: str, results: dict[str, list]) -> list[str]:
    """The LSTM and GRU rows a memory row is compared with: those of its own variant
    label where there are any (``dnc-ctx`` against ``lstm-ctx`` and ``gru-ctx``: the same
    training practice), else those whose label ends the row's (``dnc-mds-ctx``, a core
    variant trained with the context, against ``lstm-ctx`` and ``gru-ctx``), else the
    plain ``lstm`` and ``gru``."""
    rnns = [k for k in results if k.split("-", 1)[0] in RNN_ROWS]
    label = _label(row)
    same = [k for k in rnns if _label(k) == label]
    ending = [k for k in rnns if _label(k) and label.endswith("-" + _label(k))]
    return same or ending or [k for k in rnns if k in RNN_ROWS]


def ratio_pairs(results: dict[str, list]) -> list[tuple[str, str]]:
    """(memory row, baseline row) for the claim's ratio lines: every row that is not an
    LSTM or GRU against the better of its baselines (:func:`baselines_of`; fewer mean
    episodes to the threshold, unreached seeds counted at their total)."""
    pairs = []
    for k in results:
        if k.split("-", 1)[0] in RNN_ROWS:
            continue
        rnns = baselines_of(k, results)
        if rnns:
            pairs.append((k, min(rnns, key=lambda r: (np.mean(censored_episodes(results[r])),
                                                      r))))
    return pairs



MATCHED = 0.1  # parameter counts "matched": every core within 10% of the first core's


def parameters_line(counts: dict[str, int | None]) -> str:
    """Whether the cores' parameter counts are within 10% of the first core's."""
    known = {k: v for k, v in counts.items() if v}
    if len(known) < len(counts):
        return "parameter counts: some checkpoints could not be read"
    ref_core, ref = next(iter(known.items()))
    worst = max(known.values(), key=lambda v: abs(v - ref))
    off = abs(worst - ref) / ref
    return (f"parameter counts {'' if off <= MATCHED else 'NOT '}matched within "
            f"{MATCHED:.0%} of {ref_core}'s (largest difference {off:.1%})")
