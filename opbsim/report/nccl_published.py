"""Published nccl-tests measurements the collective model is held against.

Every row is copied from its source: the system, the collective, the number of GPUs and the bus
bandwidth the source states. Where the source states a bandwidth but no message size (a peak
"at large sizes"), ``size_B`` is the size the row is compared at and ``note`` says so; the time is
then size / algorithm bandwidth (busbw / the collective's bus factor), marked as derived.
"""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.units import GiB

__all__ = ["Measured", "MEASURED"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """One published nccl-tests result (out-of-place). ``algorithm``: the NCCL_ALGO the run forced
    ("" when NCCL chose)."""

    system: str
    collective: str
    gpus: int
    size_B: int
    time_us: float
    busbw_GBps: float
    source: str
    algorithm: str = ""
    note: str = ""


def _peak(collective: str, busbw: float, bus_factor: float, algorithm: str, source: str, note: str) -> Measured:
    time_us = GiB / (busbw / bus_factor * 1e9) * 1e6
    return Measured(system="dgx-h100", collective=collective, gpus=8, size_B=GiB, time_us=round(time_us, 1),
                    busbw_GBps=busbw, source=source, algorithm=algorithm,
                    note=note + "; compared at 1 GiB, time derived from the stated bandwidth")


_NCCL_TESTS_212 = ("https://github.com/NVIDIA/nccl-tests/issues/212 (NCCL maintainer, 2024-05-06: \"NCCL can get "
                   "an effective NVLink bandwidth of 370GB/s, which you can observe as BusBw when running "
                   "non-allreduce operations, or when running with NCCL_ALGO=RING ... On 8 GPUs, you should reach a "
                   "peak busBw of ~480GB/s (algbw ~275GB/s)\" with NVLink SHARP)")
_NCCL_TESTS_290 = ("https://github.com/NVIDIA/nccl-tests/issues/290 (NCCL maintainer, 2025-03-03: a single-node "
                   "8 x H100 all-reduce at 476 GB/s bus bandwidth \"looks to be in the expected range for H100\")")

MEASURED: tuple[Measured, ...] = (
    _peak("allreduce", 480.0, 2 * 7 / 8, "", _NCCL_TESTS_212,
          "8 x H100 SXM, NVLink SHARP (NCCL's default); peak at sizes above 256 MiB"),
    _peak("allreduce", 476.0, 2 * 7 / 8, "", _NCCL_TESTS_290, "8 x H100, NVLink SHARP; a user's run at its peak"),
    _peak("allreduce", 370.0, 2 * 7 / 8, "ring", _NCCL_TESTS_212, "8 x H100 SXM, NCCL_ALGO=RING; peak"),
    _peak("allgather", 370.0, 7 / 8, "", _NCCL_TESTS_212, "8 x H100 SXM, a non-all-reduce collective; peak"),
    _peak("reducescatter", 370.0, 7 / 8, "", _NCCL_TESTS_212, "8 x H100 SXM, a non-all-reduce collective; peak"),
)
