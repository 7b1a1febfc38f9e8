"""Read a Hugging Face ``config.json`` into a ``ModelConfig``.

Contract: every key of the file is either read, known not to change shapes or per-op cost (listed in
docs/models.md), or rejected. A missing required key, a value of the wrong type, an unknown key, an
unsupported family and contradictory keys each raise ``InputError`` with one line naming the file and
the key: ``<file>: <key>: <problem>`` (nested DBRX keys as ``ffn_config.moe_top_k``). An absent
optional key takes the meaning ``transformers`` gives it; those defaults are listed in docs/models.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from opbsim.errors import InputError
from opbsim.fileio import read_text
from opbsim.jsonin import parse_json
from opbsim.workloads.hf_families import FAMILIES
from opbsim.workloads.hf_families_moe import READS_REJECTED, read_dtype
from opbsim.workloads.hf_reader import Reader, quoted
from opbsim.workloads.models import ConfigError, ModelConfig

__all__ = ["load_hf_config", "parse_hf_config", "COMMON_IGNORED", "REJECTED"]

# Keys of any config.json that change neither shapes nor computed values: token ids, training settings
# (dropout, initialisation, auxiliary losses), generation defaults. (The families read rope_theta,
# rope_scaling, rope_parameters, partial_rotary_factor and rms_norm_eps; no family reads layer_norm_eps.)
COMMON_IGNORED = frozenset({
    "_name_or_path", "transformers_version", "auto_map", "bos_token_id", "eos_token_id", "pad_token_id",
    "sep_token_id", "decoder_start_token_id", "use_cache", "initializer_range", "initializer_factor",
    "max_position_embeddings", "layer_norm_eps", "attention_dropout", "hidden_dropout", "resid_pdrop", "emb_pdrop",
    "embd_pdrop", "output_router_logits", "router_aux_loss_coef", "router_z_loss_coef", "router_jitter_noise",
    "pretraining_tp", "output_attentions", "output_hidden_states", "return_dict", "torchscript",
    "use_bfloat16", "tf_legacy_loss", "pruned_heads", "chunk_size_feed_forward", "is_encoder_decoder",
    "is_decoder", "add_cross_attention", "tie_encoder_decoder", "id2label", "label2id", "problem_type",
    "finetuning_task", "tokenizer_class", "prefix", "task_specific_params", "max_length", "min_length",
    "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty", "temperature", "top_p",
    "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
    "bad_words_ids", "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",
    "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens",
    "begin_suppress_tokens", "cross_attention_hidden_size", "_attn_implementation_autoset",
})

# Keys whose presence means a model opbsim does not model; the reason is the error message.
REJECTED = {
    "quantization_config": "quantized weights are not supported (opbsim models bf16/fp16/fp32 weights)",
    "vision_config": "multimodal models are not supported",
    "text_config": "multimodal models are not supported (point at the language model's config)",
}


def load_hf_config(path: str | os.PathLike, *, name: str | None = None) -> ModelConfig:
    """Read ``path`` (a config.json). ``name`` defaults to the folder of a file called config.json,
    else to the file name without ``.json`` and ``.config``."""
    p = Path(path)
    text = read_text(p)
    data = parse_json(text, str(p))
    return parse_hf_config(data, file=str(p), name=name or _default_name(p))


def parse_hf_config(data: object, *, file: str, name: str) -> ModelConfig:
    """Map the parsed JSON ``data`` of ``file`` to a ``ModelConfig`` named ``name``."""
    if not isinstance(data, dict):
        raise InputError(f"{file}: expected a JSON object at the top level")
    r = Reader(data, file)
    read_here = READS_REJECTED.get(str(data.get("model_type")), frozenset())
    for key, reason in REJECTED.items():
        if key in data and key not in read_here:
            raise r.error(key, reason)
    model_type = r.text("model_type")
    if model_type not in FAMILIES:
        supported = ", ".join(sorted(FAMILIES))
        raise r.error("model_type", f"{quoted(model_type)} is not a supported family (supported: {supported})")
    architectures, parse = FAMILIES[model_type]
    _check_architectures(r, model_type, architectures)
    kwargs, keys = parse(r)
    kwargs.update(dtype=kwargs["dtype"] if "dtype" in kwargs else read_dtype(r),
                  tie_word_embeddings=r.flag("tie_word_embeddings", False))
    keys.update(dtype="torch_dtype", tie_word_embeddings="tie_word_embeddings")
    _check_layer_types(r)
    r.ignore(COMMON_IGNORED)
    r.check_unknown(model_type)
    try:
        return ModelConfig(name=name, source=file, **kwargs)
    except ConfigError as e:
        raise r.error(keys.get(e.field, e.field), e.message) from None


def _default_name(p: Path) -> str:
    if p.name == "config.json" and p.parent.name:
        return p.parent.name
    stem = p.name.removesuffix(".json")
    return stem.removesuffix(".config") or stem


def _check_architectures(r: Reader, model_type: str, expected: tuple[str, ...]) -> None:
    value = r.get("architectures", [])
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise r.error("architectures", f"expected a list of strings, got {json.dumps(value)}")
    for arch in value:
        if arch not in expected:
            raise r.error("architectures", f"{quoted(arch)} contradicts model_type {quoted(model_type)} "
                          f"(expected {' or '.join(expected)})")


def _check_layer_types(r: Reader) -> None:
    if "layer_types" not in r.data or "layer_types" in r.used:
        return
    value = r.get("layer_types", [])
    if not isinstance(value, list) or any(t != "full_attention" for t in value):
        raise r.error("layer_types", "only \"full_attention\" layers are supported")
