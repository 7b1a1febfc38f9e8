"""Hardware parameters a sweep may vary, each applied to a DeviceSpec with ``dataclasses.replace``.

Every parameter has its unit in its name and changes one thing of a preset; a parameter the device
cannot take (``pim_bw_multiple`` on a GPU without PIM, ``ddr_bw_GBps`` on a device without DDR) is
an error naming it, raised when the sweep file is checked, before anything runs.

| name | what it sets |
|---|---|
| ``pim_bw_multiple`` | PIM internal bandwidth (TSVs, PIM buffers) / external HBM bandwidth (Duplex: 4) |
| ``pim_bw_GBps`` | the same, in GB/s |
| ``pim_TFLOPS`` / ``xpu_TFLOPS`` / ``pcu_TFLOPS`` | that unit's matrix throughput |
| ``hbm_bw_GBps`` | the external HBM bandwidth (every unit's path through the ``hbm`` channel) |
| ``hbm_GiB`` / ``sram_MiB`` / ``ddr_GiB`` | the capacity of that memory |
| ``ddr_bw_GBps`` | the DDR channel's bandwidth (SN40L) |
| ``link_GBps`` / ``scale_out_GBps`` | nominal per-direction bandwidth of the scale-up / scale-out port |
| ``collective_latency_scale`` | multiplies every latency term of the collective library (1: the preset) |
| ``flop_energy_pJ`` | energy per FLOP |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from opbsim.errors import InputError
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.types import Space, Unit
from opbsim.workloads.hf_reader import quoted

__all__ = ["HW_PARAMS", "HwParam", "apply_hw"]

GiB = 2**30
MiB = 2**20


@dataclass(frozen=True, slots=True)
class HwParam:
    name: str
    doc: str
    apply: Callable[[DeviceSpec, float], DeviceSpec]


def _channels(spec: DeviceSpec, names: tuple[str, ...], bw_GBps: float, what: str) -> DeviceSpec:
    have = {c.name for c in spec.channels}
    if not have & set(names):
        raise InputError(f"device {spec.name} has no {what} ({' or '.join(names)} channel)")
    return replace(spec, channels=tuple(replace(c, bw_GBps=bw_GBps) if c.name in names else c for c in spec.channels))


def _pim_bw(spec: DeviceSpec, bw_GBps: float) -> DeviceSpec:
    return _channels(spec, ("hbm_internal", "pimbuf"), bw_GBps, "PIM")


def _pim_multiple(spec: DeviceSpec, multiple: float) -> DeviceSpec:
    if "hbm_internal" not in {c.name for c in spec.channels}:
        raise InputError(f"device {spec.name} has no PIM (hbm_internal channel)")
    return _pim_bw(spec, multiple * spec.channel_bw_GBps("hbm"))


def _tflops(unit: Unit) -> Callable[[DeviceSpec, float], DeviceSpec]:
    def apply(spec: DeviceSpec, tflops: float) -> DeviceSpec:
        spec.compute(unit)  # raises when the device has no such unit
        return replace(spec, units=tuple(replace(u, matrix_TFLOPS=tflops) if u.unit is unit else u
                                         for u in spec.units))
    return apply


def _capacity(space: Space, scale_B: int) -> Callable[[DeviceSpec, float], DeviceSpec]:
    def apply(spec: DeviceSpec, size: float) -> DeviceSpec:
        spec.memory(space)  # raises when the device has no such memory
        return replace(spec, memories=tuple(replace(m, capacity_B=int(size * scale_B)) if m.space is space else m
                                            for m in spec.memories))
    return apply


def _field(name: str) -> Callable[[DeviceSpec, float], DeviceSpec]:
    return lambda spec, value: replace(spec, **{name: value})


def _port(which: str) -> Callable[[DeviceSpec, float], DeviceSpec]:
    def apply(spec: DeviceSpec, bw_GBps: float) -> DeviceSpec:
        ic = spec.interconnect
        return replace(spec, interconnect=replace(ic, **{which: replace(getattr(ic, which), bw_GBps=bw_GBps)}))
    return apply


def _latency_scale(spec: DeviceSpec, scale: float) -> DeviceSpec:
    ic = spec.interconnect
    costs = tuple(replace(c, base_us=c.base_us * scale, intra_step_us=c.intra_step_us * scale,
                          inter_step_us=c.inter_step_us * scale) for c in ic.library.costs)
    return replace(spec, interconnect=replace(ic, library=replace(ic.library, costs=costs)))


HW_PARAMS: dict[str, HwParam] = {p.name: p for p in (
    HwParam("pim_bw_multiple", "PIM internal bandwidth / external HBM bandwidth", _pim_multiple),
    HwParam("pim_bw_GBps", "PIM internal bandwidth, GB/s", _pim_bw),
    HwParam("pim_TFLOPS", "PIM matrix throughput, TFLOP/s", _tflops(Unit.PIM)),
    HwParam("xpu_TFLOPS", "xPU matrix throughput, TFLOP/s", _tflops(Unit.XPU)),
    HwParam("pcu_TFLOPS", "PCU matrix throughput, TFLOP/s", _tflops(Unit.PCU)),
    HwParam("hbm_bw_GBps", "external HBM bandwidth, GB/s", lambda s, v: _channels(s, ("hbm",), v, "HBM")),
    HwParam("ddr_bw_GBps", "DDR bandwidth, GB/s", lambda s, v: _channels(s, ("ddr",), v, "DDR")),
    HwParam("hbm_GiB", "HBM capacity, GiB", _capacity(Space.HBM, GiB)),
    HwParam("sram_MiB", "on-chip SRAM capacity, MiB", _capacity(Space.SRAM, MiB)),
    HwParam("ddr_GiB", "DDR capacity, GiB", _capacity(Space.DDR, GiB)),
    HwParam("link_GBps", "nominal per-direction scale-up port bandwidth, GB/s", _port("scale_up")),
    HwParam("scale_out_GBps", "nominal per-direction scale-out port bandwidth, GB/s", _port("scale_out")),
    HwParam("collective_latency_scale", "factor on every collective latency term", _latency_scale),
    HwParam("flop_energy_pJ", "energy per FLOP, pJ", _field("flop_energy_pJ")),
)}


def apply_hw(spec: DeviceSpec, params: dict[str, float]) -> DeviceSpec:
    """``spec`` with every parameter of ``params`` applied (in name order). An unknown name, a
    value that is not a positive number, or a parameter the device cannot take raises InputError
    naming ``hw.<name>``."""
    for name in sorted(params):
        value = params[name]
        param = HW_PARAMS.get(name)
        if param is None:
            raise InputError(f"hw.{name}: unknown hardware parameter (known: {', '.join(sorted(HW_PARAMS))})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise InputError(f"hw.{name}: must be a positive number, got {quoted(value)}")
        try:
            spec = param.apply(spec, value)
        except InputError as e:
            raise InputError(f"hw.{name}: {e}") from None
    return spec
