"""Attention sub-layer ops (qkv projection -> window attention -> output projection) on every CPU backend.

The reference is the composition written out here: ``F.linear`` for both projections around the ``naive``
attention core, in float64. The ``naive`` sub-layer itself follows the official module's different order
(window partition before the projection), so agreeing with the composition checks that path too.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from restore.ops.window_attention import (
    TOLERANCES,
    overlap_window_size,
    overlapping_relative_position_index,
    overlapping_window_attention,
    overlapping_window_self_attention,
    relative_position_index,
    window_attention,
    window_self_attention,
)
from restore.ops.window_attention.projection import QKV_ALIGN, project_qkv

# (B, H, W, C_in, heads, head dim, C_out, ws, shift, bias)
SELF_CASES = [
    (1, 16, 24, 20, 2, 30, 20, 8, 4, True),
    (2, 8, 16, 12, 1, 53, 12, 8, 0, True),  # odd head dim, 3C = 159 (padded to 160)
    (1, 14, 7, 9, 3, 5, 11, 7, 3, False),  # no biases, C_out != C_in
]
# (B, H, W, C_in, heads, head dim, ws, overlap ratio)
OVERLAP_CASES = [
    (1, 16, 8, 24, 2, 12, 8, 0.5),
    (2, 6, 9, 10, 1, 30, 3, 0.75),
]


def _weights(c_in: int, c: int, c_out: int, bias: bool, dtype: torch.dtype, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * shape[-1] ** -0.5).to(dtype)

    return (rand(3 * c, c_in), rand(3 * c) if bias else None, rand(c_out, c), rand(c_out) if bias else None)


def _composed(core, x: torch.Tensor, weights: tuple, **kwargs) -> torch.Tensor:
    qkv_weight, qkv_bias, proj_weight, proj_bias = weights
    q, k, v = F.linear(x, qkv_weight, qkv_bias).chunk(3, dim=-1)
    return F.linear(core(q, k, v, backend="naive", **kwargs), proj_weight, proj_bias)


def _self_setup(case: tuple, dtype: torch.dtype) -> tuple[torch.Tensor, tuple, dict]:
    b, h, w, c_in, heads, d, c_out, ws, shift, bias = case
    g = torch.Generator().manual_seed(sum(case))
    x = torch.randn(b, h, w, c_in, generator=g, dtype=torch.float64).to(dtype)
    table = (torch.randn((2 * ws - 1) ** 2, heads, generator=g, dtype=torch.float64) * 0.5).to(dtype)
    kwargs = dict(num_heads=heads, window_size=ws, shift_size=shift, rpb_table=table,
                  rp_index=relative_position_index(ws), scale=d**-0.5)  # fmt: skip
    return x, _weights(c_in, heads * d, c_out, bias, dtype, sum(case)), kwargs


def _overlap_setup(case: tuple, dtype: torch.dtype) -> tuple[torch.Tensor, tuple, dict]:
    b, h, w, c_in, heads, d, ws, ratio = case
    ows = overlap_window_size(ws, ratio)
    g = torch.Generator().manual_seed(b + h + w + d)
    x = torch.randn(b, h, w, c_in, generator=g, dtype=torch.float64).to(dtype)
    table = (torch.randn((ws + ows - 1) ** 2, heads, generator=g, dtype=torch.float64) * 0.5).to(dtype)
    kwargs = dict(num_heads=heads, window_size=ws, overlap_window_size=ows, rpb_table=table,
                  rp_index=overlapping_relative_position_index(ws, ows), scale=d**-0.5)  # fmt: skip
    return x, _weights(c_in, heads * d, c_in, True, dtype, d), kwargs


@pytest.mark.parametrize("backend", ["naive", "torch"])
@pytest.mark.parametrize("case", SELF_CASES, ids=lambda c: "-".join(map(str, c)))
def test_window_self_attention_matches_composition_fp64(case: tuple, backend: str) -> None:
    x, weights, kwargs = _self_setup(case, torch.float64)
    ref = _composed(window_attention, x, weights, **kwargs)
    out = window_self_attention(x, *weights, backend=backend, **kwargs)
    assert out.shape == (*x.shape[:3], weights[2].shape[0])
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("backend", ["naive", "torch"])
@pytest.mark.parametrize("case", OVERLAP_CASES, ids=lambda c: "-".join(map(str, c)))
def test_overlapping_self_attention_matches_composition_fp64(case: tuple, backend: str) -> None:
    x, weights, kwargs = _overlap_setup(case, torch.float64)
    ref = _composed(overlapping_window_attention, x, weights, **kwargs)
    out = overlapping_window_self_attention(x, *weights, backend=backend, **kwargs)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("overlap", [False, True], ids=["window", "overlapping"])
def test_gradients_agree_between_backends(overlap: bool) -> None:
    if overlap:
        x64, weights64, kwargs = _overlap_setup(OVERLAP_CASES[0], torch.float64)
        op = overlapping_window_self_attention
    else:
        x64, weights64, kwargs = _self_setup(SELF_CASES[0], torch.float64)
        op = window_self_attention
    results = {}
    for backend in ("naive", "torch"):
        leaves = [t.float().requires_grad_() for t in (x64, *weights64, kwargs["rpb_table"])]
        x, *weights, table = leaves
        out = op(x, *weights, backend=backend, **{**kwargs, "rpb_table": table})
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), leaves)
        results[backend] = (out.detach(), *grads)
    atol, rtol = TOLERANCES[torch.float32]
    for ref, got in zip(results["naive"], results["torch"]):
        torch.testing.assert_close(got, ref, atol=atol * 10, rtol=rtol * 10)
    assert all(g.abs().sum() > 0 for g in results["torch"][1:])  # every parameter is learnt


def test_project_qkv_pads_rows_without_changing_values() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 7, generator=g)
    weight, bias = torch.randn(3 * 53, 7, generator=g), torch.randn(3 * 53, generator=g)
    q, k, v = project_qkv(x, weight, bias)
    ref = F.linear(x, weight, bias)
    assert q.stride(-2) % QKV_ALIGN == 0 and q.stride(-2) > 3 * 53  # one aligned buffer, rows 160 wide
    assert q.untyped_storage().data_ptr() == v.untyped_storage().data_ptr()
    torch.testing.assert_close(torch.cat((q, k, v), dim=-1), ref, atol=1e-5, rtol=1e-5)
    q0, _, v0 = project_qkv(x, weight, None)
    torch.testing.assert_close(torch.cat((q0, v0), -1), F.linear(x, weight)[..., [*range(53), *range(106, 159)]])


def test_invalid_projection_arguments_raise() -> None:
    x, (qw, qb, pw, pb), kwargs = _self_setup(SELF_CASES[0], torch.float32)
    cases = [
        ((x[0], qw, qb, pw, pb), "x must be a"),
        ((x, qw[:, :5], qb, pw, pb), "qkv_weight expected"),
        ((x, qw[:-1], qb, pw, pb), "qkv_weight expected"),
        ((x, qw, qb[:-3], pw, pb), "qkv_bias expected"),
        ((x, qw, qb, pw[:, :-1], pb), "proj_weight expected"),
        ((x, qw, qb, pw, pb[:-1]), "proj_bias expected"),
        ((x[:, :, :12], qw, qb, pw, pb), "H x W = 16 x 12 must be multiples"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=f"window_self_attention: {message}"):
            window_self_attention(*args, **kwargs)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        window_self_attention(x, qw, qb, pw, pb, **{**kwargs, "num_heads": 7})
    with pytest.raises(ValueError, match="rpb_table"):
        window_self_attention(x, qw, qb, pw, pb, **{**kwargs, "rpb_table": kwargs["rpb_table"][:4]})
    xo, weights, okw = _overlap_setup(OVERLAP_CASES[0], torch.float32)
    with pytest.raises(ValueError, match="overlapping_window_self_attention: overlap_window_size"):
        overlapping_window_self_attention(xo, *weights, **{**okw, "overlap_window_size": 9})


# The layout exported graphs trace (restore.ops.window_attention.graph_impl), run eagerly: same arithmetic.
GRAPH_CASES = [*SELF_CASES, (1, 8, 24, 12, 2, 6, 12, 8, 4, True)]  # one window high: empty interior/right groups


@pytest.mark.parametrize("case", GRAPH_CASES, ids=lambda c: "-".join(map(str, c)))
def test_graph_layout_of_window_self_attention_matches_composition_fp64(case: tuple) -> None:
    from restore.ops.window_attention import graph_impl

    x, weights, kwargs = _self_setup(case, torch.float64)
    ref = _composed(window_attention, x, weights, **kwargs)
    torch.testing.assert_close(graph_impl.window_self_attention(x, *weights, **kwargs), ref, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("case", OVERLAP_CASES, ids=lambda c: "-".join(map(str, c)))
def test_graph_layout_of_overlapping_self_attention_matches_composition_fp64(case: tuple) -> None:
    from restore.ops.window_attention import graph_impl

    x, weights, kwargs = _overlap_setup(case, torch.float64)
    ref = _composed(overlapping_window_attention, x, weights, **kwargs)
    out = graph_impl.overlapping_window_self_attention(x, *weights, **kwargs)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-8)


def test_packed_attention_splits_heads_from_the_channels() -> None:
    from restore.ops.window_attention.graph_impl import packed_attention

    g = torch.Generator().manual_seed(0)
    b, nq, nk, heads, d, dv = 3, 5, 7, 2, 4, 6
    q, k = (torch.randn(b, n, heads * d, generator=g, dtype=torch.float64) for n in (nq, nk))
    v = torch.randn(b, nk, heads * dv, generator=g, dtype=torch.float64)
    mask = torch.randn(1, heads, nq, nk, generator=g, dtype=torch.float64)
    out = packed_attention(q, k, v, mask, heads, 0.3)
    for head in range(heads):  # head h owns channels h*d .. (h+1)*d - 1 of q and k, h*dv .. of v
        qk, vh = slice(head * d, (head + 1) * d), slice(head * dv, (head + 1) * dv)
        qh, kh, vh = q[..., qk], k[..., qk], v[..., vh]
        want = torch.softmax(0.3 * qh @ kh.transpose(1, 2) + mask[:, head], dim=-1) @ vh
        torch.testing.assert_close(out[..., head * dv : (head + 1) * dv], want, atol=1e-12, rtol=1e-10)


def test_graph_layout_refuses_dropout() -> None:
    from restore.ops.window_attention import graph_impl

    x, weights, kwargs = _self_setup(SELF_CASES[0], torch.float32)
    with pytest.raises(ValueError, match="without attention dropout"):
        graph_impl.window_self_attention(x, *weights, **{**kwargs, "dropout_p": 0.1})
