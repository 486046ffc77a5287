"""The DNC, LSTM and GRU cores: state contract, reset, batch independence, gradients,
memory, the LSTMs' forget-gate bias."""

import io
import math
from types import SimpleNamespace

import pytest
import torch

from dnc_core import ActionSpec, ActorCritic, DNCCore, GRUCore, LSTMCore, make_core


def small_dnc(**kw):
    cfg = dict(input_size=5, hidden_size=16, memory_slots=8, word_size=6, read_heads=2)
    cfg.update(kw)
    return DNCCore(**cfg)


CORES = {"dnc": small_dnc, "dnc_top_k": lambda: small_dnc(read_top_k=3),
         "lstm": lambda: LSTMCore(input_size=5, hidden_size=16),
         "gru": lambda: GRUCore(input_size=5, hidden_size=16)}


def random_state(core, batch, gen):
    """A state after some steps of random input (so memory, links, usage are non-trivial)."""
    state = core.initial_state(batch)
    dtype = state[0].dtype
    with torch.no_grad():
        for _ in range(6):
            x = torch.randn(batch, core.input_size, generator=gen, dtype=dtype)
            _, state = core.step(x, state)
    return state


def test_dnc_state_spec_is_the_design_contract():
    core = small_dnc()
    assert [n for n, _ in core.state_spec] == ["h", "c", "memory", "usage", "link", "precedence",
                                              "read_weights", "write_weights", "read_vectors"]
    assert dict(core.state_spec) == {"h": (16,), "c": (16,), "memory": (8, 6), "usage": (8,),
                                     "link": (8, 8), "precedence": (8,), "read_weights": (2, 8),
                                     "write_weights": (8,), "read_vectors": (2, 6)}
    state = core.initial_state(3)
    assert state._fields == tuple(n for n, _ in core.state_spec)
    core.check_state(state, 3)
    assert all((s == 0).all() for s in state)
    f, new = core.step(torch.randn(3, 5), state, torch.zeros(3))
    assert f.shape == (3, core.feature_size) == (3, 16 + 2 * 6)
    core.check_state(new, 3)
    with pytest.raises(ValueError, match="'memory' has shape"):
        core.check_state(state._replace(memory=torch.zeros(3, 8, 5)), 3)


@pytest.mark.parametrize("name", sorted(CORES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reset_equals_fresh_state_and_only_touches_marked_rows(name, dtype):
    torch.manual_seed(0)
    core = CORES[name]().to(dtype)
    gen = torch.Generator().manual_seed(1)
    state = random_state(core, 4, gen)
    x = torch.randn(4, 5, generator=gen, dtype=dtype)
    reset = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=dtype)
    f, new = core.step(x, state, reset)
    f_fresh, new_fresh = core.step(x, core.initial_state(4, dtype=dtype))
    f_keep, new_keep = core.step(x, state)
    for rows, ref_f, ref_state in (([1, 3], f_fresh, new_fresh), ([0, 2], f_keep, new_keep)):
        torch.testing.assert_close(f[rows], ref_f[rows], rtol=0, atol=0)
        for a, b in zip(new, ref_state):
            torch.testing.assert_close(a[rows], b[rows], rtol=0, atol=0)


def test_reset_clears_a_corrupted_row():
    core = small_dnc()
    state = core.initial_state(2)
    state = state._replace(memory=torch.full_like(state.memory, float("nan")))
    f, new = core.step(torch.randn(2, 5), state, torch.ones(2))
    assert torch.isfinite(f).all() and all(torch.isfinite(s).all() for s in new)


def assert_rows_are_independent(core, seed: int) -> None:
    """A float64 core's batch rows do not interact: each row unrolled alone gives the
    features it has in the batch (a reset mid-sequence in one row), and garbage in one
    row changes no other (used by the NTM and DNC-variant tests too)."""
    gen = torch.Generator().manual_seed(seed)
    xs = torch.randn(4, 10, 5, generator=gen, dtype=torch.float64)
    resets = torch.zeros(4, 10)
    resets[2, 4] = 1
    feats, _ = core.unroll(xs, core.initial_state(4), resets)
    # Each row alone gives the same features as in the batch. (Not asserted for top-K
    # reads: their discrete choice among slots whose scores tie up to rounding, as in a
    # fresh memory, follows the matmul's batch-size-dependent last bit; see docs/DNC.md.)
    if not getattr(core, "read_top_k", 0):
        for b in range(4):
            alone, _ = core.unroll(xs[b:b + 1], core.initial_state(1), resets[b:b + 1])
            torch.testing.assert_close(alone[0], feats[b], rtol=1e-9, atol=1e-12)
    # ...and garbage in one row does not change any other.
    xs2 = xs.clone()
    xs2[1] = 1e3 * torch.randn(10, 5, generator=gen, dtype=torch.float64)
    feats2, _ = core.unroll(xs2, core.initial_state(4), resets)
    torch.testing.assert_close(feats2[[0, 2, 3]], feats[[0, 2, 3]], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(CORES))
def test_rows_are_independent(name):
    torch.manual_seed(0)
    # float64: batch-size-dependent matmul rounding is tiny
    assert_rows_are_independent(CORES[name]().double(), seed=2)


@pytest.mark.parametrize("top_k", [0, 3])
def test_memory_invariants_over_a_long_random_run(top_k):
    torch.manual_seed(3)
    core = small_dnc(read_top_k=top_k, clip=0.0)  # no clipping: the extremes are reached
    state = core.initial_state(8)
    with torch.no_grad():
        for t in range(200):
            _, state = core.step(3 * torch.randn(8, 5), state)
            assert state.usage.min() >= 0 and state.usage.max() <= 1 + 1e-6
            assert (state.write_weights >= 0).all() and (state.write_weights.sum(-1) <= 1 + 1e-5).all()
            assert (state.read_weights >= 0).all() and (state.read_weights.sum(-1) <= 1 + 1e-5).all()
            assert (state.precedence.sum(-1) <= 1 + 1e-5).all()
            assert (torch.diagonal(state.link, dim1=1, dim2=2) == 0).all()
            assert (state.link.sum(-1) <= 1 + 1e-5).all() and (state.link.sum(-2) <= 1 + 1e-5).all()


def test_gradcheck_through_a_full_step_float64_from_zero_memory_and_after_writes():
    torch.manual_seed(4)
    core = small_dnc(hidden_size=6, memory_slots=4, word_size=3, read_heads=2).double()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 5, dtype=torch.float64, generator=gen)
    zero = core.initial_state(2, dtype=torch.float64)
    later = random_state(core, 2, gen)

    # At zero memory cos(k, M_i) = k·M_i / ((|k|+ε)(|M_i|+ε)) has slope 1/ε and curvature
    # 1/ε², so central differences are only accurate with a step far below ε = 1e-6
    # (their error there shrinks linearly with the step: 8e-4 at 1e-8, 8e-6 at 1e-10).
    # At zero memory all usages tie; the allocation is a function of the usage order, so
    # it has no derivative there w.r.t. usage or the previous write weights (a nudge of
    # either way reorders the slots). Those two are held fixed in the zero-state check.
    for start, fd_eps, atol, fixed in ((zero, 1e-10, 1e-4, {"usage", "write_weights"}),
                                       (later, 1e-6, 1e-5, set())):
        names = start._fields

        def fn(x, *free):
            it = iter(free)
            state = [s if n in fixed else next(it) for n, s in zip(names, start)]
            f, new = core.step(x, core.state_type(*state))
            return (f,) + tuple(new)

        inputs = (x.clone().requires_grad_(),) + tuple(
            s.clone().requires_grad_() for n, s in zip(names, start) if n not in fixed)
        assert_gradcheck_and_finite_gradients(core, fn, inputs, fd_eps, atol)


def assert_gradcheck_and_finite_gradients(core, fn, inputs, fd_eps: float, atol: float):
    """float64 ``gradcheck`` of ``fn(*inputs)`` (a core step), then finite values and
    finite gradients for every input and every parameter of ``core``."""
    assert torch.autograd.gradcheck(fn, inputs, eps=fd_eps, atol=atol)
    core.zero_grad()
    out = fn(*inputs)
    sum(o.sum() for o in out).backward()
    assert all(torch.isfinite(o).all() for o in out)
    for t in list(inputs) + list(core.parameters()):
        assert t.grad is not None and torch.isfinite(t.grad).all()


def test_training_gradient_through_unroll_is_finite_with_zero_memory():
    torch.manual_seed(6)
    core = small_dnc()
    feats, _ = core.unroll(torch.zeros(3, 12, 5), core.initial_state(3))
    feats.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in core.parameters())


def interface_bias(core, write_vector, read_keys, write: bool) -> torch.Tensor:
    """An interface bias (the weights zeroed) that makes every step: write ``write_vector``
    into the allocated slot (erase all, allocation gate 1, write gate 1 or 0), free
    nothing, and read each head's key by content alone (strength 21)."""
    r, w, big = core.read_heads, core.word_size, 20.0
    linear = torch.cat([read_keys.flatten(), write_vector, write_vector])  # keys, write key, v
    strengths = torch.tensor([big] * r + [0.0])
    gates = torch.tensor([big] * w + [-big] * r + [big, big if write else -big])
    modes = torch.tensor([-big, big, -big]).repeat(r)  # [backward, content, forward] per head
    return torch.cat([linear, strengths, gates, modes])


def test_what_is_written_can_be_read_back_by_content():
    """Through the whole DNC step, the interface driven by its bias: v is written into a
    free slot, then u into another (allocation: a used slot is never offered again while
    free ones remain); each head reads back its own vector by content, and both stay
    readable over steps that write nothing."""
    core = small_dnc(clip=0.0)
    v = torch.tensor([1.0, 2.0, 0.0, 0.0, -1.0, 0.5])
    u = torch.tensor([0.0, 0.0, 3.0, -1.0, 0.0, 0.0])  # orthogonal to v
    state = core.initial_state(1)
    with torch.no_grad():
        core.interface.weight.zero_()
        for vec, write in ((v, True), (u, True), (v, False), (v, False)):
            core.interface.bias.copy_(interface_bias(core, vec, torch.stack([v, u]), write))
            _, state = core.step(torch.randn(1, 5), state)
    used = state.memory[0].norm(dim=-1) > 1e-3
    assert used.sum() == 2, state.memory  # two slots written, the rest ~untouched
    torch.testing.assert_close(state.memory[0, used], torch.stack([v, u]), atol=1e-4, rtol=0)
    assert state.memory[0, ~used].abs().max() < 1e-5
    # Each head reads its own vector. Not exactly: the allocation's usage floor (1e-6)
    # also writes each vector into the next free slot at weight ~1e-6, a row with the
    # same direction, which content addressing (strength 21) weighs at ~0.3%.
    torch.testing.assert_close(state.read_vectors[0], torch.stack([v, u]), atol=0.05, rtol=0)
    assert abs(float(state.read_vectors[0, 0] @ u)) < 1e-3  # nothing of u in v's read
    assert abs(float(state.read_vectors[0, 1] @ v)) < 1e-3


@pytest.mark.parametrize("kwargs, message", [
    (dict(memory_slots=0), "memory_slots must be a positive integer"),
    (dict(read_heads=1.5), "read_heads must be a positive integer"),
    (dict(read_top_k=9), r"read_top_k must be an integer in \[0, memory_slots=8\]"),
    (dict(clip=-1.0), "clip must be >= 0"),
])
def test_bad_dnc_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_dnc(**kwargs)


def test_make_core_by_name():
    assert isinstance(make_core("lstm", input_size=3, hidden_size=4), LSTMCore)
    gru = make_core("gru", input_size=3, hidden_size=4)
    assert isinstance(gru, GRUCore) and gru.kind == "gru"
    assert gru.config() == {"input_size": 3, "hidden_size": 4}
    assert make_core("gru", **gru.config()).config() == gru.config()
    core = make_core("dnc", **small_dnc().config())
    assert core.config() == small_dnc().config()
    with pytest.raises(ValueError, match="unknown core 'nope'"):
        make_core("nope", input_size=3)


@pytest.mark.parametrize("chunk", [1, 2])
def test_compiled_step_equals_eager_in_values_and_gradients(chunk):
    """The compiled step (chunk 1) and the compiled unroll of 2 steps per graph (5 steps:
    chunks of 2, 2 and a shorter 1, resets at a chunk's first and second step) compute
    the eager unroll's features, final state and gradients."""
    torch.manual_seed(8)
    eager = small_dnc()
    compiled = small_dnc()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_step(chunk=chunk)
    xs, resets = torch.randn(3, 5, 5), torch.zeros(3, 5)
    resets[1, 2] = resets[0, 3] = 1
    results = []
    for core in (eager, compiled):
        feats, state = core.unroll(xs, core.initial_state(3), resets)
        (feats.square().sum() + state.memory.sum()).backward()
        results.append((feats.detach(), [s.detach() for s in state],
                        [p.grad for p in core.parameters()]))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    for s_compiled, s_eager in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(s_compiled, s_eager, rtol=1e-5, atol=1e-6)
    for g_compiled, g_eager in zip(results[1][2], results[0][2]):
        torch.testing.assert_close(g_compiled, g_eager, rtol=1e-4, atol=1e-5)
    # Without resets, the same as all-zero resets.
    with torch.no_grad():
        torch.testing.assert_close(compiled.unroll(xs, compiled.initial_state(3))[0],
                                   eager.unroll(xs, eager.initial_state(3))[0],
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [0, 2.5, True])
def test_a_compile_chunk_that_is_not_a_positive_integer_is_refused(chunk):
    with pytest.raises(ValueError, match=f"chunk: expected an integer >= 1, got {chunk!r}"):
        small_dnc().compile_step(chunk=chunk)


def parse_interface(core, v: torch.Tensor) -> SimpleNamespace:
    """The interface vector ``[B, interface_size]`` cut into its named pieces, activations
    applied, from the layout dnc_core/dnc.py documents (grouped by activation; options
    at the end of their group), written here independently of DNCCore._step:
    [read keys R·W | write key W | write vector W] [read strengths R | write strength 1 |
    link sharpness 2R] [erase W | free gates R | allocation gate 1 | write gate 1 | masks
    (R+1)·W] [read modes 3R]."""
    b, r, w = v.shape[0], core.read_heads, core.word_size
    sharp, masked = 2 * r * core.link_sharpness, (r + 1) * w * core.masked_lookup
    sizes = [r * w, w, w, r, 1, sharp, w, r, 1, 1, masked, 3 * r]
    (rk, wk, wv, rs, ws, sh, er, fg, ag, wg, mk, rm) = torch.split(v, sizes, dim=-1)
    plus, sig = (lambda t: 1 + torch.nn.functional.softplus(t)), torch.sigmoid
    i = SimpleNamespace(read_keys=rk.reshape(b, r, w), write_key=wk[:, None], write_vector=wv,
                        read_strengths=plus(rs), write_strength=plus(ws), erase=sig(er),
                        free_gates=sig(fg), allocation_gate=sig(ag), write_gate=sig(wg),
                        read_modes=torch.softmax(rm.reshape(b, r, 3), -1),
                        read_masks=None, write_mask=None, forward_sharpness=None,
                        backward_sharpness=None)
    if core.masked_lookup:
        m = sig(mk).reshape(b, r + 1, w)
        i.read_masks, i.write_mask = m[:, :r], m[:, r:]
    if core.link_sharpness:
        i.forward_sharpness, i.backward_sharpness = plus(sh[:, :r]), plus(sh[:, r:])
    return i


def reference_step(core, x, s):
    """DESIGN.md §2 written out step by step, independent of DNCCore._step."""
    from dnc_core import addressing as A
    h, c = core.controller(torch.cat([x, s.read_vectors.flatten(1)], -1), (s.h, s.c))
    i = parse_interface(core, core.interface(h).clamp(-core.clip, core.clip))
    psi = A.retention(i.free_gates, s.read_weights)  # frees use the previous reads
    usage = A.usage_update(s.usage, s.write_weights, psi)  # and the previous writes
    alloc = A.allocation_weighting(usage)
    write_content = A.content_weighting(s.memory, i.write_key, i.write_strength)[:, 0]
    ga, gw = i.allocation_gate, i.write_gate
    w = gw * (ga * alloc + (1 - ga) * write_content)
    memory = (s.memory * (1 - torch.einsum("bn,bw->bnw", w, i.erase))
              + torch.einsum("bn,bw->bnw", w, i.write_vector))
    link = A.link_update(s.link, s.precedence, w)  # the previous precedence
    precedence = A.precedence_update(s.precedence, w)
    content = A.content_weighting(memory, i.read_keys, i.read_strengths)  # new memory
    fwd, bwd = A.directional_read_weights(link, s.read_weights)
    pb, pc, pf = i.read_modes[..., 0:1], i.read_modes[..., 1:2], i.read_modes[..., 2:3]
    read_w = pb * bwd + pc * content + pf * fwd  # modes: (backward, content, forward)
    read_v = torch.einsum("brn,bnw->brw", read_w, memory)
    return torch.cat([h, read_v.flatten(1)], -1), (h, c, memory, usage, link, precedence,
                                                   read_w, w, read_v)


def test_step_composes_the_addressing_functions_as_designed():
    torch.manual_seed(9)
    core = small_dnc(clip=3.0).double()
    with torch.no_grad():
        core.interface.weight.mul_(50.0)  # so that the clip really binds
        core.interface.bias.mul_(20.0)
    gen = torch.Generator().manual_seed(10)
    state = random_state(core, 3, gen)
    with torch.no_grad():
        raw = core.interface(core.controller(torch.cat(
            [torch.zeros(3, 5, dtype=torch.float64), state.read_vectors.flatten(1)], -1),
            (state.h, state.c))[0])
        assert raw.abs().max() > 3.0
        for _ in range(8):
            x = 3 * torch.randn(3, 5, generator=gen, dtype=torch.float64)
            f_ref, s_ref = reference_step(core, x, state)
            f, state = core.step(x, state)
            torch.testing.assert_close(f, f_ref, rtol=1e-12, atol=1e-12)
            for name, got, want in zip(state._fields, state, s_ref):
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=name)


# -- the GRU core --------------------------------------------------------------------------
def test_gru_state_spec_and_step_are_a_gru_cell():
    torch.manual_seed(11)
    core = GRUCore(input_size=5, hidden_size=16).double()
    assert core.state_spec == (("h", (16,)),) and core.feature_size == 16
    state = core.initial_state(3)
    assert state._fields == ("h",) and state.h.shape == (3, 16) and (state.h == 0).all()
    gen = torch.Generator().manual_seed(12)
    cell = core.cell
    for _ in range(5):
        x = torch.randn(3, 5, generator=gen, dtype=torch.float64)
        h = state.h
        # Cho et al. 2014 as PyTorch orders it: gates (reset r, update z, new n).
        gi, gh = x @ cell.weight_ih.T + cell.bias_ih, h @ cell.weight_hh.T + cell.bias_hh
        (ir, iz, i_n), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        want = (1 - z) * torch.tanh(i_n + r * hn) + z * h
        f, state = core.step(x, state)
        core.check_state(state, 3)
        torch.testing.assert_close(f, want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(state.h, want, rtol=1e-12, atol=1e-12)
    assert state.h.abs().max() > 0.05  # really moved away from zero
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        GRUCore(5, 0)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_gradcheck_of_the_baseline_cores_float64(name):
    torch.manual_seed(13)
    core = {"lstm": lambda: LSTMCore(3, 4), "gru": lambda: GRUCore(3, 4)}[name]().double()
    gen = torch.Generator().manual_seed(14)
    x = torch.randn(2, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    start = [torch.randn(2, 4, dtype=torch.float64, generator=gen, requires_grad=True)
             for _ in core.state_spec]
    reset = torch.tensor([0.0, 1.0], dtype=torch.float64)

    def fn(x, *state):
        f, new = core.step(x, core.state_type(*state), reset)
        return (f,) + tuple(new)

    assert torch.autograd.gradcheck(fn, (x, *start))
    out = fn(x, *start)
    sum(o.sum() for o in out).backward()
    for s in start:  # row 1 was reset: its incoming state gets no gradient
        assert (s.grad[1] == 0).all() and s.grad[0].abs().sum() > 0


# -- the forget-gate bias of the LSTM (core and DNC controller) ----------------------------
def _lstm_core(**kw):
    core = LSTMCore(5, 16, **kw)
    return core, core.cell, 5


def _dnc_core(**kw):
    core = small_dnc(**kw)
    return core, core.controller, 5 + 2 * 6  # the controller reads [x, r]: D + R*W


def lstm_cells():
    """``{name: build(forget_bias=...) -> (core, its nn.LSTMCell, the cell's input size)}``."""
    return {"lstm": _lstm_core, "dnc": _dnc_core}


def forget_slice(cell):
    """The effective (summed) bias of each gate, in PyTorch's order i, f, g, o."""
    return (cell.bias_ih + cell.bias_hh).detach().chunk(4)


@pytest.mark.parametrize("name", ["lstm", "dnc"])
@pytest.mark.parametrize("forget_bias", [None, 1.0, 0.0, -0.5, 2])
def test_forget_bias_sets_only_the_forget_slice(name, forget_bias):
    kw = {} if forget_bias is None else {"forget_bias": forget_bias}
    want = 1.0 if forget_bias is None else float(forget_bias)
    torch.manual_seed(15)
    core, cell, d_in = lstm_cells()[name](**kw)
    torch.manual_seed(15)  # PyTorch's own init from the same draws
    ref = torch.nn.LSTMCell(d_in, 16)
    assert core.forget_bias == want and core.config()["forget_bias"] == want
    # The summed forget slice is exactly the option (bias_hh's part is 0).
    _, f, _, _ = forget_slice(cell)
    assert f.dtype == torch.float32 and (f == want).all()
    assert (cell.bias_hh[16:32] == 0).all() and (cell.bias_ih[16:32] == want).all()
    # Everything else is bit for bit PyTorch's default init.
    torch.testing.assert_close(cell.weight_ih, ref.weight_ih, rtol=0, atol=0)
    torch.testing.assert_close(cell.weight_hh, ref.weight_hh, rtol=0, atol=0)
    for mine, theirs in ((cell.bias_ih, ref.bias_ih), (cell.bias_hh, ref.bias_hh)):
        for sl in (slice(0, 16), slice(32, 64)):  # gates i and (g, o)
            torch.testing.assert_close(mine[sl], theirs[sl], rtol=0, atol=0)
    # The option does not shift the random stream: the DNC's interface layer is the same.
    if name == "dnc":
        torch.manual_seed(15)
        plain = small_dnc(forget_bias=0.0)
        torch.testing.assert_close(core.interface.weight, plain.interface.weight, rtol=0, atol=0)


def test_forget_bias_changes_the_first_step_as_expected():
    """With c_{t-1} = 1 and zero input weights, c_t = sigmoid(forget bias) + i·g."""
    core = LSTMCore(2, 3, forget_bias=2.0)
    with torch.no_grad():
        for p in (core.cell.weight_ih, core.cell.weight_hh):
            p.zero_()
        for sl in (slice(0, 3), slice(6, 12)):  # gates i, g, o: bias 0
            core.cell.bias_ih[sl] = 0.0
            core.cell.bias_hh[sl] = 0.0
    state = core.state_type(torch.zeros(1, 3), torch.ones(1, 3))
    _, new = core.step(torch.randn(1, 2), state)
    # i = 0.5, g = tanh(0) = 0: c = sigmoid(2) * 1
    torch.testing.assert_close(new.c, torch.full((1, 3), 1 / (1 + math.exp(-2.0))))


@pytest.mark.parametrize("name", ["lstm", "dnc"])
def test_forget_bias_round_trips_through_config(name):
    torch.manual_seed(16)
    core, _, _ = lstm_cells()[name](forget_bias=0.25)
    cfg = core.config()
    assert cfg["forget_bias"] == 0.25
    again = make_core(core.kind, **cfg)
    assert again.forget_bias == 0.25 and again.config() == cfg
    _, f, _, _ = forget_slice(again.cell if name == "lstm" else again.controller)
    assert (f == 0.25).all()


@pytest.mark.parametrize("name", ["lstm", "dnc"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "1.0", None, True])
def test_non_finite_forget_bias_is_a_clear_error(name, bad):
    with pytest.raises(ValueError, match="forget_bias must be a finite number"):
        lstm_cells()[name](forget_bias=bad)


@pytest.mark.parametrize("name", ["lstm", "dnc"])
def test_a_fresh_policys_checkpoint_holds_the_forget_bias(name):
    """What a checkpoint stores right after init (policy_config + policy_state, saved
    and loaded the way training/checkpoint.py does) has forget slice 1 and rebuilds."""
    torch.manual_seed(17)
    core, _, _ = lstm_cells()[name]()
    policy = ActorCritic(core, 5, ActionSpec.discrete(3))
    buf = io.BytesIO()
    torch.save({"policy_config": policy.config(), "policy_state": policy.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    assert ck["policy_config"]["core_config"]["forget_bias"] == 1.0
    prefix = "core.cell." if name == "lstm" else "core.controller."
    st = ck["policy_state"]
    summed = st[prefix + "bias_ih"] + st[prefix + "bias_hh"]
    assert (summed[16:32] == 1.0).all() and not (summed[:16] == 1.0).any()
    rebuilt = ActorCritic.from_config(ck["policy_config"])
    rebuilt.load_state_dict(st)
    for k, v in policy.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_state_spec_names_come_from_the_state_namedtuple_once():
    from dnc_core.core import state_spec_of
    from dnc_core.dnc import DNCState
    from dnc_core.lstm import LSTMState

    # every core's spec is its NamedTuple's fields, in order
    for kind, state_type in (("dnc", DNCState), ("lstm", LSTMState)):
        core = make_core(kind, input_size=3, hidden_size=4)
        assert [n for n, _ in core.state_spec] == list(state_type._fields)
        assert core.state_type is state_type
    assert state_spec_of(LSTMState, c=(2,), h=[3]) == (("h", (3,)), ("c", (2,)))
    with pytest.raises(ValueError, match=r"LSTMState has the fields \['h', 'c'\]"):
        state_spec_of(LSTMState, h=(3,))
    with pytest.raises(ValueError, match="shapes were given for"):
        state_spec_of(LSTMState, h=(3,), c=(3,), memory=(2, 2))


@pytest.mark.parametrize("kind,config", [
    ("dnc", {}), ("dnc", {"masked_lookup": True, "deallocation": True, "link_sharpness": True}),
    ("dnc", {"read_top_k": 2}), ("ntm", {}), ("lstm", {}), ("gru", {})])
def test_every_core_state_stays_within_the_bounds_it_declares(kind, config):
    """The ranges a core declares (``state_bounds``: the contract carries them and the
    robot runtime refuses a restored state outside them) hold for every state the core
    reaches: 300 steps of large random inputs with random resets, the weights scaled up
    so that gates saturate. Checked with the runtime's own check."""
    from dnc_policy.statefile import check_bound

    from dnc_core import CORES
    torch.manual_seed(0)
    core = CORES[kind](6, memory_slots=8, **config) if kind in ("dnc", "ntm") else CORES[kind](6)
    assert "h" in core.state_bounds
    with torch.no_grad():
        for p in core.parameters():
            p.mul_(3.0)
        state = core.initial_state(4)
        for t in range(300):
            reset = (torch.rand(4) < 0.02).float()
            _, state = core.step(3 * torch.randn(4, 6), state, reset)
            for name, bound in core.state_bounds.items():
                check_bound(getattr(state, name).numpy(), bound, f"{kind} step {t} {name!r}")
