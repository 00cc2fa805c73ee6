"""Triton channel attention (top-k mix, ReLU, dense softmax) vs the naive and torch backends.

Outputs and gradients with respect to q, k, v, the temperature and the four top-k weights; non-power-of-two C;
L over several split-K chunks; ties at the top-k thresholds; half precision. CPU runs use the Triton interpreter;
the ``cuda`` tests run official sizes on a GPU, and ``test_kernels_compile_for_sm90`` builds the kernels for Hopper
without one.
"""

from __future__ import annotations

import pytest
import torch
from triton_helpers import compile_for_gpu

from restore.ops.sparse_channel_attention import sparse_channel_attention, topk_counts

# (B, h, C, L): C = 12 -> k = 6, 8, 9, 9 and C = 20 -> 10, 13, 15, 16 (padded to 16 / 32 rows, two row blocks and
# two reduction chunks); L = 150 spans several token chunks, so the split-K partial sums are reduced.
CASES = [(2, 2, 12, 37), (1, 2, 20, 150)]
MODES = ["topk", "relu", "softmax"]


def _inputs(case: tuple[int, ...], dtype: torch.dtype, device: str = "cpu") -> dict[str, torch.Tensor]:
    batch, heads, channels, length = case
    gen = torch.Generator().manual_seed(sum(case))
    q, k, v = (torch.randn(batch, heads, channels, length, generator=gen, dtype=torch.float64) for _ in range(3))
    temperature = torch.rand(heads, 1, 1, generator=gen, dtype=torch.float64) * 2 + 0.5
    temperature[1::2] *= -1  # a negative temperature keeps the least similar channels
    weights = torch.rand(4, generator=gen, dtype=torch.float64) * 1.6 - 0.4
    tensors = {"q": q, "k": k, "v": v, "temperature": temperature, "topk_weights": weights}
    return {name: t.to(device, dtype if name in ("q", "k", "v") else torch.float32) for name, t in tensors.items()}


def _run(inputs: dict[str, torch.Tensor], grad: torch.Tensor, mode: str, backend: str, dtype: torch.dtype | None = None
         ) -> dict[str, torch.Tensor]:
    """Output and gradients of every input; ``dtype`` recasts everything (float64 reference)."""
    leaves = {name: t.detach().to(dtype or t.dtype).requires_grad_() for name, t in inputs.items()}
    if mode != "topk":
        leaves.pop("topk_weights")
    out = sparse_channel_attention(leaves["q"], leaves["k"], leaves["v"], leaves["temperature"], mode=mode,
                                   topk_weights=leaves.get("topk_weights"), backend=backend)
    grads = torch.autograd.grad(out, list(leaves.values()), grad.to(out.dtype))
    return {"out": out.detach(), **{f"grad_{name}": g for name, g in zip(leaves, grads)}}


def _assert_close(actual: dict, expected: dict, atol: float, rtol: float, label: str) -> None:
    for name, ref in expected.items():
        got = actual[name]
        scale = ref.abs().max().item()  # parameter gradients sum over B, C, L: compare relative to their size
        torch.testing.assert_close(got.to(ref.dtype), ref, atol=atol * max(1.0, scale), rtol=rtol,
                                   msg=lambda m, n=name: f"{label} {n}: {m}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_matches_naive_and_torch_float32(case: tuple[int, ...], mode: str) -> None:
    inputs = _inputs(case, torch.float32)
    grad = torch.randn(case, generator=torch.Generator().manual_seed(1))
    reference = _run(inputs, grad.double(), mode, "naive", torch.float64)
    torch_result = _run(inputs, grad, mode, "torch")
    triton_result = _run(inputs, grad, mode, "triton")
    assert triton_result["out"].dtype == torch.float32
    _assert_close(triton_result, reference, 2e-5, 1e-5, "vs naive float64")
    _assert_close(triton_result, torch_result, 2e-5, 1e-5, "vs torch")


def _tied_inputs() -> dict[str, torch.Tensor]:
    """Small-integer q, k (exact float32 dot products) with duplicated key channels, so several rows have
    equal scores straddling the k-th largest one."""
    gen = torch.Generator().manual_seed(7)
    batch, heads, channels, length = 1, 2, 10, 16
    q = torch.randint(-2, 3, (batch, heads, channels, length), generator=gen).float()
    k = torch.randint(-2, 3, (batch, heads, channels, length), generator=gen).float()
    k[:, :, 1::2] = k[:, :, 0::2]  # channel pairs (0, 1), (2, 3), ... give identical scores in every row
    v = torch.randn(batch, heads, channels, length, generator=gen)
    return {"q": q, "k": k, "v": v, "temperature": torch.tensor([1.3, -0.8]).view(2, 1, 1),
            "topk_weights": torch.tensor([0.2, 0.9, -0.3, 0.6])}


def test_ties_keep_every_entry_equal_to_the_threshold() -> None:
    inputs = _tied_inputs()
    channels = inputs["q"].shape[2]
    # The construction must really produce ties across a threshold: kth largest == (k+1)th largest somewhere.
    scores = torch.nn.functional.normalize(inputs["q"], dim=-1) @ torch.nn.functional.normalize(inputs["k"], dim=-1
                                                                                               ).transpose(-2, -1)
    ranked = (scores * inputs["temperature"]).sort(dim=-1, descending=True).values
    assert any(bool((ranked[..., kk - 1] == ranked[..., kk]).any()) for kk in topk_counts(channels) if kk < channels)
    grad = torch.randn(inputs["v"].shape, generator=torch.Generator().manual_seed(3))
    torch_result = _run(inputs, grad, "topk", "torch")  # documented rule: score >= k-th largest is kept
    triton_result = _run(inputs, grad, "topk", "triton")
    _assert_close(triton_result, torch_result, 2e-5, 1e-5, "ties vs torch")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_error_within_twice_torch(dtype: torch.dtype, mode: str) -> None:
    case = CASES[0]
    inputs = _inputs(case, dtype)
    grad = torch.randn(case, generator=torch.Generator().manual_seed(4)).to(dtype)
    reference = _run(inputs, grad.double(), mode, "naive", torch.float64)
    torch_result = _run(inputs, grad, mode, "torch")
    triton_result = _run(inputs, grad, mode, "triton")
    assert triton_result["out"].dtype == dtype
    for name, ref in reference.items():
        tri_err = (triton_result[name].double() - ref).abs().max().item()
        torch_err = (torch_result[name].double() - ref).abs().max().item()
        # one ulp at the reference's magnitude: the interpreter narrows to half types by truncation
        atol = torch.finfo(dtype).eps * ref.abs().max().item()
        assert tri_err <= 2 * torch_err + atol, f"{name}: triton error {tri_err:.3g}, torch error {torch_err:.3g}"


def test_float64_runs_on_the_torch_backend() -> None:
    inputs = {name: t.double() for name, t in _inputs(CASES[0], torch.float64).items()}
    args = (inputs["q"], inputs["k"], inputs["v"], inputs["temperature"])
    out = sparse_channel_attention(*args, mode="topk", topk_weights=inputs["topk_weights"], backend="triton")
    assert out.dtype == torch.float64
    expected = sparse_channel_attention(*args, mode="topk", topk_weights=inputs["topk_weights"], backend="naive")
    torch.testing.assert_close(out, expected)


def test_rejects_mismatched_shapes() -> None:
    from restore.ops.sparse_channel_attention import triton_impl

    q = torch.zeros(1, 1, 4, 8)
    with pytest.raises(ValueError, match="share one"):
        triton_impl.sparse_channel_attention(q, q, q[..., :4], torch.ones(1, 1, 1), mode="relu")


@pytest.mark.cuda
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_official_sizes(dtype: torch.dtype, mode: str) -> None:
    """DRSformer level 1 (C = 48, one head) and decoder level 1 (C = 96) on a 64 x 64 map."""
    for case in ((2, 1, 48, 4096), (1, 1, 96, 4096), (2, 8, 48, 1024)):
        inputs = _inputs(case, dtype, "cuda")
        grad = torch.randn(case, device="cuda").to(dtype)
        reference = _run(inputs, grad.double(), mode, "naive", torch.float64)
        torch_result = _run(inputs, grad, mode, "torch")
        triton_result = _run(inputs, grad, mode, "triton")
        for name, ref in reference.items():
            tri_err = (triton_result[name].double() - ref).abs().max().item()
            torch_err = (torch_result[name].double() - ref).abs().max().item()
            atol = (1e-4 if dtype == torch.float32 else 1e-2) * max(1.0, ref.abs().max().item())
            assert tri_err <= 2 * torch_err + atol, f"{case} {name}: triton {tri_err:.3g}, torch {torch_err:.3g}"


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernels_compile_for_sm90(dtype: torch.dtype) -> None:
    """The three kernels as launched for DRSformer's C = 48 (padded to 64) build for Hopper, every mode."""
    from restore.ops.sparse_channel_attention import triton_impl

    name = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
    precision = "ieee" if dtype == torch.float32 else "tf32"
    cp = triton_impl._padded_channels(48)
    gram_l, gram_warps = triton_impl._gram_config(cp, dtype)
    apply_l, apply_k, apply_warps = triton_impl._apply_config(cp, dtype)
    small = {n: "*fp32" for n in ("part_ptr", "xsq_ptr", "ysq_ptr", "temp_ptr", "w_ptr", "cos_ptr", "m_ptr",
                                  "diag_ptr")}
    types = {**small, "x_ptr": f"*{name}", "y_ptr": f"*{name}", "out_ptr": f"*{name}", "rank_ptr": "*i32",
             "eps": "fp32"}
    rows = [{"name": "_rows_kernel", "types": types, "num_warps": 4,
             "constexprs": {"MODE": mode, "CP": cp, "BLOCK_R": 4}} for mode in (0, 1, 2)]
    compile_for_gpu("restore.ops.sparse_channel_attention.triton_impl", [
        *rows,
        {"name": "_gram_kernel", "types": types, "num_warps": gram_warps,
         "constexprs": {"CP": cp, "BLOCK_L": gram_l, "WITH_NORMS": True, "PRECISION": precision}},
        {"name": "_apply_kernel", "types": types, "num_warps": apply_warps,
         "constexprs": {"CP": cp, "BLOCK_K": apply_k, "BLOCK_L": apply_l, "HAS_DIAG": True, "PRECISION": precision}},
    ])
