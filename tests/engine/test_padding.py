"""Bottom/right padding: the two official rules, checked against F.pad / torch.cat+flip and numpy's np.pad."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restore.engine import pad_amount, pad_bottom_right


@pytest.mark.parametrize(
    ("size", "multiple", "reflect", "symmetric"),
    [(23, 8, 1, 1), (24, 8, 0, 8), (37, 16, 11, 11), (5, 1, 0, 1), (1, 16, 15, 15), (32, 16, 0, 16)],
)
def test_pad_amount(size: int, multiple: int, reflect: int, symmetric: int) -> None:
    assert pad_amount(size, multiple, "reflect") == reflect
    assert pad_amount(size, multiple, "symmetric") == symmetric


def test_reflect_matches_official_f_pad() -> None:
    x = torch.rand(2, 3, 23, 37)
    padded, (ph, pw) = pad_bottom_right(x, 8, "reflect")
    assert (ph, pw) == (1, 3)
    assert torch.equal(padded, F.pad(x, (0, 3, 0, 1), mode="reflect"))


def test_reflect_leaves_multiples_alone() -> None:
    x = torch.rand(1, 3, 16, 21)
    padded, pads = pad_bottom_right(x, 8, "reflect")
    assert pads == (0, 3)
    assert torch.equal(padded[:, :, :, :21], x) and padded.shape == (1, 3, 16, 24)
    _, pads = pad_bottom_right(torch.rand(1, 3, 16, 24), 8)
    assert pads == (0, 0)


def test_symmetric_matches_drct_inference_script() -> None:
    x = torch.rand(1, 3, 24, 37)
    padded, (ph, pw) = pad_bottom_right(x, 8, "symmetric")
    ref = torch.cat([x, torch.flip(x, [2])], 2)[:, :, : 24 + 8, :]
    ref = torch.cat([ref, torch.flip(ref, [3])], 3)[:, :, :, : 37 + 3]
    assert (ph, pw) == (8, 3)
    assert torch.equal(padded, ref)


@pytest.mark.parametrize(("mode", "np_mode"), [("reflect", "reflect"), ("symmetric", "symmetric")])
@pytest.mark.parametrize(("h", "w", "multiple"), [(3, 5, 16), (2, 2, 8), (7, 30, 32)])
def test_pads_wider_than_the_image_continue_the_mirror(mode: str, np_mode: str, h: int, w: int, multiple: int) -> None:
    """Where the official code fails (pad >= size), the mirror continues periodically, as np.pad does."""
    x = torch.rand(1, 2, h, w)
    padded, (ph, pw) = pad_bottom_right(x, multiple, mode)
    assert padded.shape[2] % multiple == 0 and padded.shape[3] % multiple == 0
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, ph), (0, pw)), mode=np_mode)
    np.testing.assert_array_equal(padded.numpy(), ref)


def test_single_row_is_repeated() -> None:
    x = torch.rand(1, 3, 1, 9)
    padded, _ = pad_bottom_right(x, 4, "reflect")
    assert padded.shape == (1, 3, 4, 12)
    assert torch.equal(padded[:, :, 3, :9], x[:, :, 0])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="padding mode"):
        pad_amount(5, 8, "zeros")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        pad_bottom_right(torch.rand(3, 8, 8), 8)
