"""What of a model the compiler cannot lower yet: the one list the compiler checks before its passes.

Each entry names a feature of ``ModelConfig`` whose ops (or numerics) have no lowering in
the layer definitions (opbsim/layers) today. The compiler refuses a model with any of them in one line, naming them all,
instead of failing on the first op it meets; the list shrinks as lowerings land.
"""

from __future__ import annotations

from collections.abc import Callable

from opbsim.workloads.models import ModelConfig

__all__ = ["UNLOWERED", "unlowered_features"]

UNLOWERED: tuple[tuple[str, Callable[[ModelConfig], bool]], ...] = (
    ("quantized weights", lambda m: m.weight_quant is not None),
)
"""(feature, whether a model has it), in the order a refusal names them."""


def unlowered_features(model: ModelConfig) -> tuple[str, ...]:
    """The features of ``model`` the compiler cannot lower yet (empty when it can lower all of it)."""
    return tuple(name for name, has in UNLOWERED if has(model))
