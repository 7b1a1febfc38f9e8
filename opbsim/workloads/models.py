"""Model configurations: the shapes of a decoder-only transformer, dense or Mixture-of-Experts.

A ``ModelConfig`` is the single description every later stage reads. Sizes are element counts
(``hidden_size``, ``head_dim``, ``expert_ffn`` ...); byte counts carry ``_B`` in their names. Weights
are stored as ``weight_dtype`` (default: fp8_e4m3 when ``weight_quant`` says the checkpoint is fp8, else
``dtype``; fp8 matrices carry block scales, weight_format.py) and the KV cache as ``kv_dtype`` (default
``dtype``); either is ``dtype`` or fp8_e4m3. ``param_counts`` does not depend on them.

Layer ``i`` (0-based) is a MoE layer iff the model has routed experts, ``i >= first_dense_layers``
and ``(i - first_dense_layers) % moe_every == moe_every - 1``; every other layer has a dense FFN
of width ``dense_ffn``. (Qwen's ``decoder_sparse_step`` and DeepSeek's ``moe_layer_freq = 1``
follow this rule; GLaM's "every 2nd layer" makes layers 1, 3, 5, ... MoE.)

Three constants fix the values a layer computes rather than its shape: ``rope_theta`` (the RoPE
base; 0.0 for a model without rotary positions), ``norm_eps`` (the epsilon of every RMSNorm or
LayerNorm) and ``norm_topk_prob`` (whether a token's top-k routing weights are renormalised to sum
to 1 before the expert outputs are combined). ``rope_scaling`` records how a long-context model
rescales its RoPE frequencies; it changes rotation angles only, and no computation here applies it.

Per-layer attention: with ``sliding_window`` (or ``attention_chunk_size``) set, every layer is
windowed (chunked) except those in ``full_attention_layers`` (gpt-oss alternates; Llama 4's layers
without RoPE attend to everything). ``nope_layers`` skip RoPE. Entries of either at or past
``num_layers`` are dropped: a model cut to its first layers keeps their pattern. ``weight_quant`` records how the
checkpoint stores its weights (applied when ``weight_dtype`` is fp8_e4m3; an fp8 model without one gets
DeepSeek-V3's 128 x 128 blocks over every projection) and ``mtp_modules`` the multi-token-prediction modules it ships
(DeepSeek-V3: 1); neither is part of the model as run here, and ``param_counts`` counts neither.
The enums and sub-configurations live in model_parts.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opbsim.isa.types import DType
from opbsim.workloads.model_parts import (
    MAX_NORM_EPS,
    MLA,
    ROPE_SCALING_KINDS,
    AttentionKind,
    ConfigError,
    FFNAct,
    Norm,
    ParamCounts,
    QKNorm,
    QueryTemperature,
    RopeScaling,
    Router,
    RouterScoring,
    WeightQuant,
    check_count,
    check_real,
)
from opbsim.workloads.weight_format import expert_weight_bytes, fp8_weight_bytes, resolve_formats

__all__ = ["FFNAct", "Norm", "QKNorm", "MLA", "RopeScaling", "ROPE_SCALING_KINDS", "ModelConfig", "ParamCounts",
           "ConfigError", "Router", "RouterScoring", "WeightQuant", "QueryTemperature", "AttentionKind"]


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
    router: Router = Router()
    expert_bias: bool = False
    o_bias: bool = False
    attention_sinks: bool = False
    attention_chunk_size: int = 0
    full_attention_layers: tuple[int, ...] = ()
    nope_layers: tuple[int, ...] = ()
    query_temperature: QueryTemperature | None = None
    weight_quant: WeightQuant | None = None
    mtp_modules: int = 0
    dtype: DType = DType.BF16
    weight_dtype: DType | None = None
    kv_dtype: DType | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "vocab_size"):
            check_count(name, getattr(self, name))
        for name in ("dense_ffn", "num_experts", "top_k", "expert_ffn", "num_shared_experts", "shared_ffn",
                     "first_dense_layers", "sliding_window", "learned_positions", "attention_chunk_size",
                     "mtp_modules"):
            check_count(name, getattr(self, name), minimum=0)
        check_count("moe_every", self.moe_every)
        object.__setattr__(self, "rope_theta", check_real("rope_theta", self.rope_theta, positive=False))
        object.__setattr__(self, "norm_eps", check_real("norm_eps", self.norm_eps, positive=True))
        if self.norm_eps > MAX_NORM_EPS:
            raise ConfigError("norm_eps", f"norm_eps must be at most {MAX_NORM_EPS} (it guards the norm's division; "
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
            if self.qkv_bias or self.o_bias or self.attention_sinks or self.qk_norm is not QKNorm.NONE:
                raise ConfigError("mla", "MLA takes none of qkv_bias, o_bias, attention_sinks, qk_norm")
            if not self.rope_theta:
                raise ConfigError("rope_theta", "MLA needs rope_theta > 0 (its shared RoPE key), got 0.0")
        if not isinstance(self.dtype, DType):
            raise ConfigError("dtype", f"dtype must be a DType, got {self.dtype!r}")
        self._check_attention_layout()
        self._check_parts()
        resolve_formats(self)

    def _check_attention_layout(self) -> None:
        had_nope = bool(self.nope_layers)
        for name in ("full_attention_layers", "nope_layers"):
            layers = getattr(self, name)
            if (not isinstance(layers, tuple) or any(isinstance(i, bool) or not isinstance(i, int) for i in layers)
                    or list(layers) != sorted(set(layers)) or any(i < 0 for i in layers)):
                raise ConfigError(name, f"{name} must be a sorted tuple of distinct layer indices >= 0, "
                                  f"got {layers!r}")
            # a model cut to its first layers (``replace(model, num_layers=n)``) keeps their pattern
            object.__setattr__(self, name, tuple(i for i in layers if i < self.num_layers))
        if self.sliding_window and self.attention_chunk_size:
            raise ConfigError("attention_chunk_size", "attention_chunk_size and sliding_window exclude each other")
        if self.full_attention_layers and not (self.sliding_window or self.attention_chunk_size):
            raise ConfigError("full_attention_layers", "full_attention_layers without a sliding_window or "
                              "attention_chunk_size (every layer is already full)")
        if self.nope_layers and not self.has_rope:
            raise ConfigError("nope_layers", "nope_layers in a model without RoPE (rope_theta 0.0)")
        if self.query_temperature is not None and not isinstance(self.query_temperature, QueryTemperature):
            raise ConfigError("query_temperature", f"query_temperature must be a QueryTemperature or None, "
                              f"got {self.query_temperature!r}")
        if self.query_temperature is not None and not had_nope:
            raise ConfigError("query_temperature", "query_temperature applies to nope_layers, and there are none")

    def _check_parts(self) -> None:
        for name in ("expert_bias", "o_bias", "attention_sinks"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.router, Router):
            raise ConfigError("router", f"router must be a Router, got {self.router!r}")
        if not self.is_moe and (self.router != Router() or self.expert_bias):
            raise ConfigError("router" if self.router != Router() else "expert_bias",
                              "a router or expert biases in a dense model (num_experts 0)")
        if self.is_moe and self.num_experts % self.router.n_group:
            raise ConfigError("n_group", f"n_group ({self.router.n_group}) does not divide num_experts "
                              f"({self.num_experts})")
        if self.is_moe and self.top_k > self.router.topk_group * (self.num_experts // self.router.n_group):
            raise ConfigError("topk_group", f"top_k ({self.top_k}) exceeds the experts of topk_group "
                              f"({self.router.topk_group}) groups of {self.num_experts // self.router.n_group}")
        if self.ffn_act is FFNAct.SWIGLU_OAI and self.norm is not Norm.RMS:
            raise ConfigError("ffn_act", "swiglu_oai comes with RMSNorm only (gpt-oss)")
        if self.weight_quant is not None and not isinstance(self.weight_quant, WeightQuant):
            raise ConfigError("weight_quant", f"weight_quant must be a WeightQuant or None, got {self.weight_quant!r}")
        if self.weight_quant is not None and self.weight_quant.scope == "experts" and not self.is_moe:
            raise ConfigError("weight_quant", "expert-only weight quantization in a dense model")

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

    def layer_attention(self, layer: int) -> AttentionKind:
        """Which keys the queries of ``layer`` see."""
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} is outside 0..{self.num_layers - 1}")
        if layer in self.full_attention_layers:
            return AttentionKind.FULL
        if self.sliding_window:
            return AttentionKind.SLIDING
        return AttentionKind.CHUNKED if self.attention_chunk_size else AttentionKind.FULL

    def layer_has_rope(self, layer: int) -> bool:
        return self.has_rope and layer not in self.nope_layers

    def cached_tokens(self, layer: int, context_tokens: int) -> int:
        """KV-cache entries ``layer`` keeps for a request of ``context_tokens`` tokens: a sliding window
        keeps the window, a chunked layer the tokens of the current chunk (at most the chunk)."""
        kind = self.layer_attention(layer)
        if kind is AttentionKind.SLIDING:
            return min(context_tokens, self.sliding_window)
        if kind is AttentionKind.CHUNKED:
            return min(context_tokens, self.attention_chunk_size)
        return context_tokens

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
        return per_layer * self.num_layers * self.kv_dtype.itemsize_B

    def kv_bytes(self, context_tokens: int) -> int:
        """KV-cache bytes of one request holding ``context_tokens`` tokens (each layer capped by its
        window or chunk, ``cached_tokens``)."""
        windowed = self.sliding_window or self.attention_chunk_size
        if not windowed:
            return context_tokens * self.kv_bytes_per_token
        full = len(self.full_attention_layers)
        cached = full * context_tokens + (self.num_layers - full) * min(context_tokens, windowed)
        return cached * self.kv_bytes_per_token // self.num_layers

    def param_counts(self) -> ParamCounts:
        """Parameters by component (matrices, biases, norm weights, embeddings)."""
        h, m = self.hidden_size, self.ffn_act.num_matrices
        norm = self.norm.params_per_dim * h
        n_moe = self.num_moe_layers
        expert = m * h * self.expert_ffn + (self.expert_ffn * (m - 1) + h if self.expert_bias else 0)
        shared = self.num_shared_experts * m * h * self.shared_ffn + (h if self.shared_expert_gate else 0)
        return ParamCounts(
            embeddings=(self.vocab_size + self.learned_positions) * h,
            lm_head=0 if self.tie_word_embeddings else self.vocab_size * h,
            attention=self.num_layers * self.attention_params_per_layer,
            norms=(2 * self.num_layers + 1) * norm,
            dense_ffn=(self.num_layers - n_moe) * m * h * self.dense_ffn,
            routers=n_moe * self.router.params(self.num_experts, h),
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
        params = h * qkv + self.q_dim * h + self.o_bias * h + self.attention_sinks * self.num_heads
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
        """Bytes of all weights as stored: ``dtype`` bytes per parameter, except the fp8 matrices (one
        byte each plus their block scales, weight_format.py)."""
        elems, fp8_B = fp8_weight_bytes(self)
        return (self.params_total - elems) * self.dtype.itemsize_B + fp8_B

    @property
    def expert_weight_bytes(self) -> int:
        """Bytes of the routed experts' weights as stored (part of ``weight_bytes``)."""
        return expert_weight_bytes(self)
