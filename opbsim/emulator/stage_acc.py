"""What one device spends on a stage, accumulated part by part (stage_timer.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from opbsim.emulator.energy import EnergyParts
from opbsim.emulator.engine import RunStats
from opbsim.emulator.time_split import BOUNDS
from opbsim.isa.types import Unit
from opbsim.workloads.ops import OpClass

__all__ = ["DeviceAcc"]


@dataclass(slots=True)
class DeviceAcc:
    """One device's share of a stage: ``energy`` is its dynamic energy (static is added on the
    stage's total time)."""

    time_s: float = 0.0
    energy: EnergyParts = EnergyParts()
    busy: dict[Unit, float] = field(default_factory=dict)
    by_class: dict[OpClass, float] = field(default_factory=lambda: dict.fromkeys(OpClass, 0.0))
    fill_s: float = 0.0  # two-batch overlap: pipeline fill paid once per stage
    exposed_s: float = 0.0  # communication with nothing else running
    by_bound: dict[str, float] = field(default_factory=lambda: dict.fromkeys(BOUNDS, 0.0))
    eager_s: float = 0.0  # what launching its kernels one by one from the host would add

    def add(self, stats: RunStats, classes: dict[OpClass, float], times: float,
            energy_times: float | None = None) -> None:
        self.time_s += stats.time_s * times
        dynamic = replace(stats.energy, static=0.0)
        self.energy = self.energy + dynamic.scaled(times if energy_times is None else energy_times)
        for u, b in stats.busy_s_by_unit:
            self.busy[u] = self.busy.get(u, 0.0) + b * times
        for c, t in classes.items():
            self.by_class[c] += t * times

    def add_comm(self, seconds: float, times: float, joules: float = 0.0) -> None:
        self.energy = self.energy + EnergyParts(interconnect=joules * times)
        self.time_s += seconds * times
        self.exposed_s += seconds * times
        self.by_class[OpClass.COMM] += seconds * times
        self.by_bound["communication"] += seconds * times

    def scaled(self, times: float) -> DeviceAcc:
        return DeviceAcc(self.time_s * times, self.energy.scaled(times), {u: b * times for u, b in self.busy.items()},
                    {c: t * times for c, t in self.by_class.items()}, 0.0, self.exposed_s * times,
                    {k: t * times for k, t in self.by_bound.items()}, self.eager_s * times)

    def merge(self, other: DeviceAcc) -> None:
        self.time_s += other.time_s
        self.exposed_s += other.exposed_s
        self.eager_s += other.eager_s
        for k, t in other.by_bound.items():
            self.by_bound[k] += t
        self.energy = self.energy + other.energy
        for u, b in other.busy.items():
            self.busy[u] = self.busy.get(u, 0.0) + b
        for c, t in other.by_class.items():
            self.by_class[c] += t
