"""Triton window attention and overlapping cross-attention vs the naive and torch backends.

Outputs and gradients (q, k, v and the relative-position bias table) on non-square maps, windows of 3, 4 and 6
tokens, head dims 5 / 24 / 30 / 53 / 122 (padded inside the kernels), shifts 0 and > 0, HAT's overlapping key
windows with zero keys outside the image, q/k/v as strided chunks of one qkv tensor, several tiles per window,
and half precision. CPU runs use the Triton interpreter; the ``cuda`` tests run official sizes on a GPU, and
``test_kernels_compile_for_sm90`` builds the kernels for Hopper without one.
"""

from __future__ import annotations

import pytest
import torch
from triton_helpers import compile_for_gpu

from restore.ops.window_attention import (
    overlap_window_size,
    overlapping_relative_position_index,
    overlapping_window_attention,
    overlapping_window_self_attention,
    relative_position_index,
    window_attention,
    window_self_attention,
)

# (B, H, W, heads, head_dim, window, shift)
SELF_CASES = [
    (1, 8, 12, 2, 30, 4, 2),
    (2, 8, 4, 1, 24, 4, 0),
    (1, 6, 9, 1, 53, 3, 1),
    (1, 4, 4, 2, 5, 4, 3),  # one window: every token pair straddles the shift regions
    (1, 4, 8, 1, 122, 4, 1),  # DRCT's widest head (padded to 128)
]
# (B, H, W, heads, head_dim, window, overlap_ratio): key windows of 6 (36 keys) and 5 (25 keys, ratio 0.75 -> 5)
OVERLAP_CASES = [
    (1, 8, 12, 2, 30, 4, 0.5),
    (1, 6, 3, 1, 24, 3, 0.75),
]


def _qkv(batch: int, height: int, width: int, channels: int, dtype: torch.dtype, device: str, seed: int
         ) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, height, width, 3 * channels, generator=gen, dtype=torch.float64).to(device, dtype)


def _table(rows: int, heads: int, device: str, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + 1)
    return (torch.randn(rows, heads, generator=gen, dtype=torch.float64) * 0.5).to(device, torch.float32)


def _self_setup(case: tuple, dtype: torch.dtype, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, dict]:
    batch, height, width, heads, head_dim, ws, shift = case
    qkv = _qkv(batch, height, width, heads * head_dim, dtype, device, sum(case))
    table = _table((2 * ws - 1) ** 2, heads, device, sum(case))
    kwargs = {"num_heads": heads, "window_size": ws, "shift_size": shift,
              "rp_index": relative_position_index(ws).to(device), "scale": head_dim**-0.5}
    return qkv, table, kwargs


def _overlap_setup(case: tuple, dtype: torch.dtype, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, dict]:
    batch, height, width, heads, head_dim, ws, ratio = case
    ows = overlap_window_size(ws, ratio)
    qkv = _qkv(batch, height, width, heads * head_dim, dtype, device, batch + height + width + head_dim)
    table = _table((ws + ows - 1) ** 2, heads, device, head_dim)
    kwargs = {"num_heads": heads, "window_size": ws, "overlap_window_size": ows,
              "rp_index": overlapping_relative_position_index(ws, ows).to(device), "scale": head_dim**-0.5}
    return qkv, table, kwargs


def _run(op, qkv: torch.Tensor, table: torch.Tensor, kwargs: dict, grad: torch.Tensor, backend: str,
         dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Output and gradients for q/k/v given as chunks (strided views) of one qkv tensor."""
    qkv = qkv.detach().to(dtype or qkv.dtype).requires_grad_()
    table = table.detach().to(dtype or table.dtype).requires_grad_()
    q, k, v = qkv.chunk(3, dim=-1)
    out = op(q, k, v, rpb_table=table, backend=backend, **kwargs)
    grad_qkv, grad_table = torch.autograd.grad(out, (qkv, table), grad.to(out.dtype))
    return {"out": out.detach(), "grad_qkv": grad_qkv, "grad_table": grad_table}


def _check_float32(op, qkv: torch.Tensor, table: torch.Tensor, kwargs: dict) -> None:
    batch, height, width, channels = qkv.shape
    grad = torch.randn(batch, height, width, channels // 3, generator=torch.Generator().manual_seed(5))
    reference = _run(op, qkv, table, kwargs, grad.double(), "naive", torch.float64)
    torch_result = _run(op, qkv, table, kwargs, grad, "torch")
    triton_result = _run(op, qkv, table, kwargs, grad, "triton")
    assert triton_result["out"].dtype == torch.float32
    assert triton_result["out"].is_contiguous()
    for name, ref in reference.items():
        scale = max(1.0, ref.abs().max().item())  # the table gradient sums over every window
        torch.testing.assert_close(triton_result[name].double(), ref, atol=2e-5 * scale, rtol=1e-5,
                                   msg=lambda m, n=name: f"{n} vs naive float64: {m}")
        torch.testing.assert_close(triton_result[name], torch_result[name], atol=2e-5 * scale, rtol=1e-5,
                                   msg=lambda m, n=name: f"{n} vs torch: {m}")


@pytest.mark.parametrize("case", SELF_CASES, ids=lambda c: "-".join(map(str, c)))
def test_window_attention_float32(case: tuple) -> None:
    qkv, table, kwargs = _self_setup(case, torch.float32)
    _check_float32(window_attention, qkv, table, kwargs)


@pytest.mark.parametrize("case", OVERLAP_CASES, ids=lambda c: "-".join(map(str, c)))
def test_overlapping_window_attention_float32(case: tuple) -> None:
    qkv, table, kwargs = _overlap_setup(case, torch.float32)
    _check_float32(overlapping_window_attention, qkv, table, kwargs)


@pytest.mark.parametrize("overlap", [False, True], ids=["window", "overlapping"])
def test_several_tiles_per_window(monkeypatch: pytest.MonkeyPatch, overlap: bool) -> None:
    """16 x 16 tiles on 36-token windows: every kernel loops over several query and key blocks, the last ones
    partial."""
    from restore.ops.window_attention import triton_impl

    def small_tiles(self, head_dim: int, dtype: torch.dtype, key_major: bool = False) -> dict[str, int]:
        return {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_D": max(16, 1 << (head_dim - 1).bit_length()), "num_warps": 4}

    monkeypatch.setattr(triton_impl._Geometry, "blocks", small_tiles)
    if overlap:  # 16 queries, 36 keys
        qkv, table, kwargs = _overlap_setup((1, 4, 8, 1, 7, 4, 0.5), torch.float32)
        _check_float32(overlapping_window_attention, qkv, table, kwargs)
    else:  # 36 queries and keys
        qkv, table, kwargs = _self_setup((1, 6, 12, 1, 7, 6, 3), torch.float32)
        _check_float32(window_attention, qkv, table, kwargs)


@pytest.mark.parametrize("overlap", [False, True], ids=["window", "overlapping"])
def test_attention_sublayer_on_triton(overlap: bool) -> None:
    """The sub-layer op (projections around the core) runs the Triton core on the slices of one aligned qkv
    GEMM (3C = 90, padded to 96): output and every gradient match the naive sub-layer in float64."""
    if overlap:
        op, (qkv, table, kwargs) = overlapping_window_self_attention, _overlap_setup(OVERLAP_CASES[0], torch.float32)
    else:
        op, (qkv, table, kwargs) = window_self_attention, _self_setup(SELF_CASES[0], torch.float32)
    gen = torch.Generator().manual_seed(8)
    channels = qkv.shape[-1] // 3
    x = torch.randn(*qkv.shape[:3], 16, generator=gen)
    weights = [torch.randn(3 * channels, 16, generator=gen) * 0.25, torch.randn(3 * channels, generator=gen),
               torch.randn(16, channels, generator=gen) * 0.2, torch.randn(16, generator=gen)]
    results = {}
    for backend, dtype in (("naive", torch.float64), ("triton", torch.float32)):
        leaves = [t.to(dtype).requires_grad_() for t in (x, *weights, table)]
        out = op(*leaves[:5], rpb_table=leaves[5], backend=backend, **kwargs)
        grad = torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)
        results[backend] = (out.detach(), *torch.autograd.grad(out, leaves, grad))
    for ref, got in zip(results["naive"], results["triton"]):
        scale = max(1.0, ref.abs().max().item())
        torch.testing.assert_close(got.double(), ref, atol=5e-5 * scale, rtol=1e-5)


def test_zero_keys_outside_the_image_share_the_softmax() -> None:
    """A constant value map: the output is the value times the in-image share of the softmax weights, which is
    below one only because the zero keys outside the image keep their exp(bias) weight."""
    ws, ows, heads, head_dim = 4, 6, 1, 16
    table = torch.zeros((ws + ows - 1) ** 2, heads)
    q = torch.zeros(1, 8, 8, head_dim)
    v = torch.ones(1, 8, 8, head_dim)
    out = overlapping_window_attention(q, q, v, num_heads=heads, window_size=ws, overlap_window_size=ows,
                                       rpb_table=table, rp_index=overlapping_relative_position_index(ws, ows),
                                       scale=1.0, backend="triton")
    # all scores are 0: a query's output is (number of its keys inside the image) / ows^2
    inside = torch.zeros(8, 8)
    for wy in range(2):
        for wx in range(2):
            rows = [r for r in range(wy * ws - 1, wy * ws - 1 + ows) if 0 <= r < 8]
            cols = [c for c in range(wx * ws - 1, wx * ws - 1 + ows) if 0 <= c < 8]
            inside[wy * ws:(wy + 1) * ws, wx * ws:(wx + 1) * ws] = len(rows) * len(cols) / ows**2
    torch.testing.assert_close(out[0, :, :, 0], inside)


def test_only_requested_gradients() -> None:
    qkv, table, kwargs = _self_setup(SELF_CASES[0], torch.float32)
    q, k, v = (t.contiguous() for t in qkv.chunk(3, dim=-1))
    v.requires_grad_()
    out = window_attention(q, k, v, rpb_table=table, backend="triton", **kwargs)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(6))
    (grad_v,) = torch.autograd.grad(out, (v,), grad)
    v_ref = v.detach().double().requires_grad_()
    ref = window_attention(q.double(), k.double(), v_ref, rpb_table=table.double(), backend="naive", **kwargs)
    (expected,) = torch.autograd.grad(ref, (v_ref,), grad.double())
    torch.testing.assert_close(grad_v.double(), expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("overlap", [False, True], ids=["window", "overlapping"])
def test_half_precision_error_within_twice_torch(dtype: torch.dtype, overlap: bool) -> None:
    if overlap:
        op, (qkv, table, kwargs) = overlapping_window_attention, _overlap_setup((1, 8, 8, 1, 30, 4, 0.5), dtype)
    else:
        op, (qkv, table, kwargs) = window_attention, _self_setup((1, 8, 8, 1, 30, 4, 2), dtype)
    batch, height, width, channels = qkv.shape
    grad = torch.randn(batch, height, width, channels // 3, generator=torch.Generator().manual_seed(7)).to(dtype)
    reference = _run(op, qkv, table, kwargs, grad.double(), "naive", torch.float64)
    torch_result = _run(op, qkv, table, kwargs, grad, "torch")
    triton_result = _run(op, qkv, table, kwargs, grad, "triton")
    assert triton_result["out"].dtype == dtype
    for name, ref in reference.items():
        tri_err = (triton_result[name].double() - ref).abs().max().item()
        torch_err = (torch_result[name].double() - ref).abs().max().item()
        # one ulp at the reference's magnitude: the interpreter narrows to half types by truncation
        atol = torch.finfo(dtype).eps * ref.abs().max().item()
        assert tri_err <= 2 * torch_err + atol, f"{name}: triton error {tri_err:.3g}, torch error {torch_err:.3g}"


def test_float64_runs_on_the_torch_backend() -> None:
    qkv, table, kwargs = _self_setup(SELF_CASES[0], torch.float64)
    q, k, v = qkv.chunk(3, dim=-1)
    out = window_attention(q, k, v, rpb_table=table.double(), backend="triton", **kwargs)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, window_attention(q, k, v, rpb_table=table.double(), backend="naive", **kwargs))


def test_rejects_sizes_that_are_not_window_multiples() -> None:
    from restore.ops.window_attention import triton_impl

    q = torch.zeros(1, 6, 8, 4)
    with pytest.raises(ValueError, match="multiples of window_size"):
        triton_impl.window_attention(q, q, q, num_heads=1, window_size=4, rpb_table=torch.zeros(49, 1),
                                     rp_index=relative_position_index(4), scale=1.0)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_official_sizes(dtype: torch.dtype) -> None:
    """HAT / DRCT sizes: ws 16, head dims 30 / 53 / 122, shift 8; OCAB with ows 24."""
    for case in ((2, 64, 48, 6, 30, 16, 8), (1, 32, 32, 4, 53, 16, 8), (1, 32, 48, 2, 122, 16, 0)):
        qkv, table, kwargs = _self_setup(case, dtype, "cuda")
        _check_cuda(window_attention, qkv, table, kwargs, dtype)
    qkv, table, kwargs = _overlap_setup((2, 64, 48, 6, 30, 16, 0.5), dtype, "cuda")
    _check_cuda(overlapping_window_attention, qkv, table, kwargs, dtype)


def _check_cuda(op, qkv: torch.Tensor, table: torch.Tensor, kwargs: dict, dtype: torch.dtype) -> None:
    batch, height, width, channels = qkv.shape
    grad = torch.randn(batch, height, width, channels // 3, device="cuda").to(dtype)
    reference = _run(op, qkv, table, kwargs, grad.double(), "naive", torch.float64)
    torch_result = _run(op, qkv, table, kwargs, grad, "torch")
    triton_result = _run(op, qkv, table, kwargs, grad, "triton")
    for name, ref in reference.items():
        tri_err = (triton_result[name].double() - ref).abs().max().item()
        torch_err = (torch_result[name].double() - ref).abs().max().item()
        atol = (1e-4 if dtype == torch.float32 else 1e-2) * max(1.0, ref.abs().max().item())
        assert tri_err <= 2 * torch_err + atol, f"{name}: triton error {tri_err:.3g}, torch error {torch_err:.3g}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dtype", "overlap", "head_dim"), [(torch.bfloat16, False, 30), (torch.float32, True, 53)],
    ids=["bf16-shifted-d30", "fp32-overlapping-d53"],
)
def test_kernels_compile_for_sm90(dtype: torch.dtype, overlap: bool, head_dim: int) -> None:
    """The four kernels as launched for HAT / DRCT (ws 16; shift 8, or 24-token key windows) build for Hopper."""
    from restore.ops.window_attention import triton_impl

    name = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
    geo = triton_impl._Geometry(6, 16, 24 if overlap else 16, 0 if overlap else 8, overlap, head_dim**-0.5)
    const = {**geo.constexprs(dtype), "PRECISION": "ieee" if dtype == torch.float32 else "tf32"}
    types = {n: f"*{name}" for n in ("q_ptr", "k_ptr", "v_ptr", "o_ptr", "do_ptr", "dq_ptr", "dk_ptr", "dv_ptr")}
    types.update({n: "*fp32" for n in ("lse_ptr", "delta_ptr", "table_ptr", "dbias_ptr")}, rpi_ptr="*i32",
                 scale="fp32")
    if overlap:
        types.update(dk_ptr="*fp32", dv_ptr="*fp32")  # atomically accumulated
    kernels = []
    for kernel in ("_fwd_kernel", "_bwd_q_kernel", "_bwd_kv_kernel", "_bwd_bias_kernel"):
        blocks = geo.blocks(head_dim, dtype, key_major=kernel == "_bwd_kv_kernel")
        warps = blocks.pop("num_warps")
        kernels.append({"name": kernel, "types": types, "constexprs": {**const, **blocks}, "num_warps": warps})
    compile_for_gpu("restore.ops.window_attention.triton_impl", kernels)
