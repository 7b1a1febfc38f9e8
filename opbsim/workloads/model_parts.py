"""The parts a ``ModelConfig`` is built from: enums, sub-configurations and the checks they share.

Each part validates itself at construction and raises ``ConfigError`` naming the ``ModelConfig`` field
it belongs to, with one exact line.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from opbsim.errors import InputError

__all__ = ["ConfigError", "ParamCounts", "FFNAct", "SWIGLU_OAI_ALPHA", "SWIGLU_OAI_LIMIT", "Norm", "QKNorm", "MLA",
           "ROPE_SCALING_KINDS", "RopeScaling", "RouterScoring", "Router", "WEIGHT_QUANT_KINDS", "WEIGHT_QUANT_SCOPES",
           "WeightQuant", "QueryTemperature", "AttentionKind", "MAX_NORM_EPS", "check_count", "check_real"]


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
    # gpt-oss (transformers models/gpt_oss/modeling_gpt_oss.py, GptOssExperts): with g = x Wg, u = x Wu,
    # g' = min(g, 7.0), u' = clamp(u, -7.0, 7.0), the output is ((u' + 1) * g' * sigmoid(1.702 g')) Wd.
    # 1.702 is SWIGLU_OAI_ALPHA, 7.0 SWIGLU_OAI_LIMIT (config.json ``swiglu_limit``).
    SWIGLU_OAI = "swiglu_oai"

    @property
    def gated(self) -> bool:
        return self in (FFNAct.SWIGLU, FFNAct.GEGLU, FFNAct.SWIGLU_OAI)

    @property
    def num_matrices(self) -> int:
        return 3 if self.gated else 2


SWIGLU_OAI_ALPHA = 1.702
SWIGLU_OAI_LIMIT = 7.0


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
    # no weight: x / sqrt(mean(x^2) + norm_eps) per head, on the layers with RoPE only (Llama 4 Scout's
    # Llama4TextL2Norm, ``use_qk_norm``)
    PER_HEAD_UNWEIGHTED = "per_head_unweighted"


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
        check_count("q_lora_rank", self.q_lora_rank, minimum=0)
        for name in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            check_count(name, getattr(self, name))

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def cache_dim(self) -> int:
        """Elements cached per token and layer: the latent and the shared RoPE key."""
        return self.kv_lora_rank + self.qk_rope_head_dim


ROPE_SCALING_KINDS = ("linear", "dynamic", "yarn", "longrope", "llama3")
"""The ``rope_type`` values of ``transformers`` (modeling_rope_utils) that rescale frequencies."""

_ROPE_REQUIRED = {"linear": ("factor",), "yarn": ("factor", "original_max_position_embeddings"),
                  "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}


@dataclass(frozen=True, slots=True, kw_only=True)
class RopeScaling:
    """A rescaling of the RoPE frequencies for long contexts (``rope_scaling`` of a config.json), with
    the parameters of its kind as transformers' modeling_rope_utils reads them (defaults likewise):
    ``kind`` one of ``ROPE_SCALING_KINDS``; ``factor`` the context extension (None where the file gives
    none, as LongRoPE's per-dimension factors); ``original_max_position_embeddings`` (tokens) the
    pretraining context (llama3, yarn); ``low_freq_factor`` / ``high_freq_factor`` (llama3);
    ``beta_fast`` / ``beta_slow`` the rotation counts bounding YaRN's ramp (transformers' ``or 32`` /
    ``or 1``: 0 means the default); ``truncate`` rounds YaRN's correction range to integers;
    ``attention_factor`` (YaRN's cos/sin factor; None: from ``mscale`` / ``mscale_all_dim``);
    ``mscale`` / ``mscale_all_dim`` DeepSeek's (None: absent). linear, llama3 and yarn are applied
    (the table of isa/rope_freq.py); dynamic and longrope are refused by the compiler. No kind changes
    a shape, an op or its cost."""

    kind: str
    factor: float | None = None
    original_max_position_embeddings: int | None = None
    low_freq_factor: float | None = None
    high_freq_factor: float | None = None
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    truncate: bool = True
    attention_factor: float | None = None
    mscale: float | None = None
    mscale_all_dim: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ROPE_SCALING_KINDS:
            raise ConfigError("rope_scaling", f"rope_scaling kind must be one of {', '.join(ROPE_SCALING_KINDS)}, "
                              f"got {self.kind!r}")
        for name in ("factor", "low_freq_factor", "high_freq_factor", "attention_factor"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_real(f"rope_scaling {name}", getattr(self, name), positive=True))
        for name in ("mscale", "mscale_all_dim"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_real(f"rope_scaling {name}", getattr(self, name), positive=False))
        for name, default in (("beta_fast", 32.0), ("beta_slow", 1.0)):  # transformers: ``get(name) or default``
            value = check_real(f"rope_scaling {name}", getattr(self, name), positive=False)
            object.__setattr__(self, name, value or default)
        if self.original_max_position_embeddings is not None:
            check_count("rope_scaling original_max_position_embeddings", self.original_max_position_embeddings)
        if not isinstance(self.truncate, bool):
            raise ConfigError("rope_scaling", f"rope_scaling truncate must be True or False, got {self.truncate!r}")
        missing = [n for n in _ROPE_REQUIRED.get(self.kind, ()) if getattr(self, n) is None]
        if missing:
            raise ConfigError("rope_scaling", f"rope_scaling {self.kind!r} needs {', '.join(missing)}")
        if self.kind == "llama3" and not self.low_freq_factor < self.high_freq_factor:
            raise ConfigError("rope_scaling", f"rope_scaling low_freq_factor ({self.low_freq_factor:g}) must be below "
                              f"high_freq_factor ({self.high_freq_factor:g})")

    def __str__(self) -> str:
        return self.kind if self.factor is None else f"{self.kind} x{self.factor:g}"


class RouterScoring(enum.Enum):
    """How a MoE router turns a token's expert logits ``z`` (``x W_router`` plus ``b_router`` where
    ``Router.bias``) into the chosen experts and their weights."""

    SOFTMAX = "softmax"  # p = softmax(z) over all experts; the top_k of p, weighted by p (Mixtral, Qwen, DeepSeek-V2)
    SIGMOID = "sigmoid"  # s = sigmoid(z); the top_k of s (+ correction bias), weighted by s (DeepSeek-V3, Llama 4)
    SOFTMAX_TOPK = "softmax_topk"  # the top_k of z, weighted by softmax over those k logits only (gpt-oss)


@dataclass(frozen=True, slots=True, kw_only=True)
class Router:
    """The MoE router of every MoE layer. The default is the softmax router every model before 2025 uses.

    ``correction_bias`` (SIGMOID only; DeepSeek-V3's ``e_score_correction_bias``, ``topk_method:
    noaux_tc``): one learned value per expert added to s for the choice only; the weights stay s.
    ``n_group`` / ``topk_group``: group-limited top-k (DeepSeek's node-limited routing): the experts
    split into ``n_group`` equal groups; a group's score is the sum of its two largest choice scores
    (noaux_tc); the ``topk_group`` best groups stay and the top_k is taken among their experts.
    ``norm_topk_prob`` of the model then divides the k weights by their sum, and every weight is
    multiplied by ``routed_scaling_factor`` (DeepSeek-V3 2.5). ``bias``: the router projection has a
    bias (gpt-oss). ``weight_on_input``: the weight scales the expert's input row instead of its output
    (Llama 4's Llama4TextMoe multiplies the hidden state by the router score before the experts).
    """

    scoring: RouterScoring = RouterScoring.SOFTMAX
    correction_bias: bool = False
    n_group: int = 1
    topk_group: int = 1
    routed_scaling_factor: float = 1.0
    bias: bool = False
    weight_on_input: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.scoring, RouterScoring):
            raise ConfigError("router", f"router scoring must be a RouterScoring, got {self.scoring!r}")
        for name in ("correction_bias", "bias", "weight_on_input"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError("router", f"router {name} must be True or False, got {getattr(self, name)!r}")
        check_count("n_group", self.n_group)
        check_count("topk_group", self.topk_group)
        if self.topk_group > self.n_group:
            raise ConfigError("topk_group", f"topk_group ({self.topk_group}) exceeds n_group ({self.n_group})")
        if self.n_group == 1 and self.topk_group != 1:
            raise ConfigError("topk_group", f"topk_group is {self.topk_group} without groups (n_group 1)")
        if self.correction_bias and self.scoring is not RouterScoring.SIGMOID:
            raise ConfigError("router", f"a correction bias needs sigmoid scoring, got {self.scoring.value}")
        object.__setattr__(self, "routed_scaling_factor",
                           check_real("routed_scaling_factor", self.routed_scaling_factor, positive=True))

    @property
    def group_limited(self) -> bool:
        return self.n_group > 1

    def params(self, num_experts: int, hidden_size: int) -> int:
        """Parameters of one layer's router: the projection, its bias and the correction bias."""
        return num_experts * (hidden_size + self.bias + self.correction_bias)


WEIGHT_QUANT_KINDS = ("fp8_e4m3", "mxfp4")
"""``fp8_e4m3``: OCP FP8 E4M3 weights with one fp32 scale per ``block`` (DeepSeek-V3 ships 128 x 128
weight blocks, ``quant_method: fp8``); ``mxfp4``: OCP MX FP4 (E2M1) with one E8M0 scale per 32 elements
(gpt-oss's experts, ``quant_method: mxfp4``)."""

WEIGHT_QUANT_SCOPES = ("linear", "experts")
"""The weights a checkpoint stores quantized: ``linear``, every projection of the decoder layers (not the
embeddings, the LM head, the norms or the router: DeepSeek-V3); ``experts``, only the routed experts'
matrices (gpt-oss's ``modules_to_not_convert`` lists attention, router, embeddings and LM head)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightQuant:
    """How a checkpoint stores its weights (``quantization_config``). Applied to bytes when
    ``ModelConfig.weight_dtype`` is fp8_e4m3 (weight_format.py); mxfp4 is recorded only."""

    kind: str
    block: tuple[int, ...]
    scope: str

    def __post_init__(self) -> None:
        if self.kind not in WEIGHT_QUANT_KINDS:
            raise ConfigError("weight_quant", f"weight_quant kind must be one of {', '.join(WEIGHT_QUANT_KINDS)}, "
                              f"got {self.kind!r}")
        if self.scope not in WEIGHT_QUANT_SCOPES:
            raise ConfigError("weight_quant", f"weight_quant scope must be one of {', '.join(WEIGHT_QUANT_SCOPES)}, "
                              f"got {self.scope!r}")
        if not isinstance(self.block, tuple) or not 1 <= len(self.block) <= 2:
            raise ConfigError("weight_quant", f"weight_quant block must be a tuple of 1 or 2 sizes, got {self.block!r}")
        for size in self.block:
            check_count("weight_quant block", size)

    def __str__(self) -> str:
        return f"{self.kind} ({' x '.join(map(str, self.block))} blocks, {self.scope})"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryTemperature:
    """Llama 4's attention temperature tuning on its layers without RoPE: the query of the token at
    position p (0-based) is multiplied by ``log(floor((p + 1) / floor_scale_tokens) + 1) * attn_scale + 1``
    before the scores (Llama4TextAttention, ``attn_temperature_tuning``, ``floor_scale``, ``attn_scale``)."""

    floor_scale_tokens: int
    attn_scale: float

    def __post_init__(self) -> None:
        check_count("floor_scale", self.floor_scale_tokens)
        object.__setattr__(self, "attn_scale", check_real("attn_scale", self.attn_scale, positive=True))


class AttentionKind(enum.Enum):
    """Which keys a layer's queries see."""

    FULL = "full"  # every earlier token
    SLIDING = "sliding"  # the ``sliding_window`` most recent tokens
    CHUNKED = "chunked"  # the tokens of its own ``attention_chunk_size``-aligned chunk (Llama 4)


# Upper bounds, each far past any published model, so that a config's sizes stay in the range the
# arithmetic (numpy int64 token counts, per-layer structures) is meant for.
_MAX_COUNT: dict[str, int] = {"num_layers": 10_000, "num_experts": 65_536, "top_k": 65_536, "num_heads": 65_536,
                              "num_kv_heads": 65_536, "num_shared_experts": 65_536, "vocab_size": 2**24,
                              "moe_every": 10_000, "first_dense_layers": 10_000}
MAX_NORM_EPS = 0.1  # published models use 1e-6 .. 1e-5
_MAX_SIZE = 2**24  # any width (hidden size, head dim, FFN widths, windows, positions)


def check_count(name: str, value: object, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else "an integer >= 0"
        raise ConfigError(name, f"{name} must be {kind}, got {value!r}")
    limit = _MAX_COUNT.get(name, _MAX_SIZE)
    if value > limit:
        raise ConfigError(name, f"{name} is {value}, more than the {limit} opbsim takes")


def check_real(name: str, value: object, *, positive: bool) -> float:
    try:
        finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an int past the float range
        finite = False
    if not finite or value < 0 or (positive and value == 0):
        kind = "a finite number > 0" if positive else "a finite number >= 0"
        raise ConfigError(name, f"{name} must be {kind}, got {value!r}")
    return float(value)

