"""The DNC paper's algorithmic Copy and Repeat-Copy tasks, recast as RL environments.

Timeline of one episode with a sequence of ``L`` random bit vectors and ``k`` repeats
(Copy is ``k = 1``)::

    step t = 0 .. L-1        input phase: obs shows bits[t] and the input flag
    step t = L .. L+k*L-1    output phase: obs is blank except the output flag;
                             the action at step t should equal bits[(t - L) % L]

The action is a ``MultiBinary(bits)`` vector emitted on *every* step; it is scored only
on output-phase steps, with reward ``(number of correct bits) / bits`` (so a perfectly
copied step earns +1 and the best episode return is ``k * L``). The episode always
*terminates* after the last output step (no truncation is needed), and
``info["is_success"]`` is True when every output bit was right.
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim._checks import int_arg, render_mode_arg
from sim._render import BIT_OFF, BIT_ON, BLANK, GOAL, WRONG, CodeGridRender

MAX_BITS = 64
MAX_LENGTH = 1000
MAX_REPEATS = 100


class RepeatCopyEnv(CodeGridRender, gym.Env):
    """Repeat-Copy: read ``L`` bit vectors, then write the whole sequence ``k`` times.

    What it tests: storing a sequence verbatim *and* an instruction (the repeat count)
    and replaying the sequence several times, which a DNC solves with its temporal link
    matrix; an LSTM must fit ``L * bits`` bits in its state and count the repeats.
    How hard: with the defaults (4 bits, length 5, 2 repeats) a small recurrent policy
    learns it; ``length`` >= 20 or ``bits`` >= 8 is hard for RL (the reward is dense but
    the credit assignment spans ``L`` steps), and random guessing scores 0.5 per bit.

    Observation ``Box(0, 1, (bits + 3,), float32)``: ``[bits..., input_flag,
    output_flag, repeats / max_repeats]`` -- the repeat channel is shown on input steps.
    Action ``MultiBinary(bits)``. Reward per output step: correct bits / ``bits``.

    Args:
        bits: width of each bit vector, 1..64.
        length: sequence length ``L`` (the maximum when ``min_length`` is given), 1..1000.
        min_length: if given, ``L`` is drawn uniformly from ``[min_length, length]``
            each episode.
        repeats: number of repeats ``k`` (the maximum when ``min_repeats`` is given), 1..100.
        min_repeats: if given, ``k`` is drawn uniformly from ``[min_repeats, repeats]``.
        render_mode: ``None``, ``"rgb_array"`` or ``"ansi"``.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}
    _show_repeats = True

    def __init__(
        self,
        bits: int = 4,
        length: int = 5,
        min_length: int | None = None,
        repeats: int = 2,
        min_repeats: int | None = None,
        render_mode: str | None = None,
    ):
        self.bits = int_arg("bits", bits, 1, MAX_BITS)
        self.length = int_arg("length", length, 1, MAX_LENGTH)
        self.min_length = (
            self.length if min_length is None else int_arg("min_length", min_length, 1, self.length)
        )
        self.repeats = int_arg("repeats", repeats, 1, MAX_REPEATS)
        self.min_repeats = (
            self.repeats
            if min_repeats is None
            else int_arg("min_repeats", min_repeats, 1, self.repeats)
        )
        self.render_mode = render_mode_arg(render_mode, self.metadata)

        obs_dim = self.bits + 2 + int(self._show_repeats)
        self.observation_space = spaces.Box(0.0, 1.0, (obs_dim,), np.float32)
        self.action_space = spaces.MultiBinary(self.bits)
        self._inv_bits = 1.0 / self.bits
        self._seq = np.zeros((0, self.bits), np.int8)
        self._new_episode(self.length, self.repeats)

    # ------------------------------------------------------------------ episode setup
    def _new_episode(self, length: int, repeats: int) -> None:
        bits = self.bits
        self._len, self._k = length, repeats
        self._n_out = length * repeats
        self._t = 0
        self._errors = 0
        self._seq = self.np_random.integers(0, 2, (length, bits), dtype=np.int8)
        # Target for output step j is seq[j % L]: tile once so step() is a single index.
        self._targets = np.tile(self._seq, (repeats, 1))
        self._outputs = np.zeros((self._n_out, bits), np.int8)
        # All observations of the episode, plus a blank final one returned at termination.
        obs = np.zeros((length + self._n_out + 1, self.observation_space.shape[0]), np.float32)
        obs[:length, :bits] = self._seq
        obs[:length, bits] = 1.0
        obs[length : length + self._n_out, bits + 1] = 1.0
        if self._show_repeats:
            obs[:length, bits + 2] = repeats / self.repeats
        self._obs = obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        length = int(self.np_random.integers(self.min_length, self.length + 1))
        repeats = int(self.np_random.integers(self.min_repeats, self.repeats + 1))
        self._new_episode(length, repeats)
        return self._obs[0].copy(), {"length": length, "repeats": repeats}

    # ------------------------------------------------------------------------- step
    def step(self, action):
        action = np.asarray(action)
        if action.shape != (self.bits,):
            raise ValueError(f"action must have shape ({self.bits},), got {action.shape}")
        t = self._t = self._t + 1
        j = t - 1 - self._len  # index of the output step this action answers
        if j < 0:
            return self._obs[t].copy(), 0.0, False, False, {}
        self._outputs[j] = action
        correct = int(np.count_nonzero(action == self._targets[j]))
        self._errors += self.bits - correct
        reward = correct * self._inv_bits
        if j + 1 < self._n_out:
            return self._obs[t].copy(), reward, False, False, {}
        return self._obs[t].copy(), reward, True, False, {"is_success": self._errors == 0}

    # ------------------------------------------------------------------------ render
    def _render_codes(self) -> np.ndarray:
        """Rows: the input sequence, then the agent's outputs (green right, red wrong)."""
        n_out_done = max(0, self._t - self._len)
        codes = np.full((2 * self.bits + 1, self._len + self._n_out), BLANK, np.int64)
        codes[: self.bits, : self._len] = np.where(self._seq.T == 1, BIT_ON, BIT_OFF)
        done = self._outputs[:n_out_done].T
        right = done == self._targets[:n_out_done].T
        codes[self.bits + 1 :, self._len : self._len + n_out_done] = np.where(right, GOAL, WRONG)
        return codes

    def _ansi_header(self) -> str:
        return (
            f"{type(self).__name__} step {self._t}: L={self._len} k={self._k} "
            "(top: input bits, bottom: outputs, G right, X wrong)"
        )


class CopyEnv(RepeatCopyEnv):
    """Copy: read ``L`` bit vectors, then write them back in order.

    What it tests: the simplest memory of a *sequence* (the DNC paper's first task):
    everything seen in the input phase must be reproduced after it ends. How hard: the
    default (4 bits, length 5) is easy for any recurrent policy; long sequences
    (``length`` 20+, 8 bits) need more capacity than an LSTM of the same size has, which is
    where an external memory helps. A memoryless policy scores 0.5 per bit (chance).

    Observation ``Box(0, 1, (bits + 2,), float32)``: ``[bits..., input_flag, output_flag]``.
    Action ``MultiBinary(bits)``. Reward per output step: correct bits / ``bits``.

    Args: ``bits``, ``length``, ``min_length``, ``render_mode`` as in :class:`RepeatCopyEnv`.
    """

    _show_repeats = False

    def __init__(
        self,
        bits: int = 4,
        length: int = 5,
        min_length: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(bits, length, min_length, 1, None, render_mode)
