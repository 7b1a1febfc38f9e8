"""What of a model the compiler cannot lower yet: the one list the compiler checks before its passes.

Each entry names a feature of ``ModelConfig`` whose ops (or numerics) have no lowering in
the layer definitions (opbsim/layers) today. The compiler refuses a model with any of them in one line, naming them all,
instead of failing on the first op it meets; the list shrinks as lowerings land.
"""

from __future__ import annotations

from collections.abc import Callable

from opbsim.errors import InputError
from opbsim.workloads.models import ModelConfig

__all__ = ["UNLOWERED", "unlowered_features", "check_lowerable"]

UNLOWERED: tuple[tuple[str, Callable[[ModelConfig], bool]], ...] = (
    ("mxfp4 weights (--dtype bf16 runs them as bf16)", lambda m: m.weight_quant is not None
     and m.weight_quant.kind == "mxfp4"),
    # transformers' _compute_dynamic_ntk_parameters recomputes the frequencies from the sequence length at each
    # step, _compute_longrope_parameters picks per-dimension factors by it: neither is one table per program.
    ("dynamic RoPE scaling", lambda m: m.rope_scaling is not None and m.rope_scaling.kind == "dynamic"),
    ("longrope RoPE scaling", lambda m: m.rope_scaling is not None and m.rope_scaling.kind == "longrope"),
)
"""(feature, whether a model has it), in the order a refusal names them."""


def check_lowerable(model: ModelConfig) -> None:
    """InputError, one line naming every feature of ``model`` the compiler cannot lower yet."""
    missing = unlowered_features(model)
    if missing:
        raise InputError(f"{model.name}: the compiler cannot lower {', '.join(missing)} yet")


def unlowered_features(model: ModelConfig) -> tuple[str, ...]:
    """The features of ``model`` the compiler cannot lower yet (empty when it can lower all of it)."""
    return tuple(name for name, has in UNLOWERED if has(model))
