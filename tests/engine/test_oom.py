"""Out-of-memory recovery, with a network that fakes allocation failures above a size (works on CPU)."""

from __future__ import annotations

import logging

import pytest
import torch
from engine_nets import FakeOutOfMemory, LocalSR

from restore.engine import infer


@pytest.fixture
def inner() -> LocalSR:
    torch.manual_seed(0)
    return LocalSR(scale=2, pad_multiple=8)


def test_untiled_run_that_does_not_fit_is_tiled_with_halved_tiles(inner: LocalSR, caplog) -> None:
    lq = torch.rand(1, 3, 64, 80)
    ref = infer(inner, lq)
    net = FakeOutOfMemory(inner, max_pixels=48 * 48)
    with caplog.at_level(logging.WARNING, logger="restore.engine"):
        out = infer(net, lq, tile_overlap=8)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert net.refused >= 1 and net.shapes[0] == (1, 3, 64, 80)
    assert "re-tiling" in caplog.text
    done = [s for s in net.shapes[net.refused :] if s[0] * s[2] * s[3] <= net.max_pixels]
    assert len(done) == len(net.shapes) - net.refused, "every tile after the split fits"


def test_tile_that_does_not_fit_is_split_and_later_tiles_start_small(inner: LocalSR) -> None:
    lq = torch.rand(1, 3, 128, 128)
    ref = infer(inner, lq)
    net = FakeOutOfMemory(inner, max_pixels=40 * 40)
    out = infer(net, lq, tile=64, tile_overlap=8)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert net.refused == 1, "after the first failure the remaining tiles are split without retrying the big size"


def test_batch_that_does_not_fit_is_halved(inner: LocalSR) -> None:
    lq = torch.rand(1, 3, 64, 64)
    ref = infer(inner, lq)
    net = FakeOutOfMemory(inner, max_pixels=2 * 32 * 32)  # two 32x32 tiles fit, four do not
    out = infer(net, lq, tile=16, tile_overlap=8, tile_batch_size=4)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert net.shapes[0][0] == 4 and {s[0] for s in net.shapes[1:]} == {2}


def test_cpu_allocation_failure_is_recognised(inner: LocalSR) -> None:
    lq = torch.rand(1, 3, 48, 48)
    net = FakeOutOfMemory(inner, max_pixels=32 * 32, error=RuntimeError)
    net.error = lambda _: RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    torch.testing.assert_close(infer(net, lq, tile_overlap=8), infer(inner, lq), rtol=1e-5, atol=1e-5)


def test_a_tile_that_never_fits_raises(inner: LocalSR) -> None:
    net = FakeOutOfMemory(inner, max_pixels=10)
    with pytest.raises(RuntimeError, match=r"out of memory on cpu for a \d+x\d+ tile even after halving"):
        infer(net, torch.rand(1, 3, 64, 64), tile=32, tile_overlap=8)


def test_other_errors_are_not_retried(inner: LocalSR) -> None:
    class Broken(LocalSR):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            super().forward(x)
            raise RuntimeError("shape mismatch in layer 3")

    net = Broken()
    with pytest.raises(RuntimeError, match="shape mismatch"):
        infer(net, torch.rand(1, 3, 64, 64), tile=16)
    assert len(net.calls) == 1
