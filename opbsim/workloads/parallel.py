"""How one model replica is spread over devices: degrees per part of the model.

- Attention (and dense FFNs, embedding, LM head): ``tp``-way tensor parallel (heads split, KV
  heads replicated when tp exceeds them, as vLLM does) times ``dp``-way data parallel (each group
  of tp devices serves 1/dp of the stage's requests).
- Experts: ``ep``-way expert parallel (each device holds E/ep experts) times ``etp``-way expert
  tensor parallel (each holds 1/etp of every expert it has). The same tp x dp devices hold the
  experts: ep x etp = tp x dp.
- Layers: ``pp`` pipeline stages, each of ceil(L/pp) layers on its own tp x dp devices.

Devices of a replica: tp x dp x pp; ranks put tp innermost, then dp, then pp.
"""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.errors import InputError
from opbsim.workloads.models import ModelConfig

__all__ = ["MAX_SYSTEM_DEVICES", "Parallelism", "parse_parallel"]

MAX_SYSTEM_DEVICES = 4096  # devices of one replica, tp x dp x pp: past any published serving deployment

_DEGREES = ("tp", "dp", "ep", "etp", "pp")


@dataclass(frozen=True, slots=True, kw_only=True)
class Parallelism:
    tp: int = 1
    dp: int = 1
    ep: int = 1
    etp: int = 1
    pp: int = 1

    def __post_init__(self) -> None:
        for name in _DEGREES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise InputError(f"{name} must be an integer in 1..4096, got {value!r}")
        if self.ep * self.etp != self.tp * self.dp:
            raise InputError(f"ep x etp ({self.ep} x {self.etp} = {self.ep * self.etp}) must equal tp x dp "
                             f"({self.tp} x {self.dp} = {self.tp * self.dp}), the devices that hold the experts")
        if self.devices > MAX_SYSTEM_DEVICES:
            raise InputError(f"tp x dp x pp ({self.tp} x {self.dp} x {self.pp} = {self.devices}) exceeds the "
                             f"{MAX_SYSTEM_DEVICES} devices opbsim takes in one replica")

    @classmethod
    def of(cls, *, tp: int = 1, dp: int = 1, ep: int = 1, etp: int | None = None, pp: int = 1) -> Parallelism:
        """``etp`` defaults to tp x dp / ep (every device of a pipeline stage holds experts)."""
        if etp is None:
            if isinstance(ep, int) and ep >= 1 and (tp * dp) % ep:
                raise InputError(f"ep ({ep}) must divide tp x dp ({tp} x {dp} = {tp * dp})")
            etp = tp * dp // ep if isinstance(ep, int) and ep >= 1 else 1
        return cls(tp=tp, dp=dp, ep=ep, etp=etp, pp=pp)

    @property
    def stage_devices(self) -> int:
        """Devices of one pipeline stage: tp x dp."""
        return self.tp * self.dp

    @property
    def devices(self) -> int:
        return self.tp * self.dp * self.pp

    @property
    def label(self) -> str:
        return ",".join(f"{n}={getattr(self, n)}" for n in _DEGREES)

    @property
    def experts_exchanged(self) -> bool:
        """True when a MoE layer moves token rows between devices (ep > 1 or dp > 1) instead of
        reducing expert partial sums over the tensor-parallel group."""
        return self.ep > 1 or self.dp > 1

    def check(self, model: ModelConfig) -> None:
        """Raise InputError when ``model`` cannot be split this way."""
        if model.num_heads % self.tp:
            raise InputError(f"tp ({self.tp}) must divide num_heads ({model.num_heads})")
        kv = model.num_kv_heads
        if kv % self.tp and self.tp % kv:
            raise InputError(f"tp ({self.tp}) and num_kv_heads ({kv}) must divide one another")
        if self.pp > model.num_layers:
            raise InputError(f"pp ({self.pp}) exceeds the {model.num_layers} layers of {model.name}")
        if not model.is_moe:
            if self.ep > 1:
                raise InputError(f"{model.name} is dense: ep must be 1, got {self.ep}")
            return
        if model.num_experts % self.ep:
            raise InputError(f"ep ({self.ep}) must divide num_experts ({model.num_experts})")


def parse_parallel(text: str) -> dict[str, int]:
    """``"tp=4,ep=4"`` as {"tp": 4, "ep": 4}; unknown or repeated names and non-integers are errors."""
    out: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name not in _DEGREES:
            raise InputError(f"--parallel {text[:60]!r}: expected NAME=N,... with NAME in {', '.join(_DEGREES)}")
        if name in out:
            raise InputError(f"--parallel: {name} given twice")
        if not value.strip().isdigit() or len(value.strip()) > 4:
            raise InputError(f"--parallel: {name}={value[:20]!r} is not an integer in 1..4096")
        out[name] = int(value)
    return out
