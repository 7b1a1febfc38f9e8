"""The SambaNova SN40L socket: a spatial dataflow chip on three memory tiers (SRAM, HBM, DDR).

[S] SN40L paper, arXiv 2405.07518 (MICRO 2024). [KL] Kernel Looping, arXiv 2410.23668 (SambaNova): removing
only the synchronisation between consecutive decoder-layer kernels of a fused SN40L decode speeds it up
by up to 2.2x, so kernel boundaries are costly; it does not itemise them, so their parts are assumed.
[UVA] "CUDA Kernel Overhead" (cs.virginia.edu/~mwb7w/cuda_support/kernel_overhead.html): a GPU's host
launch costs, the analogue taken for the SN40L host runtime ([S] publishes none). [SR] SambaNova: a
SambaRack SN40L-16 (16 sockets, host and DDR) draws about 10 kW on average in inference (as quoted by
aiwiki.ai/wiki/sambanova_sn40l). DRAM energies and timing: dram.py.
"derived" = arithmetic on sourced values. "assumed" = the paper is silent; a parameter to change
(``dataclasses.replace``), never tuned to a published result. The geometry behind the clock (32 lanes
x 6 stages per PCU at 1.6 GHz gives the 638 BF16 TFLOPS of [S]) comes from public modelling work,
not from [S].
"""

from __future__ import annotations

from opbsim.hardware.device_models.dataflow import DataflowModel, DataflowParams
from opbsim.hardware.dram import DDR_DRAM, DDR_IO_PJ_PER_BIT, HBM2E_16GB, HBM_DRAM
from opbsim.hardware.links import sn40l_links
from opbsim.hardware.spec import Channel, ComputeSpec, DeviceSpec, MemorySpec, Path
from opbsim.isa.types import Space, Unit
from opbsim.units import GB, TB, MiB  # [S] states HBM and DDR in GB and TB: a vendor's decimal units

__all__ = ["sn40l", "SN40L_DATAFLOW", "SN40L_HBM", "HBM_PEAK_GBps"]


_PCUS = 1040  # [S] per socket
_PMUS = 1040  # [S] per socket
_CLOCK_MHz = 1600.0  # assumed: "< 2 GHz" [S]; 1.6 GHz makes the geometry below give 638 TFLOPS
_LANES, _STAGES = 32, 6  # assumed PCU geometry (SIMD lanes x pipeline stages)
_MATRIX_TFLOPS = 638.0  # [S] BF16 per socket
_VECTOR_TFLOPS = _PCUS * _LANES * _STAGES * _CLOCK_MHz * 1e6 / 1e12  # derived: one fp32 op per lane-stage: 319.5
_SRAM_B = 520 * MiB  # [S] on-chip, in the PMUs
_PMU_B = _SRAM_B // _PMUS  # derived: 512 KiB per PMU
_PMU_GBps = _LANES * 4 * 2 * _CLOCK_MHz / 1000  # assumed: a 32 x fp32 read and write port per clock: 409.6
_HBM_B = 64 * GB  # [S] "64 GB"
HBM_PEAK_GBps = 1800.0  # [S] table (the text says ~2 TB/s)
_HBM_GBps = HBM_PEAK_GBps
# derived: 1800 GB/s is 4 HBM2E stacks of 1024 pins at 3.6 Gb/s (460.8 GB/s each; the memory type is assumed),
# 64 GB over 4 stacks is 16 GB each, 8-high of 16 Gb dies; each stack has 8 channels of 2 pseudo-channels
SN40L_HBM = HBM2E_16GB
_DDR_B = 3 * TB // 2  # [S] up to "1.5 TB" per socket
_DDR_GBps = 200.0  # [S]
_HBM_DATAPATH_PJ_PER_BIT = 891 / 256 - HBM_DRAM["read_pJ_per_bit"]  # assumed: the H100's path to its HBM
# (presets.py: PHY and interposer), 2.75
_SRAM_PJ_PER_BIT = 0.5 / 8  # assumed: as the other presets' on-chip SRAM
_MAC_PJ_PER_FLOP = 0.23  # assumed: the MAC energy of the Duplex authors' simulator
_SOCKET_STATIC_W = 10_000 / 16 * 140 / 700  # assumed: the H100's idle share of its TDP (presets.py: 140 of 700 W)
# of a socket's average share of [SR]'s 10 kW rack: 125 W
_HBM_STACKS = 4  # derived above: 64 GB as 4 stacks of 16 GB
_HBM_STACK_BACKGROUND_W = 2.0  # assumed: as presets.py
_DDR_BACKGROUND_W = 12 * 3.0  # assumed: 1.5 TB as 12 x 128 GB DDR5 RDIMMs at 3 W standby and refresh each

SN40L_DATAFLOW = DataflowParams(
    pcus=_PCUS,
    pmus=_PMUS,
    pmu_B=_PMU_B,
    pmu_GBps=_PMU_GBps,
    clock_MHz=_CLOCK_MHz,
    hop_cycles=32.0,  # assumed: a tile's hand-over from one stage's PMUs to the next stage
    memory_latency_ns=500.0,  # assumed: of the order of the HBM load latency GPUs show to pointer chasing
    config_B_per_unit=1024,  # assumed: 1 KiB per PCU or PMU (its stages or address generators, its switch port)
    config_GBps=_HBM_GBps,  # assumed: the configuration is read from HBM at its rate
    hw_launch_us=1.0,  # assumed: the on-chip sequencer dispatches the next kernel
    host_launch_us=3.0,  # [UVA] ~334,000 asynchronous kernel calls/s on a GPU: one host issue per socket
    host_sync_us=6.0,  # [UVA] a synchronous call costs ~3x an asynchronous one: the completion wait
)


def _paths(unit: Unit) -> tuple[Path, ...]:
    return (
        Path(unit=unit, space=Space.SRAM, channels=("pmu",), datapath_pJ_per_bit=0.0),
        Path(unit=unit, space=Space.HBM, channels=("hbm",), datapath_pJ_per_bit=_HBM_DATAPATH_PJ_PER_BIT),
        Path(unit=unit, space=Space.DDR, channels=("ddr",), datapath_pJ_per_bit=DDR_IO_PJ_PER_BIT),
    )


sn40l = DeviceSpec(
    name="sn40l",
    units=(
        ComputeSpec(unit=Unit.PCU, matrix_TFLOPS=_MATRIX_TFLOPS, vector_TFLOPS=_VECTOR_TFLOPS,
                    issue_ns=SN40L_DATAFLOW.hw_launch_us * 1000,  # a lone instruction: one launch
                    static_W=_SOCKET_STATIC_W),  # the whole socket's (PCUs, PMUs, links)
        ComputeSpec(unit=Unit.PMU, matrix_TFLOPS=0.0, vector_TFLOPS=0.0,
                    issue_ns=SN40L_DATAFLOW.hw_launch_us * 1000),
        ComputeSpec(unit=Unit.DMA, matrix_TFLOPS=0.0, vector_TFLOPS=0.0,
                    issue_ns=1000.0),  # assumed: one transfer issued by the runtime
    ),
    memories=(
        MemorySpec(space=Space.SRAM, capacity_B=_SRAM_B, read_pJ_per_bit=_SRAM_PJ_PER_BIT,
                   write_pJ_per_bit=_SRAM_PJ_PER_BIT),
        MemorySpec(space=Space.HBM, capacity_B=_HBM_B, **HBM_DRAM,
                   background_W=_HBM_STACKS * _HBM_STACK_BACKGROUND_W),
        MemorySpec(space=Space.DDR, capacity_B=_DDR_B, **DDR_DRAM, background_W=_DDR_BACKGROUND_W),
    ),
    channels=(
        Channel(name="pmu", bw_GBps=_PMUS * _PMU_GBps),  # derived: ~426 TB/s, "hundreds of TB/s" [S]
        Channel(name="hbm", bw_GBps=SN40L_HBM.sustained_GBps(HBM_PEAK_GBps)),  # refresh and activation (dram.py)
        Channel(name="ddr", bw_GBps=_DDR_GBps),
    ),
    paths=(*_paths(Unit.PCU), *_paths(Unit.PMU), *_paths(Unit.DMA)),
    flop_energy_pJ=_MAC_PJ_PER_FLOP,
    interconnect=sn40l_links(),  # links.py: peer links and their costs assumed ([S] publishes neither)
    source="SN40L paper [S] arXiv 2405.07518 sec. III-IV; geometry and unpublished values assumed",
    model=DataflowModel(SN40L_DATAFLOW),
)
