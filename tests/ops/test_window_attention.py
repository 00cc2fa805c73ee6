"""Window attention op: geometry against the official construction, torch vs naive backends, dtypes, errors."""

from __future__ import annotations

import pytest
import torch
from torch_threads import one_thread_fixture

from restore.ops.window_attention import (
    TOLERANCES,
    overlap_window_size,
    overlapping_relative_position_index,
    overlapping_window_attention,
    relative_position_index,
    shift_mask,
    window_attention,
)
from restore.ops.window_attention.geometry import boundary_windows, window_partition, window_reverse

_one_thread = one_thread_fixture()


# ----------------------------------------------------------------------------------------------------------------
# Independent re-statements of the official constructions (slice labelling, coordinate arithmetic).


def _official_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    img = torch.zeros(1, h, w, 1)
    slices = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    label = 0
    for hs in slices:
        for wsl in slices:
            img[:, hs, wsl, :] = label
            label += 1
    win = img.view(1, h // ws, ws, w // ws, ws, 1).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws)
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def _official_rpi(ws: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


def _official_rpi_oca(ws: int, ows: int) -> torch.Tensor:
    ori = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    ext = torch.stack(torch.meshgrid(torch.arange(ows), torch.arange(ows), indexing="ij")).flatten(1)
    rel = (ext[:, None, :] - ori[:, :, None]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws - ows + 1
    rel[:, :, 1] += ws - ows + 1
    rel[:, :, 0] *= ws + ows - 1
    return rel.sum(-1)


@pytest.mark.parametrize(
    "h,w,ws,shift", [(16, 16, 8, 4), (24, 40, 8, 4), (8, 24, 8, 3), (21, 14, 7, 3), (32, 16, 16, 8)]
)
def test_shift_mask_matches_official_labelling(h: int, w: int, ws: int, shift: int) -> None:
    mask = shift_mask(h, w, ws, shift)
    assert mask.dtype == torch.float32 and mask.shape == ((h // ws) * (w // ws), ws * ws, ws * ws)
    assert torch.equal(mask, _official_mask(h, w, ws, shift))
    nonzero = mask.flatten(1).ne(0).any(1)
    assert torch.equal(nonzero, boundary_windows(h, w, ws))  # only the last window row/column is masked


def test_shift_mask_dtype_and_zero_shift() -> None:
    assert shift_mask(16, 8, 8, 4, dtype=torch.bfloat16).dtype == torch.bfloat16
    assert not shift_mask(16, 16, 8, 0).any()


@pytest.mark.parametrize("ws", [1, 4, 7, 8, 16])
def test_relative_position_index_matches_official(ws: int) -> None:
    assert torch.equal(relative_position_index(ws), _official_rpi(ws))


@pytest.mark.parametrize("ws,ratio", [(8, 0.5), (16, 0.5), (8, 0.25), (4, 1.0), (7, 0.0)])
def test_overlapping_index_matches_official(ws: int, ratio: float) -> None:
    ows = overlap_window_size(ws, ratio)
    assert ows == int(ws * ratio) + ws
    index = overlapping_relative_position_index(ws, ows)
    assert torch.equal(index, _official_rpi_oca(ws, ows))
    if ows > ws:
        assert index.min() < 0  # the official index wraps around the table; the ops must honour that


def test_partition_roundtrip() -> None:
    x = torch.randn(2, 16, 24, 5)
    windows = window_partition(x, 8)
    assert windows.shape == (12, 8, 8, 5)
    assert torch.equal(windows[1], x[0, 0:8, 8:16])  # row-major window order
    assert torch.equal(window_reverse(windows, 8, 16, 24), x)


# ----------------------------------------------------------------------------------------------------------------
# Backends.


def _inputs(b: int, h: int, w: int, heads: int, d: int, table_rows: int, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(b, h, w, 3 * heads * d, generator=g, dtype=dtype)
    table = torch.randn(table_rows, heads, generator=g, dtype=dtype) * 0.5
    return qkv, table


def _wa(qkv: torch.Tensor, table: torch.Tensor, backend: str, **kw) -> torch.Tensor:
    q, k, v = qkv.chunk(3, dim=-1)
    return window_attention(q, k, v, rpb_table=table, backend=backend, **kw)


def _oca(qkv: torch.Tensor, table: torch.Tensor, backend: str, **kw) -> torch.Tensor:
    q, k, v = qkv.chunk(3, dim=-1)
    return overlapping_window_attention(q, k, v, rpb_table=table, backend=backend, **kw)


WA_CASES = [  # (B, H, W, heads, head dim, ws, shift)
    (1, 16, 24, 2, 24, 8, 4),
    (2, 24, 16, 2, 30, 8, 0),
    (2, 16, 32, 1, 53, 8, 3),
    (1, 8, 8, 3, 24, 8, 4),  # a single window: only the corner group
    (1, 8, 24, 1, 30, 8, 4),  # one window row: no interior windows
    (2, 14, 21, 2, 5, 7, 3),  # odd window size
    (1, 32, 16, 3, 30, 16, 8),
]


@pytest.mark.parametrize("case", WA_CASES, ids=lambda c: "B{}_{}x{}_h{}_d{}_ws{}_s{}".format(*c))
def test_window_attention_torch_matches_naive_fp64(case: tuple[int, ...]) -> None:
    b, h, w, heads, d, ws, shift = case
    qkv, table = _inputs(b, h, w, heads, d, (2 * ws - 1) ** 2)
    kw = dict(num_heads=heads, window_size=ws, shift_size=shift, rp_index=relative_position_index(ws), scale=d**-0.5)
    ref = _wa(qkv, table, "naive", **kw)
    out = _wa(qkv, table, "torch", **kw)
    assert out.shape == (b, h, w, heads * d) and out.is_contiguous()
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-8)


def test_packed_and_separate_inputs_agree() -> None:
    """Slices of one projection (gathered together) and separate tensors (gathered one by one) give one result."""
    b, h, w, heads, d, ws = 2, 16, 16, 2, 5, 8
    qkv, table = _inputs(b, h, w, heads, d, (2 * ws - 1) ** 2)
    kw = dict(num_heads=heads, window_size=ws, shift_size=4, rp_index=relative_position_index(ws), scale=0.3)
    packed = _wa(qkv, table, "torch", **kw)
    q, k, v = (t.clone() for t in qkv.chunk(3, dim=-1))
    separate = window_attention(q, k, v, rpb_table=table, backend="torch", **kw)
    strided = window_attention(q, k.transpose(1, 2).contiguous().transpose(1, 2), v, rpb_table=table, backend="torch",
                               **kw)  # fmt: skip
    assert torch.equal(packed, separate) and torch.equal(packed, strided)


def test_window_attention_naive_matches_literal_windows() -> None:
    """The naive backend against a per-window loop over an explicitly rolled map (no batching tricks)."""
    b, h, w, heads, d, ws, shift = 2, 16, 24, 2, 6, 8, 4
    qkv, table = _inputs(b, h, w, heads, d, (2 * ws - 1) ** 2)
    index = relative_position_index(ws)
    out = _wa(qkv, table, "naive", num_heads=heads, window_size=ws, shift_size=shift, rp_index=index, scale=0.3)
    rolled = torch.roll(qkv, (-shift, -shift), dims=(1, 2))
    mask = _official_mask(h, w, ws, shift).double()
    bias = table[index.flatten()].view(ws * ws, ws * ws, heads).permute(2, 0, 1)
    expected = torch.empty(b, h, w, heads * d, dtype=torch.float64)
    for bi in range(b):
        for wi, (r, c) in enumerate((r, c) for r in range(h // ws) for c in range(w // ws)):
            win = rolled[bi, r * ws : (r + 1) * ws, c * ws : (c + 1) * ws].reshape(ws * ws, 3, heads, d)
            q, k, v = (win[:, i].transpose(0, 1) for i in range(3))  # (h, N, d)
            attn = torch.softmax(0.3 * q @ k.transpose(1, 2) + bias + mask[wi], dim=-1)
            expected[bi, r * ws : (r + 1) * ws, c * ws : (c + 1) * ws] = (attn @ v).transpose(0, 1).reshape(ws, ws, -1)
    expected = torch.roll(expected, (shift, shift), dims=(1, 2))
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-10)


OCA_CASES = [  # (B, H, W, heads, head dim, ws, overlap_ratio)
    (1, 16, 24, 2, 24, 8, 0.5),
    (2, 16, 16, 1, 53, 8, 0.5),
    (2, 8, 16, 3, 30, 8, 0.25),
    (1, 12, 12, 2, 5, 4, 1.0),
    (1, 8, 8, 1, 8, 8, 0.0),
]


@pytest.mark.parametrize("case", OCA_CASES, ids=lambda c: "B{}_{}x{}_h{}_d{}_ws{}_r{}".format(*c))
def test_overlapping_attention_torch_matches_naive_fp64(case: tuple) -> None:
    b, h, w, heads, d, ws, ratio = case
    ows = overlap_window_size(ws, ratio)
    qkv, table = _inputs(b, h, w, heads, d, (ws + ows - 1) ** 2)
    kw = dict(
        num_heads=heads,
        window_size=ws,
        overlap_window_size=ows,
        rp_index=overlapping_relative_position_index(ws, ows),
        scale=d**-0.5,
    )
    ref = _oca(qkv, table, "naive", **kw)
    out = _oca(qkv, table, "torch", **kw)
    assert out.shape == (b, h, w, heads * d)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-8)


def test_overlapping_attention_naive_matches_literal_windows() -> None:
    """Naive OCA against an explicit zero-padded crop per window."""
    b, h, w, heads, d, ws, ows = 1, 16, 8, 2, 3, 8, 12
    pad = (ows - ws) // 2
    qkv, table = _inputs(b, h, w, heads, d, (ws + ows - 1) ** 2)
    index = overlapping_relative_position_index(ws, ows)
    out = _oca(qkv, table, "naive", num_heads=heads, window_size=ws, overlap_window_size=ows, rp_index=index, scale=0.4)
    q_map, k_map, v_map = qkv.chunk(3, dim=-1)
    k_pad = torch.nn.functional.pad(k_map, (0, 0, pad, pad, pad, pad))
    v_pad = torch.nn.functional.pad(v_map, (0, 0, pad, pad, pad, pad))
    bias = table[index.flatten()].view(ws * ws, ows * ows, heads).permute(2, 0, 1)
    for r in range(h // ws):
        for c in range(w // ws):
            q = q_map[0, r * ws : (r + 1) * ws, c * ws : (c + 1) * ws].reshape(-1, heads, d).transpose(0, 1)
            k = k_pad[0, r * ws : r * ws + ows, c * ws : c * ws + ows].reshape(-1, heads, d).transpose(0, 1)
            v = v_pad[0, r * ws : r * ws + ows, c * ws : c * ws + ows].reshape(-1, heads, d).transpose(0, 1)
            attn = torch.softmax(0.4 * q @ k.transpose(1, 2) + bias, dim=-1)
            expected = (attn @ v).transpose(0, 1).reshape(ws, ws, -1)
            torch.testing.assert_close(out[0, r * ws : (r + 1) * ws, c * ws : (c + 1) * ws], expected)


@pytest.mark.parametrize("shift", [0, 4])
def test_window_attention_fp32_outputs_and_gradients(shift: int) -> None:
    b, h, w, heads, d, ws = 2, 16, 24, 2, 30, 8
    qkv64, table64 = _inputs(b, h, w, heads, d, (2 * ws - 1) ** 2)
    index = relative_position_index(ws)
    grads = {}
    for backend in ("naive", "torch"):
        qkv = qkv64.float().requires_grad_()
        table = table64.float().requires_grad_()
        out = _wa(qkv, table, backend, num_heads=heads, window_size=ws, shift_size=shift, rp_index=index, scale=0.2)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[backend] = (out.detach(), qkv.grad, table.grad)
    atol, rtol = TOLERANCES[torch.float32]
    for ref, got in zip(grads["naive"], grads["torch"]):
        torch.testing.assert_close(got, ref, atol=atol * 5, rtol=rtol * 5)
    assert grads["torch"][2].abs().sum() > 0  # the bias table is learnt


def test_overlapping_attention_fp32_gradients() -> None:
    b, h, w, heads, d, ws, ows = 2, 16, 16, 2, 24, 8, 12
    qkv64, table64 = _inputs(b, h, w, heads, d, (ws + ows - 1) ** 2)
    index = overlapping_relative_position_index(ws, ows)
    grads = {}
    for backend in ("naive", "torch"):
        qkv = qkv64.float().requires_grad_()
        table = table64.float().requires_grad_()
        out = _oca(qkv, table, backend, num_heads=heads, window_size=ws, overlap_window_size=ows, rp_index=index,
                   scale=0.2)  # fmt: skip
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[backend] = (out.detach(), qkv.grad, table.grad)
    for ref, got in zip(grads["naive"], grads["torch"]):
        torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_fp64_gradcheck_torch_backend() -> None:
    b, h, w, heads, d, ws, shift = 1, 8, 16, 1, 3, 4, 2
    qkv, table = _inputs(b, h, w, heads, d, (2 * ws - 1) ** 2)
    qkv.requires_grad_()
    table.requires_grad_()
    index = relative_position_index(ws)

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return _wa(x, t, "torch", num_heads=heads, window_size=ws, shift_size=shift, rp_index=index, scale=0.5)

    assert torch.autograd.gradcheck(fn, (qkv, table), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("shift", [0, 4])
def test_bf16_is_finite_and_close(shift: int) -> None:
    """bf16 error of each backend against the fp64 result stays within 2x the naive bf16 error (+ atol)."""
    b, h, w, heads, d, ws = 1, 16, 24, 2, 24, 8
    qkv, table = _inputs(b, h, w, heads, d, (2 * ws - 1) ** 2)
    kw = dict(num_heads=heads, window_size=ws, shift_size=shift, rp_index=relative_position_index(ws), scale=d**-0.5)
    ref = _wa(qkv, table, "naive", **kw)
    errors = {}
    for backend in ("naive", "torch"):
        out = _wa(qkv.bfloat16(), table.float(), backend, **kw)  # fp32 table, as under autocast
        assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
        errors[backend] = (out.double() - ref).abs().max().item()
    atol, _ = TOLERANCES[torch.bfloat16]
    assert errors["naive"] < atol * 4
    assert errors["torch"] <= 2 * errors["naive"] + atol


def test_bias_follows_table_updates() -> None:
    """Nothing derived from the learnable table is cached: an in-place update changes the next result."""
    b, h, w, heads, d, ws = 1, 16, 16, 2, 4, 8
    qkv, table = _inputs(b, h, w, heads, d, (2 * ws - 1) ** 2)
    kw = dict(num_heads=heads, window_size=ws, shift_size=4, rp_index=relative_position_index(ws), scale=0.5)
    first = _wa(qkv, table, "torch", **kw)
    with torch.no_grad():
        table.mul_(-2.0)
    second = _wa(qkv, table, "torch", **kw)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second, _wa(qkv, table, "naive", **kw))


def test_env_variable_selects_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    from restore.ops.window_attention import naive

    original = naive.window_attention
    monkeypatch.setattr(naive, "window_attention", lambda *a, **k: calls.append(1) or original(*a, **k))
    qkv, table = _inputs(1, 8, 8, 1, 4, 15 * 15)
    kw = dict(num_heads=1, window_size=8, rp_index=relative_position_index(8), scale=0.5)
    monkeypatch.setenv("RESTORE_OPS", "naive")
    _wa(qkv, table, None, **kw)
    assert calls == [1]
    monkeypatch.setenv("RESTORE_OPS", "torch")
    _wa(qkv, table, None, **kw)
    assert calls == [1]
    with pytest.raises(ValueError, match="unknown backend"):
        _wa(qkv, table, "fastest", **kw)


def test_dropout_only_when_requested() -> None:
    qkv, table = _inputs(1, 8, 8, 1, 4, 15 * 15, dtype=torch.float32)
    kw = dict(num_heads=1, window_size=8, rp_index=relative_position_index(8), scale=0.5)
    for backend in ("naive", "torch"):
        plain = _wa(qkv, table, backend, **kw)
        torch.manual_seed(0)
        dropped = _wa(qkv, table, backend, dropout_p=0.5, **kw)
        assert torch.isfinite(dropped).all() and not torch.allclose(plain, dropped)


def test_invalid_arguments_raise() -> None:
    qkv, table = _inputs(1, 16, 12, 2, 4, 15 * 15)
    q, k, v = qkv.chunk(3, dim=-1)
    index = relative_position_index(8)
    with pytest.raises(ValueError, match="multiples of window_size"):
        window_attention(q, k, v, num_heads=2, window_size=8, rpb_table=table, rp_index=index, scale=1.0)
    q, k, v = q[:, :, :8], k[:, :, :8], v[:, :, :8]
    with pytest.raises(ValueError, match="shift_size"):
        window_attention(q, k, v, num_heads=2, window_size=8, shift_size=8, rpb_table=table, rp_index=index, scale=1.0)
    with pytest.raises(ValueError, match="rpb_table"):
        window_attention(q, k, v, num_heads=2, window_size=8, rpb_table=table[:10], rp_index=index, scale=1.0)
    with pytest.raises(ValueError, match="divisible"):
        window_attention(q, k, v, num_heads=3, window_size=8, rpb_table=table, rp_index=index, scale=1.0)
    with pytest.raises(ValueError, match="share one"):
        window_attention(q, k[:, :8], v, num_heads=2, window_size=8, rpb_table=table, rp_index=index, scale=1.0)
    with pytest.raises(ValueError, match="even"):
        overlapping_window_attention(q, k, v, num_heads=2, window_size=8, overlap_window_size=11, rpb_table=table,
                                     rp_index=index, scale=1.0)  # fmt: skip
