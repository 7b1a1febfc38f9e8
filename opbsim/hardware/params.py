"""Hardware parameters: the one vocabulary of ``--hw KEY=VALUE``, device files (``"hw"``) and sweep
files (``hw:``), each read from and applied to a DeviceSpec with ``dataclasses.replace``.

Every parameter has its unit in its name and changes one thing of a preset; a parameter the device
cannot take (``pim_bw_multiple`` on a GPU without PIM, ``ddr_bw_GBps`` on a device without DDR) is
an error naming it, raised before anything runs.

Derived parameters follow what they derive from: ``hbm_bw_GBps`` scales the PIM internal
bandwidth with it (the PIM multiple, Duplex's 4x, is kept: the TSVs and PIM buffers are sized to
the stack), unless ``pim_bw_multiple`` or ``pim_bw_GBps`` is also given. Parameters apply in name
order, so an explicit PIM value always wins.

| name | what it sets |
|---|---|
| ``pim_bw_multiple`` | PIM internal bandwidth (TSVs, PIM buffers) / external HBM bandwidth (Duplex: 4) |
| ``pim_bw_GBps`` | the same, in GB/s |
| ``pim_TFLOPS`` / ``xpu_TFLOPS`` / ``pcu_TFLOPS`` | that unit's matrix throughput |
| ``hbm_bw_GBps`` | the external HBM bandwidth (every unit's path through the ``hbm`` channel); PIM follows |
| ``hbm_GiB`` / ``sram_MiB`` / ``ddr_GiB`` | the capacity of that memory |
| ``ddr_bw_GBps`` | the DDR channel's bandwidth (SN40L) |
| ``link_GBps`` / ``scale_out_GBps`` | nominal per-direction bandwidth of the scale-up / scale-out port |
| ``collective_latency_scale`` | multiplies every latency term of the collective library (1: the preset) |
| ``flop_energy_pJ`` | energy per FLOP |
| ``xpu_static_W`` / ``pim_static_W`` / ``pcu_static_W`` | that unit's static power (leakage, clocks) |
| ``hbm_background_W`` / ``ddr_background_W`` | that memory's background and refresh power (all its stacks or DIMMs) |
| ``hbm_activate_pJ`` | energy of opening one HBM row |
| ``link_pJ_per_bit`` / ``scale_out_pJ_per_bit`` | energy per bit sent over the scale-up / scale-out port |

A device model adds its own parameters (``DeviceModel.knobs``: the dataflow model's ``hop_cycles``,
``host_launch_us``, ...), which only its devices take.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from opbsim.errors import InputError
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.types import Space, Unit
from opbsim.units import GiB, MiB

__all__ = ["HW_PARAMS", "HwParam", "apply_hw", "hw_params", "read_hw", "changed_device"]


@dataclass(frozen=True, slots=True)
class HwParam:
    """``read`` gives the device's value (None: the device cannot take the parameter)."""

    name: str
    doc: str
    apply: Callable[[DeviceSpec, float], DeviceSpec]
    read: Callable[[DeviceSpec], float | None]


def _channels(spec: DeviceSpec, names: tuple[str, ...], bw_GBps: float, what: str) -> DeviceSpec:
    if not names:
        raise InputError(f"device {spec.name} has no {what}")
    return replace(spec, channels=tuple(replace(c, bw_GBps=bw_GBps) if c.name in names else c for c in spec.channels))


def _hbm(spec: DeviceSpec) -> tuple[str, ...]:
    """The external HBM channels: those of the paths into HBM from units other than PIM."""
    return spec.channels_to(Space.HBM)


def _pim(spec: DeviceSpec) -> tuple[str, ...]:
    """The PIM channels: those of the PIM unit's paths into HBM (first) and into its buffers."""
    return spec.channels_to(Space.HBM, pim=True) + spec.channels_to(Space.PIMBUF, pim=True)


def _ddr(spec: DeviceSpec) -> tuple[str, ...]:
    return spec.channels_to(Space.DDR)


def _bw_of(names: Callable[[DeviceSpec], tuple[str, ...]]) -> Callable[[DeviceSpec], float | None]:
    def read(spec: DeviceSpec) -> float | None:
        have = names(spec)
        return spec.channel_bw_GBps(have[0]) if have else None
    return read


def _hbm_bw(spec: DeviceSpec, bw_GBps: float) -> DeviceSpec:
    multiple = _read_multiple(spec)
    spec = _channels(spec, _hbm(spec), bw_GBps, "HBM")
    return spec if multiple is None else _pim_multiple(spec, multiple)


def _pim_bw(spec: DeviceSpec, bw_GBps: float) -> DeviceSpec:
    return _channels(spec, _pim(spec), bw_GBps, "PIM")


def _pim_multiple(spec: DeviceSpec, multiple: float) -> DeviceSpec:
    if not _pim(spec):
        raise InputError(f"device {spec.name} has no PIM")
    return _pim_bw(spec, multiple * spec.channel_bw_GBps(_hbm(spec)[0]))


def _tflops(unit: Unit) -> Callable[[DeviceSpec, float], DeviceSpec]:
    def apply(spec: DeviceSpec, tflops: float) -> DeviceSpec:
        spec.compute(unit)  # raises when the device has no such unit
        return replace(spec, units=tuple(replace(u, matrix_TFLOPS=tflops) if u.unit is unit else u
                                         for u in spec.units))
    return apply


def _read_multiple(spec: DeviceSpec) -> float | None:
    pim, hbm = _bw_of(_pim)(spec), _bw_of(_hbm)(spec)
    return None if pim is None or hbm is None else pim / hbm


def _read_tflops(unit: Unit) -> Callable[[DeviceSpec], float | None]:
    return lambda spec: next((u.matrix_TFLOPS for u in spec.units if u.unit is unit), None)


def _read_capacity(space: Space, scale_B: int) -> Callable[[DeviceSpec], float | None]:
    return lambda spec: next((m.capacity_B / scale_B for m in spec.memories if m.space is space), None)


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


def _read_port(which: str) -> Callable[[DeviceSpec], float | None]:
    return lambda spec: getattr(spec.interconnect, which).bw_GBps


def _unit_static(unit: Unit) -> HwParam:
    def apply(spec: DeviceSpec, watts: float) -> DeviceSpec:
        spec.compute(unit)  # raises when the device has no such unit
        return replace(spec, units=tuple(replace(u, static_W=watts) if u.unit is unit else u for u in spec.units))
    return HwParam(f"{unit.name.lower()}_static_W", f"{unit.name.lower()} static power (leakage, clocks), W", apply,
                   lambda spec: next((u.static_W for u in spec.units if u.unit is unit), None))


def _memory_field(space: Space, field: str, doc: str) -> HwParam:
    def apply(spec: DeviceSpec, value: float) -> DeviceSpec:
        spec.memory(space)  # raises when the device has no such memory
        return replace(spec, memories=tuple(replace(m, **{field: value}) if m.space is space else m
                                            for m in spec.memories))
    return HwParam(f"{space.name.lower()}_{field}", doc, apply,
                   lambda spec: next((getattr(m, field) for m in spec.memories if m.space is space), None))


def _port_energy(which: str, name: str) -> HwParam:
    def apply(spec: DeviceSpec, pj: float) -> DeviceSpec:
        ic = spec.interconnect
        return replace(spec, interconnect=replace(ic, **{which: replace(getattr(ic, which), energy_pJ_per_bit=pj)}))
    return HwParam(name, f"energy per bit sent over the {which.replace('_', '-')} port, pJ", apply,
                   lambda spec: getattr(spec.interconnect, which).energy_pJ_per_bit)


def _latency_scale(spec: DeviceSpec, scale: float) -> DeviceSpec:
    ic = spec.interconnect
    costs = tuple(replace(c, base_us=c.base_us * scale, intra_step_us=c.intra_step_us * scale,
                          inter_step_us=c.inter_step_us * scale) for c in ic.library.costs)
    return replace(spec, interconnect=replace(ic, library=replace(ic.library, costs=costs)))


HW_PARAMS: dict[str, HwParam] = {p.name: p for p in (
    HwParam("pim_bw_multiple", "PIM internal bandwidth / external HBM bandwidth", _pim_multiple, _read_multiple),
    HwParam("pim_bw_GBps", "PIM internal bandwidth, GB/s", _pim_bw, _bw_of(_pim)),
    HwParam("pim_TFLOPS", "PIM matrix throughput, TFLOP/s", _tflops(Unit.PIM), _read_tflops(Unit.PIM)),
    HwParam("xpu_TFLOPS", "xPU matrix throughput, TFLOP/s", _tflops(Unit.XPU), _read_tflops(Unit.XPU)),
    HwParam("pcu_TFLOPS", "PCU matrix throughput, TFLOP/s", _tflops(Unit.PCU), _read_tflops(Unit.PCU)),
    HwParam("hbm_bw_GBps", "external HBM bandwidth, GB/s (PIM bandwidth follows)", _hbm_bw, _bw_of(_hbm)),
    HwParam("ddr_bw_GBps", "DDR bandwidth, GB/s", lambda s, v: _channels(s, _ddr(s), v, "DDR"), _bw_of(_ddr)),
    HwParam("hbm_GiB", "HBM capacity, GiB", _capacity(Space.HBM, GiB), _read_capacity(Space.HBM, GiB)),
    HwParam("sram_MiB", "on-chip SRAM capacity, MiB", _capacity(Space.SRAM, MiB), _read_capacity(Space.SRAM, MiB)),
    HwParam("ddr_GiB", "DDR capacity, GiB", _capacity(Space.DDR, GiB), _read_capacity(Space.DDR, GiB)),
    HwParam("link_GBps", "nominal per-direction scale-up port bandwidth, GB/s", _port("scale_up"),
            _read_port("scale_up")),
    HwParam("scale_out_GBps", "nominal per-direction scale-out port bandwidth, GB/s", _port("scale_out"),
            _read_port("scale_out")),
    HwParam("collective_latency_scale", "factor on every collective latency term", _latency_scale, lambda s: 1.0),
    HwParam("flop_energy_pJ", "energy per FLOP, pJ", _field("flop_energy_pJ"), lambda s: s.flop_energy_pJ),
    _unit_static(Unit.XPU), _unit_static(Unit.PIM), _unit_static(Unit.PCU),
    _memory_field(Space.HBM, "background_W", "HBM background and refresh power, all stacks, W"),
    _memory_field(Space.DDR, "background_W", "DDR background and refresh power, W"),
    _memory_field(Space.HBM, "activate_pJ", "energy of opening one HBM row, pJ"),
    _port_energy("scale_up", "link_pJ_per_bit"), _port_energy("scale_out", "scale_out_pJ_per_bit"),
)}


def hw_params(spec: DeviceSpec) -> dict[str, HwParam]:
    """The vocabulary for ``spec``: every device's parameters and its device model's own."""
    return {**HW_PARAMS, **spec.model.knobs()}


def read_hw(spec: DeviceSpec) -> dict[str, float]:
    """Every parameter ``spec`` can take, with its value (``collective_latency_scale`` is 1: the
    preset's latencies)."""
    values = {name: p.read(spec) for name, p in hw_params(spec).items()}
    return {name: v for name, v in sorted(values.items()) if v is not None}


def apply_hw(spec: DeviceSpec, params: dict[str, float]) -> DeviceSpec:
    """``spec`` with every parameter of ``params`` applied (in name order). An unknown name, a
    value that is not a positive number, or a parameter the device cannot take raises InputError
    naming ``hw.<name>``."""
    for name in sorted(params):
        value = params[name]
        known = hw_params(spec)
        param = known.get(name)
        if param is None:
            raise InputError(f"hw.{name}: unknown hardware parameter (known: {', '.join(sorted(known))})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise InputError(f"hw.{name}: must be a finite positive number, got {str(value)[:40]!r}")
        try:
            spec = param.apply(spec, value)
        except InputError as e:
            raise InputError(f"hw.{name}: {e}") from None
    return spec


def changed_device(spec: DeviceSpec, params: dict[str, float]) -> DeviceSpec:
    """``apply_hw(spec, params)`` named after its changes (``duplex[hbm_bw_GBps=6704]``), so that
    every table and plot says what ran; ``base`` keeps the registered device (and its policy)."""
    if not params:
        return spec
    changed = ",".join(f"{k}={v:g}" for k, v in sorted(params.items()))
    return replace(apply_hw(spec, params), name=f"{spec.name}[{changed}]", base=spec.base or spec.name)
