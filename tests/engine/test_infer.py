"""``infer`` on tiny networks: the official untiled paths, tiling, sizes, precision, modes and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from engine_nets import (
    GlobalMix,
    LocalSR,
    PointwiseSR,
    official_drsformer_test,
    official_inference_script,
    official_model_class,
)
from torch import nn

from restore.engine import infer
from restore.engine.forward import TileForward, network_spec, use_channels_last
from restore.engine.memory import CPU_MAX_TILE, auto_tile_size


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("net_cls", [LocalSR, GlobalMix])
@pytest.mark.parametrize(("h", "w"), [(23, 37), (24, 40), (8, 13)])
def test_untiled_is_the_official_model_class_path(net_cls: type[nn.Module], h: int, w: int) -> None:
    net = net_cls(scale=2, pad_multiple=8)
    lq = torch.rand(1, 3, h, w)
    assert torch.equal(infer(net, lq), official_model_class(net, lq, 8, 2))


def test_untiled_symmetric_is_the_inference_script_path() -> None:
    net = GlobalMix(scale=2, pad_multiple=8)
    lq = torch.rand(1, 3, 24, 37)  # 24 is a multiple: the script still adds a full window
    ours = infer(net, lq, padding="symmetric")
    assert torch.equal(ours, official_inference_script(net, lq, 8, 2))


@pytest.mark.parametrize(("h", "w", "tile", "overlap"), [(37, 53, 16, 8), (40, 56, 24, 8), (21, 70, 32, 16)])
def test_average_blend_is_the_inference_script_tiling(h: int, w: int, tile: int, overlap: int) -> None:
    net = GlobalMix(scale=2, pad_multiple=8)  # depends on the whole tile: the window placement matters
    lq = torch.rand(1, 3, h, w)
    ours = infer(net, lq, tile=tile, tile_overlap=overlap, padding="symmetric", blend="average")
    ref = official_inference_script(net, lq, 8, 2, tile=tile, overlap=overlap)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("tile", [None, 16, 24])
def test_average_blend_with_reflect_is_drsformer_test_py(tile: int | None) -> None:
    net = GlobalMix(scale=1, pad_multiple=8)
    net.clamp_output = True
    lq = torch.rand(1, 3, 37, 45)
    ours = infer(net, lq, tile=tile, tile_overlap=8, blend="average")
    torch.testing.assert_close(ours, official_drsformer_test(net, lq, tile=tile, overlap=8), rtol=1e-6, atol=1e-6)


def test_average_blend_refuses_tiles_off_the_grid() -> None:
    with pytest.raises(ValueError, match="multiples of the network's pad_multiple 8"):
        infer(GlobalMix(), torch.rand(1, 3, 40, 40), tile=20, blend="average")


def test_clamp_follows_the_network_unless_overridden() -> None:
    net = PointwiseSR(scale=2, pad_multiple=1)  # 2x + 0.25 leaves [0, 1]
    lq = torch.rand(1, 3, 9, 9)
    assert infer(net, lq).max() > 1
    net.clamp_output = True
    assert infer(net, lq).max() == 1 and infer(net, lq).min() >= 0
    assert infer(net, lq, clamp=False).max() > 1


@pytest.mark.parametrize(("tile", "overlap", "batch"), [(16, 8, 1), (8, 8, 3), (13, 10, 2), (5, 8, 4), (30, 12, 1)])
def test_ramp_tiles_match_untiled_when_context_covers_the_receptive_field(tile: int, overlap: int, batch: int) -> None:
    net = LocalSR(scale=2, pad_multiple=8)  # 5x5 receptive field; the cross-fade uses overlap / 4 on each side
    lq = torch.rand(2, 3, 37, 45)
    ref = infer(net, lq)
    ours = infer(net, lq, tile=tile, tile_overlap=overlap, tile_batch_size=batch)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_tiles_run_in_batches_of_equal_shapes() -> None:
    net = LocalSR(scale=2, pad_multiple=8)
    infer(net, torch.rand(1, 3, 64, 64), tile=16, tile_overlap=8, tile_batch_size=4)
    assert {shape[2:] for shape in net.calls} == {(32, 32)}
    assert [shape[0] for shape in net.calls] == [4, 4, 4, 4]


@pytest.mark.parametrize(("h", "w"), [(1, 1), (3, 5), (17, 4), (21, 34)])
@pytest.mark.parametrize(("tile", "overlap"), [(None, 32), (1, 0), (4, 3), (7, 8), (64, 2)])
def test_any_size_and_tile_reproduce_a_pointwise_network(h: int, w: int, tile: int | None, overlap: int) -> None:
    """Images smaller than a tile or the multiple, tiles smaller than the multiple: no seams, no dark borders."""
    net = PointwiseSR(scale=3, pad_multiple=4)
    lq = torch.rand(2, 3, h, w)
    ref = F.interpolate(2 * lq + 0.25, scale_factor=3, mode="nearest")
    torch.testing.assert_close(infer(net, lq, tile=tile, tile_overlap=overlap), ref, rtol=1e-6, atol=1e-6)


def test_bf16_is_close_to_fp32_and_returns_float32() -> None:
    net = LocalSR(scale=2, pad_multiple=8)
    lq = torch.rand(1, 3, 24, 24)
    ref = infer(net, lq)
    low = infer(net, lq, precision="bf16")
    assert low.dtype == torch.float32
    assert (low - ref).abs().max() < 0.05 * ref.abs().max()
    assert not torch.equal(low, ref), "bf16 autocast did not take effect"


def test_fp16_refused_for_networks_that_overflow_it() -> None:
    net = LocalSR()
    net.supports_fp16 = False
    with pytest.raises(ValueError, match=r"fp16' refused for LocalSR: .*float16 range.*bf16"):
        infer(net, torch.rand(1, 3, 8, 8), precision="fp16")
    net.supports_fp16 = True
    assert infer(net, torch.rand(1, 3, 8, 8), precision="fp16").dtype == torch.float32


def test_eval_mode_is_used_and_the_previous_mode_restored() -> None:
    class Dropping(LocalSR):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(self.drop(x))

    net = Dropping().train()
    lq = torch.rand(1, 3, 16, 16)
    assert torch.equal(infer(net, lq), infer(net, lq))
    assert net.training


def test_a_failing_tile_is_never_skipped_or_reused() -> None:
    class FailsOnThirdTile(LocalSR):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if len(self.calls) == 2:
                raise RuntimeError("kernel launch failed")
            return super().forward(x)

    with pytest.raises(RuntimeError, match="kernel launch failed"):
        infer(FailsOnThirdTile(), torch.rand(1, 3, 64, 64), tile=16, tile_overlap=8)


def test_network_contract_errors() -> None:
    class NoScale(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(AttributeError, match="NoScale: the inference engine needs a 'scale' attribute"):
        infer(NoScale(), torch.rand(1, 3, 8, 8))

    class WrongScale(PointwiseSR):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, scale_factor=3, mode="nearest")

    liar = WrongScale(scale=3, pad_multiple=1)
    liar.scale = 2  # says 2, upscales 3x
    with pytest.raises(ValueError, match="check the network's 'scale' attribute"):
        infer(liar, torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="tile must be"):
        infer(liar, torch.rand(1, 3, 8, 8), tile=0)
    with pytest.raises(ValueError, match="precision must be one of"):
        infer(liar, torch.rand(1, 3, 8, 8), precision="int8")
    with pytest.raises(ValueError, match="float"):
        infer(liar, torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_auto_tile_on_cpu() -> None:
    net = LocalSR(scale=2, pad_multiple=8)
    tile = auto_tile_size(net, TileForward(net, torch.device("cpu")), network_spec(net), 32, 1, 3)
    assert tile % 8 == 0 and 32 <= tile <= CPU_MAX_TILE
    lq = torch.rand(1, 3, 40, 48)
    torch.testing.assert_close(infer(net, lq, tile="auto"), infer(net, lq))


def test_progress_bar_over_tiles(capsys: pytest.CaptureFixture[str]) -> None:
    net = LocalSR(scale=2, pad_multiple=8)
    infer(net, torch.rand(1, 3, 64, 64), tile=16, tile_overlap=8, progress=True)
    assert "tiles" in capsys.readouterr().err
    infer(net, torch.rand(1, 3, 64, 64), tile=16, tile_overlap=8, progress=False)
    assert capsys.readouterr().err == ""


def test_channels_last_and_compile_give_the_same_result() -> None:
    net = LocalSR(scale=2, pad_multiple=8)
    lq = torch.rand(1, 3, 24, 40)
    ref = infer(net, lq)
    torch.testing.assert_close(infer(net, lq, compile="eager"), ref)
    torch.testing.assert_close(infer(net, lq, channels_last=True, tile=8, tile_overlap=8), ref, rtol=1e-5, atol=1e-5)


class _NhwcSR(LocalSR):
    """LocalSR that records the memory format of every input it sees and asks for NHWC on the CPU."""

    cpu_memory_format = "channels_last"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return super().forward(x)


def test_the_network_chooses_its_cpu_memory_format() -> None:
    net = _NhwcSR(scale=2, pad_multiple=8)
    net.seen = []
    lq = torch.rand(1, 3, 24, 40)
    ref = LocalSR(scale=2, pad_multiple=8)
    ref.load_state_dict(net.state_dict())
    out = infer(net, lq, tile=16, tile_overlap=8)
    assert net.seen and all(net.seen)  # every tile ran in NHWC
    assert net.head.weight.is_contiguous(memory_format=torch.channels_last)
    assert out.is_contiguous()
    torch.testing.assert_close(out, infer(ref, lq, tile=16, tile_overlap=8), rtol=1e-5, atol=1e-5)
    net.seen.clear()
    infer(net, lq, channels_last=False)  # the caller's choice wins
    assert net.seen == [False]


def test_memory_format_rule() -> None:
    nhwc, plain = network_spec(_NhwcSR(scale=2, pad_multiple=8)), network_spec(LocalSR(scale=2, pad_multiple=8))
    assert (nhwc.cpu_memory_format, plain.cpu_memory_format) == ("channels_last", "contiguous")
    assert use_channels_last(nhwc, "cpu") and not use_channels_last(plain, "cpu")
    assert not use_channels_last(nhwc, "cuda")  # GPU layouts keep the PyTorch default until measured
    assert use_channels_last(plain, "cpu", True) and not use_channels_last(nhwc, "cpu", False)
    bad = LocalSR(scale=2, pad_multiple=8)
    bad.cpu_memory_format = "nhwc"
    with pytest.raises(ValueError, match=r"LocalSR: cpu_memory_format must be one of .*'nhwc'"):
        network_spec(bad)


@pytest.mark.cuda
def test_tiles_on_cuda_output_on_the_input_device() -> None:
    net = LocalSR(scale=2, pad_multiple=8)
    lq = torch.rand(1, 3, 64, 96)
    ref = infer(net, lq)
    out = infer(net, lq, tile=32, tile_overlap=8, device="cuda", precision="fp32")
    assert out.device.type == "cpu"
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert infer(net, lq.cuda(), precision="bf16").device.type == "cuda"
    torch.testing.assert_close(infer(net, lq, tile="auto", device="cuda"), ref, rtol=1e-4, atol=1e-4)
