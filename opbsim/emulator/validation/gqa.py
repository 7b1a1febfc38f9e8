"""The GQA validation cases: a Llama-shaped decoder layer at reduced sizes.

The layer is Llama 3's (Grattafiori et al. 2024, arXiv:2407.21783; its Hugging Face config.json:
RMSNorm, grouped-query attention with RoPE, a SwiGLU FFN), with ``GQAConfig``'s sizes. Decode:
one new token for each KV cache of ``cache_lens`` (at position L_b, the cache's length). Prefill:
one prompt of ``prefill_tokens`` tokens from position 0 (a prefill chunk, causal).
"""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.errors import InputError
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["GQAConfig"]


@dataclass(frozen=True)
class GQAConfig:
    hidden: int = 256
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 64
    cache_lens: tuple[int, ...] = (37, 100)
    prefill_tokens: int = 24
    ffn: int = 512
    theta: float = 1e6
    eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("hidden", "heads", "kv_heads", "head_dim", "prefill_tokens", "ffn"):
            if getattr(self, name) < 1:
                raise InputError(f"GQA {name} must be >= 1, got {getattr(self, name)}")
        if self.heads % self.kv_heads:
            raise InputError(f"GQA heads={self.heads} is not a multiple of kv_heads={self.kv_heads}")
        if self.head_dim % 2:
            raise InputError(f"GQA head_dim={self.head_dim} must be even (RoPE rotates halves)")
        if not self.cache_lens or min(self.cache_lens) < 0:
            raise InputError("GQA decode needs at least one sequence, with cache lengths >= 0")

    def footprint_B(self) -> int:
        """Bytes of the attention's weights, caches and scores (a lower bound on what a run holds)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        weights = 2 * self.hidden * (2 * q + 2 * kv)
        cache = 4 * kv * sum(n + 1 for n in self.cache_lens)
        t = self.prefill_tokens
        scores = 6 * self.heads * max(t * t, max(self.cache_lens, default=0) + 1)
        return weights + cache + scores + 16 * t * (self.hidden + q)

    def shape(self, decode: bool) -> str:
        s = f"H={self.hidden} heads={self.heads}/{self.kv_heads} Dh={self.head_dim}"
        return s + (f" cache={list(self.cache_lens)}" if decode else f" T={self.prefill_tokens}")

    def model(self) -> ModelConfig:
        """One Llama-shaped decoder layer of these sizes."""
        return ModelConfig(
            name=f"llama-shaped {self.shape(True)}", hidden_size=self.hidden, num_layers=1, num_heads=self.heads,
            num_kv_heads=self.kv_heads, head_dim=self.head_dim, vocab_size=32, dense_ffn=self.ffn,
            norm_eps=self.eps, rope_theta=self.theta, source="Llama 3 config.json, reduced sizes")

    def decode_stage(self) -> Stage:
        """Each sequence's new token attends to its cache and to itself."""
        return Stage(decode_ctx_tokens=tuple(n + 1 for n in self.cache_lens))

    def prefill_stage(self) -> Stage:
        return Stage(prefill=(PrefillChunk(self.prefill_tokens),))
