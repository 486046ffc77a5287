"""The DNC addressing functions against literal references and their defining properties."""

import pytest
import torch

from dnc_core import addressing as A

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def rand_weights(*shape, dtype=torch.float64, gen=None):
    """Random weightings over the last dim that sum to at most 1 (like write weights)."""
    w = torch.rand(*shape, dtype=dtype, generator=gen) ** 3
    return w / w.sum(-1, keepdim=True) * torch.rand(*shape[:-1], 1, dtype=dtype, generator=gen)


# -- content weighting -------------------------------------------------------------------
def content_reference(memory, keys, strengths, eps=1e-6):
    b, h, n = keys.shape[0], keys.shape[1], memory.shape[1]
    out = torch.empty(b, h, n, dtype=memory.dtype)
    for i in range(b):
        for k in range(h):
            sims = torch.stack([keys[i, k] @ memory[i, j]
                                / ((keys[i, k].norm() + eps) * (memory[i, j].norm() + eps))
                                for j in range(n)])
            out[i, k] = torch.softmax(strengths[i, k] * sims, -1)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_content_weighting_matches_reference(dtype):
    g = torch.Generator().manual_seed(0)
    m = torch.randn(3, 7, 5, dtype=dtype, generator=g)
    m[1, 2] = 0  # a zero row
    k = torch.randn(3, 2, 5, dtype=dtype, generator=g)
    s = 1 + torch.rand(3, 2, dtype=dtype, generator=g) * 5
    got = A.content_weighting(m, k, s)
    assert got.shape == (3, 2, 7) and got.dtype == dtype
    torch.testing.assert_close(got, content_reference(m, k, s), rtol=TOL[dtype], atol=TOL[dtype])
    torch.testing.assert_close(got.sum(-1), torch.ones(3, 2, dtype=dtype))


def test_content_weighting_peaks_on_matching_row_and_is_uniform_on_empty_memory():
    g = torch.Generator().manual_seed(1)
    m = torch.randn(2, 6, 4, generator=g)
    keys = m[:, [4]] * 3.0  # same direction as row 4
    w = A.content_weighting(m, keys, torch.full((2, 1), 50.0))
    assert (w.argmax(-1) == 4).all() and (w[..., 4] > 0.5).all()
    empty = A.content_weighting(torch.zeros(2, 6, 4), keys, torch.full((2, 1), 50.0))
    torch.testing.assert_close(empty, torch.full((2, 1, 6), 1 / 6))


@pytest.mark.parametrize("k", [1, 3])
def test_top_k_reads_are_softmax_over_k_best_and_zero_elsewhere(k):
    g = torch.Generator().manual_seed(2)
    m = torch.randn(4, 9, 5, dtype=torch.float64, generator=g)
    keys = torch.randn(4, 2, 5, dtype=torch.float64, generator=g)
    s = 1 + torch.rand(4, 2, dtype=torch.float64, generator=g) * 3
    got = A.content_weighting(m, keys, s, top_k=k)
    dense = A.content_weighting(m, keys, s)
    top = dense.topk(k, -1).indices
    expect = torch.zeros_like(dense).scatter(-1, top, dense.gather(-1, top))
    expect = expect / expect.sum(-1, keepdim=True)  # softmax restricted to the K best
    torch.testing.assert_close(got, expect)
    assert ((got > 0).sum(-1) == k).all()


def test_top_k_ties_go_to_lower_index():
    w = A.content_weighting(torch.zeros(2, 6, 3), torch.randn(2, 1, 3), torch.ones(2, 1), top_k=2)
    torch.testing.assert_close(w, torch.tensor([[[0.5, 0.5, 0, 0, 0, 0]]] * 2))


# -- retention and usage -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_retention_and_usage_match_definitions_and_stay_in_unit_interval(dtype):
    g = torch.Generator().manual_seed(3)
    b, r, n = 4, 3, 10
    usage = torch.zeros(b, n, dtype=dtype)
    for _ in range(50):
        free = torch.rand(b, r, dtype=dtype, generator=g)
        read_w = rand_weights(b, r, n, dtype=dtype, gen=g)
        write_w = rand_weights(b, n, dtype=dtype, gen=g)
        psi = A.retention(free, read_w)
        expect_psi = torch.ones(b, n, dtype=dtype)
        for i in range(r):
            expect_psi = expect_psi * (1 - free[:, i, None] * read_w[:, i])
        torch.testing.assert_close(psi, expect_psi, rtol=TOL[dtype], atol=TOL[dtype])
        new = A.usage_update(usage, write_w, psi)
        torch.testing.assert_close(new, (usage + write_w - usage * write_w) * psi,
                                   rtol=TOL[dtype], atol=TOL[dtype])
        assert new.min() >= 0 and new.max() <= 1
        usage = new


# -- allocation: the exportable exclusive product ---------------------------------------
def allocation_reference(usage, eps=A.ALLOCATION_EPSILON):
    """The textbook form: stable ascending sort + exclusive torch.cumprod + scatter back."""
    u = eps + (1 - eps) * usage
    sorted_u, phi = torch.sort(u, dim=-1, stable=True)
    excl = torch.cumprod(torch.cat([torch.ones_like(sorted_u[:, :1]), sorted_u[:, :-1]], -1), -1)
    return torch.zeros_like(u).scatter(-1, phi, (1 - sorted_u) * excl)


@pytest.mark.parametrize("dtype", DTYPES)
def test_allocation_equals_sort_and_cumprod_reference(dtype):
    g = torch.Generator().manual_seed(4)
    usage = torch.rand(64, 12, dtype=dtype, generator=g)
    usage[:8] = torch.rand(8, 12, dtype=dtype, generator=g).round(decimals=1)  # many ties
    usage[8] = 0  # all slots free: every slot ties
    usage[9] = 1  # all slots used
    got = A.allocation_weighting(usage)
    torch.testing.assert_close(got, allocation_reference(usage), rtol=10 * TOL[dtype],
                               atol=TOL[dtype])


def test_allocation_properties_and_tie_order():
    g = torch.Generator().manual_seed(5)
    usage = torch.rand(100, 16, generator=g)
    a = A.allocation_weighting(usage)
    assert a.min() >= 0 and a.max() <= 1 and (a.sum(-1) <= 1 + 1e-6).all()
    assert (a.argmax(-1) == usage.argmin(-1)).all()  # the least used slot gets the most
    # At t=0 all usage is 0: ties go to the lower index, so slot 0 gets (1 - eps), slot 1
    # gets (1 - eps) * eps, and so on. Deterministic, whatever the batch.
    a0 = A.allocation_weighting(torch.zeros(3, 5))
    assert (a0.argmax(-1) == 0).all()
    torch.testing.assert_close(a0[:, 0], torch.full((3,), 1 - A.ALLOCATION_EPSILON))
    tied = A.allocation_weighting(torch.tensor([[0.5, 0.2, 0.5, 0.2]], dtype=torch.float64))
    assert tied[0, 1] > tied[0, 3] > tied[0, 0] > tied[0, 2]


# -- precedence and links ----------------------------------------------------------------
def link_reference(link, prec, w):
    n = w.shape[-1]
    out = torch.empty_like(link)
    for b in range(w.shape[0]):
        for i in range(n):
            for j in range(n):
                out[b, i, j] = 0.0 if i == j else \
                    (1 - w[b, i] - w[b, j]) * link[b, i, j] + w[b, i] * prec[b, j]
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_precedence_and_link_invariants_over_many_writes(dtype):
    g = torch.Generator().manual_seed(6)
    b, n = 3, 8
    link = torch.zeros(b, n, n, dtype=dtype)
    prec = torch.zeros(b, n, dtype=dtype)
    for t in range(60):
        w = rand_weights(b, n, dtype=dtype, gen=g)
        new_link = A.link_update(link, prec, w)
        if t % 20 == 0:
            torch.testing.assert_close(new_link, link_reference(link, prec, w),
                                       rtol=TOL[dtype], atol=TOL[dtype])
        prec = A.precedence_update(prec, w)
        link = new_link
        assert (prec >= 0).all() and (prec.sum(-1) <= 1 + 1e-6).all()
        assert (torch.diagonal(link, dim1=1, dim2=2) == 0).all()
        assert link.min() >= 0
        assert (link.sum(-1) <= 1 + 1e-6).all() and (link.sum(-2) <= 1 + 1e-6).all()


def test_precedence_definition():
    prec = torch.tensor([[0.2, 0.3, 0.0]], dtype=torch.float64)
    w = torch.tensor([[0.0, 0.1, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(A.precedence_update(prec, w), 0.4 * prec + w)


def test_link_records_write_order_and_directional_reads_follow_it():
    n = 4
    link, prec = torch.zeros(1, n, n), torch.zeros(1, n)
    for slot in [2, 0, 3]:  # write slots in this order, one-hot
        w = torch.nn.functional.one_hot(torch.tensor([slot]), n).float()
        link = A.link_update(link, prec, w)
        prec = A.precedence_update(prec, w)
    assert link[0, 0, 2] == 1 and link[0, 3, 0] == 1 and link.sum() == 2
    read_at_0 = torch.nn.functional.one_hot(torch.tensor([[0]]), n).float()  # [1, 1, N]
    fwd, bwd = A.directional_read_weights(link, read_at_0)
    assert fwd.shape == bwd.shape == (1, 1, n)
    assert fwd[0, 0].argmax() == 3 and bwd[0, 0].argmax() == 2  # next: 3, previous: 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_directional_read_weights_match_einsum(dtype):
    g = torch.Generator().manual_seed(7)
    link = torch.rand(2, 6, 6, dtype=dtype, generator=g)
    w = rand_weights(2, 3, 6, dtype=dtype, gen=g)
    fwd, bwd = A.directional_read_weights(link, w)
    torch.testing.assert_close(fwd, torch.einsum("bij,brj->bri", link, w))
    torch.testing.assert_close(bwd, torch.einsum("bji,brj->bri", link, w))
