"""The Neural Turing Machine core (Graves, Wayne & Danihelka 2014, arXiv 1410.5401).

An LSTM controller, R read heads and one write head (erase + add) over an N × W memory.
Every head addresses the memory in the paper's four stages (§3.3):

1. content: w_c = softmax(β · cos(k, M_i)) (:func:`addressing.content_weighting`, β ≥ 1);
2. interpolation with the head's previous weights: w_g = g w_c + (1 − g) w_{t−1};
3. circular shift over S allowed offsets: w̃ = w_g ⊛ s (:func:`addressing.shift_weighting`);
4. sharpening: w = w̃^γ / Σ w̃^γ (:func:`addressing.sharpen`, γ ≥ 1).

Per step: the controller reads ``[x_t, r_{t−1}]``; the write head addresses the previous
memory and writes, M_t = M_{t−1} ∘ (1 − w eᵀ) + w aᵀ; then the read heads address the new
memory and read, r_t = M_tᵀ w_r. (The paper does not fix the order of reads and writes
within a step; this is the DNC's order, so a read sees this step's write.) The features
the policy heads read are ``[h_t, r_t]`` (F = H + R·W), as for the DNC.

The initial state is not all zeros (DESIGN.md §3 lets a core say otherwise):

* memory: every entry ``INITIAL_MEMORY`` = 1e-6. All-zero memory makes cosine addressing
  degenerate (cos(k, 0) = 0 for every slot and every key) and the first writes then
  depend on the norm's ε alone; a small constant is what Collier & Beel (2018,
  "Implementing Neural Turing Machines") found to train fastest, against learned and
  random initial memories. It is a constant, not a parameter: the ONNX graph holds it
  and nothing has to be trained or stored for it.
* read and write weights: all focused on slot 0 (one-hot). Content addressing over the
  identical initial rows is uniform, and a shift or sharpening of a uniform weighting is
  uniform again, so from uniform weights a head could not tell the slots apart; from a
  focus at slot 0, a shift of +1 per step walks the memory slot by slot (the copy
  task's sequential write and read) with no content look-up at all.
* read vectors: what those weights read from that memory, M_0ᵀ w_0 (every entry 1e-6);
  h and c: zeros.

The runtime's state buffers may still start at zero: its first tick, and every reset,
carries ``reset = 1``, and the graph then replaces the state by this initial state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from . import addressing as A
from .core import (
    HIDDEN_BOUND,
    RecurrentCore,
    apply_reset,
    check_finite,
    check_positive,
    state_bound,
    state_spec_of,
)
from .dnc import oneplus
from .lstm import init_forget_bias

#: Every entry of the initial memory (see the module docstring).
INITIAL_MEMORY = 1e-6


class NTMState(NamedTuple):
    """NTM state, batch-first (B = batch)."""

    h: Tensor  # [B, H] controller hidden
    c: Tensor  # [B, H] controller cell
    memory: Tensor  # [B, N, W]
    read_weights: Tensor  # [B, R, N]
    write_weights: Tensor  # [B, N]
    read_vectors: Tensor  # [B, R, W]


class HeadCommands(NamedTuple):
    """The addressing commands of H heads for one step (activations applied)."""

    key: Tensor  # [B, H, W]
    strength: Tensor  # [B, H] >= 1 (oneplus)
    gate: Tensor  # [B, H] in (0, 1): 1 = content weights, 0 = the previous weights
    shift: Tensor  # [B, H, S] softmax over the offsets -(S-1)/2 .. (S-1)/2
    gamma: Tensor  # [B, H] >= 1 (oneplus)


class Interface(NamedTuple):
    """The controller's commands to the memory for one step."""

    write: HeadCommands  # H = 1
    read: HeadCommands  # H = R
    erase: Tensor  # [B, W] in (0, 1)
    add: Tensor  # [B, W]


def address(memory: Tensor, prev_weights: Tensor, head: HeadCommands) -> Tensor:
    """The NTM's addressing of H heads: content, interpolation, shift, sharpening.

    Args:
        memory: ``[B, N, W]``.
        prev_weights: ``[B, H, N]``, the heads' weights of the previous step.
        head: the commands of the H heads.

    Returns:
        ``[B, H, N]``, each row a distribution over the slots.
    """
    content = A.content_weighting(memory, head.key, head.strength)
    gated = prev_weights + head.gate.unsqueeze(-1) * (content - prev_weights)
    return A.sharpen(A.shift_weighting(gated, head.shift), head.gamma)


class NTMCore(RecurrentCore):
    """NTM with one write head and ``read_heads`` read heads.

    Args:
        input_size: D, the width of ``x``.
        hidden_size: H, the LSTM controller's size.
        memory_slots: N.
        word_size: W.
        read_heads: R.
        shift_range: S, the number of allowed shifts, odd and at most N: offsets
            −(S−1)/2 .. (S−1)/2 (3: −1, 0, +1, as in the paper's experiments).
        clip: the interface pre-activations are clipped to [−clip, clip]; 0 disables
            clipping (as in :class:`~dnc_core.dnc.DNCCore`).
        forget_bias: the controller's forget-gate bias at initialisation (see
            :func:`~dnc_core.lstm.init_forget_bias`).
    """

    kind = "ntm"
    state_type = NTMState
    debug_state = ("write_weights", "read_weights")
    state_bounds = {
        "h": HIDDEN_BOUND,
        "write_weights": state_bound(0.0, 1.0, "the NTM's write weighting", "last_axis"),
        "read_weights": state_bound(0.0, 1.0, "the NTM's read weighting", "last_axis"),
    }

    def __init__(self, input_size: int, hidden_size: int = 64, memory_slots: int = 16,
                 word_size: int = 16, read_heads: int = 1, shift_range: int = 3,
                 clip: float = 20.0, forget_bias: float = 1.0):
        super().__init__()
        check_positive(input_size=input_size, hidden_size=hidden_size,
                       memory_slots=memory_slots, word_size=word_size, read_heads=read_heads)
        if (not isinstance(shift_range, int) or isinstance(shift_range, bool)
                or shift_range < 1 or shift_range % 2 == 0 or shift_range > memory_slots):
            raise ValueError(f"shift_range must be an odd integer in [1, memory_slots="
                             f"{memory_slots}] (offsets -(S-1)/2 .. (S-1)/2), got {shift_range!r}")
        check_finite(clip=clip, forget_bias=forget_bias)
        if clip < 0:
            raise ValueError(f"clip must be >= 0 (0 disables clipping), got {clip!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.memory_slots, self.word_size, self.read_heads = memory_slots, word_size, read_heads
        self.shift_range, self.clip, self.forget_bias = shift_range, float(clip), float(forget_bias)
        n, w, r, s = memory_slots, word_size, read_heads, shift_range
        self.state_spec = state_spec_of(
            NTMState, h=(hidden_size,), c=(hidden_size,), memory=(n, w), read_weights=(r, n),
            write_weights=(n,), read_vectors=(r, w))
        # Interface layout, grouped by activation, heads ordered (write, read 1..R):
        # [keys (R+1)W, add W | strengths R+1, gammas R+1 | gates R+1, erase W | shifts (R+1)S].
        self._split = [(r + 1) * w + w, 2 * (r + 1), (r + 1) + w, (r + 1) * s]
        self.interface_size = sum(self._split)
        self.feature_size = hidden_size + r * w
        self.controller = nn.LSTMCell(input_size + r * w, hidden_size)
        init_forget_bias(self.controller, self.forget_bias)
        self.interface = nn.Linear(hidden_size, self.interface_size)

    def config(self) -> dict:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "memory_slots": self.memory_slots, "word_size": self.word_size,
                "read_heads": self.read_heads, "shift_range": self.shift_range,
                "clip": self.clip, "forget_bias": self.forget_bias}

    def initial_state(self, batch_size: int, device: torch.device | str | None = None,
                      dtype: torch.dtype | None = None) -> NTMState:
        """The initial state (module docstring): memory ``INITIAL_MEMORY`` everywhere,
        every head's weights one-hot at slot 0, read vectors M_0ᵀ w_0, h = c = 0."""
        ref = next(self.parameters())
        device = ref.device if device is None else device
        dtype = ref.dtype if dtype is None else dtype
        b, n, w, r, hs = (batch_size, self.memory_slots, self.word_size, self.read_heads,
                          self.hidden_size)
        at_slot_0 = (torch.arange(n, device=device) == 0).to(dtype)  # [N]: one-hot, slot 0
        return NTMState(
            h=torch.zeros(b, hs, device=device, dtype=dtype),
            c=torch.zeros(b, hs, device=device, dtype=dtype),
            memory=torch.full((b, n, w), INITIAL_MEMORY, device=device, dtype=dtype),
            read_weights=at_slot_0.expand(b, r, n).clone(),
            write_weights=at_slot_0.expand(b, n).clone(),
            read_vectors=torch.full((b, r, w), INITIAL_MEMORY, device=device, dtype=dtype))

    def reset_state(self, state: NTMState, reset: Tensor) -> NTMState:
        """Rows where ``reset [B]`` is set get :meth:`initial_state` (a batch-1 constant,
        broadcast by ``where``: the exported graph holds it, whatever the batch)."""
        ref = state.memory
        return apply_reset(state, reset, self.initial_state(1, ref.device, ref.dtype))

    def parse_interface(self, v: Tensor) -> Interface:
        """Split the raw interface vector ``[B, interface_size]`` and apply activations."""
        b, r, w, s = v.shape[0], self.read_heads, self.word_size, self.shift_range
        linear, positive, gates, shifts = torch.split(v, self._split, dim=-1)
        keys, add = linear.split([(r + 1) * w, w], dim=-1)
        keys = keys.reshape(b, r + 1, w)
        strengths, gammas = oneplus(positive).split([r + 1, r + 1], dim=-1)
        head_gates, erase = torch.sigmoid(gates).split([r + 1, w], dim=-1)
        shifts = torch.softmax(shifts.reshape(b, r + 1, s), dim=-1)

        def heads(sl: slice) -> HeadCommands:
            return HeadCommands(keys[:, sl], strengths[:, sl], head_gates[:, sl],
                                shifts[:, sl], gammas[:, sl])

        return Interface(write=heads(slice(0, 1)), read=heads(slice(1, r + 1)),
                         erase=erase, add=add)

    def commands(self, h: Tensor) -> Interface:
        """The commands the controller output ``h [B, H]`` (the state's ``h`` after a
        step) gave the memory in that step: the interface, clipped, with activations.
        This is what :meth:`_step` uses, so a recorded ``h`` gives back each head's
        shift distribution, gate and sharpening of that step (``training.visualize``)."""
        raw = self.interface(h)
        if self.clip > 0:
            raw = raw.clamp(-self.clip, self.clip)
        return self.parse_interface(raw)

    def _step(self, x: Tensor, state: NTMState) -> tuple[Tensor, Any]:
        h, c = self.controller(torch.cat([x, state.read_vectors.flatten(1)], dim=-1),
                               (state.h, state.c))
        i = self.commands(h)

        # Write: address the previous memory, then erase and add.
        ww = address(state.memory, state.write_weights.unsqueeze(1), i.write).squeeze(1)  # [B, N]
        ww_ = ww.unsqueeze(-1)  # [B, N, 1]
        memory = state.memory * (1 - ww_ * i.erase.unsqueeze(1)) + ww_ * i.add.unsqueeze(1)

        # Read: address the new memory.
        read_weights = address(memory, state.read_weights, i.read)  # [B, R, N]
        read_vectors = torch.matmul(read_weights, memory)  # [B, R, W]

        features = torch.cat([h, read_vectors.flatten(1)], dim=-1)
        return features, NTMState(h, c, memory, read_weights, ww, read_vectors)
