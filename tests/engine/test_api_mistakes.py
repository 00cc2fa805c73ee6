"""The Python API on ordinary mistakes: ``TypeError``/``ValueError`` saying what was expected, not a crash inside."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from restore.archs import build_network
from restore.data.image_io import write_image
from restore.engine import infer
from restore.engine import inference as inference_module

TINY_DLGSANET = {"type": "DLGSANet", "upscale": 2, "dim": 12, "groups": 1, "blocks": 1, "idynamic_num_heads": 2,
                 "restormer_num_heads": 2, "upsampler": "pixelshuffledirect"}  # fmt: skip


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(TINY_DLGSANET).eval()


def test_numpy_array_is_a_type_error_with_the_conversion(net):
    with pytest.raises(TypeError, match=r"lq must be a torch\.Tensor .* got ndarray \(convert with torch\.from_numpy"):
        infer(net, np.zeros((1, 3, 8, 8), np.float32))


def test_channel_mismatch_names_both_counts(net):
    with pytest.raises(ValueError, match=r"^lq has 4 channel\(s\), DLGSANet takes 3; drop alpha"):
        infer(net, torch.rand(1, 4, 8, 8))


@pytest.mark.parametrize("shape", [(1, 3, 0, 8), (1, 3, 8, 0), (0, 3, 8, 8)])
def test_zero_size_image_is_a_value_error(net, shape):
    with pytest.raises(ValueError, match=r"^lq is empty: shape"):
        infer(net, torch.rand(*shape))
    with pytest.raises(ValueError, match=r"^lq is empty"):
        infer(net, torch.rand(*shape), tile=4)


def test_0_255_input_is_warned_about_once(net, monkeypatch):
    monkeypatch.setattr(inference_module, "_range_warned", False)
    lq = torch.rand(1, 3, 8, 8) * 255
    with pytest.warns(UserWarning, match=r"lq values reach 2\d\d.*expect \[0, 1\].*shown once"):
        infer(net, lq)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infer(net, lq)  # second time: silent
        infer(net, torch.rand(1, 3, 8, 8))


def test_in_range_input_is_not_warned_about(net, monkeypatch):
    monkeypatch.setattr(inference_module, "_range_warned", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infer(net, torch.rand(1, 3, 8, 8) * 1.05)  # slight overshoot from an earlier network is normal


def test_write_image_unknown_extension_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"x\.xyz: unsupported output format '\.xyz'; use one of \.png"):
        write_image(tmp_path / "x.xyz", np.zeros((4, 4, 3), np.float32))
    assert list(tmp_path.iterdir()) == []
