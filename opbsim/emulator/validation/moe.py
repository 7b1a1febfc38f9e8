"""The MoE validation cases: a Mixtral-shaped decoder layer at reduced sizes.

The layer is Mixtral-8x7B's (Jiang et al. 2024, arXiv:2401.04088; its Hugging Face config.json:
RMSNorm with eps 1e-5, RoPE theta 1e6, GQA attention, a softmax router over the experts, top-k
with the gates renormalised, SwiGLU experts), with ``MoEConfig``'s sizes and, for ``moe-shared``,
shared experts as DeepSeek/Qwen-MoE add them. One stage: a prefill chunk of ``tokens`` tokens,
so every token is routed.
"""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.errors import InputError
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["MoEConfig"]


@dataclass(frozen=True)
class MoEConfig:
    """Sizes of the MoE block (``ffn``, ``shared_ffn``: per expert); the attention in front of it
    is fixed at ``heads`` / ``kv_heads`` of ``head_dim``."""

    tokens: int = 16
    hidden: int = 256
    ffn: int = 512
    experts: int = 8
    top_k: int = 2
    shared: int = 0
    shared_ffn: int = 512
    eps: float = 1e-5
    theta: float = 1e6
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 64

    def __post_init__(self) -> None:
        for name in ("tokens", "hidden", "ffn", "experts", "top_k", "shared_ffn"):
            if getattr(self, name) < 1:
                raise InputError(f"MoE {name} must be >= 1, got {getattr(self, name)}")
        if self.shared < 0:
            raise InputError(f"MoE shared experts must be >= 0, got {self.shared}")
        if self.top_k > self.experts:
            raise InputError(f"MoE top_k={self.top_k} exceeds experts={self.experts}")

    @property
    def shape(self) -> str:
        s = f"T={self.tokens} H={self.hidden} F={self.ffn} E={self.experts} top-{self.top_k}"
        return s + (f" shared={self.shared}x{self.shared_ffn}" if self.shared else "")

    def footprint_B(self) -> int:
        """Bytes of the MoE block's weights and activations (bf16) and of its routed scratch, a
        lower bound on what a run holds (the attention in front of it is small and fixed)."""
        weights = 3 * self.hidden * (self.experts * self.ffn + self.shared * self.shared_ffn)
        return 2 * (weights + self.hidden * self.experts) + 16 * self.tokens * self.hidden + self.scratch_bound_B()

    def scratch_bound_B(self) -> int:
        """Bytes of expert intermediates a stage can need, whatever the routing."""
        t, h, f, fs = self.tokens, self.hidden, self.ffn, self.shared_ffn
        routed = t * self.top_k * (2 * h + 3 * 4 * f + 2 * f + 4 * h + 8)
        shared = self.shared * t * (3 * 4 * fs + 2 * fs)
        return routed + shared + 64 * 9 * (self.experts + self.shared + 1)

    def model(self) -> ModelConfig:
        """One Mixtral-shaped decoder layer of these sizes."""
        return ModelConfig(
            name=f"mixtral-shaped {self.shape}", hidden_size=self.hidden, num_layers=1, num_heads=self.heads,
            num_kv_heads=self.kv_heads, head_dim=self.head_dim, vocab_size=32, num_experts=self.experts,
            top_k=self.top_k, norm_topk_prob=True, expert_ffn=self.ffn, num_shared_experts=self.shared,
            shared_ffn=self.shared_ffn if self.shared else 0, norm_eps=self.eps, rope_theta=self.theta,
            source="Mixtral-8x7B config.json, reduced sizes")

    def stage(self) -> Stage:
        return Stage(prefill=(PrefillChunk(self.tokens),))
