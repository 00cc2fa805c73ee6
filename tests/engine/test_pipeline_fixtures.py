"""The engine against the official test-time pipelines stored in ``tests/fixtures/parity`` (real architectures).

* Untiled pipeline fixtures (and DRCT ``inference.py`` with its averaged tiles): exact, at each file's atol/rtol.
* Tiled model-class fixtures (``tile_process``): our cross-faded tiles with the same tile size and
  ``tile_overlap = tile_pad`` must be closer to our untiled output than the official tiled output is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from engine_nets import psnr

from restore.archs import build_network, detect
from restore.engine import infer

EXACT = [
    "hat_tiny_x3_pipeline",
    "drct_tiny_x2_pipeline",
    "drsformer_tiny_pipeline",
    "drsformer_tiny_nomefc_pipeline",
    "dlgsanet_tiny_x4_pipeline",
    "drct_tiny_x2_inference_script",
    "drct_tiny_x2_inference_script_tile",
]
TILED = ["hat_tiny_x2_pipeline_tile", "drct_tiny_x2_pipeline_tile", "drct_tiny_x2_inference_script_tile"]


def _load(fixtures: Path, name: str) -> tuple[dict[str, Any], torch.nn.Module]:
    fx = torch.load(fixtures / "parity" / f"{name}.pt", weights_only=True)
    network_g = detect(fx["state_dict"])
    assert network_g["type"] == fx["arch"]
    net = build_network(network_g)
    net.load_state_dict(fx["state_dict"], strict=True)
    assert net.scale == fx["scale"]
    return fx, net


def _padding(fx: dict[str, Any]) -> str:
    return "symmetric" if fx.get("pipeline_variant") == "inference_script" else "reflect"


@pytest.mark.parametrize("name", EXACT)
def test_untiled_pipeline_matches_the_official_wrapper(fixtures: Path, name: str) -> None:
    fx, net = _load(fixtures, name)
    options: dict[str, Any] = {"padding": _padding(fx)}
    if "tile" in fx:  # inference.py with --tile: windows averaged with equal weights
        options.update(blend="average", tile=fx["tile"]["tile"], tile_overlap=fx["tile"]["tile_overlap"])
    out = infer(net, fx["input"], **options)
    assert out.shape == fx["output"].shape
    torch.testing.assert_close(out, fx["output"], atol=fx["atol"], rtol=fx["rtol"])


@pytest.mark.parametrize("name", TILED)
def test_cross_faded_tiles_are_closer_to_untiled_than_the_official_tiles(fixtures: Path, name: str) -> None:
    fx, net = _load(fixtures, name)
    padding = _padding(fx)
    if padding == "symmetric":
        tile, overlap = fx["tile"]["tile"], fx["tile"]["tile_overlap"]
    else:
        tile, overlap = fx["tile"]["tile_size"], fx["tile"]["tile_pad"]
    untiled = infer(net, fx["input"], padding=padding)
    ours = infer(net, fx["input"], padding=padding, tile=tile, tile_overlap=overlap)
    ours_db, official_db = psnr(ours, untiled), psnr(fx["output"], untiled)
    print(f"{name}: PSNR vs untiled: ours {ours_db:.2f} dB, official tiled {official_db:.2f} dB")
    assert ours_db > official_db
