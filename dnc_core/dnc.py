"""The Differentiable Neural Computer core: an LSTM controller plus memory access.

Per step (DESIGN.md §2): the controller reads ``[x_t, r_{t-1}]`` and emits an interface
vector; the memory is then updated in the order usage, allocation, write weights,
erase + write, link and precedence, read weights, read vectors. The features the policy
heads read are ``[h_t, r_t]`` (F = H + R·W).

Three options add the improvements of Csordás & Schmidhuber (ICLR 2019, arXiv
1904.10278): ``masked_lookup``, ``deallocation`` and ``link_sharpness``. All are off by
default, and with all of them off the step is exactly the 2016 DNC (same interface
layout, same graph). None adds state.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import addressing as A
from .core import (
    HIDDEN_BOUND,
    RecurrentCore,
    check_bool,
    check_finite,
    check_positive,
    state_bound,
    state_spec_of,
)
from .lstm import init_forget_bias


class DNCState(NamedTuple):
    """DNC state, batch-first (B = batch)."""

    h: Tensor  # [B, H] controller hidden
    c: Tensor  # [B, H] controller cell
    memory: Tensor  # [B, N, W]
    usage: Tensor  # [B, N]
    link: Tensor  # [B, N, N]
    precedence: Tensor  # [B, N]
    read_weights: Tensor  # [B, R, N]
    write_weights: Tensor  # [B, N]
    read_vectors: Tensor  # [B, R, W]


def oneplus(x: Tensor) -> Tensor:
    """1 + softplus(x): strengths in [1, inf)."""
    return 1 + F.softplus(x)


def _lookup(memory: Tensor, keys: Tensor, strengths: Tensor, masks: Tensor | None,
            top_k: int = 0) -> Tensor:
    """Content weights ``[B, H, N]`` (strengths ``[B, H, 1]``), masked when ``masks``
    ``[B, H, W]`` are given (``masked_lookup``)."""
    if masks is None:
        return A.content_weighting_keepdim(memory, keys, strengths, top_k)
    return A.masked_content_weighting_keepdim(memory, keys, strengths, masks, top_k)


class DNCCore(RecurrentCore):
    """DNC with one write head and ``read_heads`` read heads.

    Args:
        input_size: D, the width of ``x``.
        hidden_size: H, the LSTM controller's size.
        memory_slots: N.
        word_size: W.
        read_heads: R.
        clip: the interface vector's pre-activations (the controller's commands to the
            memory) are clipped to [-clip, clip]; 0 disables clipping. Bounds the
            strengths and keeps the gates out of full saturation when RL gradients
            push the interface layer hard. (The LSTM's output itself is tanh-bounded.)
        read_top_k: 0 for dense content reads, K > 0 for sparse reads over the K most
            similar slots (see :func:`addressing.content_weighting`).
        forget_bias: the controller's forget-gate bias at initialisation (see
            :class:`~dnc_core.lstm.LSTMCore`; 1.0 as in Sonnet's LSTM, which deepmind/dnc
            uses). Only the initial parameters depend on it.
        masked_lookup: masked content-based addressing (Csordás & Schmidhuber 2019,
            §3.1): each head (the R read heads and the write head) also emits a mask
            m ∈ (0, 1)^W (sigmoid), and the look-up compares k ∘ m with M_i ∘ m
            (:func:`addressing.masked_content_weighting`). Adds (R+1)·W interface units.
        deallocation: memory de-allocation (§3.2): the retention ψ that frees usage also
            scales the memory rows, M_t = M_{t−1} ∘ ψ 1ᵀ ∘ (E − w eᵀ) + w vᵀ
            (:func:`addressing.erase_and_write`). No interface units.
        link_sharpness: sharpness control of the temporal link distributions (§3.3):
            f = S(L w, s_f), b = S(Lᵀ w, s_b) with one exponent s = oneplus(·) ≥ 1 per read
            head and direction (:func:`addressing.sharpen_link_weights`). Adds 2R
            interface units.
    """

    kind = "dnc"
    state_type = DNCState
    debug_state = ("usage", "write_weights", "read_weights")
    # Below 0, usage and write weights allow less rounding than the reader's default:
    # the allocation's log(1e-6 + (1 - 1e-6) u) is NaN for a usage below -1e-6 (a write
    # weight is added to the usage), and the memory NaN for good.
    state_bounds = {
        "h": HIDDEN_BOUND,
        "usage": state_bound(0.0, 1.0, "the DNC's usage", low_tolerance=5e-7),
        "write_weights": state_bound(0.0, 1.0, "the DNC's write weighting", "last_axis",
                                     low_tolerance=5e-7),
        "read_weights": state_bound(0.0, 1.0, "the DNC's read weighting", "last_axis"),
        "precedence": state_bound(0.0, 1.0, "the DNC's precedence weighting", "last_axis"),
        "link": state_bound(0.0, 1.0, "the DNC's temporal link matrix", "link"),
    }

    def __init__(self, input_size: int, hidden_size: int = 64, memory_slots: int = 16,
                 word_size: int = 16, read_heads: int = 1, clip: float = 20.0,
                 read_top_k: int = 0, forget_bias: float = 1.0, masked_lookup: bool = False,
                 deallocation: bool = False, link_sharpness: bool = False):
        super().__init__()
        check_positive(input_size=input_size, hidden_size=hidden_size,
                       memory_slots=memory_slots, word_size=word_size, read_heads=read_heads)
        if not isinstance(read_top_k, int) or not 0 <= read_top_k <= memory_slots:
            raise ValueError(f"read_top_k must be an integer in [0, memory_slots={memory_slots}] "
                             f"(0 = dense reads), got {read_top_k!r}")
        if clip < 0:
            raise ValueError(f"clip must be >= 0 (0 disables clipping), got {clip!r}")
        check_finite(forget_bias=forget_bias)
        check_bool(masked_lookup=masked_lookup, deallocation=deallocation,
                   link_sharpness=link_sharpness)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.memory_slots, self.word_size, self.read_heads = memory_slots, word_size, read_heads
        self.clip, self.read_top_k = float(clip), read_top_k
        self.forget_bias = float(forget_bias)
        self.masked_lookup, self.deallocation = masked_lookup, deallocation
        self.link_sharpness = link_sharpness
        n, w, r = memory_slots, word_size, read_heads
        self.state_spec = state_spec_of(
            DNCState, h=(hidden_size,), c=(hidden_size,), memory=(n, w), usage=(n,),
            link=(n, n), precedence=(n,), read_weights=(r, n), write_weights=(n,),
            read_vectors=(r, w))
        # Interface layout, grouped by activation so each is applied once:
        # [read keys R*W | write key W | write vector W | read strengths R, write strength 1
        #  | erase W, free gates R, allocation gate 1, write gate 1 | read modes 3R].
        # The options append to their activation's group: link_sharpness 2R oneplus units
        # (forward R, backward R) after the write strength, masked_lookup (R+1)*W sigmoid
        # units (read masks R*W, write mask W) after the write gate.
        self._strength_split = [r, 1] + ([2 * r] if link_sharpness else [])
        self._gate_split = [w, r, 1, 1] + ([(r + 1) * w] if masked_lookup else [])
        self._split = [r * w + 2 * w, sum(self._strength_split), sum(self._gate_split), 3 * r]
        self.interface_size = sum(self._split)
        self.feature_size = hidden_size + r * w
        self.controller = nn.LSTMCell(input_size + r * w, hidden_size)
        init_forget_bias(self.controller, self.forget_bias)
        self.interface = nn.Linear(hidden_size, self.interface_size)

    def config(self) -> dict:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size,
                    memory_slots=self.memory_slots, word_size=self.word_size,
                    read_heads=self.read_heads, clip=self.clip, read_top_k=self.read_top_k,
                    forget_bias=self.forget_bias, masked_lookup=self.masked_lookup,
                    deallocation=self.deallocation, link_sharpness=self.link_sharpness)

    def _step(self, x: Tensor, state: DNCState) -> tuple[Tensor, DNCState]:
        # The equations of DESIGN.md §2 (tests/test_cores.py's reference_step writes them
        # out plainly), arranged so that the exported ONNX tick has few nodes: ONNX
        # Runtime's CPU cost at batch 1 is mostly per node (docs/BENCHMARKS.md).
        r, w, n, hs = self.read_heads, self.word_size, self.memory_slots, self.hidden_size

        # LSTM controller (nn.LSTMCell's math and weights), as one matmul over
        # [x_t, r_{t-1}, h_{t-1}]; one sigmoid over all gates, tanh on the cell gate only.
        lstm = self.controller
        gates = F.linear(torch.cat([x, state.read_vectors.flatten(1), state.h], dim=-1),
                         torch.cat([lstm.weight_ih, lstm.weight_hh], dim=1),
                         lstm.bias_ih + lstm.bias_hh)
        in_gate, forget_gate, _, out_gate = torch.sigmoid(gates).chunk(4, dim=-1)
        c = forget_gate * state.c + in_gate * torch.tanh(gates[:, 2 * hs:3 * hs])
        h = out_gate * torch.tanh(c)

        # The interface, split as laid out in __init__, each piece in the shape it is used
        # in, its activation applied (oneplus for strengths, sigmoid for gates, erase and
        # masks, softmax for the read modes).
        raw = self.interface(h)
        if self.clip > 0:
            raw = raw.clamp(-self.clip, self.clip)
        linear, strengths, gates, modes = torch.split(raw, self._split, dim=-1)
        read_keys, write_key, write_vector = linear.reshape(-1, r + 2, w).split([r, 1, 1], 1)
        # The options' pieces come last in their groups: `sharpness` holds the [B, 2R, 1]
        # link exponents, `masks` the [B, (R+1)·W] masks (each an empty list when off).
        read_strengths, write_strength, *sharpness = oneplus(strengths).unsqueeze(-1).split(
            self._strength_split, 1)
        # The gates as [B, 1, ·]: the erase vector [B, 1, W] broadcasts over the memory's
        # rows, the allocation and write gates [B, 1, 1] over [B, 1, N] weightings.
        erase, free_gates, allocation_gate, write_gate, *masks = torch.sigmoid(
            gates.unsqueeze(1)).split(self._gate_split, dim=-1)
        read_masks, write_mask = (masks[0].reshape(-1, r + 1, w).split([r, 1], 1) if masks
                                  else (None, None))
        read_modes = torch.softmax(modes.reshape(-1, r, 1, 3), dim=-1)  # [B, R, 1, 3]

        # Write: usage -> allocation -> write weights -> erase + write. The write weights
        # are formed as a row [B, 1, N], the shape of the write head's content weights.
        # ψ = Π_r (1 − f_r w_r), A.retention with the free gates as a column [B, R, 1]
        psi = torch.prod(1 - free_gates.transpose(1, 2) * state.read_weights, dim=1)
        usage = A.usage_update(state.usage, state.write_weights, psi)
        alloc = A.allocation_weighting_row(usage)
        write_content = _lookup(state.memory, write_key, write_strength, write_mask)
        # w = g_w (g_a a + (1 - g_a) c_w)
        w_row = write_gate * (write_content + allocation_gate * (alloc - write_content))
        ww, w_col = w_row.reshape(-1, n), w_row.reshape(-1, n, 1)  # the state; [B, N, 1]
        # De-allocation: M ∘ ψ 1ᵀ, the freed rows wiped (A.erase_and_write's retention).
        prev_memory = state.memory * psi.unsqueeze(2) if self.deallocation else state.memory
        # M ∘ (1 - w eᵀ) + w vᵀ, as M + w (v - e ∘ M): the same sum, two ops fewer.
        memory = prev_memory + w_col * (write_vector - erase * prev_memory)

        # Temporal links, then read: backward / content / forward mixed by the read modes.
        link = A.link_update_outer(state.link, state.precedence, w_col, w_row)
        precedence = A.precedence_update(state.precedence, ww)
        content = _lookup(memory, read_keys, read_strengths, read_masks, self.read_top_k)
        fwd, bwd = A.directional_read_weights(link, state.read_weights)
        if sharpness:  # S(·, s) on both directions at once: rows [forward R | backward R]
            fwd, bwd = A.sharpen_link_weights_(torch.cat([fwd, bwd], 1), sharpness[0]).split(
                [r, r], 1)
        # w_r = π_b b + π_c c + π_f f, as one small matmul over the three modes.
        modes = torch.cat([bwd, content, fwd], dim=-1).reshape(-1, r, 3, n)  # [B, R, 3, N]
        read_weights = torch.matmul(read_modes, modes).reshape(-1, r, n)
        read_vectors = torch.matmul(read_weights, memory)  # [B, R, W]

        features = torch.cat([h, read_vectors.flatten(1)], dim=-1)
        return features, DNCState(h, c, memory, usage, link, precedence, read_weights, ww,
                                  read_vectors)
