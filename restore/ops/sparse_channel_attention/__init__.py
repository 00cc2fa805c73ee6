"""Channel ("transposed") self-attention with optional sparsification, as used by DRSformer and DLGSANet.

Attention runs across the C channels of every head rather than across pixels, so the attention matrix is
(C, C) whatever the image size::

    S = normalize(q) @ normalize(k)^T * temperature          # (B, h, C, C), L2 over the L tokens, eps 1e-12
    out = A(S) @ v                                           # (B, h, C, L)

``A`` depends on ``mode``:

* ``"topk"`` (DRSformer TKSA): ``sum_i w_i * softmax(S restricted to the top-k_i entries of each row)`` with
  ``k_i = int(C/2), int(2C/3), int(3C/4), int(4C/5)`` (:func:`topk_counts`) and weights ``topk_weights``.
  Entries tied with the k_i-th largest score are all kept (see :mod:`.torch_impl`). Needs C >= 2.
* ``"relu"`` (DLGSANet sparse global attention): ``relu(S)``; no softmax, no row normalisation.
* ``"softmax"`` (Restormer MDTA): ``softmax(S)`` over the last dimension.
* ``"gelu"`` (exact), ``"sigmoid"``, ``"linear"`` (identity): DLGSANet's ablation activations.

The temperature multiplies before the selection, so a negative temperature keeps the least similar channels.

Backends (``restore.ops._backend``): ``naive`` (four literal top-k branches), ``torch`` (one fused matrix, one
product with v), ``triton`` (``triton_impl.sparse_channel_attention``, modes topk / relu / softmax; the ablation
modes always run on the torch backend).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from restore.ops import _backend
from restore.ops.sparse_channel_attention import naive, torch_impl
from restore.ops.sparse_channel_attention.naive import topk_counts

__all__ = ["MODES", "TOLERANCES", "sparse_channel_attention", "topk_counts"]

MODES = ("topk", "relu", "softmax", "gelu", "sigmoid", "linear")
_TRITON_MODES = ("topk", "relu", "softmax")

#: Expected (atol, rtol) of a fast backend against the naive one evaluated in float32, per input dtype.
TOLERANCES = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (3e-2, 3e-2), torch.float16: (5e-3, 5e-3)}


def _weights_vector(topk_weights: torch.Tensor | Sequence[torch.Tensor] | None, like: torch.Tensor) -> torch.Tensor:
    if topk_weights is None:
        raise ValueError("sparse_channel_attention: mode='topk' needs topk_weights (4 branch weights)")
    if isinstance(topk_weights, torch.Tensor):
        weights = topk_weights.reshape(-1)
    else:
        weights = torch.cat([torch.as_tensor(w, device=like.device).reshape(-1) for w in topk_weights])
    if weights.numel() != 4:
        raise ValueError(f"sparse_channel_attention: topk_weights must hold 4 values, got {weights.numel()}")
    return weights


def sparse_channel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    temperature: torch.Tensor,
    *,
    mode: str,
    topk_weights: torch.Tensor | Sequence[torch.Tensor] | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Channel attention of every head, tensors in and out (no state).

    Args:
        q, k, v: ``(B, h, C, L)`` queries, keys and values (same shape, float dtype; L = H*W tokens).
        temperature: ``h`` per-head scales, shape ``(h, 1, 1)`` (any shape with h elements is accepted).
        mode: ``"topk"``, ``"relu"``, ``"softmax"``, ``"gelu"``, ``"sigmoid"`` or ``"linear"`` (module docstring).
        topk_weights: for ``"topk"`` only: the 4 branch weights, a ``(4,)`` tensor or 4 tensors of shape ``(1,)``
            (e.g. DRSformer's ``attn1..attn4``); gradients flow to them.
        backend: ``"naive"``, ``"torch"``, ``"triton"`` or None (``RESTORE_OPS`` / automatic).

    Returns:
        ``(B, h, C, L)`` in the dtype of v.

    Raises:
        ValueError: mismatched shapes, unknown mode, missing weights, or C < 2 in top-k mode.
    """
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"sparse_channel_attention: q, k, v must share one (B, h, C, L) shape, got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    heads, channels = q.shape[1], q.shape[2]
    if temperature.numel() != heads:
        raise ValueError(f"sparse_channel_attention: temperature must hold h={heads} values, got {temperature.numel()}")
    if mode not in MODES:
        raise ValueError(f"sparse_channel_attention: unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    temperature = temperature.reshape(heads, 1, 1)
    weights = None
    if mode == "topk":
        if channels < 2:
            raise ValueError(f"sparse_channel_attention: mode='topk' needs C >= 2 channels per head, got {channels}")
        weights = _weights_vector(topk_weights, q)
    choice = _backend.resolve("sparse_channel_attention", q, k, v, backend=backend)
    if choice == "triton" and mode in _TRITON_MODES:
        from restore.ops.sparse_channel_attention import triton_impl

        return triton_impl.sparse_channel_attention(q, k, v, temperature, mode=mode, topk_weights=weights)
    if choice == "naive":
        return naive.sparse_channel_attention(q, k, v, temperature, mode=mode, topk_weights=weights)
    return torch_impl.sparse_channel_attention(q, k, v, temperature, mode=mode, topk_weights=weights)
