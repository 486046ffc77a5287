"""The NTM core (Graves, Wayne & Danihelka 2014): its location addressing functions
(``shift_weighting``, ``sharpen``) against literal references and their defining
properties, the core's state contract, initial state, reset, batch independence and
gradients, its config errors, and the exported core and policy in ONNX Runtime and the
robot runtime, equal to PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

# Shared helpers of the other test files (tests/ is on sys.path under pytest's default
# import mode): the trained-policy model record, the runtime's tick comparison, the
# cores' random state, the core-step exporter.
import exported
import test_runtime
import torch
import torch.nn.functional as F
from test_cores import (assert_gradcheck_and_finite_gradients, assert_rows_are_independent,
                        random_state)
from test_onnx_step import export_step

from dnc_core import CORES, NTMCore, NTMState, make_core
from dnc_core import addressing as A
from dnc_core.ntm import INITIAL_MEMORY
from export.onnx import build_contract, export_policy, sha256_of
from export.parity import check_parity
from training import checkpoint as ckpt_io
from training.a2c import train
from training.config import ConfigError, resolve
from training.copy_task import train_copy


pytestmark = pytest.mark.usefixtures("one_thread")

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}



def distributions(*shape, dtype=torch.float64, gen=None, zeros=False):
    """Random distributions over the last dim; with ``zeros``, about a third of the
    entries exactly 0 (each row keeps at least one positive entry)."""
    w = torch.rand(*shape, dtype=dtype, generator=gen) ** 2
    if zeros:
        w = w * (torch.rand(*shape, dtype=dtype, generator=gen) > 0.35)
        w[..., 0] += 0.1
    return w / w.sum(-1, keepdim=True)


# -- shift_weighting ----------------------------------------------------------------------
def shift_reference(weights, shifts):
    """w̃(i) = Σ_k s_k · w((i − o_k) mod N), o_k = k − (S−1)/2, as plain loops."""
    n, s = weights.shape[-1], shifts.shape[-1]
    out = torch.zeros_like(weights)
    for i in range(n):
        for k in range(s):
            out[..., i] += shifts[..., k] * weights[..., (i - (k - (s - 1) // 2)) % n]
    return out


def test_shift_offsets_are_centred_and_s_must_be_odd():
    assert A.shift_offsets(1) == [0]
    assert A.shift_offsets(3) == [-1, 0, 1]
    assert A.shift_offsets(5) == [-2, -1, 0, 1, 2]
    for bad in (0, 2, 4, -1):
        with pytest.raises(ValueError, match="odd and positive"):
            A.shift_offsets(bad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("s", [1, 3, 5])
def test_a_one_hot_shift_moves_a_one_hot_focus_by_its_offset(dtype, s):
    n = 7
    for j in range(n):  # the focus, every slot (wrap-around at both ends)
        for k, offset in enumerate(A.shift_offsets(s)):
            w = F.one_hot(torch.tensor([[j]]), n).to(dtype)  # [1, 1, N]
            shift = F.one_hot(torch.tensor([[k]]), s).to(dtype)  # [1, 1, S]
            got = A.shift_weighting(w, shift)
            assert got.shape == (1, 1, n) and got.dtype == dtype
            want = F.one_hot(torch.tensor([[(j + offset) % n]]), n).to(dtype)
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    if s > 1:  # offset +1 is forward: the focus at slot 2 goes to slot 3
        plus_one = F.one_hot(torch.tensor([[A.shift_offsets(s).index(1)]]), s).to(dtype)
        w = F.one_hot(torch.tensor([[2]]), n).to(dtype)
        assert A.shift_weighting(w, plus_one).argmax(-1).item() == 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_shift_weighting_matches_the_reference_and_keeps_distributions(dtype):
    g = torch.Generator().manual_seed(0)
    for n, s in ((9, 3), (6, 5), (5, 5), (4, 1)):
        w = distributions(3, 2, n, dtype=dtype, gen=g, zeros=True)
        shifts = torch.softmax(3 * torch.randn(3, 2, s, dtype=dtype, generator=g), -1)
        got = A.shift_weighting(w, shifts)
        torch.testing.assert_close(got, shift_reference(w, shifts), rtol=TOL[dtype],
                                   atol=TOL[dtype])
        # ...and the same as a mix of torch.roll'ed copies (roll by +1: slot i gets i - 1).
        rolled = sum(shifts[..., k:k + 1] * torch.roll(w, o, dims=-1)
                     for k, o in enumerate(A.shift_offsets(s)))
        torch.testing.assert_close(got, rolled, rtol=TOL[dtype], atol=TOL[dtype])
        assert (got >= 0).all()
        torch.testing.assert_close(got.sum(-1), torch.ones(3, 2, dtype=dtype))
    # A centred shift (all mass on offset 0) is the identity.
    centre = F.one_hot(torch.tensor(1), 3).to(dtype).expand(3, 2, 3)
    torch.testing.assert_close(A.shift_weighting(w[..., :4], centre), w[..., :4], rtol=0, atol=0)


# -- sharpen -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_sharpen_is_the_normalised_power_and_gamma_one_is_the_identity(dtype):
    g = torch.Generator().manual_seed(1)
    w = distributions(4, 3, 10, dtype=dtype, gen=g) * 0.7  # summing to 0.7, not 1
    gamma = 1 + 4 * torch.rand(4, 3, dtype=dtype, generator=g)
    got = A.sharpen(w, gamma)
    assert got.shape == (4, 3, 10) and got.dtype == dtype
    power = w ** gamma.unsqueeze(-1)
    torch.testing.assert_close(got, power / power.sum(-1, keepdim=True), rtol=10 * TOL[dtype],
                               atol=TOL[dtype])
    ones = torch.ones(4, 3, dtype=dtype)
    torch.testing.assert_close(A.sharpen(w, ones), w / w.sum(-1, keepdim=True),
                               rtol=10 * TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_larger_gamma_is_more_peaked_and_keeps_the_order(dtype):
    g = torch.Generator().manual_seed(2)
    w = distributions(5, 2, 12, dtype=dtype, gen=g)
    larger = w.unsqueeze(-1) > w.unsqueeze(-2)  # [.., i, j]: w_i > w_j
    prev_max, prev_entropy = w.max(-1).values, -torch.xlogy(w, w).sum(-1)
    for gamma in (1.5, 2.0, 4.0, 10.0):
        out = A.sharpen(w, torch.full((5, 2), gamma, dtype=dtype))
        entropy = -torch.xlogy(out, out).sum(-1)
        assert (out.max(-1).values > prev_max).all() and (entropy < prev_entropy).all()
        assert (out.unsqueeze(-1) >= out.unsqueeze(-2))[larger].all()  # the order is kept
        torch.testing.assert_close(out.sum(-1), torch.ones(5, 2, dtype=dtype))
        prev_max, prev_entropy = out.max(-1).values, entropy
    # A very large γ tends to the one-hot of the largest weight.
    hot = A.sharpen(w, torch.full((5, 2), 1e4, dtype=dtype))
    torch.testing.assert_close(hot, F.one_hot(w.argmax(-1), 12).to(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sharpen_stays_finite_where_the_plain_power_does_not(dtype):
    # A flat weighting over 256 slots and γ = 21 (the most the default clip allows):
    # (1/256)^21 underflows float32 to 0, so w^γ / Σ w^γ would be 0/0.
    flat = torch.full((2, 1, 256), 1 / 256, dtype=dtype)
    out = A.sharpen(flat, torch.full((2, 1), 21.0, dtype=dtype))
    torch.testing.assert_close(out, flat)
    # Zero weights stay (as good as) zero; all-zero weights give a flat distribution.
    w = torch.tensor([[[0.0, 0.25, 0.0, 0.75]]], dtype=dtype)
    out = A.sharpen(w, torch.ones(1, 1, dtype=dtype))
    torch.testing.assert_close(out, w, rtol=TOL[dtype], atol=1e-29)  # the zeros within 1e-29
    zero = A.sharpen(torch.zeros(1, 1, 4, dtype=dtype), torch.full((1, 1), 3.0, dtype=dtype))
    torch.testing.assert_close(zero, torch.full((1, 1, 4), 0.25, dtype=dtype))


# -- gradients (float64) -----------------------------------------------------------------
def test_gradcheck_shift_weighting_including_zero_weights():
    g = torch.Generator().manual_seed(3)
    for n, s in ((6, 3), (5, 5)):
        w = distributions(2, 2, n, gen=g, zeros=True)
        assert (w == 0).any()
        shifts = torch.softmax(torch.randn(2, 2, s, dtype=torch.float64, generator=g), -1)
        assert torch.autograd.gradcheck(A.shift_weighting,
                                        (w.requires_grad_(), shifts.requires_grad_()))
        assert torch.autograd.gradgradcheck(A.shift_weighting, (w, shifts))


def test_gradcheck_sharpen_including_zero_weights():
    g = torch.Generator().manual_seed(4)
    w = distributions(3, 2, 6, gen=g, zeros=True)
    assert (w == 0).any()
    # Away from zero, any γ >= 1; at zero weights the function w^γ has slope 0 there
    # and, for γ near 1, a kink that central differences resolve only for γ well above
    # 1: γ in [2, 4] there.
    for weights, gamma in ((distributions(3, 2, 6, gen=g),
                            1 + 3 * torch.rand(3, 2, dtype=torch.float64, generator=g)),
                           (w, 2 + 2 * torch.rand(3, 2, dtype=torch.float64, generator=g))):
        assert torch.autograd.gradcheck(A.sharpen, (weights.clone().requires_grad_(),
                                                    gamma.clone().requires_grad_()))
    # The gradients at zero weights are finite for γ down to 1, all-zero rows included.
    w = w.clone()
    w[0, 0] = 0.0
    for gamma_value in (1.0, 1.01, 20.0):
        weights = w.clone().requires_grad_()
        gamma = torch.full((3, 2), gamma_value, dtype=torch.float64, requires_grad=True)
        out = A.sharpen(weights, gamma)
        (out * torch.randn(out.shape, dtype=torch.float64, generator=g)).sum().backward()
        assert torch.isfinite(out).all()
        assert torch.isfinite(weights.grad).all() and torch.isfinite(gamma.grad).all()


# -- shift and sharpen in ONNX Runtime ---------------------------------------------------
class _Location(torch.nn.Module):
    def forward(self, weights, shifts, gamma):
        return A.sharpen(A.shift_weighting(weights, shifts), gamma)


def test_shift_and_sharpen_export_to_onnx_and_match_in_onnx_runtime(tmp_path):
    path = tmp_path / "location.onnx"
    b, h = torch.export.Dim("b", min=1, max=64), torch.export.Dim("h", min=1, max=8)
    example = (distributions(2, 3, 9, dtype=torch.float32), torch.rand(2, 3, 5).softmax(-1),
               1 + torch.rand(2, 3))
    torch.onnx.export(_Location().eval(), example, str(path), input_names=["w", "s", "gamma"],
                      output_names=["out"], opset_version=18, dynamo=True, verbose=False,
                      dynamic_shapes=({0: b, 1: h}, {0: b, 1: h}, {0: b, 1: h}))
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert "Gather" in {n.op_type for n in model.graph.node}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(5)
    w = distributions(4, 2, 9, dtype=torch.float32, gen=g, zeros=True)
    w[0, 0] = 0.0  # an all-zero row
    w[1, 1] = F.one_hot(torch.tensor(8), 9).float()  # a focus at the last slot (wraps)
    s = torch.softmax(4 * torch.randn(4, 2, 5, generator=g), -1)
    gamma = 1 + 20 * torch.rand(4, 2, generator=g)
    got = sess.run(None, {"w": w.numpy(), "s": s.numpy(), "gamma": gamma.numpy()})[0]
    np.testing.assert_allclose(got, _Location()(w, s, gamma).numpy(), rtol=0, atol=1e-6)


# -- the core ----------------------------------------------------------------------------
def small_ntm(**kw):
    cfg = {"input_size": 5, "hidden_size": 16, "memory_slots": 8, "word_size": 6, "read_heads": 2}
    cfg.update(kw)
    return NTMCore(**cfg)


def test_state_spec_initial_state_and_registration():
    core = small_ntm()
    assert core.kind == "ntm" and CORES["ntm"] is NTMCore
    assert core.state_spec == (("h", (16,)), ("c", (16,)), ("memory", (8, 6)),
                               ("read_weights", (2, 8)), ("write_weights", (8,)),
                               ("read_vectors", (2, 6)))
    assert core.feature_size == 16 + 2 * 6
    state = core.initial_state(3)
    assert isinstance(state, NTMState) and state._fields == tuple(n for n, _ in core.state_spec)
    core.check_state(state, 3)
    assert (state.h == 0).all() and (state.c == 0).all()
    assert (state.memory == INITIAL_MEMORY).all() and INITIAL_MEMORY > 0
    focus = F.one_hot(torch.tensor(0), 8).float()
    assert (state.write_weights == focus).all() and (state.read_weights == focus).all()
    torch.testing.assert_close(state.read_vectors, torch.matmul(state.read_weights, state.memory))
    assert core.initial_state(2, dtype=torch.float64).memory.dtype == torch.float64
    f, new = core.step(torch.randn(3, 5), state, torch.zeros(3))
    assert f.shape == (3, core.feature_size)
    core.check_state(new, 3)
    # make_core rebuilds it from its config.
    again = make_core("ntm", **core.config())
    assert isinstance(again, NTMCore) and again.config() == core.config()
    assert core.config() == {"input_size": 5, "hidden_size": 16, "memory_slots": 8,
                             "word_size": 6, "read_heads": 2, "shift_range": 3, "clip": 20.0,
                             "forget_bias": 1.0}
    # The controller is the project's LSTM cell with its forget-gate bias.
    cell = core.controller
    assert isinstance(cell, torch.nn.LSTMCell) and cell.input_size == 5 + 2 * 6
    assert ((cell.bias_ih + cell.bias_hh)[16:32] == 1.0).all()
    assert (small_ntm(forget_bias=0.25).controller.bias_ih[16:32] == 0.25).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_reset_gives_the_initial_state_and_only_touches_marked_rows(dtype):
    torch.manual_seed(0)
    core = small_ntm().to(dtype)
    gen = torch.Generator().manual_seed(1)
    state = random_state(core, 4, gen)
    state = state._replace(memory=state.memory.clone())
    state.memory[3] = float("nan")  # a corrupted row comes back clean
    reset = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=dtype)
    # reset_state itself: the marked rows are exactly the (non-zero) initial state.
    after = core.reset_state(state, reset)
    initial = core.initial_state(4, dtype=dtype)
    for name, got, fresh, old in zip(state._fields, after, initial, state):
        torch.testing.assert_close(got[[1, 3]], fresh[[1, 3]], rtol=0, atol=0, msg=name)
        torch.testing.assert_close(got[[0, 2]], old[[0, 2]], rtol=0, atol=0, msg=name)
    # A step with the mask equals a step from the fresh state in those rows.
    x = torch.randn(4, 5, generator=gen, dtype=dtype)
    f, new = core.step(x, state, reset)
    f_fresh, new_fresh = core.step(x, initial)
    f_keep, new_keep = core.step(x, state)
    for rows, ref_f, ref_state in (([1, 3], f_fresh, new_fresh), ([0, 2], f_keep, new_keep)):
        torch.testing.assert_close(f[rows], ref_f[rows], rtol=0, atol=0)
        for a, b in zip(new, ref_state):
            torch.testing.assert_close(a[rows], b[rows], rtol=0, atol=0)
    assert torch.isfinite(f).all() and all(torch.isfinite(s).all() for s in new)


def test_rows_are_independent():
    torch.manual_seed(2)
    assert_rows_are_independent(small_ntm().double(), seed=3)


def test_weights_stay_distributions_over_a_long_random_run():
    torch.manual_seed(4)
    core = small_ntm(clip=0.0)  # no clipping: the extremes are reached
    state = core.initial_state(8)
    with torch.no_grad():
        for _ in range(200):
            _, state = core.step(3 * torch.randn(8, 5), state)
            for w in (state.write_weights, state.read_weights):
                assert (w >= 0).all()
                torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
            assert all(torch.isfinite(s).all() for s in state)
            torch.testing.assert_close(state.read_vectors,
                                       torch.matmul(state.read_weights, state.memory))


def reference_step(core, x, s):
    """Graves et al. 2014 §3 written out plainly from the documented interface layout
    (heads: write, then read 1..R), independent of NTMCore._step."""
    r, w, n, k_shifts = core.read_heads, core.word_size, core.memory_slots, core.shift_range
    heads = r + 1
    h, c = core.controller(torch.cat([x, s.read_vectors.flatten(1)], -1), (s.h, s.c))
    v = core.interface(h).clamp(-core.clip, core.clip)
    sizes = [heads * w, w, heads, heads, heads, w, heads * k_shifts]
    keys, add, beta, gamma, gate, erase, shifts = torch.split(v, sizes, dim=-1)
    assert sum(sizes) == v.shape[1]
    keys = keys.reshape(-1, heads, w)
    beta, gamma = 1 + F.softplus(beta), 1 + F.softplus(gamma)
    gate, erase = torch.sigmoid(gate), torch.sigmoid(erase)
    shifts = torch.softmax(shifts.reshape(-1, heads, k_shifts), -1)
    half = (k_shifts - 1) // 2

    def head(k, memory, prev):  # prev [B, N] -> [B, N]
        content = A.content_weighting(memory, keys[:, k:k + 1], beta[:, k:k + 1])[:, 0]
        gated = gate[:, k:k + 1] * content + (1 - gate[:, k:k + 1]) * prev
        shifted = sum(shifts[:, k, j:j + 1] * torch.roll(gated, j - half, dims=-1)
                      for j in range(k_shifts))
        power = shifted ** gamma[:, k:k + 1]
        return power / power.sum(-1, keepdim=True)

    ww = head(0, s.memory, s.write_weights)
    memory = (s.memory * (1 - torch.einsum("bn,bw->bnw", ww, erase))
              + torch.einsum("bn,bw->bnw", ww, add))
    rw = torch.stack([head(1 + k, memory, s.read_weights[:, k]) for k in range(r)], 1)
    rv = torch.einsum("brn,bnw->brw", rw, memory)
    assert rw.shape == (x.shape[0], r, n)
    return torch.cat([h, rv.flatten(1)], -1), (h, c, memory, rw, ww, rv)


@pytest.mark.parametrize("shift_range", [1, 3, 5])
def test_step_composes_the_addressing_as_designed(shift_range):
    torch.manual_seed(5)
    core = small_ntm(clip=3.0, shift_range=shift_range).double()
    with torch.no_grad():
        core.interface.weight.mul_(50.0)  # so that the clip really binds
        core.interface.bias.mul_(20.0)
    gen = torch.Generator().manual_seed(6)
    state = core.initial_state(3)
    with torch.no_grad():
        for t in range(10):
            x = 3 * torch.randn(3, 5, generator=gen, dtype=torch.float64)
            f_ref, s_ref = reference_step(core, x, state)
            f, state = core.step(x, state)
            torch.testing.assert_close(f, f_ref, rtol=1e-12, atol=1e-12)
            for name, got, want in zip(state._fields, state, s_ref):
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=f"{name} {t}")
        raw = core.interface(state.h)
        assert raw.abs().max() > 3.0


def test_shift_plus_one_walks_write_and_read_heads_slot_by_slot_from_slot_zero():
    """A controller that always says "keep the previous weights (g = 0), shift +1,
    sharpen hard" writes and reads slots 1, 2, 3, ... in turn: the initial focus at slot 0
    and the shift's direction at work, no content look-up needed."""
    core = small_ntm(read_heads=1, clip=0.0)
    r, w, s = 1, core.word_size, core.shift_range
    heads = r + 1
    with torch.no_grad():
        core.interface.weight.zero_()
        bias = torch.zeros(core.interface_size)
        sizes = [heads * w, w, heads, heads, heads, w, heads * s]
        _keys, add, _beta, gamma, gate, erase, shifts = bias.split(sizes)
        add.fill_(1.0)  # write ones
        gamma.fill_(30.0)
        gate.fill_(-30.0)
        erase.fill_(30.0)  # erase fully: the written row becomes the add vector
        shifts.view(heads, s)[:, 2] = 30.0  # offset +1
        core.interface.bias.copy_(bias)
        state = core.initial_state(2)
        for t in range(1, 12):
            _, state = core.step(torch.randn(2, 5), state)
            want = t % core.memory_slots
            assert (state.write_weights.argmax(-1) == want).all()
            assert (state.write_weights.max(-1).values > 0.999).all()
            assert (state.read_weights[:, 0].argmax(-1) == want).all()
            # The read head reads the row just written: the add vector (ones).
            torch.testing.assert_close(state.read_vectors[:, 0], torch.ones(2, w), atol=1e-4,
                                       rtol=0)
        written = (state.memory - INITIAL_MEMORY).abs().sum(-1) > 0.5  # [B, N]
        assert written.all()  # 11 steps over 8 slots: every slot written (slot 0 last)


def test_gradcheck_through_a_full_step_float64_from_the_initial_state_and_after_steps():
    torch.manual_seed(7)
    core = small_ntm(hidden_size=6, memory_slots=4, word_size=3, read_heads=2).double()
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(2, 5, dtype=torch.float64, generator=gen)
    # At the initial memory (rows of norm 1e-6·√W, next to the cosine's ε = 1e-6) the
    # cosine's curvature is ~1/ε², so central differences need a step far below 1e-6
    # there (as for the DNC's zero memory, tests/test_cores.py).
    for start, fd_eps, atol in ((core.initial_state(2), 1e-10, 1e-4),
                                (random_state(core, 2, gen), 1e-6, 1e-5)):
        inputs = (x.clone().requires_grad_(),) + tuple(s.clone().requires_grad_() for s in start)

        def fn(x, *state):
            f, new = core.step(x, core.state_type(*state))
            return (f,) + tuple(new)

        assert_gradcheck_and_finite_gradients(core, fn, inputs, fd_eps, atol)


def test_training_gradient_through_unroll_is_finite_and_reaches_every_parameter():
    torch.manual_seed(9)
    core = small_ntm()
    feats, _ = core.unroll(torch.zeros(3, 12, 5), core.initial_state(3))
    feats.square().sum().backward()
    for name, p in core.named_parameters():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_the_copy_task_trains_an_ntm():
    result = train_copy("ntm", bits=4, max_length=3, batch=4, max_iters=3, eval_every=1,
                        eval_batch=8, progress=False)
    assert result["iters"] == 3 and len(result["history"]) == 3
    assert 0.0 <= result["error"] <= 1.0


# -- config errors -----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"memory_slots": 0}, r"^memory_slots must be a positive integer, got 0$"),
    ({"word_size": 2.0}, r"^word_size must be a positive integer"),
    ({"read_heads": 1.5}, r"^read_heads must be a positive integer"),
    ({"hidden_size": -3}, r"^hidden_size must be a positive integer"),
    ({"shift_range": 4}, r"^shift_range must be an odd integer in \[1, memory_slots=8\]"),
    ({"shift_range": 0}, r"^shift_range must be an odd integer"),
    ({"shift_range": 9}, r"^shift_range must be an odd integer in \[1, memory_slots=8\].*got 9"),
    ({"shift_range": True}, r"^shift_range must be an odd integer"),
    ({"shift_range": 3.0}, r"^shift_range must be an odd integer"),
    ({"clip": -1.0}, r"^clip must be >= 0 \(0 disables clipping\)"),
    ({"clip": float("nan")}, r"^clip must be a finite number"),
    ({"forget_bias": float("inf")}, r"^forget_bias must be a finite number"),
])
def test_bad_ntm_arguments_are_one_line_errors_naming_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message) as e:
        small_ntm(**kwargs)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("override, message", [
    ("core_config.shift_range=4", r"^core_config\.shift_range: must be an odd integer"),
    ("core_config.memory_slots=0", r"^core_config\.memory_slots: must be a positive integer"),
    ("core_config.shift=3", r"^core_config\.shift: unknown option for core 'ntm'"),
])
def test_bad_ntm_training_config_is_a_one_line_error(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        resolve(None, [override], core="ntm")
    assert "\n" not in str(e.value)


def test_the_ntm_training_configs_load():
    root = Path(__file__).resolve().parents[1] / "training" / "configs"
    for name in ("copy_ntm.yaml", "cartpole_po_ntm.yaml"):
        cfg = resolve(str(root / name))
        assert cfg.core == "ntm" and cfg.core_config["shift_range"] == 3


# -- ONNX: the core step, and a whole policy in the robot runtime ------------------------
_CORE_EXPORT = {}


@pytest.fixture
def exported_core(tmp_path_factory):
    """``(core, path, state names)``: an NTM core step exported once per session."""
    if not _CORE_EXPORT:
        torch.manual_seed(0)
        core = NTMCore(input_size=12, hidden_size=32, memory_slots=16, word_size=8,
                       read_heads=2).eval()
        path = tmp_path_factory.mktemp("onnx") / "ntm_step.onnx"
        _CORE_EXPORT["ntm"] = (core, path, export_step(core, path))
    return _CORE_EXPORT["ntm"]


def test_exported_core_graph_is_valid(exported_core):
    core, path, names = exported_core
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["x", "reset"] + [f"state_in.{n}" for n in names]
    assert names == [n for n, _ in core.state_spec]
    assert model.opset_import[0].version >= 17


@pytest.mark.parametrize("batch", [1, 4])
def test_onnx_runtime_core_step_matches_pytorch_over_1000_steps(exported_core, batch):
    """Each side carries its own state; ONNX Runtime's starts all zeros, as the robot
    runtime's does, and the first tick's reset puts the NTM's (non-zero) initial state
    in: the graph holds it."""
    core, path, names = exported_core
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(1)
    state_t = core.initial_state(batch)
    state_o = [np.zeros_like(s.numpy()) for s in state_t]
    worst = 0.0
    for t in range(1000):
        x = 2 * torch.randn(batch, 12, generator=gen)
        reset = (torch.rand(batch, generator=gen) < 0.01).float()
        if t == 0:
            reset[:] = 1.0
        with torch.no_grad():
            feats, state_t = core.step(x, state_t, reset)
        out = sess.run(None, {"x": x.numpy(), "reset": reset.numpy(),
                              **{f"state_in.{n}": s for n, s in zip(names, state_o)}})
        state_o = out[1:]
        for got, want in zip(out, (feats,) + tuple(state_t)):
            worst = max(worst, float(np.abs(got - want.numpy()).max()))
        assert worst < 1e-5, f"step {t}: {worst}"
    assert (state_o[names.index("memory")] != INITIAL_MEMORY).any()  # it did write


NTM_SPEC = ["core=ntm",
            "core_config={hidden_size: 16, memory_slots: 8, word_size: 8, read_heads: 1}",
            "env_kwargs.length=3"] + exported.FEW
_POLICY = {}


@pytest.fixture
def ntm_policy(tmp_path_factory) -> exported.Model:
    """A small NTM policy on a short T-maze: the real trainer (a few updates), logits
    made decisive as test_export does for its untrained policies, the real exporter."""
    if not _POLICY:
        base = tmp_path_factory.mktemp("model_ntm")
        cfg = resolve(None, NTM_SPEC + ["threads=1", "seed=1", "checkpoint_every=100000000",
                                        f"run_dir={base}"])
        ckpt = Path(train(cfg, progress=False, run_dir=base / "run")["checkpoint"])
        exported._tweak_checkpoint("ntm", ckpt)
        policy, ck = ckpt_io.load_policy(ckpt)
        out = export_policy(policy, build_contract(policy, ck, sha256_of(ckpt)),
                            base / "export" / "ntm.onnx")
        _POLICY["ntm"] = exported.Model("ntm", base / "run", ckpt, out)
    return _POLICY["ntm"]


def test_exported_policy_contract_names_the_ntm_state(ntm_policy):
    policy, ck = ntm_policy.load()
    c = ntm_policy.contract()
    assert c["core"] == {"kind": "ntm", "config": ck["policy_config"]["core_config"]}
    assert c["core"]["config"]["shift_range"] == 3
    assert [s["name"] for s in c["state"]] == ["h", "c", "memory", "read_weights",
                                              "write_weights", "read_vectors"]
    model = onnx.load(str(ntm_policy.onnx))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == (
        ["obs", "reset"] + [f"state_in.{n}" for n, _ in policy.state_spec])


@pytest.mark.parametrize("batch", [1, 4])
def test_exported_policy_parity_over_1000_steps(ntm_policy, batch):
    policy, ck = ntm_policy.load()
    r = check_parity(policy, ntm_policy.onnx, ck["env"], ck["env_kwargs"], steps=1000,
                     batch=batch)
    assert r.ok, r.line()
    assert r.steps == 1000 and r.resets > batch


@pytest.mark.parametrize("batch", [1, 4])
def test_exported_policy_runs_in_the_robot_runtime_like_pytorch(ntm_policy, batch):
    """tests/test_runtime.py's tick-by-tick comparison (200 ticks, episode starts and
    extra resets), run on the NTM policy."""
    test_runtime.test_step_equals_the_pytorch_policy_over_episodes_with_resets(
        lambda name: ntm_policy, "ntm", batch)
