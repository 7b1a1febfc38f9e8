"""GQA attention with sliding-window or chunk masks and attention sinks, in float64, from the
attention's own inputs: independent of the ISA, of the KV ranges the layer definitions read and of
the softmax instruction's masks.

Masks as transformers' masking_utils states them: key j is visible to the query at position p iff
j <= p and, with a window W, p - W < j (sliding_window_overlay), or, with chunks of C,
j // C == p // C (chunked_overlay). Sinks as GptOssAttention's eager_attention_forward: the head's
logit joins each row of scaled scores as one more column, the softmax runs over the row, the
column is dropped.

``q`` [T, H, d] (after RoPE and any norm or temperature), ``keys`` / ``values`` per request
[context, KV, d] (the cached rows then the new ones), ``reqs`` the stage's requests (row, new,
past); returns the attention output [T, H d].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["visible", "attention"]


def visible(pos: np.ndarray, keys: int, window: int = 0, chunk: int = 0) -> np.ndarray:
    """[len(pos), keys] bool: which keys the queries at positions ``pos`` see."""
    j, p = np.arange(keys)[None, :], np.asarray(pos)[:, None]
    seen = j <= p
    if window:
        seen &= j > p - window
    if chunk:
        seen &= j // chunk == p // chunk
    return seen


def attention(q: np.ndarray, keys: Sequence[np.ndarray], values: Sequence[np.ndarray], reqs: Sequence, *,
              window: int = 0, chunk: int = 0, sinks: np.ndarray | None = None) -> np.ndarray:
    T, H, d = q.shape
    out = np.zeros((T, H, d))
    for r, k, v in zip(reqs, keys, values):
        g = H // k.shape[1]
        rows = slice(r.row, r.row + r.new)
        kh = np.repeat(k.transpose(1, 0, 2), g, axis=0)  # [H, ctx, d]
        vh = np.repeat(v.transpose(1, 0, 2), g, axis=0)
        scores = q[rows].transpose(1, 0, 2) @ kh.transpose(0, 2, 1) / np.sqrt(d)  # [H, new, ctx]
        seen = visible(np.arange(r.past, r.context), r.context, window, chunk)
        scores = np.where(seen[None], scores, -np.inf)
        if sinks is not None:
            scores = np.concatenate([scores, np.broadcast_to(sinks[:, None, None], (H, r.new, 1))], axis=-1)
        z = np.exp(scores - scores.max(axis=-1, keepdims=True))
        p = z / z.sum(axis=-1, keepdims=True)
        out[rows] = (p[..., :r.context] @ vh).transpose(1, 0, 2)
    return out.reshape(T, H * d)
