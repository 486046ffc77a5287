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
    return content_weighting_(memory, keys, strengths.unsqueeze(-1), top_k)


def content_weighting_(memory: Tensor, keys: Tensor, strengths: Tensor, top_k: int = 0) -> Tensor:
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
    n = memory.shape[1]
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
    exp(Σ_{j before i} log u'_j), summed under the order mask of :func:`_order_mask`. u' ≥ ε keeps the log finite. This is exact up to
    rounding (proved against ``torch.sort`` + ``torch.cumprod`` in the tests) and
    exports to ONNX, where ``torch.cumprod`` and stable sorts do not.

    Args:
        usage: ``[B, N]`` in [0, 1].

    Returns:
        ``[B, N]``, each in [0, 1], summing to at most 1.
    """
    u = ALLOCATION_EPSILON + (1 - ALLOCATION_EPSILON) * usage
    u_j = u.unsqueeze(-2)  # [B, 1, N]
    before = _before(u.unsqueeze(-1), u_j).to(u.dtype)  # [B, N, N]: j before i
    log_prod = (before * torch.log(u_j)).sum(-1)  # [B, N]
    return (1 - u) * torch.exp(log_prod)


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
    w_i = write_weights.unsqueeze(2)  # [B, N, 1]
    w_j = write_weights.unsqueeze(1)  # [B, 1, N]
    link = torch.addcmul(w_i * prev_precedence.unsqueeze(1), 1 - w_i - w_j, prev_link)
    # Zero diagonal by a constant 0/1 mask (a Mul: cheaper in ONNX Runtime than a Where).
    n = write_weights.shape[-1]
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
