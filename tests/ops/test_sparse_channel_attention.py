"""sparse_channel_attention: fused torch backend against the literal four-branch reference, ties, dtypes."""

from __future__ import annotations

import math

import pytest
import torch

from restore.ops.sparse_channel_attention import naive, sparse_channel_attention, topk_counts, torch_impl


def _temperature(heads: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    t = torch.rand(heads, 1, 1, dtype=dtype) * 2 + 0.5
    t[1::2] *= -1  # negative temperatures select the least similar channels
    return t


def _inputs(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float64, min_gap: float = 1e-9):
    """Random q, k, v, temperature whose top-k selections are stable (k-th vs (k+1)-th score gap >= min_gap)."""
    gen = torch.Generator().manual_seed(seed)
    channels = shape[2]
    for _ in range(200):
        q, k, v = (torch.randn(shape, generator=gen, dtype=dtype) for _ in range(3))
        temperature = (torch.rand(shape[1], 1, 1, generator=gen, dtype=dtype) * 2 + 0.5) * torch.tensor(
            [(-1.0) ** h for h in range(shape[1])], dtype=dtype
        ).view(-1, 1, 1)
        scores = naive.channel_scores(q, k, temperature).sort(dim=-1, descending=True).values
        gaps = [(scores[..., kk - 1] - scores[..., kk]).min() for kk in topk_counts(channels) if kk < channels]
        if not gaps or min(gaps) >= min_gap:
            return q, k, v, temperature
    raise AssertionError("could not draw tie-free inputs")


def _weights(dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    return [torch.tensor([w], dtype=dtype) for w in (0.7, -0.3, 1.1, 0.25)]


def test_topk_counts_truncate_like_python_int() -> None:
    # values listed in the parity README (section 4)
    expected = {48: (24, 32, 36, 38), 10: (5, 6, 7, 8), 20: (10, 13, 15, 16), 8: (4, 5, 6, 6), 6: (3, 4, 4, 4),
                4: (2, 2, 3, 3), 16: (8, 10, 12, 12), 12: (6, 8, 9, 9)}  # fmt: skip
    for channels, counts in expected.items():
        assert topk_counts(channels) == counts


@pytest.mark.parametrize("shape", [(2, 2, 10, 37), (1, 3, 20, 64), (1, 1, 48, 50), (2, 1, 2, 9), (1, 2, 96, 30)])
def test_topk_fused_equals_four_branches(shape: tuple[int, ...]) -> None:
    q, k, v, temperature = _inputs(shape, seed=sum(shape))
    ref = naive.sparse_channel_attention(q, k, v, temperature, mode="topk", topk_weights=torch.cat(_weights()))
    out = sparse_channel_attention(q, k, v, temperature, mode="topk", topk_weights=_weights(), backend="torch")
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)


def test_topk_fused_float32_matches_reference() -> None:
    q, k, v, temperature = (t.float() for t in _inputs((2, 2, 24, 200), seed=3, min_gap=2e-5))
    weights = torch.tensor([0.2, 0.9, -0.4, 0.6])
    ref = naive.sparse_channel_attention(q, k, v, temperature, mode="topk", topk_weights=weights)
    out = sparse_channel_attention(q, k, v, temperature, mode="topk", topk_weights=weights, backend="torch")
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", ["topk", "relu", "softmax", "gelu", "sigmoid", "linear"])
def test_gradients_match_reference(mode: str) -> None:
    q, k, v, temperature = _inputs((2, 2, 12, 23), seed=11)
    grads = {}
    for backend in ("naive", "torch"):
        leaves = [t.clone().requires_grad_() for t in (q, k, v, temperature)]
        weights = [w.requires_grad_() for w in _weights()]
        out = sparse_channel_attention(
            *leaves, mode=mode, topk_weights=weights if mode == "topk" else None, backend=backend
        )
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads[backend] = [t.grad for t in leaves] + ([w.grad for w in weights] if mode == "topk" else [])
    for got, want in zip(grads["torch"], grads["naive"]):
        assert got is not None
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-8)


def test_gradcheck_torch_backend() -> None:
    q, k, v, temperature = (t.requires_grad_() for t in _inputs((1, 2, 6, 7), seed=5, min_gap=1e-3))
    weights = torch.tensor([0.3, 0.5, -0.2, 0.8], dtype=torch.float64, requires_grad=True)

    def fn(q, k, v, t, w):
        return sparse_channel_attention(q, k, v, t, mode="topk", topk_weights=w, backend="torch")

    assert torch.autograd.gradcheck(fn, (q, k, v, temperature, weights))


def test_weights_as_vector_or_four_tensors() -> None:
    q, k, v, temperature = _inputs((1, 2, 8, 16), seed=2)
    as_list = sparse_channel_attention(q, k, v, temperature, mode="topk", topk_weights=_weights())
    as_vector = sparse_channel_attention(q, k, v, temperature, mode="topk", topk_weights=torch.cat(_weights()))
    torch.testing.assert_close(as_list, as_vector, atol=0, rtol=0)


def _explicit_tie_rule_reference(scores: torch.Tensor, v: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """Row by row, in Python: keep every entry >= the kk-th largest score, softmax over the kept entries."""
    batch, heads, channels, _ = scores.shape
    out = torch.zeros_like(v)
    for b in range(batch):
        for h in range(heads):
            for i in range(channels):
                row = scores[b, h, i].tolist()
                ordered = sorted(row, reverse=True)
                mix = [0.0] * channels
                for weight, kept in zip(weights, topk_counts(channels)):
                    threshold = ordered[kept - 1]
                    keep = [s >= threshold for s in row]
                    total = sum(math.exp(s - ordered[0]) for s, kk in zip(row, keep) if kk)
                    for j in range(channels):
                        if keep[j]:
                            mix[j] += weight * math.exp(row[j] - ordered[0]) / total
                out[b, h, i] = torch.tensor(mix, dtype=v.dtype) @ v[b, h]
    return out


def test_tie_rule_keeps_every_entry_tied_with_the_kth() -> None:
    """Duplicated key channels tie in every row; entries tied with the k-th largest are all kept.

    Integer-valued q and k make every dot product exact, so the duplicated channels tie bit for bit.
    """
    gen = torch.Generator().manual_seed(0)
    channels = 6  # counts (3, 4, 4, 4)
    q = torch.randint(-3, 4, (1, 1, channels, 16), generator=gen).double()
    k = torch.randint(-3, 4, (1, 1, channels, 16), generator=gen).double()
    k[:, :, 1] = k[:, :, 2]
    k[:, :, 4] = k[:, :, 2]
    v = torch.randn(1, 1, channels, 16, generator=gen, dtype=torch.float64)
    temperature = torch.ones(1, 1, 1, dtype=torch.float64)
    weights = [0.5, 0.2, 0.2, 0.1]
    scores = torch_impl.channel_scores(q, k, temperature)  # the scores the torch backend ranks
    assert torch.equal(scores[..., 1], scores[..., 2]) and torch.equal(scores[..., 1], scores[..., 4])
    weight_tensor = torch.tensor(weights, dtype=torch.float64)
    out = sparse_channel_attention(q, k, v, temperature, mode="topk", topk_weights=weight_tensor, backend="torch")
    ref = _explicit_tie_rule_reference(scores, v, weights)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)
    # the rule is deterministic and does not depend on the order of the tied channels
    perm = torch.tensor([0, 4, 2, 3, 1, 5])
    swapped = sparse_channel_attention(
        q, k[:, :, perm], v[:, :, perm], temperature, mode="topk", topk_weights=weight_tensor, backend="torch"
    )
    torch.testing.assert_close(swapped, out, atol=1e-12, rtol=1e-10)
    # some row really has a tie straddling a k-th boundary (otherwise the test would not test the rule)
    ordered = scores.sort(dim=-1, descending=True).values[0, 0]
    assert any(ordered[i, kk - 1] == ordered[i, kk] for i in range(channels) for kk in topk_counts(channels))


def test_all_equal_scores_keep_every_channel() -> None:
    """q = 0 gives all-zero scores: every branch keeps all C entries, so out = sum(w) * mean of v over channels."""
    v = torch.randn(2, 2, 10, 13, dtype=torch.float64)
    q = torch.zeros_like(v)
    k = torch.randn_like(v)
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    out = sparse_channel_attention(q, k, v, _temperature(2, torch.float64), mode="topk", topk_weights=weights)
    expected = weights.sum() * v.mean(dim=2, keepdim=True).expand_as(v)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("mode", ["topk", "relu", "softmax"])
def test_bfloat16_is_finite_and_close(mode: str) -> None:
    q, k, v, temperature = (t.float() for t in _inputs((1, 2, 16, 256), seed=7))
    weights = torch.tensor([0.2, 0.3, 0.25, 0.25])
    ref = naive.sparse_channel_attention(q, k, v, temperature, mode=mode, topk_weights=weights)
    lows = [t.bfloat16().requires_grad_() for t in (q, k, v)]
    out = sparse_channel_attention(*lows, temperature, mode=mode, topk_weights=weights, backend="torch")
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    err = (out.float() - ref).abs().mean() / ref.abs().mean()
    assert err < 2e-2
    out.float().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in lows)


def test_float16_does_not_overflow_on_large_inputs() -> None:
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 1, 8, 4096, generator=gen) * 300 for _ in range(3))
    temperature = torch.ones(1, 1, 1)
    ref = naive.sparse_channel_attention(q, k, v, temperature, mode="relu")
    out = sparse_channel_attention(q.half(), k.half(), v.half(), temperature, mode="relu", backend="torch")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=2.0, rtol=1e-2)


def test_rejects_bad_arguments() -> None:
    x = torch.randn(1, 2, 4, 5)
    t = torch.ones(2, 1, 1)
    with pytest.raises(ValueError, match="share one"):
        sparse_channel_attention(x, x, torch.randn(1, 2, 4, 6), t, mode="relu")
    with pytest.raises(ValueError, match="temperature"):
        sparse_channel_attention(x, x, x, torch.ones(3), mode="relu")
    with pytest.raises(ValueError, match="unknown mode"):
        sparse_channel_attention(x, x, x, t, mode="tanh")
    with pytest.raises(ValueError, match="topk_weights"):
        sparse_channel_attention(x, x, x, t, mode="topk")
    with pytest.raises(ValueError, match="4 values"):
        sparse_channel_attention(x, x, x, t, mode="topk", topk_weights=torch.ones(3))
    y = torch.randn(1, 2, 1, 5)
    with pytest.raises(ValueError, match="C >= 2"):
        sparse_channel_attention(y, y, y, t, mode="topk", topk_weights=torch.ones(4))
    with pytest.raises(ValueError, match="unknown backend"):
        sparse_channel_attention(x, x, x, t, mode="relu", backend="cuda")


def test_environment_selects_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(naive, "sparse_channel_attention", lambda *a, **kw: calls.append("naive") or a[2])
    monkeypatch.setenv("RESTORE_OPS", "naive")
    x = torch.randn(1, 1, 4, 5)
    sparse_channel_attention(x, x, x, torch.ones(1), mode="relu")
    assert calls == ["naive"]
