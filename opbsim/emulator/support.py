"""Whether ``opbsim simulate`` can run a model: the compiler's own errors for one small stage.

A serving run compiles one representative decoder layer per layer kind and the prologue/epilogue
(stage_timer.py); a layer the compiler cannot lower stops it before any time is simulated. The
check here compiles exactly those parts for a small mixed stage (one 8-token prefill chunk and one
decode request at context 16) on one device under the device's default policy, so it costs a few
milliseconds per device and says what ``simulate`` would say. Whether the weights fit on the
device is a separate question (``workloads.fits``): more devices answer it, compiler support
does not.
"""

from __future__ import annotations

from opbsim.compiler.policies import default_policy
from opbsim.emulator.cluster import Cluster
from opbsim.emulator.stage_timer import StageTimer
from opbsim.hardware import device_names, get_device
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["USUAL_DEVICES", "PROBE_STAGE", "lowering_blockers", "usual_devices"]

USUAL_DEVICES = ("h100", "duplex", "sn40l")
"""One device per device model: the GPU, Duplex (xPU + Logic-PIM) and the SN40L dataflow chip."""

PROBE_STAGE = Stage(prefill=(PrefillChunk(8),), decode_ctx_tokens=(16,))
"""Prefill and decode attention both appear in it, so both lowerings are tried."""


def usual_devices() -> tuple[str, ...]:
    """The ``USUAL_DEVICES`` this build has (a build without the SN40L model leaves it out)."""
    known = set(device_names())
    return tuple(d for d in USUAL_DEVICES if d in known)


def lowering_blockers(model: ModelConfig, devices: tuple[str, ...] | None = None) -> dict[str, tuple[str, ...]]:
    """For each device of ``devices`` (default: ``usual_devices()``) that cannot run ``model``, the
    compiler's messages (one per failing part, in model order) for ``PROBE_STAGE`` on one such
    device under its default policy. An empty dict: every device compiles every part."""
    blockers = {}
    for name in usual_devices() if devices is None else devices:
        spec = get_device(name)
        errors = StageTimer(model, Cluster(device=spec, policy=default_policy(spec))).lowering_errors(PROBE_STAGE)
        if errors:
            blockers[name] = errors
    return blockers
