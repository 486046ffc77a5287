"""DNC memory addressing as small pure functions (Graves et al., Nature 538, 2016).

Everything is batch-first and works in float32 and float64. Shapes use
B = batch, N = memory slots, W = word size, R = read heads, H = heads (read or write).

Every function here is built from ops that export to ONNX (opset 17) and run in
ONNX Runtime and TensorRT: in particular there is no ``torch.cumprod`` (not exportable)
and no sort (whose tie order differs between back-ends). The allocation's "product over
the slots that come earlier in the usage order" is computed with an explicit, exactly
tie-broken order mask instead; see :func:`allocation_weighting`.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Added to each vector norm in the cosine similarity.
NORM_EPSILON = 1e-6
#: Usage floor in the allocation (u' = eps + (1 - eps) u), keeps products and logs finite.
ALLOCATION_EPSILON = 1e-6


def content_weighting(memory: Tensor, keys: Tensor, strengths: Tensor, top_k: int = 0) -> Tensor:
    """Content-based addressing.

    Args:
        memory: ``[B, N, W]``.
        keys: ``[B, H, W]``, one key per head.
        strengths: ``[B, H]``, the sharpness β ≥ 1 of each head.
        top_k: 0 for a dense softmax over all N slots; K > 0 for a sparse read: the
            softmax runs over the K most similar slots only and every other slot gets
            exactly 0 (ties go to the lower slot index).

    Returns:
        ``[B, H, N]``: softmax_i(β · cos(key, M_i)), cos with ``NORM_EPSILON`` added to
        each norm.
    """
    return content_weighting_keepdim(memory, keys, strengths.unsqueeze(-1), top_k)


def content_weighting_keepdim(memory: Tensor, keys: Tensor, strengths: Tensor,
                              top_k: int = 0) -> Tensor:
    """:func:`content_weighting` with ``strengths`` already shaped ``[B, H, 1]`` (the DNC
    step's interface produces them so, which saves an ONNX node per call).

    β · cos(k, M_i) is computed as (β k / (‖k‖ + ε)) · (M_i / (‖M_i‖ + ε)): the same
    quantity as β (k · M_i) / ((‖k‖ + ε)(‖M_i‖ + ε)), in fewer ops.
    """
    # vector_norm's gradient at a zero vector is 0 (not NaN), so all-zero memory rows,
    # the initial memory, are safe.
    keys = keys * (strengths / (torch.linalg.vector_norm(keys, dim=-1, keepdim=True)
                                + NORM_EPSILON))  # [B, H, W]
    unit = memory / (torch.linalg.vector_norm(memory, dim=-1, keepdim=True)
                     + NORM_EPSILON)  # [B, N, W]
    scores = torch.matmul(keys, unit.transpose(1, 2))  # [B, H, N]
    return _softmax_over_top_k(scores, top_k)


def _softmax_over_top_k(scores: Tensor, top_k: int) -> Tensor:
    """``scores [B, H, N]`` -> softmax over the last dim, or (``0 < top_k < N``) over the
    ``top_k`` best slots only, exactly 0 elsewhere (see :func:`content_weighting`)."""
    n = scores.shape[-1]
    if top_k <= 0 or top_k >= n:
        return torch.softmax(scores, dim=-1)
    # Keep slot i iff fewer than K slots beat it (ties to the lower index): an explicit
    # rank, so the rule is the same in every back-end, where TopK's tie order is not.
    # The choice itself is discontinuous: scores equal up to rounding (rows written by
    # the same vector, as in a fresh memory) can pick different slots in different
    # back-ends. docs/DNC.md says what that means for ONNX parity.
    beaten_by = _order_mask(-scores)  # [B, H, N, N]: j ranks before i
    keep = beaten_by.sum(-1) < top_k
    masked = torch.where(keep, scores, torch.full_like(scores, float("-inf")))
    return torch.softmax(masked, dim=-1)


def retention(free_gates: Tensor, prev_read_weights: Tensor) -> Tensor:
    """Memory retention ψ = Π_r (1 − f_r w_r).

    Args:
        free_gates: ``[B, R]`` in [0, 1].
        prev_read_weights: ``[B, R, N]``.

    Returns:
        ``[B, N]`` in [0, 1]: how much of each slot's usage survives the reads' frees.
    """
    return torch.prod(1 - free_gates.unsqueeze(-1) * prev_read_weights, dim=1)


def usage_update(prev_usage: Tensor, prev_write_weights: Tensor, retention: Tensor) -> Tensor:
    """Usage u_t = (u + w − u∘w) ∘ ψ.

    Args:
        prev_usage: ``[B, N]`` in [0, 1].
        prev_write_weights: ``[B, N]``, the previous step's write weights.
        retention: ``[B, N]`` from :func:`retention`.

    Returns:
        ``[B, N]`` in [0, 1].
    """
    # u + w - u∘w == u + w∘(1 - u): one op fewer per step.
    return torch.addcmul(prev_usage, prev_write_weights, 1 - prev_usage) * retention


def _before(vi: Tensor, vj: Tensor) -> Tensor:
    """``vi [..., N, 1]``, ``vj [..., 1, N]`` (the same values) -> bool ``[..., N, N]``:
    slot j comes before slot i in a stable ascending sort (ties to the lower index)."""
    n = vi.shape[-2]
    idx = torch.arange(n, device=vi.device)
    lower_index = idx.unsqueeze(0) < idx.unsqueeze(1)  # [N, N]: j < i
    # j before i iff v_j < v_i, or v_j == v_i and j < i. (Logical ops, not a bool
    # ``where``: ONNX Runtime has no boolean Where kernel.)
    return (vj < vi) | ((vj == vi) & lower_index)


def _order_mask(values: Tensor) -> Tensor:
    """Strict ascending order of ``values`` with ties to the lower index, as a mask.

    ``values [..., N] -> [..., N, N]`` with ``out[..., i, j] = 1`` iff slot j comes
    before slot i in a stable ascending sort of the values. Each row i then holds the
    set of slots φ_0..φ_{k-1} that precede i (k = rank of i), with no sort at all.
    """
    return _before(values.unsqueeze(-1), values.unsqueeze(-2)).to(values.dtype)


def allocation_weighting(usage: Tensor) -> Tensor:
    """Allocation weighting: the least used slots are offered for writing.

    With u' = ε + (1 − ε) u and φ the ascending order of u' (ties to the lower index),
    a[φ_j] = (1 − u'[φ_j]) Π_{i<j} u'[φ_i].

    The exclusive product over the slots that precede each slot in φ is
    exp(Σ_{j before i} log u'_j), summed under the order mask of :func:`_order_mask`;
    u' ≥ ε keeps the log finite. This is exact up to rounding (proved against
    ``torch.sort`` + ``torch.cumprod`` in the tests) and exports to ONNX, where
    ``torch.cumprod`` and stable sorts do not.

    Args:
        usage: ``[B, N]`` in [0, 1].

    Returns:
        ``[B, N]``, each in [0, 1], summing to at most 1.
    """
    return allocation_weighting_row(usage).squeeze(-2)


def allocation_weighting_row(usage: Tensor) -> Tensor:
    """:func:`allocation_weighting` shaped ``[B, 1, N]`` (the DNC step mixes it with the
    write head's content weights, which come in that shape). The sum under the order
    mask is one matmul of the row of logs with the transposed mask: one ONNX node fewer
    than a multiply and a sum."""
    u = ALLOCATION_EPSILON + (1 - ALLOCATION_EPSILON) * usage
    u_row = u.unsqueeze(-2)  # [B, 1, N]
    before = _before(u.unsqueeze(-1), u_row).to(u.dtype)  # [B, N, N]: j before i
    # [B, 1, N]: entry i is Σ_{j before i} log u'_j
    log_prod = torch.matmul(torch.log(u_row), before.transpose(-1, -2))
    return (1 - u_row) * torch.exp(log_prod)


def precedence_update(prev_precedence: Tensor, write_weights: Tensor) -> Tensor:
    """Precedence p_t = (1 − Σ_i w_i) p_{t−1} + w.

    Args:
        prev_precedence: ``[B, N]``, summing to at most 1.
        write_weights: ``[B, N]``, summing to at most 1.

    Returns:
        ``[B, N]``, summing to at most 1.
    """
    return torch.addcmul(write_weights, 1 - write_weights.sum(-1, keepdim=True), prev_precedence)


def link_update(prev_link: Tensor, prev_precedence: Tensor, write_weights: Tensor) -> Tensor:
    """Temporal link matrix L[i,j] = (1 − w_i − w_j) L[i,j] + w_i p_j, zero diagonal.

    L[i, j] is the degree to which slot i was written right after slot j.

    Args:
        prev_link: ``[B, N, N]``.
        prev_precedence: ``[B, N]``, the precedence before this step's write.
        write_weights: ``[B, N]``.

    Returns:
        ``[B, N, N]`` with rows and columns summing to at most 1 and a zero diagonal.
    """
    return link_update_outer(prev_link, prev_precedence, write_weights.unsqueeze(2),
                             write_weights.unsqueeze(1))


def link_update_outer(prev_link: Tensor, prev_precedence: Tensor, w_i: Tensor,
                      w_j: Tensor) -> Tensor:
    """:func:`link_update` with the write weights given twice, as a column ``w_i [B, N, 1]``
    and a row ``w_j [B, 1, N]`` (the DNC step has both shapes at hand: no reshape)."""
    link = torch.addcmul(w_i * prev_precedence.unsqueeze(1), 1 - w_i - w_j, prev_link)
    # Zero diagonal by a constant 0/1 mask (a Mul: cheaper in ONNX Runtime than a Where).
    n = w_j.shape[-1]
    return link * (1 - torch.eye(n, dtype=link.dtype, device=link.device))


def directional_read_weights(link: Tensor, prev_read_weights: Tensor) -> tuple[Tensor, Tensor]:
    """Forward and backward weightings that follow the temporal links.

    Args:
        link: ``[B, N, N]``.
        prev_read_weights: ``[B, R, N]``.

    Returns:
        ``(forward, backward)``, each ``[B, R, N]``: forward f = L w (the slots written
        after the ones read last), backward b = Lᵀ w (the slots written before them).
    """
    forward = torch.matmul(prev_read_weights, link.transpose(1, 2))
    backward = torch.matmul(prev_read_weights, link)
    return forward, backward


# -- DNC variants (Csordás & Schmidhuber, ICLR 2019, arXiv 1904.10278, section 3) -------
def masked_content_weighting(memory: Tensor, keys: Tensor, strengths: Tensor, masks: Tensor,
                             top_k: int = 0) -> Tensor:
    """Masked content-based addressing (Csordás & Schmidhuber 2019, §3.1).

    C(M, k, β, m)_i = softmax_i(β · cos(k ∘ m, M_i ∘ m)): the mask chooses which parts of
    the word the look-up compares (a key-value split the controller sets per step), so
    the rest of a row neither adds to the score nor dilutes the cosine's normalisation.
    The cosine adds ``NORM_EPSILON`` to each norm, as :func:`content_weighting` does,
    so an all-ones mask gives that function's weights (up to rounding).

    Args:
        memory: ``[B, N, W]``.
        keys: ``[B, H, W]``, one key per head.
        strengths: ``[B, H]``, β ≥ 1.
        masks: ``[B, H, W]`` in [0, 1], one mask per head.
        top_k: as in :func:`content_weighting` (0 = dense).

    Returns:
        ``[B, H, N]``, each row a distribution over the slots.
    """
    return masked_content_weighting_keepdim(memory, keys, strengths.unsqueeze(-1), masks, top_k)


def masked_content_weighting_keepdim(memory: Tensor, keys: Tensor, strengths: Tensor,
                                     masks: Tensor, top_k: int = 0) -> Tensor:
    """:func:`masked_content_weighting` with ``strengths`` shaped ``[B, H, 1]``."""
    keys = keys * masks  # [B, H, W]
    keys = keys * (strengths / (torch.linalg.vector_norm(keys, dim=-1, keepdim=True)
                                + NORM_EPSILON))
    # Each head sees its own masked copy of the memory (the row norms depend on the mask).
    # vector_norm, not sqrt(m² · M²): its gradient at a zero row is 0, not NaN.
    rows = memory.unsqueeze(1) * masks.unsqueeze(2)  # [B, H, N, W]
    unit = rows / (torch.linalg.vector_norm(rows, dim=-1, keepdim=True) + NORM_EPSILON)
    scores = torch.matmul(unit, keys.unsqueeze(-1)).squeeze(-1)  # [B, H, N]
    return _softmax_over_top_k(scores, top_k)


def erase_and_write(prev_memory: Tensor, write_weights: Tensor, erase: Tensor,
                    write_vector: Tensor, retention: Tensor | None = None) -> Tensor:
    """The memory update, with optional de-allocation (Csordás & Schmidhuber 2019, §3.2).

    Without ``retention`` it is the 2016 DNC's M_t = M_{t−1} ∘ (E − w eᵀ) + w vᵀ. With
    it, the paper's eq. (1): M_t = M_{t−1} ∘ ψ 1ᵀ ∘ (E − w eᵀ) + w vᵀ, where ψ is this
    step's :func:`retention` (the same one the usage update uses): every row is scaled
    by how much of it survives the reads' frees, so a freed slot's content is wiped,
    not only its usage. (E is all ones, 1 ∈ R^N.)

    Computed as M' + w (v − e ∘ M') with M' = M ∘ ψ 1ᵀ (M' = M without ``retention``):
    the same sum as M' ∘ (E − w eᵀ) + w vᵀ, in fewer ops. (The DNC step inlines this
    expression, with the shapes its interface has, so that its ONNX graph stays small.)

    Args:
        prev_memory: ``[B, N, W]``.
        write_weights: ``[B, N]``.
        erase: ``[B, W]`` in [0, 1].
        write_vector: ``[B, W]``.
        retention: ``[B, N]`` in [0, 1], or None for the 2016 update.

    Returns:
        ``[B, N, W]``.
    """
    if retention is not None:
        prev_memory = prev_memory * retention.unsqueeze(-1)
    return prev_memory + write_weights.unsqueeze(-1) * (
        write_vector.unsqueeze(-2) - erase.unsqueeze(-2) * prev_memory)


#: Added to the temporal-link weights before they are sharpened (keeps the log finite).
LINK_SHARPNESS_EPSILON = 1e-6


def sharpen_link_weights(weights: Tensor, sharpness: Tensor) -> Tensor:
    """Sharpness enhancement of a temporal-link distribution (Csordás & Schmidhuber
    2019, §3.3, eq. (2) in its stabilised form).

    S(d, s)_i = ((d_i + ε) / max_j(d_j + ε))^s / Σ_j ((d_j + ε) / max_k(d_k + ε))^s,
    applied to the directional weightings (f = S(L w, s_f), b = S(Lᵀ w, s_b), one
    exponent s ≥ 1 per read head and direction), not to the link matrix. As the paper
    defines it, S re-normalises: its result sums to 1 whatever the mass of ``d``, so
    s = 1 is the identity only on a ``d`` that already sums to 1 (up to ε); a link that
    holds nothing yet (d = 0) gives the uniform distribution. Larger s moves mass to the
    largest entries, keeping their order.

    Computed as softmax_i(s · log(d_i + ε)), which is the same expression (the division
    by the max cancels, and softmax subtracts its own max): finite, with finite
    gradients at zero entries (∂/∂d_i of s · log(d_i + ε) is at most s/ε), in float32
    and float64.

    Args:
        weights: ``[B, H, N]``, each entry ≥ 0 (a forward or backward weighting).
        sharpness: ``[B, H]``, the exponent s ≥ 1 of each row.

    Returns:
        ``[B, H, N]``, each row a distribution (≥ 0, summing to 1).
    """
    return sharpen_link_weights_(weights, sharpness.unsqueeze(-1))


def sharpen_link_weights_(weights: Tensor, sharpness: Tensor) -> Tensor:
    """:func:`sharpen_link_weights` with ``sharpness`` shaped ``[B, H, 1]``."""
    return torch.softmax(sharpness * torch.log(weights + LINK_SHARPNESS_EPSILON), dim=-1)


# -- NTM location addressing (Graves, Wayne & Danihelka 2014, arXiv 1410.5401, §3.3.2) --
#: Weights below this floor count as this floor in :func:`sharpen` (keeps the log finite).
SHARPEN_FLOOR = 1e-30


def shift_offsets(num_shifts: int) -> list[int]:
    """The offsets ``[-(S-1)/2, ..., 0, ..., (S-1)/2]`` of the ``S`` (odd) allowed shifts,
    in the order of the last axis of :func:`shift_weighting`'s ``shifts``."""
    if num_shifts < 1 or num_shifts % 2 == 0:
        raise ValueError(f"the number of shifts must be odd and positive, got {num_shifts}")
    half = (num_shifts - 1) // 2
    return list(range(-half, half + 1))


def shift_weighting(weights: Tensor, shifts: Tensor) -> Tensor:
    """Circular convolution of each head's weighting with its shift distribution.

    w̃(i) = Σ_k s_k · w((i − o_k) mod N), with o_k = k − (S−1)/2 the offset of shift k:
    an offset of +1 moves the focus one slot forward (a one-hot w at slot j becomes one
    at slot j + 1 mod N). If ``weights`` and ``shifts`` are distributions, so is w̃.

    Built as one gather with constant indices (``[S, N]``: the slot each shifted copy
    reads, (i − o_k) mod N) and a small matmul over the shifts, so it exports to ONNX as
    Gather + MatMul, where ``torch.roll`` by a per-shift amount would not be one op.

    Args:
        weights: ``[B, H, N]``.
        shifts: ``[B, H, S]``, S odd; ``shifts[..., k]`` weights offset k − (S−1)/2.

    Returns:
        ``[B, H, N]``.
    """
    n, s = weights.shape[-1], shifts.shape[-1]
    offsets = torch.tensor(shift_offsets(s), device=weights.device).unsqueeze(1)  # [S, 1]
    source = torch.remainder(torch.arange(n, device=weights.device) - offsets, n)  # [S, N]
    shifted = weights.index_select(-1, source.flatten()).unflatten(-1, (s, n))  # [B, H, S, N]
    return torch.matmul(shifts.unsqueeze(-2), shifted).squeeze(-2)


def sharpen(weights: Tensor, gamma: Tensor) -> Tensor:
    """Sharpening: w_i^γ / Σ_j w_j^γ, one exponent γ ≥ 1 per head.

    Computed as softmax_i(γ · log max(w_i, ``SHARPEN_FLOOR``)): the same value for every
    weight above the floor (softmax subtracts its max, so w^γ never underflows, even for
    a flat weighting over many slots and a large γ), finite values and gradients at zero
    weights (they count as the floor: 1e-30^γ, nothing next to any weight that matters),
    and a flat distribution, not NaN, if every weight is zero. γ = 1 returns the weights
    normalised to sum 1; a larger γ moves mass to the largest weights, keeping their order.

    Args:
        weights: ``[B, H, N]``, each entry ≥ 0.
        gamma: ``[B, H]``, γ ≥ 1.

    Returns:
        ``[B, H, N]``, each row a distribution (≥ 0, summing to 1).
    """
    return torch.softmax(gamma.unsqueeze(-1) * torch.log(weights.clamp_min(SHARPEN_FLOOR)),
                         dim=-1)
