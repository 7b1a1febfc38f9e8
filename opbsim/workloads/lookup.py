"""Find a model by what a user types: a preset name, a path to a config.json (or a folder holding
one), or a Hugging Face model id found in the local Hugging Face cache (hf_cache.py)."""

from __future__ import annotations

from pathlib import Path

from opbsim.errors import InputError
from opbsim.workloads.fits import check_holdable
from opbsim.workloads.hf_cache import cached_config, hub_cache_dir, is_model_id
from opbsim.workloads.hf_config import load_hf_config
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.presets import PRESETS
from opbsim.workloads.weight_format import with_formats

__all__ = ["load_model"]


def load_model(name_or_path: str, *, dtype: str | None = None, kv_dtype: str | None = None) -> ModelConfig:
    """The preset called ``name_or_path`` (case-insensitive); else the config.json at that path, or
    in that folder; else, for an ``org/name`` id, its config.json in the Hugging Face cache (named
    ``org/name``; nothing is downloaded). ``dtype`` and ``kv_dtype`` (``bf16`` | ``fp8``, None: the
    config's own) choose how weights and KV cache are stored (weight_format.with_formats). A model
    no system could hold is refused here (``fits.check_holdable``)."""
    model = with_formats(_find(name_or_path), weights=dtype, kv=kv_dtype)
    check_holdable(model)
    return model


def _find(name_or_path: str) -> ModelConfig:
    if name_or_path.lower() in PRESETS:
        return PRESETS[name_or_path.lower()]
    path = Path(name_or_path)
    if path.is_dir() and (path / "config.json").is_file():
        return load_hf_config(path / "config.json")
    if path.is_file():
        return load_hf_config(path)
    if is_model_id(name_or_path):
        config = cached_config(name_or_path)
        if config is not None:
            return load_hf_config(config, name=name_or_path)
        folder = hub_cache_dir() / f"models--{name_or_path.replace('/', '--')}"
        raise InputError(f"unknown model {name_or_path!r}: not a preset, a file, or in the Hugging Face cache "
                         f"(looked for {folder}; opbsim does not download)")
    raise InputError(f"unknown model {name_or_path!r}: not a preset (see `opbsim models`) and not a file")
