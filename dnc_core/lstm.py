"""LSTM baseline core: the same step interface and state spec mechanism as the DNC."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from .core import RecurrentCore, check_positive


class LSTMState(NamedTuple):
    h: Tensor  # [B, H]
    c: Tensor  # [B, H]


class LSTMCore(RecurrentCore):
    """A single ``nn.LSTMCell``; features are its hidden state ``h`` (F = H)."""

    kind = "lstm"
    state_type = LSTMState

    def __init__(self, input_size: int, hidden_size: int = 128):
        super().__init__()
        check_positive(input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.state_spec = (("h", (hidden_size,)), ("c", (hidden_size,)))
        self.feature_size = hidden_size
        self.cell = nn.LSTMCell(input_size, hidden_size)

    def config(self) -> dict:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size)

    def _step(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        h, c = self.cell(x, (state.h, state.c))
        return h, LSTMState(h, c)
