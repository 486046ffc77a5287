"""The DNC variants of Csordás & Schmidhuber (ICLR 2019, arXiv 1904.10278, section 3):
masked content-based addressing (§3.1), memory de-allocation (§3.2) and sharpness
control of the temporal link distributions (§3.3), each a DNCCore option, off by default.

- The pure functions (``dnc_core.addressing``) against the paper's equations written out
  literally, their defining properties, and float64 gradchecks with zero entries.
- The core with each option and all three: its step against a reference written from
  the paper, reset, batch independence, memory invariants, finite gradients, the config
  round trip into a checkpoint, one-line errors for bad option values.
- The all-three core exported to ONNX: parity with PyTorch over 1000 steps at batch 1
  and 4 (``export.parity.check_parity``, what the exporter and tests/test_export.py use),
  and the robot runtime running it unchanged.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import test_cores  # small_dnc, random_state: the same cores and states as the 2016 tests
import torch
from test_addressing import DTYPES, TOL, content_reference, rand_weights

from dnc_core import ActionSpec, ActorCritic, DNCCore, make_core
from dnc_core import addressing as A



pytestmark = pytest.mark.usefixtures("one_thread")

OPTIONS = ("masked_lookup", "deallocation", "link_sharpness")
VARIANTS = {"masked": {"masked_lookup": True}, "dealloc": {"deallocation": True},
            "sharp": {"link_sharpness": True}, "all": dict.fromkeys(OPTIONS, True)}


def variant(name: str, **kw) -> DNCCore:
    """``test_cores.small_dnc`` (N=8, W=6, R=2) with the variant's options on."""
    return test_cores.small_dnc(**VARIANTS[name], **kw)


# -- §3.1 masked content-based addressing ------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("top_k", [0, 3])
def test_an_all_ones_mask_is_plain_content_weighting(dtype, top_k):
    g = torch.Generator().manual_seed(0)
    m = torch.randn(3, 7, 5, dtype=dtype, generator=g)
    m[1, 2] = 0  # a zero row
    k = torch.randn(3, 2, 5, dtype=dtype, generator=g)
    s = 1 + torch.rand(3, 2, dtype=dtype, generator=g) * 5
    got = A.masked_content_weighting(m, k, s, torch.ones(3, 2, 5, dtype=dtype), top_k=top_k)
    assert got.shape == (3, 2, 7) and got.dtype == dtype
    torch.testing.assert_close(got, A.content_weighting(m, k, s, top_k=top_k),
                               rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_lookup_is_cosine_of_masked_key_and_masked_rows(dtype):
    """C(M, k, β, m)_i = softmax_i(β cos(k ∘ m, M_i ∘ m)), each head with its own mask."""
    g = torch.Generator().manual_seed(1)
    m = torch.randn(3, 7, 5, dtype=dtype, generator=g)
    m[0, 4] = 0
    k = torch.randn(3, 2, 5, dtype=dtype, generator=g)
    s = 1 + torch.rand(3, 2, dtype=dtype, generator=g) * 5
    masks = torch.rand(3, 2, 5, dtype=dtype, generator=g)
    masks[2, 0, :2] = 0
    masks[1, 1] = 0  # masks everything: nothing to compare, uniform weights
    got = A.masked_content_weighting(m, k, s, masks)
    want = torch.cat([content_reference(m * masks[:, h, None], (k * masks)[:, h:h + 1],
                                        s[:, h:h + 1]) for h in range(2)], dim=1)
    torch.testing.assert_close(got, want, rtol=TOL[dtype], atol=TOL[dtype])
    torch.testing.assert_close(got[1, 1], torch.full((7,), 1 / 7, dtype=dtype))
    # The mask matters: without it the weights are others.
    assert (got - A.content_weighting(m, k, s)).abs().max() > 1e-2


def test_masking_the_dimensions_two_rows_differ_in_makes_them_tie():
    """The paper's tag search: the key knows only the tag part of a word."""
    memory = torch.tensor([[[1.0, 2.0, 3.0, 5.0, -1.0, 0.5],   # tag (dims 0-2) + value
                            [1.0, 2.0, 3.0, -4.0, 2.0, 7.0],   # the same tag, another value
                            [-3.0, 1.0, 0.0, 1.0, 1.0, 1.0],
                            [0.5, -2.0, 1.0, 0.0, 3.0, -1.0]]], dtype=torch.float64)
    key = torch.tensor([[[1.0, 2.0, 3.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    beta = torch.full((1, 1), 10.0, dtype=torch.float64)
    tag_only = torch.tensor([[[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    plain = A.content_weighting(memory, key, beta)[0, 0]
    masked = A.masked_content_weighting(memory, key, beta, tag_only)[0, 0]
    assert abs(plain[0] - plain[1]) > 0.05  # the values decide the plain look-up
    assert masked[0] == masked[1]  # masked, the rows are the same: an exact tie
    assert masked[0] > 10 * masked[2:].max()  # and cos = 1 beats every other row


def test_gradcheck_of_masked_lookup_float64_with_zero_rows_and_zero_masks():
    g = torch.Generator().manual_seed(2)
    m = torch.randn(2, 5, 4, dtype=torch.float64, generator=g)
    k = torch.randn(2, 3, 4, dtype=torch.float64, generator=g)
    s = 1 + torch.rand(2, 3, dtype=torch.float64, generator=g) * 3
    masks = torch.rand(2, 3, 4, dtype=torch.float64, generator=g)
    for top_k in (0, 2):
        assert torch.autograd.gradcheck(
            lambda *a, top_k=top_k: A.masked_content_weighting(*a, top_k=top_k),
            tuple(t.clone().requires_grad_() for t in (m, k, s, masks)))
    # A zero memory row, zero mask entries and a head that masks everything: cos has
    # slope 1/ε there (as in test_cores' zero-memory gradcheck), so the finite
    # differences need a step far below ε = 1e-6.
    m[0, 1] = 0
    masks[0, 0, :2] = 0
    masks[1, 2] = 0
    inputs = tuple(t.clone().requires_grad_() for t in (m, k, s, masks))
    assert torch.autograd.gradcheck(A.masked_content_weighting, inputs, eps=1e-10, atol=1e-4)
    A.masked_content_weighting(*inputs).square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in inputs)


# -- §3.2 de-allocation ------------------------------------------------------------------
def write_reference(memory, w, erase, v, psi=None):
    """Eq. (1) literally: M ∘ ψ1ᵀ ∘ (E − w eᵀ) + w vᵀ (the 2016 update without ψ)."""
    kept = memory if psi is None else memory * torch.einsum("bn,w->bnw", psi,
                                                            torch.ones_like(erase[0]))
    return kept * (1 - torch.einsum("bn,bw->bnw", w, erase)) + torch.einsum("bn,bw->bnw", w, v)


def write_inputs(dtype, gen, b=3, r=2, n=7, w=5):
    return (torch.randn(b, n, w, dtype=dtype, generator=gen), rand_weights(b, n, dtype=dtype, gen=gen),
            torch.rand(b, w, dtype=dtype, generator=gen), torch.randn(b, w, dtype=dtype, generator=gen),
            torch.rand(b, r, dtype=dtype, generator=gen), rand_weights(b, r, n, dtype=dtype, gen=gen))


@pytest.mark.parametrize("dtype", DTYPES)
def test_deallocation_is_eq_1_and_free_gates_0_give_the_2016_update(dtype):
    g = torch.Generator().manual_seed(3)
    memory, w, erase, v, free, read_w = write_inputs(dtype, g)
    psi = A.retention(free, read_w)
    got = A.erase_and_write(memory, w, erase, v, psi)
    torch.testing.assert_close(got, write_reference(memory, w, erase, v, psi),
                               rtol=TOL[dtype], atol=TOL[dtype])
    assert (got - A.erase_and_write(memory, w, erase, v)).abs().max() > 1e-2  # ψ matters
    # Without retention: the 2016 DNC's update.
    plain = A.erase_and_write(memory, w, erase, v)
    torch.testing.assert_close(plain, write_reference(memory, w, erase, v),
                               rtol=TOL[dtype], atol=TOL[dtype])
    # Free gates 0: ψ = 1, and de-allocation changes nothing, bit for bit.
    ones = A.retention(torch.zeros_like(free), read_w)
    assert (ones == 1).all()
    torch.testing.assert_close(A.erase_and_write(memory, w, erase, v, ones), plain,
                               rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_freeing_a_fully_read_slot_wipes_its_content(dtype):
    g = torch.Generator().manual_seed(4)
    memory, w, erase, v, free, read_w = write_inputs(dtype, g)
    read_w[:, 0] = torch.nn.functional.one_hot(torch.tensor(3), 7).to(dtype)  # head 0 read slot 3
    free[:, 0] = 1.0  # ... and frees it
    w[:, 3] = 0.0  # nothing is written there this step
    psi = A.retention(free, read_w)
    assert (psi[:, 3] == 0).all()
    new = A.erase_and_write(memory, w, erase, v, psi)
    assert (new[:, 3] == 0).all()  # wiped
    old = A.erase_and_write(memory, w, erase, v)
    assert (old[:, 3] == memory[:, 3]).all()  # the 2016 DNC keeps the freed content
    # A write into the freed slot lands on a clean row: exactly w_3 v.
    w[:, 3] = 0.5
    new = A.erase_and_write(memory, w, erase, v, A.retention(free, read_w))
    torch.testing.assert_close(new[:, 3], 0.5 * v, rtol=TOL[dtype], atol=TOL[dtype])


def test_gradcheck_of_deallocation_float64():
    g = torch.Generator().manual_seed(5)
    memory, w, erase, v, free, read_w = write_inputs(torch.float64, g, b=2, n=4, w=3)
    psi = A.retention(free, read_w)
    psi[0, 1] = 0  # a wiped slot
    memory[1, 2] = 0  # a zero row
    inputs = tuple(t.clone().requires_grad_() for t in (memory, w, erase, v, psi))
    assert torch.autograd.gradcheck(A.erase_and_write, inputs)
    assert torch.autograd.gradcheck(lambda m, w, e, v: A.erase_and_write(m, w, e, v), inputs[:4])


# -- §3.3 sharpness of the temporal link distributions -----------------------------------
def sharpen_reference(d, s, eps=A.LINK_SHARPNESS_EPSILON):
    """The paper's stabilised S(d, s)_i = ((d_i+ε)/max(d+ε))^s / Σ_j ((d_j+ε)/max(d+ε))^s."""
    x = d + eps
    p = (x / x.max(-1, keepdim=True).values) ** s.unsqueeze(-1)
    return p / p.sum(-1, keepdim=True)


def link_weights(dtype, gen, b=3, r=2, n=8, writes=6):
    """Forward and backward weightings ``[B, R, N]`` from a link matrix built by a few
    random writes (entries >= 0, rows summing to at most 1, zeros included)."""
    link, prec = torch.zeros(b, n, n, dtype=dtype), torch.zeros(b, n, dtype=dtype)
    for _ in range(writes):
        w = rand_weights(b, n, dtype=dtype, gen=gen)
        link, prec = A.link_update(link, prec, w), A.precedence_update(prec, w)
    read_w = rand_weights(b, r, n, dtype=dtype, gen=gen)
    read_w[0, 0] = 0  # a head that read nothing: f = b = 0
    return A.directional_read_weights(link, read_w)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sharpness_is_the_papers_stabilised_S(dtype):
    g = torch.Generator().manual_seed(6)
    for d in link_weights(dtype, g):
        s = 1 + 20 * torch.rand(d.shape[:2], dtype=dtype, generator=g)  # up to oneplus(20)
        got = A.sharpen_link_weights(d, s)
        assert got.shape == d.shape and got.dtype == dtype
        torch.testing.assert_close(got, sharpen_reference(d, s), rtol=10 * TOL[dtype],
                                   atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sharpness_1_is_the_identity_on_distributions_and_renormalises_the_rest(dtype):
    g = torch.Generator().manual_seed(7)
    n = 8
    d = rand_weights(4, 2, n, dtype=dtype, gen=g)
    d[0, 0] = 0
    d[0, 0, 5] = 1.0  # one-hot
    d = d / d.sum(-1, keepdim=True)  # distributions
    ones = torch.ones(4, 2, dtype=dtype)
    # S(d, 1) = (d + ε) / (1 + Nε): d up to N·ε.
    torch.testing.assert_close(A.sharpen_link_weights(d, ones), d, rtol=0,
                               atol=n * A.LINK_SHARPNESS_EPSILON)
    # On the link's sub-distributions S re-normalises (the paper's S, not a mass-keeping
    # one): S(f, 1) = (f + ε) / Σ (f + ε), and an empty row becomes uniform.
    for f in link_weights(dtype, g):
        got = A.sharpen_link_weights(f, torch.ones(f.shape[:2], dtype=dtype))
        torch.testing.assert_close(got, (f + 1e-6) / (f + 1e-6).sum(-1, keepdim=True),
                                   rtol=TOL[dtype], atol=TOL[dtype])
        torch.testing.assert_close(got[0, 0], torch.full((n,), 1 / n, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_larger_exponents_are_more_peaked_and_stay_distributions(dtype):
    g = torch.Generator().manual_seed(8)
    fwd, bwd = link_weights(dtype, g)
    d = torch.cat([fwd, bwd], 1)[1:]  # rows that read something
    tol = 10 * TOL[dtype]
    prev_max, prev_entropy = None, None
    for s in (1.0, 1.5, 2.0, 4.0, 8.0, 16.0, 21.0):
        out = A.sharpen_link_weights(d, torch.full(d.shape[:2], s, dtype=dtype))
        assert torch.isfinite(out).all() and (out >= 0).all()
        assert (out.sum(-1) <= 1 + tol).all() and (out.sum(-1) >= 1 - tol).all()
        # The order is kept: a larger weight stays at least as large.
        larger = d.unsqueeze(-1) > d.unsqueeze(-2)
        assert (out.unsqueeze(-1) >= out.unsqueeze(-2) - tol)[larger].all()
        peak = out.max(-1).values
        entropy = -(out * out.clamp_min(1e-300).log()).sum(-1)
        if prev_max is not None:
            assert (peak >= prev_max - tol).all() and (entropy <= prev_entropy + tol).all()
        prev_max, prev_entropy = peak, entropy
    # s = 21: almost all the mass on the entries within 20% of the largest (0.8^21 < 0.01).
    near_top = d >= 0.8 * d.max(-1, keepdim=True).values
    assert ((out * near_top).sum(-1) > 0.9).all()


def test_gradcheck_of_sharpness_float64_at_zero_entries():
    g = torch.Generator().manual_seed(9)
    fwd, _ = link_weights(torch.float64, g, b=2, n=5)
    fwd[1, 1, 2] = 0  # zero entries (and head [0, 0] read nothing: all zero)
    s = 1 + 5 * torch.rand(2, 2, dtype=torch.float64, generator=g)
    inputs = (fwd.clone().requires_grad_(), s.clone().requires_grad_())
    # log(d + ε) has curvature 1/ε² at d = 0: finite differences need a step << ε.
    assert torch.autograd.gradcheck(A.sharpen_link_weights, inputs, eps=1e-9, atol=1e-4)
    smooth = (torch.rand(2, 2, 5, dtype=torch.float64, generator=g).requires_grad_(),
              inputs[1])
    assert torch.autograd.gradcheck(A.sharpen_link_weights, smooth)
    for dtype in DTYPES:  # finite at zeros with the largest exponent, float32 included
        d = torch.zeros(2, 2, 5, dtype=dtype)
        d[0, 0, 1] = 0.3
        d.requires_grad_()
        s = torch.full((2, 2), 21.0, dtype=dtype, requires_grad=True)
        out = A.sharpen_link_weights(d, s)
        (out * torch.arange(5, dtype=dtype)).sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(d.grad).all()
        assert torch.isfinite(s.grad).all()


# -- the core ------------------------------------------------------------------------------
def test_options_are_off_by_default_and_off_is_the_2016_core():
    core = test_cores.small_dnc()
    assert all(core.config()[o] is False for o in OPTIONS)
    r, w = 2, 6
    assert core.interface_size == r * w + 2 * w + (r + 1) + (w + r + 2) + 3 * r
    torch.manual_seed(0)
    plain = test_cores.small_dnc()
    torch.manual_seed(0)
    off = test_cores.small_dnc(**dict.fromkeys(OPTIONS, False))
    for a, b in zip(plain.state_dict().values(), off.state_dict().values()):
        assert torch.equal(a, b)
    xs = torch.randn(3, 6, 5)
    torch.testing.assert_close(off.unroll(xs, off.initial_state(3))[0],
                               plain.unroll(xs, plain.initial_state(3))[0], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_options_grow_the_interface_only_and_keep_the_state_contract(name):
    core, plain = variant(name), test_cores.small_dnc()
    r, w = 2, 6
    extra = (core.masked_lookup * (r + 1) * w + core.link_sharpness * 2 * r)
    assert core.interface_size == plain.interface_size + extra
    assert core.interface.out_features == core.interface_size
    assert core.state_spec == plain.state_spec and core.feature_size == plain.feature_size
    f, state = core.step(torch.randn(3, 5), core.initial_state(3), torch.ones(3))
    assert f.shape == (3, core.feature_size)
    core.check_state(state, 3)
    i = test_cores.parse_interface(core, torch.randn(3, core.interface_size))
    assert (i.read_masks is not None) == (i.write_mask is not None) == core.masked_lookup
    assert (i.forward_sharpness is not None) == core.link_sharpness
    if core.masked_lookup:
        assert i.read_masks.shape == (3, r, w) and i.write_mask.shape == (3, 1, w)
        assert ((i.read_masks > 0) & (i.read_masks < 1)).all()
    if core.link_sharpness:
        assert i.forward_sharpness.shape == i.backward_sharpness.shape == (3, r)
        assert (i.forward_sharpness >= 1).all() and (i.backward_sharpness >= 1).all()


def paper_reference_step(core, x, s):
    """One step as the paper writes it (§3.1-3.3 on DESIGN.md §2's DNC), independent of
    DNCCore._step: the pure functions called one by one on the pieces of the tests' own
    interface parser (test_cores.parse_interface)."""
    h, c = core.controller(torch.cat([x, s.read_vectors.flatten(1)], -1), (s.h, s.c))
    i = test_cores.parse_interface(core, core.interface(h).clamp(-core.clip, core.clip))

    def lookup(memory, keys, strengths, masks, top_k=0):
        if core.masked_lookup:  # c = C(M, k, β, m)
            return A.masked_content_weighting(memory, keys, strengths, masks, top_k)
        return A.content_weighting(memory, keys, strengths, top_k)

    psi = A.retention(i.free_gates, s.read_weights)
    usage = A.usage_update(s.usage, s.write_weights, psi)
    alloc = A.allocation_weighting(usage)
    write_content = lookup(s.memory, i.write_key, i.write_strength, i.write_mask)[:, 0]
    ga, gw = i.allocation_gate, i.write_gate
    w = gw * (ga * alloc + (1 - ga) * write_content)
    # M_t = M_{t-1} ∘ ψ1ᵀ ∘ (E − w eᵀ) + w vᵀ (de-allocation), else the 2016 update.
    memory = write_reference(s.memory, w, i.erase, i.write_vector,
                             psi if core.deallocation else None)
    link = A.link_update(s.link, s.precedence, w)
    precedence = A.precedence_update(s.precedence, w)
    content = lookup(memory, i.read_keys, i.read_strengths, i.read_masks, core.read_top_k)
    fwd, bwd = A.directional_read_weights(link, s.read_weights)
    if core.link_sharpness:  # f = S(L w, s_f), b = S(Lᵀ w, s_b)
        fwd = sharpen_reference(fwd, i.forward_sharpness)
        bwd = sharpen_reference(bwd, i.backward_sharpness)
    pb, pc, pf = i.read_modes[..., 0:1], i.read_modes[..., 1:2], i.read_modes[..., 2:3]
    read_w = pb * bwd + pc * content + pf * fwd
    read_v = torch.einsum("brn,bnw->brw", read_w, memory)
    return torch.cat([h, read_v.flatten(1)], -1), (h, c, memory, usage, link, precedence,
                                                   read_w, w, read_v)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_step_is_the_papers_equations(name):
    torch.manual_seed(10)
    core = variant(name, clip=3.0).double()
    with torch.no_grad():
        core.interface.weight.mul_(50.0)  # so that the clip binds and gates saturate
        core.interface.bias.mul_(20.0)
    gen = torch.Generator().manual_seed(11)
    state = test_cores.random_state(core, 3, gen)
    with torch.no_grad():
        for _ in range(8):
            x = 3 * torch.randn(3, 5, generator=gen, dtype=torch.float64)
            f_ref, s_ref = paper_reference_step(core, x, state)
            f, state = core.step(x, state)
            torch.testing.assert_close(f, f_ref, rtol=1e-10, atol=1e-12)
            for field, got, want in zip(state._fields, state, s_ref):
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=field)


def test_deallocation_changes_the_memory_of_the_same_weights():
    """The option is used: the same parameters with and without it differ (its
    interface is the 2016 one, so the weights are interchangeable)."""
    torch.manual_seed(12)
    plain, dealloc = test_cores.small_dnc(), variant("dealloc")
    dealloc.load_state_dict(plain.state_dict())
    xs = torch.randn(2, 6, 5)
    with torch.no_grad():
        _, a = plain.unroll(xs, plain.initial_state(2))
        _, b = dealloc.unroll(xs, dealloc.initial_state(2))
    assert (a.memory - b.memory).abs().max() > 1e-3
    assert b.memory.abs().sum() < a.memory.abs().sum()  # freed rows lose their content


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reset_equals_fresh_state_and_only_touches_marked_rows(name, dtype):
    torch.manual_seed(13)
    core = variant(name).to(dtype)
    gen = torch.Generator().manual_seed(14)
    state = test_cores.random_state(core, 4, gen)
    x = torch.randn(4, 5, generator=gen, dtype=dtype)
    reset = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=dtype)
    f, new = core.step(x, state, reset)
    f_fresh, new_fresh = core.step(x, core.initial_state(4, dtype=dtype))
    f_keep, new_keep = core.step(x, state)
    for rows, ref_f, ref_state in (([1, 3], f_fresh, new_fresh), ([0, 2], f_keep, new_keep)):
        torch.testing.assert_close(f[rows], ref_f[rows], rtol=0, atol=0)
        for a, b in zip(new, ref_state):
            torch.testing.assert_close(a[rows], b[rows], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_rows_are_independent(name):
    torch.manual_seed(15)
    test_cores.assert_rows_are_independent(variant(name).double(), seed=16)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_memory_invariants_over_a_long_random_run(name):
    torch.manual_seed(17)
    core = variant(name, clip=0.0)  # no clipping: the extremes are reached
    state = core.initial_state(8)
    with torch.no_grad():
        for _ in range(200):
            _, state = core.step(3 * torch.randn(8, 5), state)
            assert all(torch.isfinite(s).all() for s in state)
            assert state.usage.min() >= 0 and state.usage.max() <= 1 + 1e-6
            assert (state.write_weights >= 0).all() and (state.write_weights.sum(-1) <= 1 + 1e-5).all()
            assert (state.read_weights >= 0).all() and (state.read_weights.sum(-1) <= 1 + 1e-5).all()
            assert (torch.diagonal(state.link, dim1=1, dim2=2) == 0).all()
            assert (state.link.sum(-1) <= 1 + 1e-5).all() and (state.link.sum(-2) <= 1 + 1e-5).all()


def test_gradients_are_finite_from_zero_memory_and_gradcheck_after_writes():
    torch.manual_seed(18)
    core = variant("all")
    feats, _ = core.unroll(torch.zeros(3, 12, 5), core.initial_state(3))
    feats.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in core.parameters())
    # A whole step, float64, from a state after writes (cf. test_cores' gradcheck).
    core = variant("all", hidden_size=6, memory_slots=4, word_size=3).double()
    gen = torch.Generator().manual_seed(19)
    x = torch.randn(2, 5, dtype=torch.float64, generator=gen)
    start = test_cores.random_state(core, 2, gen)

    def fn(x, *state):
        f, new = core.step(x, core.state_type(*state))
        return (f,) + tuple(new)

    inputs = (x.requires_grad_(),) + tuple(s.clone().requires_grad_() for s in start)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-7, atol=1e-5)


# -- config, checkpoints, errors -------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_options_round_trip_through_config_and_a_checkpoint(name):
    torch.manual_seed(20)
    core = variant(name)
    cfg = core.config()
    assert {o: cfg[o] for o in OPTIONS} == {o: VARIANTS[name].get(o, False) for o in OPTIONS}
    assert make_core("dnc", **cfg).config() == cfg
    policy = ActorCritic(core, 5, ActionSpec.discrete(3))
    buf = io.BytesIO()  # as training/checkpoint.py stores it
    torch.save({"policy_config": policy.config(), "policy_state": policy.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    assert ck["policy_config"]["core_config"] == cfg
    rebuilt = ActorCritic.from_config(ck["policy_config"])
    rebuilt.load_state_dict(ck["policy_state"])
    xs = torch.randn(2, 4, 5)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.core.unroll(xs, rebuilt.core.initial_state(2))[0],
                                   core.unroll(xs, core.initial_state(2))[0], rtol=0, atol=0)
    # A config written before the options existed builds the 2016 DNC.
    old = make_core("dnc", **{k: v for k, v in cfg.items() if k not in OPTIONS})
    assert all(old.config()[o] is False for o in OPTIONS)


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("bad", ["yes", "True", 1, 0, 1.0, None])
def test_a_bad_option_value_is_a_one_line_error_naming_the_key(option, bad):
    with pytest.raises(ValueError) as e:
        test_cores.small_dnc(**{option: bad})
    assert str(e.value) == f"{option} must be True or False, got {bad!r}"


@pytest.mark.parametrize("option", OPTIONS)
def test_the_training_config_names_the_key_too(option):
    from training.config import ConfigError, resolve

    with pytest.raises(ConfigError) as e:
        resolve(None, ["core=dnc", f"core_config.{option}=2"])
    assert str(e.value).startswith(f"core_config.{option}: ") and "\n" not in str(e.value)
    cfg = resolve(None, ["core=dnc", f"core_config.{option}=true"])
    assert cfg.core_config[option] is True


# -- ONNX: the all-three core, export parity and the runtime ---------------------------------
def export_dnc(base, **options):
    """``(policy, checkpoint dict, onnx path)``: a T-maze policy on a small DNC with
    ``options``, saved as the trainers save it and exported by ``export.onnx.export_policy``."""
    from test_reliability_export import ENV, save_checkpoint

    from export.onnx import build_contract, export_policy, sha256_of
    from training import checkpoint as ckpt_io

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(21)
        core = make_core("dnc", input_size=4, hidden_size=16, memory_slots=8, word_size=8,
                         read_heads=2, **options)
        policy = ActorCritic(core, 4, ActionSpec.discrete(3))
        with torch.no_grad():  # decisive, state-dependent logits (cf. test_export)
            policy.actor.weight.mul_(100.0)
        ckpt = save_checkpoint(base / "run" / "checkpoints" / "latest.pt", policy, env=ENV)
        policy, ck = ckpt_io.load_policy(ckpt)
        path = export_policy(policy, build_contract(policy, ck, sha256_of(ckpt)),
                             base / "policy.onnx")
    finally:
        torch.set_num_threads(threads)
    return policy, ck, path


@pytest.fixture(scope="module")
def all_three_export(tmp_path_factory):
    return export_dnc(tmp_path_factory.mktemp("dnc_variants"), **VARIANTS["all"])


def test_export_without_interface_clipping_has_parity_and_no_clip(tmp_path):
    """clip=0 (the interface unclipped): the exporter's parity check at batch 1 and 4, and
    the runtime reads the option back from the contract."""
    from dnc_policy.runtime import PolicyRuntime

    from export.parity import check_parity

    policy, ck, path = export_dnc(tmp_path, clip=0.0)
    for batch in (1, 4):
        r = check_parity(policy, path, ck["env"], ck["env_kwargs"], steps=300, batch=batch)
        assert r.ok and r.max_state_diff < 1e-4, r.line()
    assert PolicyRuntime(path).contract["core"]["config"]["clip"] == 0.0


def test_sparse_reads_through_onnx_runtime_from_states_without_ties(tmp_path):
    """Top-K reads (K = 2 of 8 slots) through ONNX Runtime. From states whose content
    scores have no rounding-level ties (random written memories: docs/DNC.md, "Ties"), one
    tick of the graph equals PyTorch's, and it is not the dense read's tick."""
    import onnxruntime as ort
    from exported import ort_feed, torch_tick

    policy, ck, path = export_dnc(tmp_path, read_top_k=2)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    gen = torch.Generator().manual_seed(5)
    for trial in range(5):
        state = test_cores.random_state(policy.core, 4, gen)
        obs = torch.randn(4, 4, generator=gen).numpy()
        reset = np.zeros(4, np.float32)
        _, out, new = torch_tick(policy, obs, state, reset)
        got = dict(zip(names, sess.run(None, ort_feed(policy, obs, reset, state))))
        for (name, _), t in zip(policy.state_spec, new):
            np.testing.assert_allclose(got[f"state_out.{name}"], t.numpy(), atol=1e-5,
                                       err_msg=f"trial {trial}: {name}")
        np.testing.assert_allclose(got["logits"], out.dist.numpy(), atol=1e-4)
        policy.core.read_top_k = 0  # the same weights reading densely
        _, _, dense = torch_tick(policy, obs, state, reset)
        policy.core.read_top_k = 2
        gap = np.abs(dense.read_weights.numpy() - got["state_out.read_weights"]).max()
        assert gap > 1e-3, f"trial {trial}: the sparse read is the dense one ({gap:.1e})"


@pytest.mark.parametrize("batch", [1, 4])
def test_all_three_export_parity_over_1000_steps(all_three_export, batch):
    from export.parity import check_parity

    policy, ck, path = all_three_export
    r = check_parity(policy, path, ck["env"], ck["env_kwargs"], steps=1000, batch=batch)
    assert r.ok, r.line()
    assert r.steps == 1000 and r.batch == batch and r.resets > batch  # episode starts too
    assert r.max_state_diff < 1e-4, r.line()


@pytest.mark.parametrize("name", ["masked", "dealloc", "sharp"])
def test_each_option_alone_exports_with_parity_over_1000_steps(tmp_path, name):
    """Each Csordas option on its own (de-allocation alone is PPO's default DNC): the
    exporter's 1000-step parity check at batch 1 and 4, the option read back from the
    contract, the 2016 state (no new tensor)."""
    from dnc_policy.runtime import PolicyRuntime

    from export.parity import check_parity

    policy, ck, path = export_dnc(tmp_path, **VARIANTS[name])
    for batch in (1, 4):
        r = check_parity(policy, path, ck["env"], ck["env_kwargs"], steps=1000, batch=batch)
        assert r.ok and r.steps == 1000 and r.resets > batch, r.line()
        assert r.max_state_diff < 1e-4, r.line()
    rt = PolicyRuntime(path)
    assert {o: rt.contract["core"]["config"][o] for o in OPTIONS} == {
        o: o in VARIANTS[name] for o in OPTIONS}
    assert [n for n, _ in rt.state_spec] == [n for n, _ in test_cores.small_dnc().state_spec]


def test_all_three_export_has_the_2016_state_and_runs_in_the_runtime(all_three_export):
    import onnx
    from dnc_policy.runtime import PolicyRuntime
    from exported import env_observations, torch_tick

    policy, ck, path = all_three_export
    model = onnx.load(str(path))
    names = [n for n, _ in test_cores.small_dnc().state_spec]
    assert [i.name for i in model.graph.input] == ["obs", "reset"] + [f"state_in.{n}" for n in names]
    assert "CumProd" not in {n.op_type for n in model.graph.node}
    rt = PolicyRuntime(path, batch=2)
    assert all(rt.contract["core"]["config"][o] is True for o in OPTIONS)
    obs = env_observations(ck["env"], ck["env_kwargs"], 80).reshape(40, 2, 4)
    state = policy.initial_state(2)
    for t in range(40):
        reset = np.array([t == 0 or t == 25, t == 0], np.float32)
        action = rt.step(obs[t], reset=reset)
        want, out, state = torch_tick(policy, obs[t], state, reset)
        np.testing.assert_array_equal(action, want)
        np.testing.assert_allclose(rt.outputs["value"], out.value.numpy(), atol=1e-4)
        snap = rt.snapshot()  # the state passes the runtime's DNC bounds checks
        rt.restore(snap)
        for (n, _), s in zip(policy.state_spec, state):
            np.testing.assert_allclose(snap[n], s.numpy(), atol=1e-4, err_msg=n)
