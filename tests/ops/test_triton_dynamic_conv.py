"""Triton dynamic depthwise convolution vs the naive (unfold) and torch backends: outputs and both gradients.

CPU runs go through the Triton interpreter (``TRITON_INTERPRET=1``, set in conftest); the ``cuda`` tests run
official sizes on a GPU, and ``test_kernels_compile_for_sm90`` builds the kernels for Hopper without one.
"""

from __future__ import annotations

import pytest
import torch
from triton_helpers import compile_for_gpu

from restore.ops.dynamic_conv import dynamic_depthwise_conv

# (B, C, G, K, H, W): groups of 3, 1 and 6 channels (padded to 4 / 1 / 8 lanes), kernels 3 and 5 with K > H,
# and a width over one 64-pixel tile.
CASES = [
    (2, 6, 2, 3, 5, 7),
    (1, 3, 3, 5, 3, 6),
    (1, 12, 2, 3, 2, 67),
]


def _inputs(case: tuple[int, ...], dtype: torch.dtype, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    batch, channels, groups, size, height, width = case
    gen = torch.Generator().manual_seed(sum(case))
    x = torch.randn(batch, channels, height, width, generator=gen, dtype=torch.float64)
    weight = torch.randn(batch, groups, size, size, height, width, generator=gen, dtype=torch.float64) / size
    return x.to(device, dtype), weight.to(device, dtype)


def half_atol(reference: torch.Tensor, dtype: torch.dtype) -> float:
    """One unit in the last place of ``dtype`` at the reference's largest magnitude: the Triton interpreter
    narrows float32 to half types by truncation, where GPUs (and torch) round to nearest."""
    return torch.finfo(dtype).eps * reference.abs().max().item()


def _run(x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, backend: str) -> tuple[torch.Tensor, ...]:
    x = x.detach().requires_grad_()
    weight = weight.detach().requires_grad_()
    out = dynamic_depthwise_conv(x, weight, backend=backend)
    grad_x, grad_w = torch.autograd.grad(out, (x, weight), grad.to(out.dtype))
    return out.detach(), grad_x, grad_w


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_matches_naive_and_torch_float32(case: tuple[int, ...]) -> None:
    x, weight = _inputs(case, torch.float32)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    reference = _run(x.double(), weight.double(), grad.double(), "naive")
    torch_result = _run(x, weight, grad, "torch")
    triton_result = _run(x, weight, grad, "triton")
    for name, ref, fast, tri in zip(("out", "grad_x", "grad_w"), reference, torch_result, triton_result):
        assert tri.dtype == torch.float32, name
        torch.testing.assert_close(tri.double(), ref, atol=1e-5, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
        torch.testing.assert_close(tri, fast, atol=1e-5, rtol=1e-5, msg=lambda m, n=name: f"{n} vs torch: {m}")


def test_only_requested_gradient() -> None:
    x, weight = _inputs(CASES[0], torch.float32)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    x.requires_grad_()
    out = dynamic_depthwise_conv(x, weight, backend="triton")
    (grad_x,) = torch.autograd.grad(out, (x,), grad)
    expected = _run(x.double(), weight.double(), grad.double(), "naive")[1]
    torch.testing.assert_close(grad_x.double(), expected, atol=1e-5, rtol=1e-5)


def test_non_contiguous_inputs() -> None:
    x, weight = _inputs(CASES[0], torch.float32)
    x_strided = x.transpose(2, 3).contiguous().transpose(2, 3)  # same values, channels-last-like strides
    weight_strided = weight.permute(0, 1, 2, 3, 5, 4).contiguous().permute(0, 1, 2, 3, 5, 4)
    out = dynamic_depthwise_conv(x_strided, weight_strided, backend="triton")
    torch.testing.assert_close(out, dynamic_depthwise_conv(x, weight, backend="naive"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_error_within_twice_torch(dtype: torch.dtype) -> None:
    case = CASES[0]
    x, weight = _inputs(case, dtype)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).to(dtype)
    reference = _run(x.double(), weight.double(), grad.double(), "naive")
    torch_result = _run(x, weight, grad, "torch")
    triton_result = _run(x, weight, grad, "triton")
    for name, ref, fast, tri in zip(("out", "grad_x", "grad_w"), reference, torch_result, triton_result):
        assert tri.dtype == dtype, name
        tri_err = (tri.double() - ref).abs().max().item()
        torch_err = (fast.double() - ref).abs().max().item()
        message = f"{name}: triton error {tri_err:.3g}, torch error {torch_err:.3g}"
        assert tri_err <= 2 * torch_err + half_atol(ref, dtype), message


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_official_size(dtype: torch.dtype) -> None:
    """DLGSANet-light sizes: C = 48, G = 8, K = 7 on a 64 x 64 map."""
    x, weight = _inputs((2, 48, 8, 7, 64, 64), dtype, "cuda")
    grad = torch.randn(x.shape, device="cuda").to(dtype)
    reference = _run(x.double(), weight.double(), grad.double(), "naive")
    torch_result = _run(x, weight, grad, "torch")
    triton_result = _run(x, weight, grad, "triton")
    for name, ref, fast, tri in zip(("out", "grad_x", "grad_w"), reference, torch_result, triton_result):
        tri_err = (tri.double() - ref).abs().max().item()
        torch_err = (fast.double() - ref).abs().max().item()
        assert tri_err <= 2 * torch_err + (1e-4 if dtype == torch.float32 else 1e-2), name


def test_float64_runs_on_the_torch_backend() -> None:
    x, weight = _inputs(CASES[0], torch.float64)
    out = dynamic_depthwise_conv(x, weight, backend="triton")
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, dynamic_depthwise_conv(x, weight, backend="naive"))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernels_compile_for_sm90(dtype: torch.dtype) -> None:
    """The kernels as launched for DLGSANet (K = 7, 6 channels per group) build for Hopper."""
    from restore.ops.dynamic_conv import triton_impl

    name = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
    block_c, block_h, block_w, warps = triton_impl._launch_config(6, 48)
    blocks = {"KSIZE": 7, "CPG": 6, "BLOCK_C": block_c, "BLOCK_H": block_h, "BLOCK_W": block_w}
    types = {n: f"*{name}" for n in ("x_ptr", "w_ptr", "out_ptr", "gout_ptr", "gx_ptr", "gw_ptr")}
    compile_for_gpu("restore.ops.dynamic_conv.triton_impl", [
        {"name": "_dyn_dw_fwd_kernel", "types": types, "constexprs": blocks, "num_warps": warps},
        {"name": "_dyn_dw_bwd_kernel", "types": types, "constexprs": {**blocks, "NEED_X": True, "NEED_W": True},
         "num_warps": warps},
    ])
