"""The resource guard: a model that no system opbsim models could hold is refused when it is
loaded, in constant time, before any per-layer structure is built.

The largest system is ``MAX_SYSTEM_DEVICES`` of the registered device with the most weight memory
(HBM plus DDR: the tiers that hold weights and KV caches). A model is refused when its weights
plus one token's KV cache exceed that. A model that passes may still not fit the system a user
asks for; that is the capacity check of the cluster (``does not fit: ...``).
"""

from __future__ import annotations

from opbsim.errors import InputError
from opbsim.hardware.registry import device_names, get_device
from opbsim.isa.types import Space
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.parallel import MAX_SYSTEM_DEVICES

__all__ = ["MAX_SYSTEM_DEVICES", "check_holdable", "largest_device"]

_HOLDING = (Space.HBM, Space.DDR)


def largest_device() -> tuple[str, int]:
    """(name, bytes) of the registered device with the most HBM + DDR."""
    best = ("", 0)
    for name in device_names():
        spec = get_device(name)
        held = sum(m.capacity_B for m in spec.memories if m.space in _HOLDING)
        best = max(best, (name, held), key=lambda nb: nb[1])
    return best


def check_holdable(model: ModelConfig) -> None:
    """Raise InputError, with the sizes, when ``model`` fits no system of up to
    ``MAX_SYSTEM_DEVICES`` devices. Constant time in the model's sizes."""
    weights_B = model.weight_bytes
    kv_B = model.kv_bytes_per_token
    name, per_device_B = largest_device()
    limit_B = MAX_SYSTEM_DEVICES * per_device_B
    if weights_B + kv_B > limit_B:
        raise InputError(f"{model.name} fits no system opbsim models: {weights_B / 2**40:,.1f} TiB of weights and "
                         f"{kv_B / 2**20:,.1f} MiB of KV cache per token, over the {limit_B / 2**40:,.0f} TiB of "
                         f"{MAX_SYSTEM_DEVICES} x {name}")
