"""The config.json families: how each ``model_type`` names its keys.

Each family reads the keys it knows and returns ``ModelConfig`` keyword arguments together with the
config.json key behind each field (so a ``ModelConfig`` check can name the file's key). An absent
optional key takes the meaning ``transformers`` gives it where that meaning is not an arbitrary
constant (``num_key_value_heads`` absent means MHA in Llama, OLMoE and DeepSeek; Mixtral's default
of 8 is such a constant, so there the key is required). The numerical constants ``rope_theta``,
``rms_norm_eps``, ``norm_topk_prob`` and DBRX's ``moe_normalize_expert_weights`` take the family's
class default when absent: that is the value the modelling code runs a file without the key with,
and real files omit them (Llama 2's config.json has no ``rope_theta``, DBRX's no
``moe_normalize_expert_weights``). RoPE keys are read by hf_rope.py: a frequency rescaling is
recorded (it changes no cost), partial RoPE is rejected. A sliding window no request can exceed
(at least ``max_position_embeddings``) is no window.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from opbsim.workloads.hf_reader import REQUIRED, Reader, quoted
from opbsim.workloads.hf_rope import read_rope
from opbsim.workloads.models import MLA, FFNAct, Norm, QKNorm

__all__ = ["FAMILIES", "Family"]

Family = Callable[[Reader], tuple[dict, dict[str, str]]]

FAMILIES: dict[str, tuple[tuple[str, ...], Family]] = {}
"""``model_type`` -> (the ``architectures`` names it may list, its parser)."""

_GATED = {"silu": FFNAct.SWIGLU, "swish": FFNAct.SWIGLU, "gelu": FFNAct.GEGLU,
          "gelu_pytorch_tanh": FFNAct.GEGLU, "gelu_new": FFNAct.GEGLU}

_BASE_KEYS = {"hidden_size": "hidden_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
              "num_kv_heads": "num_key_value_heads", "head_dim": "head_dim", "vocab_size": "vocab_size",
              "ffn_act": "hidden_act", "rope_theta": "rope_theta", "rope_scaling": "rope_scaling",
              "norm_eps": "rms_norm_eps", "norm_topk_prob": "norm_topk_prob"}

_QWEN_WINDOW = ("sliding_window", "max_window_layers")


def _family(model_type: str, *architectures: str) -> Callable[[Family], Family]:
    def register(fn: Family) -> Family:
        FAMILIES[model_type] = (architectures, fn)
        return fn

    return register


def _base(r: Reader, *, kv_optional: bool, head_dim: str) -> dict:
    """Attention shape and vocabulary. ``head_dim``: "optional" (absent: hidden / heads),
    "required", or "none" (not a key of this family: hidden / heads)."""
    hidden = r.count("hidden_size")
    heads = r.count("num_attention_heads")
    kv = r.count("num_key_value_heads", heads if kv_optional else REQUIRED)
    if heads % kv:
        raise r.error("num_key_value_heads", f"{kv} does not divide num_attention_heads ({heads})")
    if head_dim == "required" or (head_dim == "optional" and r.data.get("head_dim") is not None):
        dim = r.count("head_dim")
    else:
        if head_dim == "optional":
            r.ignore(("head_dim",))
        if hidden % heads:
            raise r.error("hidden_size", f"{hidden} is not a multiple of num_attention_heads ({heads})")
        dim = hidden // heads
    return dict(hidden_size=hidden, num_layers=r.count("num_hidden_layers"), num_heads=heads, num_kv_heads=kv,
                head_dim=dim, vocab_size=r.count("vocab_size"))


def _constants(r: Reader, family: str, *, rope_theta: float, norm_eps: float) -> dict:
    """``rope_theta`` (with any ``rope_scaling``, hf_rope.py) and ``norm_eps`` from the file, else the
    family's ``transformers`` defaults."""
    theta, scaling = read_rope(r, family, rope_theta)
    return dict(rope_theta=theta, rope_scaling=scaling, norm_eps=r.number("rms_norm_eps", norm_eps, positive=True))


def _gated_act(r: Reader, key: str = "hidden_act") -> FFNAct:
    name = r.text(key, "silu")
    if name not in _GATED:
        raise r.error(key, f"{quoted(name)} is not supported for a gated FFN ({', '.join(_GATED)})")
    return _GATED[name]


def _experts(r: Reader, experts: str, top_k: str, ffn: str) -> dict:
    num, k = r.count(experts), r.count(top_k)
    if k > num:
        raise r.error(top_k, f"{k} exceeds {experts} ({num})")
    return dict(num_experts=num, top_k=k, expert_ffn=r.count(ffn))


def _sliding_window(r: Reader) -> int:
    """The attention window in tokens; 0 (none) when absent, null, or at least
    ``max_position_embeddings``: no request is longer than that, so every key stays in the window
    (Qwen1.5 files carry a 32768 window with 32768 positions)."""
    window = r.count("sliding_window", 0, minimum=0)
    longest = r.data.get("max_position_embeddings")
    if window and longest is not None and window >= r.count("max_position_embeddings"):
        return 0
    return window


def _dense_ffn(r: Reader, kwargs: dict, key: str = "intermediate_size") -> int:
    """The dense FFN width if the model has dense layers; otherwise the key is read and unused."""
    if kwargs.get("num_experts", 0) and not kwargs.get("first_dense_layers") and kwargs.get("moe_every", 1) == 1:
        r.ignore((key,))
        return 0
    return r.count(key)


def _qwen_layers(r: Reader, num_layers: int) -> dict:
    """Qwen: layer i is MoE iff i is not in ``mlp_only_layers`` and (i + 1) % decoder_sparse_step == 0."""
    step = r.count("decoder_sparse_step", 1)
    dense = sorted(set(r.int_list("mlp_only_layers")))
    if dense != list(range(len(dense))):
        raise r.error("mlp_only_layers", f"only leading layers 0..k-1 are supported, got {dense}")
    if len(dense) % step:
        raise r.error("mlp_only_layers", f"{len(dense)} leading dense layers with decoder_sparse_step {step} "
                      "is not supported (need a multiple of the step)")
    if len(dense) + step > num_layers:
        key = "mlp_only_layers" if dense else "decoder_sparse_step"
        raise r.error(key, f"leaves no MoE layer among num_hidden_layers ({num_layers}) with "
                      f"{len(dense)} dense layers first and decoder_sparse_step {step}")
    if r.flag("use_sliding_window", False) and _sliding_window(r):
        raise r.error("use_sliding_window", "true is not supported (per-layer sliding windows)")
    r.ignore(_QWEN_WINDOW)
    return dict(first_dense_layers=len(dense), moe_every=step)


def _deepseek_moe(r: Reader, kwargs: dict) -> dict:
    """DeepSeek: layer i is MoE iff n_routed_experts is set, i >= first_k_dense_replace and
    i % moe_layer_freq == 0. MoEGate renormalises the top-k weights iff norm_topk_prob and top_k > 1."""
    r.ignore(("scoring_func", "aux_loss_alpha", "seq_aux"))
    if r.data.get("n_routed_experts") is None:
        r.ignore(("n_routed_experts", "num_experts_per_tok", "moe_intermediate_size", "n_shared_experts",
                  "first_k_dense_replace", "moe_layer_freq", "norm_topk_prob"))
        return {}
    moe = _experts(r, "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size")
    shared = r.count("n_shared_experts", 0, minimum=0)
    first = r.count("first_k_dense_replace", 0, minimum=0)
    freq = r.count("moe_layer_freq", 1)
    if freq != 1:
        raise r.error("moe_layer_freq", f"{freq} is not supported (only 1: every layer after the dense ones)")
    if first >= kwargs["num_layers"]:
        raise r.error("first_k_dense_replace", f"{first} leaves no MoE layer of num_hidden_layers "
                      f"({kwargs['num_layers']}) although n_routed_experts is set")
    return dict(moe, num_shared_experts=shared, shared_ffn=moe["expert_ffn"] if shared else 0,
                first_dense_layers=first, norm_topk_prob=r.flag("norm_topk_prob", False) and moe["top_k"] > 1)


@_family("llama", "LlamaForCausalLM")
def llama(r: Reader) -> tuple[dict, dict[str, str]]:
    kwargs = _base(r, kv_optional=True, head_dim="optional")
    r.reject_true("attention_bias", "biases on q/k/v/o")
    r.reject_true("mlp_bias", "biases in the MLP")
    kwargs.update(_constants(r, "llama", rope_theta=10000.0, norm_eps=1e-6))
    return dict(kwargs, ffn_act=_gated_act(r), dense_ffn=r.count("intermediate_size")), dict(
        _BASE_KEYS, dense_ffn="intermediate_size")


@_family("mistral", "MistralForCausalLM")
def mistral(r: Reader) -> tuple[dict, dict[str, str]]:
    kwargs = _base(r, kv_optional=False, head_dim="optional")
    kwargs.update(_constants(r, "mistral", rope_theta=10000.0, norm_eps=1e-6))
    return dict(kwargs, ffn_act=_gated_act(r), dense_ffn=r.count("intermediate_size"),
                sliding_window=_sliding_window(r)), dict(_BASE_KEYS, dense_ffn="intermediate_size")


@_family("mixtral", "MixtralForCausalLM")
def mixtral(r: Reader) -> tuple[dict, dict[str, str]]:
    kwargs = _base(r, kv_optional=False, head_dim="optional")
    kwargs.update(_experts(r, "num_local_experts", "num_experts_per_tok", "intermediate_size"))
    kwargs.update(_constants(r, "mixtral", rope_theta=1e6, norm_eps=1e-5))
    # MixtralSparseMoeBlock divides the top-k softmax weights by their sum: no key, always renormalised.
    return dict(kwargs, norm_topk_prob=True, ffn_act=_gated_act(r), sliding_window=_sliding_window(r)), dict(
        _BASE_KEYS, num_experts="num_local_experts", top_k="num_experts_per_tok", expert_ffn="intermediate_size")


@_family("qwen2_moe", "Qwen2MoeForCausalLM")
def qwen2_moe(r: Reader) -> tuple[dict, dict[str, str]]:
    """Qwen2-MoE (Qwen1.5-MoE): q/k/v biases and one sigmoid-gated shared expert, fixed in the code."""
    kwargs = _base(r, kv_optional=False, head_dim="none")
    kwargs.update(_experts(r, "num_experts", "num_experts_per_tok", "moe_intermediate_size"))
    kwargs.update(_qwen_layers(r, kwargs["num_layers"]))
    shared = r.count("shared_expert_intermediate_size", minimum=0)
    kwargs.update(num_shared_experts=1 if shared else 0, shared_ffn=shared, shared_expert_gate=bool(shared),
                  qkv_bias=True, ffn_act=_gated_act(r), norm_topk_prob=r.flag("norm_topk_prob", False))
    kwargs.update(_constants(r, "qwen2_moe", rope_theta=10000.0, norm_eps=1e-6))
    kwargs["dense_ffn"] = _dense_ffn(r, kwargs)
    return kwargs, dict(_BASE_KEYS, num_experts="num_experts", top_k="num_experts_per_tok",
                        expert_ffn="moe_intermediate_size", shared_ffn="shared_expert_intermediate_size",
                        dense_ffn="intermediate_size", first_dense_layers="mlp_only_layers",
                        moe_every="decoder_sparse_step")


@_family("qwen3_moe", "Qwen3MoeForCausalLM")
def qwen3_moe(r: Reader) -> tuple[dict, dict[str, str]]:
    """Qwen3-MoE: RMSNorm per head on q and k, no shared expert; head_dim is required (its
    ``transformers`` default, 128, is a constant, not hidden / heads)."""
    kwargs = _base(r, kv_optional=False, head_dim="required")
    kwargs.update(_experts(r, "num_experts", "num_experts_per_tok", "moe_intermediate_size"))
    kwargs.update(_qwen_layers(r, kwargs["num_layers"]))
    r.reject_true("attention_bias", "biases on q/k/v/o")
    kwargs.update(qk_norm=QKNorm.PER_HEAD, ffn_act=_gated_act(r), norm_topk_prob=r.flag("norm_topk_prob", False))
    kwargs.update(_constants(r, "qwen3_moe", rope_theta=10000.0, norm_eps=1e-6))
    kwargs["dense_ffn"] = _dense_ffn(r, kwargs)
    return kwargs, dict(_BASE_KEYS, num_experts="num_experts", top_k="num_experts_per_tok",
                        expert_ffn="moe_intermediate_size", dense_ffn="intermediate_size",
                        first_dense_layers="mlp_only_layers", moe_every="decoder_sparse_step")


@_family("olmoe", "OlmoeForCausalLM")
def olmoe(r: Reader) -> tuple[dict, dict[str, str]]:
    """OLMoE: RMSNorm over the full q and k widths; ``clip_qkv`` clamps values and changes no shape."""
    kwargs = _base(r, kv_optional=True, head_dim="none")
    kwargs.update(_experts(r, "num_experts", "num_experts_per_tok", "intermediate_size"))
    r.reject_true("attention_bias", "biases on q/k/v/o")
    r.ignore(("clip_qkv",))
    kwargs.update(_constants(r, "olmoe", rope_theta=10000.0, norm_eps=1e-5))
    kwargs.update(qk_norm=QKNorm.FULL, ffn_act=_gated_act(r), norm_topk_prob=r.flag("norm_topk_prob", False))
    return kwargs, dict(
        _BASE_KEYS, num_experts="num_experts", top_k="num_experts_per_tok", expert_ffn="intermediate_size")


@_family("deepseek", "DeepseekForCausalLM")
def deepseek(r: Reader) -> tuple[dict, dict[str, str]]:
    """DeepSeekMoE (v1): shared experts of the routed experts' width; the first layers dense."""
    kwargs = _base(r, kv_optional=True, head_dim="none")
    kwargs.update(_deepseek_moe(r, kwargs))
    r.reject_true("attention_bias", "biases on q/k/v/o")
    kwargs.update(_constants(r, "deepseek", rope_theta=10000.0, norm_eps=1e-6))
    kwargs.update(ffn_act=_gated_act(r), dense_ffn=_dense_ffn(r, kwargs))
    return kwargs, _DEEPSEEK_KEYS


def mla_base(r: Reader) -> dict:
    """The shape keys of a DeepSeek MLA config (V2 and V3 alike): heads, the MLA ranks and head dims."""
    hidden, heads = r.count("hidden_size"), r.count("num_attention_heads")
    kv = r.count("num_key_value_heads", heads)
    if kv != heads:
        raise r.error("num_key_value_heads", f"{kv} contradicts MLA (equal to num_attention_heads, {heads})")
    mla = MLA(q_lora_rank=r.count("q_lora_rank", 0, minimum=0), kv_lora_rank=r.count("kv_lora_rank"),
              qk_nope_head_dim=r.count("qk_nope_head_dim"), qk_rope_head_dim=r.count("qk_rope_head_dim"),
              v_head_dim=r.count("v_head_dim"))
    return dict(hidden_size=hidden, num_layers=r.count("num_hidden_layers"), num_heads=heads, num_kv_heads=heads,
                head_dim=mla.qk_head_dim, vocab_size=r.count("vocab_size"), mla=mla)


@_family("deepseek_v2", "DeepseekV2ForCausalLM")
def deepseek_v2(r: Reader) -> tuple[dict, dict[str, str]]:
    """DeepSeek-V2: DeepSeekMoE layers with multi-head latent attention."""
    kwargs = mla_base(r)
    kwargs.update(_deepseek_moe(r, kwargs))
    r.reject_true("attention_bias", "biases on q/k/v/o")
    r.ignore(("topk_method", "n_group", "topk_group", "routed_scaling_factor", "ep_size"))
    kwargs.update(_constants(r, "deepseek_v2", rope_theta=10000.0, norm_eps=1e-6))
    kwargs.update(ffn_act=_gated_act(r), dense_ffn=_dense_ffn(r, kwargs))
    return kwargs, _DEEPSEEK_KEYS


_DEEPSEEK_KEYS = dict(_BASE_KEYS, num_experts="n_routed_experts", top_k="num_experts_per_tok",
                      expert_ffn="moe_intermediate_size", num_shared_experts="n_shared_experts",
                      shared_ffn="moe_intermediate_size", dense_ffn="intermediate_size",
                      first_dense_layers="first_k_dense_replace")


@_family("dbrx", "DbrxForCausalLM")
def dbrx(r: Reader) -> tuple[dict, dict[str, str]]:
    """DBRX: top-level ``d_model``/``n_layers``/``n_heads``, the rest nested in ``attn_config`` and
    ``ffn_config``; LayerNorm without bias (nn.LayerNorm's epsilon, 1e-5: no key); fused Wqkv without
    bias; the top-k weights divided by their ``moe_normalize_expert_weights``-norm (absent: 1.0)."""
    hidden, heads = r.count("d_model"), r.count("n_heads")
    attn, ffn = r.section("attn_config"), r.section("ffn_config")
    kv = attn.count("kv_n_heads")
    if heads % kv:
        raise attn.error("kv_n_heads", f"{kv} does not divide n_heads ({heads})")
    if hidden % heads:
        raise r.error("d_model", f"{hidden} is not a multiple of n_heads ({heads})")
    num, k = ffn.count("moe_num_experts"), ffn.count("moe_top_k")
    if k > num:
        raise ffn.error("moe_top_k", f"{k} exceeds moe_num_experts ({num})")
    act = ffn.get("ffn_act_fn", {"name": "silu"})
    if not isinstance(act, dict) or act.get("name") not in _GATED or set(act) - {"name"}:
        raise ffn.error("ffn_act_fn", f"expected {{\"name\": \"silu\"}} (or gelu), got {quoted(act)}")
    kwargs = dict(hidden_size=hidden, num_layers=r.count("n_layers"), num_heads=heads, num_kv_heads=kv,
                  head_dim=hidden // heads, vocab_size=r.count("vocab_size"), num_experts=num, top_k=k,
                  expert_ffn=ffn.count("ffn_hidden_size"), ffn_act=_GATED[act["name"]], norm=Norm.LAYER_NO_BIAS,
                  norm_eps=1e-5, rope_theta=attn.number("rope_theta", 10000.0, positive=True),
                  norm_topk_prob=_dbrx_renormalise(ffn))
    attn.ignore(("clip_qkv", "attn_pdrop", "model_type"))
    ffn.ignore(("moe_jitter_eps", "moe_loss_weight", "uniform_expert_assignment", "model_type"))
    attn.check_unknown("dbrx")
    ffn.check_unknown("dbrx")
    r.ignore(("max_seq_len",))
    return kwargs, dict(hidden_size="d_model", num_layers="n_layers", num_heads="n_heads",
                        num_kv_heads="attn_config.kv_n_heads", head_dim="d_model", vocab_size="vocab_size",
                        num_experts="ffn_config.moe_num_experts", top_k="ffn_config.moe_top_k",
                        expert_ffn="ffn_config.ffn_hidden_size", ffn_act="ffn_config.ffn_act_fn",
                        rope_theta="attn_config.rope_theta",
                        norm_topk_prob="ffn_config.moe_normalize_expert_weights")


def _dbrx_renormalise(ffn: Reader) -> bool:
    """DbrxRouter divides the top-k weights by their p-norm, p = ``moe_normalize_expert_weights``
    (absent: DbrxFFNConfig's default 1.0; null: no division). p = 1 is the sum, i.e. renormalising."""
    key = "moe_normalize_expert_weights"
    if key not in ffn.data:
        return True
    p = ffn.get(key, None)
    if p is None:
        return False
    if isinstance(p, bool) or not isinstance(p, (int, float)) or p != 1:
        raise ffn.error(key, f"{json.dumps(p)} is not supported (1: divide by the sum, or null: no division)")
    return True
