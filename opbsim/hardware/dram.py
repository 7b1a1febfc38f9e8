"""DRAM technologies: energies per row opened and per bit, and the timing that decides sustained bandwidth.

Energy, as MemorySpec keyword arguments (``HBM_DRAM``, ``DDR_DRAM``):
[FG] O'Connor et al., "Fine-Grained DRAM: Energy-Efficient DRAM for Extreme Bandwidth Systems",
MICRO 2017, Table 3 (HBM2). [LS] the Duplex authors' simulator (scale-snu/LLMSimulator), which
uses [FG]'s figures (src/dram/power.h: ACT 0.909 nJ; per 32-byte access, a read or write costs
0.891 nJ by the xPU, 0.464 nJ by Logic-PIM, 0.686 nJ by BankGroup-PIM, 0.187 nJ by Bank-PIM; "energy
per bit of Read and Write assumed to be the same"). [G5] gem5, src/python/gem5/components/memory/
dram_interfaces/hbm.py (HBM_2000_4H_1x64: a pseudo-channel's row buffer is 1 KiB). [JD] JEDEC
DDR5 (JESD79-5): a x8 device's page is 1 KiB; a 64-bit rank has 8 of them.
"assumed" = no source gives it; a parameter to change.

Timing (``DramTiming``):
[R2] Ramulator 2 (CMU-SAFARI/ramulator2), src/dram/impl/HBM2.cpp: the HBM2 timing preset
(HBM2_2Gbps: nRP = nRCD = 7, nFAW = 15 cycles at tCK = 1 ns; nREFI = 3900 cycles) and the tRFC table
(160 / 260 / 350 / 450 ns for 2 / 4 / 8 / 16 Gb dies), after JESD235; its pseudo-channel rows are
64 columns of 128 bits (1 KiB), and its example configurations use the all-bank refresh manager.

Two losses, each a fraction of the peak bandwidth:
- refresh: with all-bank refresh a pseudo-channel is unavailable for tRFC out of every tREFI, so
  it streams (1 - tRFC / tREFI) of its peak; with per-bank refresh one bank at a time is refreshed
  while the others stream, taken as no loss;
- row activation: a sequential stream opens its next row in another bank while the current one
  transfers (banks are interleaved by address), so no precharge or activation (tRP + tRCD) is
  exposed; the only bound is the four-activation window, at most 4 rows per tFAW per
  pseudo-channel: min(1, 4 row_B / tFAW / (peak / pseudo-channels)). A dataflow kernel's HBM
  traffic is such streams of tiles; the rows that gathers and scatters touch one by one are not
  charged (they are a small part of the bytes of the stages modelled here).
"""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.errors import InputError

__all__ = ["HBM_DRAM", "DDR_DRAM", "DDR_IO_PJ_PER_BIT", "DramTiming", "REFRESH_MODES", "HBM2E_16GB"]

_ACCESS_bits = 32 * 8  # [LS] energies are per 32-byte access

HBM_DRAM = dict(
    row_B=1024,  # [G5] HBM2 pseudo-channel row (page); HBM3's pseudo-channel page is the same 1 KiB
    activate_pJ=909.0,  # [FG] Table 3 via [LS]: one row activation, HBM2 (applied to HBM3 as [LS] does)
    read_pJ_per_bit=187 / _ACCESS_bits,  # derived from [LS]: the column access at the bank, which every reader
    # pays: the least of [LS]'s readers (Bank-PIM, 0.187 nJ per 32 B): 0.73
    write_pJ_per_bit=187 / _ACCESS_bits,  # [LS]: writes cost as reads
)

DDR_DRAM = dict(
    row_B=8 * 1024,  # [JD] 8 x8 devices of 1 KiB pages per rank
    activate_pJ=2000.0,  # assumed: 8 devices x 250 pJ per row opened
    read_pJ_per_bit=1.5,  # assumed: DDR5 column access
    write_pJ_per_bit=1.5,  # assumed: as reads
)
DDR_IO_PJ_PER_BIT = 13.0  # assumed: DIMM buffers and board channel I/O; with the above ~15 pJ/bit streamed


REFRESH_MODES = ("all-bank", "per-bank")


@dataclass(frozen=True, slots=True, kw_only=True)
class DramTiming:
    """``pseudo_channels`` independent channels sharing the peak bandwidth; times in ns."""

    name: str
    tRFC_ns: float
    tREFI_ns: float
    tRP_ns: float
    tRCD_ns: float
    tFAW_ns: float
    row_B: int
    pseudo_channels: int
    refresh: str
    source: str

    def __post_init__(self) -> None:
        for f in ("tRFC_ns", "tREFI_ns", "tRP_ns", "tRCD_ns", "tFAW_ns", "row_B", "pseudo_channels"):
            value = getattr(self, f)
            if not (isinstance(value, int | float) and value > 0):
                raise InputError(f"dram {self.name}: {f} must be a positive number, got {value!r}")
        if self.tRFC_ns >= self.tREFI_ns:
            raise InputError(f"dram {self.name}: tRFC_ns ({self.tRFC_ns}) must be below tREFI_ns ({self.tREFI_ns})")
        if self.refresh not in REFRESH_MODES:
            raise InputError(f"dram {self.name}: refresh must be one of {', '.join(REFRESH_MODES)}, "
                             f"got {self.refresh!r}")

    @property
    def refresh_loss(self) -> float:
        return self.tRFC_ns / self.tREFI_ns if self.refresh == "all-bank" else 0.0

    def activation_bound(self, peak_GBps: float) -> float:
        """The fraction of ``peak_GBps`` that four activations per tFAW per pseudo-channel allow."""
        per_channel_GBps = peak_GBps / self.pseudo_channels
        return min(1.0, 4 * self.row_B / self.tFAW_ns / per_channel_GBps)

    def sustained_GBps(self, peak_GBps: float) -> float:
        """What sequential streams sustain out of ``peak_GBps``: refresh and activation losses."""
        return peak_GBps * (1 - self.refresh_loss) * self.activation_bound(peak_GBps)


HBM2E_16GB = DramTiming(
    name="hbm2e-16gb",
    tRFC_ns=450.0,  # [R2] tRFC of a 16 Gb die (an 8-high 16 GB stack)
    tREFI_ns=3900.0,  # [R2] nREFI 3900 at tCK 1 ns
    tRP_ns=7.0,  # [R2] nRP
    tRCD_ns=7.0,  # [R2] nRCDRD
    tFAW_ns=15.0,  # [R2] nFAW
    row_B=1024,  # [R2] 64 columns x 128 bits per pseudo-channel row
    pseudo_channels=64,  # derived: 4 stacks x 8 channels x 2 pseudo-channels (see hardware/sn40l.py)
    refresh="all-bank",  # [R2] the refresh manager of its example configurations (AllBank)
    source="Ramulator 2 HBM2 timing (JESD235); SN40L stacks derived",
)
