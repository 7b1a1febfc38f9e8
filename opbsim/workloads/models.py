"""Model configurations: the shapes of a decoder-only transformer, dense or Mixture-of-Experts.

A ``ModelConfig`` is the single description every later stage reads. Sizes are element counts
(``hidden_size``, ``head_dim``, ``expert_ffn`` ...); byte counts carry ``_B`` in their names and use
``dtype.itemsize_B`` bytes per element, for weights and KV cache alike.

Layer ``i`` (0-based) is a MoE layer iff the model has routed experts, ``i >= first_dense_layers``
and ``(i - first_dense_layers) % moe_every == moe_every - 1``; every other layer has a dense FFN
of width ``dense_ffn``. (Qwen's ``decoder_sparse_step`` and DeepSeek's ``moe_layer_freq = 1``
follow this rule; GLaM's "every 2nd layer" makes layers 1, 3, 5, ... MoE.)

Three constants fix the values a layer computes rather than its shape: ``rope_theta`` (the RoPE
base; 0.0 for a model without rotary positions), ``norm_eps`` (the epsilon of every RMSNorm or
LayerNorm) and ``norm_topk_prob`` (whether a token's top-k routing weights are renormalised to sum
to 1 before the expert outputs are combined). ``rope_scaling`` records how a long-context model
rescales its RoPE frequencies; it changes rotation angles only, and no computation here applies it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from opbsim.errors import InputError
from opbsim.isa.types import DType

__all__ = ["FFNAct", "Norm", "QKNorm", "MLA", "RopeScaling", "ROPE_SCALING_KINDS", "ModelConfig", "ParamCounts",
           "ConfigError"]


class ConfigError(InputError):
    """An invalid model configuration; ``field`` names the offending ``ModelConfig`` field."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamCounts:
    """Parameter counts of a model by component; ``experts`` counts all routed experts,
    ``experts_active`` the ``top_k`` a token uses in each MoE layer."""

    embeddings: int
    lm_head: int
    attention: int
    norms: int
    dense_ffn: int
    routers: int
    experts: int
    experts_active: int
    shared_experts: int

    @property
    def total(self) -> int:
        return (self.embeddings + self.lm_head + self.attention + self.norms + self.dense_ffn + self.routers
                + self.experts + self.shared_experts)

    @property
    def active(self) -> int:
        return self.total - self.experts + self.experts_active


class FFNAct(enum.Enum):
    """The feed-forward form: gated (3 matrices: gate, up, down) or plain (2 matrices: up, down)."""

    SWIGLU = "swiglu"  # silu(x Wg) * (x Wu), then Wd: Llama, Mixtral, Qwen, DeepSeek, OLMoE, DBRX
    GEGLU = "geglu"  # gelu(x Wg) * (x Wu), then Wd: Grok-1
    RELU = "relu"  # relu(x Wu) Wd: OPT
    GELU = "gelu"  # gelu(x Wu) Wd: GLaM as modelled in the Duplex paper

    @property
    def gated(self) -> bool:
        return self in (FFNAct.SWIGLU, FFNAct.GEGLU)

    @property
    def num_matrices(self) -> int:
        return 3 if self.gated else 2


class Norm(enum.Enum):
    """The normalisation before each sublayer and before the LM head."""

    RMS = "rmsnorm"  # weight only
    LAYER = "layernorm"  # weight and bias (OPT)
    LAYER_NO_BIAS = "layernorm_nobias"  # weight only, mean-centred (DBRX)

    @property
    def params_per_dim(self) -> int:
        return 2 if self is Norm.LAYER else 1

    @property
    def centred(self) -> bool:
        return self is not Norm.RMS


class QKNorm(enum.Enum):
    """RMSNorm on queries and keys after their projection (before RoPE)."""

    NONE = "none"
    PER_HEAD = "per_head"  # one head_dim-wide weight shared by all heads (Qwen3-MoE)
    FULL = "full"  # weights over the whole q and k widths (OLMoE)


@dataclass(frozen=True, slots=True, kw_only=True)
class MLA:
    """Multi-head latent attention (DeepSeek-V2). Keys and values are cached as one latent vector
    of ``kv_lora_rank`` plus a shared RoPE key of ``qk_rope_head_dim`` per token and layer.
    ``q_lora_rank = 0`` projects queries directly from the hidden state (DeepSeek-V2-Lite)."""

    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int

    def __post_init__(self) -> None:
        _check_count("q_lora_rank", self.q_lora_rank, minimum=0)
        for name in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            _check_count(name, getattr(self, name))

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def cache_dim(self) -> int:
        """Elements cached per token and layer: the latent and the shared RoPE key."""
        return self.kv_lora_rank + self.qk_rope_head_dim


ROPE_SCALING_KINDS = ("linear", "dynamic", "yarn", "longrope", "llama3")
"""The ``rope_type`` values of ``transformers`` (modeling_rope_utils) that rescale frequencies."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RopeScaling:
    """A rescaling of the RoPE frequencies for long contexts (``rope_scaling`` of a config.json):
    ``kind`` one of ``ROPE_SCALING_KINDS``, ``factor`` the context extension (None where the file gives none,
    as LongRoPE's per-dimension factors). Recorded, not applied: it changes the angles RoPE rotates
    by (and, for YaRN and LongRoPE, scales cos/sin), never a shape, an op or its cost."""

    kind: str
    factor: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ROPE_SCALING_KINDS:
            raise ConfigError("rope_scaling", f"rope_scaling kind must be one of {', '.join(ROPE_SCALING_KINDS)}, "
                              f"got {self.kind!r}")
        if self.factor is not None:
            object.__setattr__(self, "factor", _check_real("rope_scaling factor", self.factor, positive=True))

    def __str__(self) -> str:
        return self.kind if self.factor is None else f"{self.kind} x{self.factor:g}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """A decoder-only transformer. Invariants (checked at construction, exact messages):
    every size is a positive integer (or 0 where 0 means "absent"); ``num_heads`` is a multiple of
    ``num_kv_heads``; a MoE model has ``1 <= top_k <= num_experts`` and ``expert_ffn > 0``; a model
    with any dense layer has ``dense_ffn > 0``; shared experts come with ``shared_ffn > 0``;
    ``rope_theta`` is finite and >= 0 (0.0: no RoPE, as with learned positions; MLA needs RoPE),
    ``norm_eps`` finite and > 0 (both stored as ``float``); ``norm_topk_prob`` is False in a dense
    model. ``rope_theta`` and ``norm_eps`` have no default: they change every computed value.
    ``name`` and ``source`` are labels and take no part in equality.
    """

    name: str = field(compare=False)
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    ffn_act: FFNAct = FFNAct.SWIGLU
    dense_ffn: int = 0
    num_experts: int = 0
    top_k: int = 0
    norm_topk_prob: bool = False
    expert_ffn: int = 0
    num_shared_experts: int = 0
    shared_ffn: int = 0
    shared_expert_gate: bool = False
    first_dense_layers: int = 0
    moe_every: int = 1
    norm: Norm = Norm.RMS
    norm_eps: float
    rope_theta: float
    rope_scaling: RopeScaling | None = None
    qkv_bias: bool = False
    qk_norm: QKNorm = QKNorm.NONE
    sliding_window: int = 0
    learned_positions: int = 0
    tie_word_embeddings: bool = False
    mla: MLA | None = None
    dtype: DType = DType.BF16
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "vocab_size"):
            _check_count(name, getattr(self, name))
        for name in ("dense_ffn", "num_experts", "top_k", "expert_ffn", "num_shared_experts", "shared_ffn",
                     "first_dense_layers", "sliding_window", "learned_positions"):
            _check_count(name, getattr(self, name), minimum=0)
        _check_count("moe_every", self.moe_every)
        object.__setattr__(self, "rope_theta", _check_real("rope_theta", self.rope_theta, positive=False))
        object.__setattr__(self, "norm_eps", _check_real("norm_eps", self.norm_eps, positive=True))
        if self.norm_eps > _MAX_NORM_EPS:
            raise ConfigError("norm_eps", f"norm_eps must be at most {_MAX_NORM_EPS} (it guards the norm's division; "
                              f"a larger one rescales the layer), got {self.norm_eps!r}")
        if self.rope_theta and self.mla is None and self.head_dim % 2:
            raise ConfigError("head_dim", f"head_dim must be even for RoPE (it rotates pairs), got {self.head_dim}")
        if not isinstance(self.norm_topk_prob, bool):
            raise ConfigError("norm_topk_prob", f"norm_topk_prob must be True or False, got {self.norm_topk_prob!r}")
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, RopeScaling):
            raise ConfigError("rope_scaling", f"rope_scaling must be a RopeScaling or None, got {self.rope_scaling!r}")
        if self.rope_scaling is not None and not self.rope_theta:
            raise ConfigError("rope_scaling", f"rope_scaling is {self.rope_scaling} but the model has no RoPE "
                              "(rope_theta 0.0)")
        if self.learned_positions and self.rope_theta:
            raise ConfigError("rope_theta", f"rope_theta is {self.rope_theta} but the model has learned positions "
                              f"(learned_positions {self.learned_positions})")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError("num_kv_heads", f"num_heads ({self.num_heads}) is not a multiple of "
                              f"num_kv_heads ({self.num_kv_heads})")
        self._check_moe()
        if self.has_dense_layers and self.dense_ffn == 0:
            raise ConfigError("dense_ffn", "dense_ffn is 0 but the model has dense layers")
        if not self.has_dense_layers and self.dense_ffn:
            raise ConfigError("dense_ffn", f"dense_ffn is {self.dense_ffn} but the model has no dense layer")
        if self.mla is not None:
            if self.num_kv_heads != self.num_heads:
                raise ConfigError("num_kv_heads", f"MLA needs num_kv_heads == num_heads ({self.num_heads}), "
                                  f"got {self.num_kv_heads}")
            if self.head_dim != self.mla.qk_head_dim:
                raise ConfigError("head_dim", f"MLA needs head_dim == qk_nope_head_dim + qk_rope_head_dim "
                                  f"({self.mla.qk_head_dim}), got {self.head_dim}")
            if self.qkv_bias or self.qk_norm is not QKNorm.NONE:
                raise ConfigError("mla", "MLA takes neither qkv_bias nor qk_norm")
            if not self.rope_theta:
                raise ConfigError("rope_theta", "MLA needs rope_theta > 0 (its shared RoPE key), got 0.0")
        if not isinstance(self.dtype, DType):
            raise ConfigError("dtype", f"dtype must be a DType, got {self.dtype!r}")

    def _check_moe(self) -> None:
        if self.num_experts == 0:
            for name in ("top_k", "expert_ffn", "num_shared_experts", "shared_ffn", "first_dense_layers"):
                if getattr(self, name):
                    raise ConfigError(name, f"{name} is {getattr(self, name)} but num_experts is 0 (a dense model)")
            if self.shared_expert_gate:
                raise ConfigError("shared_expert_gate", "shared_expert_gate is set but num_experts is 0")
            if self.norm_topk_prob:
                raise ConfigError("norm_topk_prob", "norm_topk_prob is set but num_experts is 0")
            if self.moe_every != 1:
                raise ConfigError("moe_every", f"moe_every is {self.moe_every} but num_experts is 0")
            return
        if not 1 <= self.top_k <= self.num_experts:
            raise ConfigError("top_k", f"top_k ({self.top_k}) must be in 1..num_experts ({self.num_experts})")
        if self.expert_ffn == 0:
            raise ConfigError("expert_ffn", "expert_ffn must be positive in a MoE model")
        if (self.num_shared_experts == 0) != (self.shared_ffn == 0):
            raise ConfigError("shared_ffn", f"num_shared_experts ({self.num_shared_experts}) and shared_ffn "
                              f"({self.shared_ffn}) must both be 0 or both positive")
        if self.shared_expert_gate and not self.num_shared_experts:
            raise ConfigError("shared_expert_gate", "shared_expert_gate is set but there is no shared expert")
        if not self.num_moe_layers:
            raise ConfigError("first_dense_layers", f"no MoE layer: first_dense_layers ({self.first_dense_layers}) "
                              f"and moe_every ({self.moe_every}) leave none of the {self.num_layers} layers")

    # -- structure ---------------------------------------------------------------------------------

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def has_rope(self) -> bool:
        """Whether queries and keys are rotated (RoPE with base ``rope_theta``)."""
        return self.rope_theta > 0

    def is_moe_layer(self, layer: int) -> bool:
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} is outside 0..{self.num_layers - 1}")
        if not self.is_moe or layer < self.first_dense_layers:
            return False
        return (layer - self.first_dense_layers) % self.moe_every == self.moe_every - 1

    @property
    def moe_layers(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.num_layers) if self.is_moe_layer(i))

    @property
    def num_moe_layers(self) -> int:
        """``len(moe_layers)`` in constant time."""
        if not self.is_moe or self.num_layers <= self.first_dense_layers:
            return 0
        return (self.num_layers - self.first_dense_layers) // self.moe_every

    @property
    def has_dense_layers(self) -> bool:
        return self.num_moe_layers < self.num_layers

    @property
    def attention(self) -> str:
        """``"MLA"``, ``"MHA"`` (one query head per KV head), ``"MQA"`` (one KV head) or ``"GQA"``."""
        if self.mla is not None:
            return "MLA"
        if self.num_kv_heads == self.num_heads:
            return "MHA"
        return "MQA" if self.num_kv_heads == 1 else "GQA"

    @property
    def group_size(self) -> int:
        """Query heads per KV head (GQA degree); 1 for MHA. For MLA all heads share one latent."""
        return self.num_heads if self.mla is not None else self.num_heads // self.num_kv_heads

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of K (and of V) per token; for MLA, of the cached latent plus the RoPE key."""
        return self.mla.cache_dim if self.mla is not None else self.num_kv_heads * self.head_dim

    # -- sizes ---------------------------------------------------------------------------------------

    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token adds over all layers: K and V (MLA: the latent and RoPE key)."""
        per_layer = self.kv_dim if self.mla is not None else 2 * self.kv_dim
        return per_layer * self.num_layers * self.dtype.itemsize_B

    def kv_bytes(self, context_tokens: int) -> int:
        """KV-cache bytes of one request holding ``context_tokens`` tokens (capped by a sliding window)."""
        cached = min(context_tokens, self.sliding_window) if self.sliding_window else context_tokens
        return cached * self.kv_bytes_per_token

    def param_counts(self) -> ParamCounts:
        """Parameters by component (matrices, biases, norm weights, embeddings)."""
        h, m = self.hidden_size, self.ffn_act.num_matrices
        norm = self.norm.params_per_dim * h
        n_moe = self.num_moe_layers
        expert = m * h * self.expert_ffn
        shared = self.num_shared_experts * m * h * self.shared_ffn + (h if self.shared_expert_gate else 0)
        return ParamCounts(
            embeddings=(self.vocab_size + self.learned_positions) * h,
            lm_head=0 if self.tie_word_embeddings else self.vocab_size * h,
            attention=self.num_layers * self.attention_params_per_layer,
            norms=(2 * self.num_layers + 1) * norm,
            dense_ffn=(self.num_layers - n_moe) * m * h * self.dense_ffn,
            routers=n_moe * self.num_experts * h,
            experts=n_moe * self.num_experts * expert,
            experts_active=n_moe * self.top_k * expert,
            shared_experts=n_moe * shared,
        )

    @property
    def attention_params_per_layer(self) -> int:
        h, d = self.hidden_size, self.head_dim
        if self.mla is not None:
            a, heads = self.mla, self.num_heads
            q = h * heads * a.qk_head_dim if a.q_lora_rank == 0 else (
                h * a.q_lora_rank + a.q_lora_rank + a.q_lora_rank * heads * a.qk_head_dim)
            kv = h * a.cache_dim + a.kv_lora_rank + a.kv_lora_rank * heads * (a.qk_nope_head_dim + a.v_head_dim)
            return q + kv + heads * a.v_head_dim * h
        qkv = self.q_dim + 2 * self.num_kv_heads * d
        params = h * qkv + self.q_dim * h
        if self.qkv_bias:
            params += qkv
        if self.qk_norm is QKNorm.PER_HEAD:
            params += 2 * d
        elif self.qk_norm is QKNorm.FULL:
            params += self.q_dim + self.num_kv_heads * d
        return params

    @property
    def params_total(self) -> int:
        return self.param_counts().total

    @property
    def params_active(self) -> int:
        """Parameters one token uses: all but the routed experts it is not sent to."""
        return self.param_counts().active

    @property
    def weight_bytes(self) -> int:
        return self.params_total * self.dtype.itemsize_B


# Upper bounds, each far past any published model, so that a config's sizes stay in the range the
# arithmetic (numpy int64 token counts, per-layer structures) is meant for.
_MAX_COUNT: dict[str, int] = {"num_layers": 10_000, "num_experts": 65_536, "top_k": 65_536, "num_heads": 65_536,
                              "num_kv_heads": 65_536, "num_shared_experts": 65_536, "vocab_size": 2**24,
                              "moe_every": 10_000, "first_dense_layers": 10_000}
_MAX_NORM_EPS = 0.1  # published models use 1e-6 .. 1e-5
_MAX_SIZE = 2**24  # any width (hidden size, head dim, FFN widths, windows, positions)


def _check_count(name: str, value: object, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else "an integer >= 0"
        raise ConfigError(name, f"{name} must be {kind}, got {value!r}")
    limit = _MAX_COUNT.get(name, _MAX_SIZE)
    if value > limit:
        raise ConfigError(name, f"{name} is {value}, more than the {limit} opbsim takes")


def _check_real(name: str, value: object, *, positive: bool) -> float:
    try:
        finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an int past the float range
        finite = False
    if not finite or value < 0 or (positive and value == 0):
        kind = "a finite number > 0" if positive else "a finite number >= 0"
        raise ConfigError(name, f"{name} must be {kind}, got {value!r}")
    return float(value)
