"""What of a model the compiler cannot lower yet: the one list the compiler checks before its passes.

Each entry names a feature of ``ModelConfig`` whose ops (or numerics) have no lowering in
the layer definitions (opbsim/layers) today. The compiler refuses a model with any of them in one line, naming them all,
instead of failing on the first op it meets; the list shrinks as lowerings land.
"""

from __future__ import annotations

from collections.abc import Callable

from opbsim.errors import InputError
from opbsim.workloads.models import ModelConfig

__all__ = ["UNLOWERED", "unlowered_features", "unapplied_values", "check_lowerable"]

UNLOWERED: tuple[tuple[str, Callable[[ModelConfig], bool]], ...] = (
    ("mxfp4 weights (--dtype bf16 runs them as bf16)", lambda m: m.weight_quant is not None
     and m.weight_quant.kind == "mxfp4"),
)
"""(feature, whether a model has it), in the order a refusal names them."""


def unapplied_values(model: ModelConfig) -> tuple[str, ...]:
    """What of ``model`` a compiled program lowers without applying it: the values it changes are not
    the model's, its shapes and costs are. ``compile`` and ``run`` print each as a note."""
    notes = []
    if model.rope_scaling is not None:
        notes.append(f"rope_scaling {model.rope_scaling} is not applied: RoPE rotates by the unscaled frequencies "
                     "(in the program, the numerics definition and the float64 golden alike; timing is unaffected)")
    return tuple(notes)


def check_lowerable(model: ModelConfig) -> None:
    """InputError, one line naming every feature of ``model`` the compiler cannot lower yet."""
    missing = unlowered_features(model)
    if missing:
        raise InputError(f"{model.name}: the compiler cannot lower {', '.join(missing)} yet")


def unlowered_features(model: ModelConfig) -> tuple[str, ...]:
    """The features of ``model`` the compiler cannot lower yet (empty when it can lower all of it)."""
    return tuple(name for name, has in UNLOWERED if has(model))
