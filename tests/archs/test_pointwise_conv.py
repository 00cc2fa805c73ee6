"""``PointwiseConv2d``: the 1x1 convolution of DLGSANet's layers as one matrix product on the CPU, the same function
and parameters as ``nn.Conv2d``, and the convolution itself wherever the product does not apply."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from restore.archs.layers.pointwise import PointwiseConv2d


def _pair(bias: bool, dtype: torch.dtype = torch.float32) -> tuple[PointwiseConv2d, nn.Conv2d]:
    torch.manual_seed(0)
    conv = nn.Conv2d(12, 20, 1, bias=bias).to(dtype)
    pointwise = PointwiseConv2d(12, 20, bias=bias).to(dtype)
    pointwise.load_state_dict(conv.state_dict(), strict=True)  # same keys and shapes
    return pointwise, conv


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_same_function_as_the_convolution(bias: bool, batch: int) -> None:
    pointwise, conv = _pair(bias, torch.float64)
    x = torch.randn(batch, 12, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(pointwise(x), conv(x), atol=1e-12, rtol=0)
    pointwise, conv = _pair(bias)
    x = x.float()
    torch.testing.assert_close(pointwise(x), conv(x), atol=1e-5, rtol=1e-5)


def test_gradients_match_the_convolution() -> None:
    pointwise, conv = _pair(True, torch.float64)
    x = torch.randn(2, 12, 5, 6, dtype=torch.float64)
    grads = []
    for module in (pointwise, conv):
        source = x.clone().requires_grad_()
        (module(source) * torch.linspace(-1, 1, 20 * 30, dtype=torch.float64).view(1, 20, 5, 6)).sum().backward()
        grads.append((source.grad, module.weight.grad, module.bias.grad))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def test_matrix_product_only_for_contiguous_float_cpu_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatch: NCHW float32 on the CPU never reaches the convolution; channels_last and half inputs do."""
    pointwise, conv = _pair(True)
    x = torch.randn(1, 12, 8, 8)
    want = conv(x)

    def refused(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("convolution called")

    monkeypatch.setattr(nn.Conv2d, "forward", refused)
    torch.testing.assert_close(pointwise(x), want, atol=1e-5, rtol=1e-5)
    for other in (x.contiguous(memory_format=torch.channels_last), x.bfloat16()):
        with pytest.raises(AssertionError, match="convolution called"):
            pointwise.to(other.dtype)(other)


def test_exported_program_keeps_the_convolution() -> None:
    pointwise, _ = _pair(True)
    program = torch.export.export(pointwise.eval(), (torch.randn(1, 12, 8, 8),))
    targets = [str(node.target) for node in program.graph.nodes if node.op == "call_function"]
    assert any("conv2d" in t for t in targets) and not any("addmm" in t or "mm.default" in t for t in targets)
