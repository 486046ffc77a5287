"""GRU baseline core (Cho et al. 2014): the same step interface as the DNC and the LSTM,
with one state tensor, the hidden state ``h``."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from .core import HIDDEN_BOUND, RecurrentCore, check_positive, state_spec_of


class GRUState(NamedTuple):
    h: Tensor  # [B, H]


class GRUCore(RecurrentCore):
    """A single ``nn.GRUCell`` (PyTorch's initialisation); features are its hidden state
    ``h`` (F = H).

    ``nn.GRUCell`` exports to ONNX as plain ops (two Gemm, Split, Sigmoid, Tanh and a few
    element-wise nodes with ``torch.onnx.export(dynamo=True)``), so the cell's own math
    is used rather than written out (tests/test_onnx_step.py checks the parity).

    Args:
        input_size: D, the width of ``x``.
        hidden_size: H.
    """

    kind = "gru"
    state_type = GRUState
    state_bounds = {"h": HIDDEN_BOUND}

    def __init__(self, input_size: int, hidden_size: int = 128):
        super().__init__()
        check_positive(input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.state_spec = state_spec_of(GRUState, h=(hidden_size,))
        self.feature_size = hidden_size
        self.cell = nn.GRUCell(input_size, hidden_size)

    def config(self) -> dict:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size}

    def _step(self, x: Tensor, state: GRUState) -> tuple[Tensor, GRUState]:
        h = self.cell(x, state.h)
        return h, GRUState(h)
