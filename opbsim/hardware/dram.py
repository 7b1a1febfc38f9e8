"""DRAM technologies: row size, activation and column energies, as MemorySpec keyword arguments.

[FG] O'Connor et al., "Fine-Grained DRAM: Energy-Efficient DRAM for Extreme Bandwidth Systems",
MICRO 2017, Table 3 (HBM2). [LS] the Duplex authors' simulator (scale-snu/LLMSimulator), which
uses [FG]'s figures (src/dram/power.h: ACT 0.909 nJ; per 32-byte access, a read or write costs
0.891 nJ by the xPU, 0.464 nJ by Logic-PIM, 0.686 nJ by BankGroup-PIM, 0.187 nJ by Bank-PIM; "energy
per bit of Read and Write assumed to be the same"). [G5] gem5, src/python/gem5/components/memory/
dram_interfaces/hbm.py (HBM_2000_4H_1x64: a pseudo-channel's row buffer is 1 KiB). [JD] JEDEC
DDR5 (JESD79-5): a x8 device's page is 1 KiB; a 64-bit rank has 8 of them.
"assumed" = no source gives it; a parameter to change.
"""

from __future__ import annotations

__all__ = ["HBM_DRAM", "DDR_DRAM", "DDR_IO_PJ_PER_BIT"]

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
