"""How a stage's requests map to token rows: the row order every layer definition assumes.

Token rows are the prefill chunks' tokens in order, then one row per decoding request. Request
slot ``i`` (prefill chunks first, then decoding requests) holds slot ``i`` of each KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Request", "requests", "positions", "logit_rows", "cache_buffers"]


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a stage: its first token row, new tokens, and tokens already cached."""

    row: int
    new: int
    past: int

    @property
    def context(self) -> int:
        return self.past + self.new


def requests(stage) -> tuple[Request, ...]:
    out, row = [], 0
    for c in stage.prefill:
        out.append(Request(row, c.new_tokens, c.past_tokens))
        row += c.new_tokens
    out.extend(Request(row + j, 1, ctx - 1) for j, ctx in enumerate(stage.decode_ctx_tokens))
    return tuple(out)


def positions(stage) -> np.ndarray:
    """The position of every token row: its index in its request's sequence."""
    return np.concatenate([np.arange(r.past, r.context, dtype=np.int32) for r in requests(stage)])


def logit_rows(stage) -> np.ndarray:
    """The token rows that sample a token: each final chunk's last row, then every decode row."""
    rows, start = [], 0
    for c in stage.prefill:
        start += c.new_tokens
        if c.final:
            rows.append(start - 1)
    rows.extend(range(start, start + stage.decode_tokens))
    return np.asarray(rows, dtype=np.int32)


def cache_buffers(model, stage, layer: int) -> dict[str, tuple[int, ...]]:
    """Layer ``layer``'s KV-cache buffers (tp 1) by name, with their shapes: one slot of S tokens per
    request (S the longest context of the stage): K and V [R, S, KV, d], or with MLA the one
    cache of latents and RoPE keys [R, S, kv_lora_rank + qk_rope_head_dim]."""
    reqs = requests(stage)
    R, S = len(reqs), max(r.context for r in reqs)
    if model.mla is not None:
        return {f"L{layer}.kv_cache": (R, S, model.mla.cache_dim)}
    shape = (R, S, model.num_kv_heads, model.head_dim)
    return {f"L{layer}.k_cache": shape, f"L{layer}.v_cache": shape}
