"""Whether ``opbsim simulate`` can run a model: the compiler's own errors for one small stage.

A serving run compiles one representative decoder layer per layer kind and the prologue/epilogue
(stage_timer.py); a layer the compiler cannot lower stops it before any time is simulated. The
check here compiles exactly those parts for the smallest mixed stage (a one-token prefill chunk and
one decode request) on one device under the device's default policy, so it says what ``simulate``
would say. Its cost is bounded: the two tokens reach at most 2 x top_k experts, a few milliseconds
per device for the presets; a model whose two tokens would reach more than ``MAX_PROBE_EXPERTS``
experts (top_k over 128, no published model) is not checked (``unchecked_reason``), since
compiling hundreds of expert FFNs takes seconds per device. A single layer that does not fit one
device is reported with the compiler's "does not fit" message; whether the whole model fits is
``workloads.fits``'s question, answered by more devices, not by compiler support.
"""

from __future__ import annotations

from opbsim.compiler.policies import default_policy
from opbsim.emulator.cluster import Cluster
from opbsim.emulator.stage_timer import StageTimer
from opbsim.errors import InputError
from opbsim.hardware import device_names, get_device
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["USUAL_DEVICES", "PROBE_STAGE", "MAX_PROBE_EXPERTS", "lowering_blockers", "unchecked_reason",
           "usual_devices"]

USUAL_DEVICES = ("h100", "duplex", "sn40l")
"""One device per device model: the GPU, Duplex (xPU + Logic-PIM) and the SN40L dataflow chip."""

PROBE_STAGE = Stage(prefill=(PrefillChunk(1),), decode_ctx_tokens=(2,))
"""Prefill and decode attention both appear in it, so both lowerings are tried."""

MAX_PROBE_EXPERTS = 256
"""The most expert FFNs the check compiles per MoE layer (about 0.5 to 2 s per device at 256)."""


def usual_devices() -> tuple[str, ...]:
    """The ``USUAL_DEVICES`` this build has (a build without the SN40L model leaves it out)."""
    known = set(device_names())
    return tuple(d for d in USUAL_DEVICES if d in known)


def unchecked_reason(model: ModelConfig) -> str | None:
    """Why ``lowering_blockers`` would not check ``model`` in bounded time, or None."""
    reached = min(model.num_experts, PROBE_STAGE.tokens * model.top_k)
    if reached > MAX_PROBE_EXPERTS:
        return (f"not checked: {PROBE_STAGE.tokens} tokens at top-{model.top_k} reach {reached} experts, more than "
                f"the {MAX_PROBE_EXPERTS} the check compiles")
    return None


def lowering_blockers(model: ModelConfig, devices: tuple[str, ...] | None = None) -> dict[str, tuple[str, ...]]:
    """For each device of ``devices`` (default: ``usual_devices()``) that cannot run ``model``, the
    compiler's messages (one per failing part, in model order) for ``PROBE_STAGE`` on one such
    device under its default policy. An empty dict: every device compiles every part. A model with
    an ``unchecked_reason`` is an ``InputError`` with that reason (callers ask first)."""
    reason = unchecked_reason(model)
    if reason is not None:
        raise InputError(f"{model.name}: {reason}")
    blockers = {}
    for name in usual_devices() if devices is None else devices:
        spec = get_device(name)
        errors = StageTimer(model, Cluster(device=spec, policy=default_policy(spec))).lowering_errors(PROBE_STAGE)
        if errors:
            blockers[name] = errors
    return blockers
