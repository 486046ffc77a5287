"""LSTM baseline core: the same step interface and state spec mechanism as the DNC."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .core import HIDDEN_BOUND, RecurrentCore, check_finite, check_positive, state_spec_of


class LSTMState(NamedTuple):
    h: Tensor  # [B, H]
    c: Tensor  # [B, H]


def init_forget_bias(cell: nn.LSTMCell, forget_bias: float) -> None:
    """Set the forget gate's bias of ``cell`` to ``forget_bias``, leaving every other
    parameter as PyTorch initialised it.

    ``nn.LSTMCell`` orders its gates (input, forget, cell, output) and adds two biases,
    ``bias_ih + bias_hh``, each drawn from U(-1/sqrt(H), 1/sqrt(H)), so the forget gate
    starts at sigmoid(~0) = 0.5. Here the forget slice ``[H:2H]`` of ``bias_ih`` becomes
    ``forget_bias`` and that of ``bias_hh`` 0: their sum is exactly ``forget_bias``.
    The random draws are unchanged, so all other values equal a plain ``nn.LSTMCell``
    built from the same seed.
    """
    hs = cell.hidden_size
    with torch.no_grad():
        cell.bias_ih[hs:2 * hs].fill_(forget_bias)
        cell.bias_hh[hs:2 * hs].zero_()


class LSTMCore(RecurrentCore):
    """A single ``nn.LSTMCell``; features are its hidden state ``h`` (F = H).

    Args:
        input_size: D, the width of ``x``.
        hidden_size: H.
        forget_bias: the forget gate's bias at initialisation (1.0: the gate starts
            mostly open, sigmoid(1) = 0.73, as in Sonnet's LSTM and Jozefowicz et al.
            2015; 0.0 gives PyTorch's other values with a zero forget bias). Only the
            initial parameters depend on it; the step is the same.
    """

    kind = "lstm"
    state_type = LSTMState
    state_bounds = {"h": HIDDEN_BOUND}

    def __init__(self, input_size: int, hidden_size: int = 128, forget_bias: float = 1.0):
        super().__init__()
        check_positive(input_size=input_size, hidden_size=hidden_size)
        check_finite(forget_bias=forget_bias)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.forget_bias = float(forget_bias)
        self.state_spec = state_spec_of(LSTMState, h=(hidden_size,), c=(hidden_size,))
        self.feature_size = hidden_size
        self.cell = nn.LSTMCell(input_size, hidden_size)
        init_forget_bias(self.cell, self.forget_bias)

    def config(self) -> dict:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "forget_bias": self.forget_bias}

    def _step(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        h, c = self.cell(x, (state.h, state.c))
        return h, LSTMState(h, c)
