"""Hardware presets, each value with its source.

[D] Duplex paper, arXiv 2409.01141 (MICRO 2024). [S] SN40L paper, arXiv 2405.07518.
[LS] the Duplex authors' simulator (scale-snu/LLMSimulator; read in the fork HeliosZhou/LLMSimulator,
src/dram/power.h, which keeps its energy constants). [FG] O'Connor et al., "Fine-Grained DRAM:
Energy-Efficient DRAM for Extreme Bandwidth Systems", MICRO 2017, Table 3 (HBM2), as [LS] quotes
it: row activation 0.909 nJ; read or write 3.48 pJ/bit = pre-GSA 1.51 + post-GSA 1.17 + I/O 0.80.
[NV] NVIDIA H100 / A100 datasheets and whitepapers. [GB] wilicc/gpu-burn issue #114: nvidia-smi
of H100 80GB HBM3 SXM boards at P0 with nothing running (0-4% utilisation): 140 W and 145 W. [JL]
CUDA.jl documentation, "Graphs" (cuda.juliagpu.org/dev/usage/graphs): "Integrating a small ODE for
10 steps with RK4 (80 broadcast kernels) goes from 260 µs to 70 µs" as a graph: 0.88 us per kernel,
its (tiny) execution included; launched one by one from the host a kernel costs more
(emulator/serving_engines.py, EAGER_LAUNCH_US).
"derived" = arithmetic on sourced values. "assumed" = no source gives it; a parameter to change
(docs/validation.md shows how much the energy rows move with the assumed static powers).

DRAM energy by mechanism (hardware/spec.py, emulator/energy.py): [LS] charges, per 32-byte
access, one activation (0.909 nJ) plus a read by the reader (xPU 0.891 nJ, Logic-PIM 0.464 nJ,
BankGroup-PIM 0.686 nJ, Bank-PIM 0.187 nJ). Here an activation is charged per row opened (1 KiB),
not per access; the column access every reader pays is the least of the four (Bank-PIM's, in the
bank: 0.73 pJ/bit), and the rest of each reader's [LS] energy is its data path.
"""

from __future__ import annotations

from dataclasses import replace

from opbsim.hardware.device_models.gpu import GPU
from opbsim.hardware.device_models.pim import PIM
from opbsim.hardware.dram import DDR_DRAM, DDR_IO_PJ_PER_BIT, HBM_DRAM
from opbsim.hardware.gpu_efficiency import AMPERE, HOPPER, KernelEfficiency
from opbsim.hardware.interconnect import Interconnect
from opbsim.hardware.links import nvlink3_node, nvlink4_node, pcie_node
from opbsim.hardware.sn40l import sn40l
from opbsim.hardware.spec import Channel, ComputeSpec, DeviceSpec, MemorySpec, Path
from opbsim.isa.types import Space, Unit
from opbsim.units import GiB, MiB

__all__ = ["h100", "a100", "h100_pcie", "h200", "l40s", "duplex", "bank_pim", "bankgroup_pim", "PRESETS"]


_ACCESS_bits = 32 * 8  # [LS] energies are per 32-byte access
_COLUMN_PJ_PER_BIT = HBM_DRAM["read_pJ_per_bit"]  # [LS] Bank-PIM read, 0.187 nJ / 256 b: 0.73
_XPU_DATAPATH_PJ_PER_BIT = 891 / _ACCESS_bits - _COLUMN_PJ_PER_BIT  # derived from [LS]: 3.48 - 0.73 = 2.75 (global
# data lines, TSVs, PHY and interposer: [FG]'s post-GSA 1.17 + I/O 0.80 and part of its pre-GSA 1.51)
_LOGIC_PIM_DATAPATH_PJ_PER_BIT = 464 / _ACCESS_bits - _COLUMN_PJ_PER_BIT  # derived from [LS]: 1.81 - 0.73 = 1.08
# (the TSVs to the logic die, without PHY and interposer)
_BANKGROUP_PIM_DATAPATH_PJ_PER_BIT = 686 / _ACCESS_bits - _COLUMN_PJ_PER_BIT  # derived from [LS]: 2.68 - 0.73 =
# 1.95 ([LS] charges the bank-group unit all of [FG]'s on-die movement, 1.51 + 1.17)
_BANK_PIM_DATAPATH_PJ_PER_BIT = 0.0  # derived from [LS]: in the bank, nothing beyond the column access
_SRAM_PJ_PER_BIT = 0.5 / 8  # assumed: on-chip SRAM access 0.5 pJ/B, not in [D]/[LS]
_PCIE_PJ_PER_BIT = 2 * 5.5  # links.py _SERDES_PJ_PER_BIT: GPU -> PCIe switch -> host, two SerDes links (assumed)
_MAC_PJ_PER_FLOP = 0.23  # [LS] 0.46 pJ per MAC / 2
_HBM_STACK_BACKGROUND_W = 2.0  # assumed: HBM standby and refresh power per stack ([FG] and [LS] give none; [LS]
# charges 0 W); refresh is 0.35 us of every 3.9 us per bank (tRFC / tREFI, JEDEC via gem5 hbm.py)
_H100_IDLE_W = 140.0  # [GB] board power at P0, nothing running: 140 W and 145 W (the lower)
_H100_STACKS = 5  # [D] 5 HBM3 stacks
_H100_XPU_STATIC_W = _H100_IDLE_W - _H100_STACKS * _HBM_STACK_BACKGROUND_W  # derived: the board less its HBM: 130
_A100_STATIC_W = _H100_IDLE_W / 700 * 400 - 5 * _HBM_STACK_BACKGROUND_W  # assumed: the H100's idle share of its
# 700 W TDP [NV] applied to the A100's 400 W [NV], less 5 HBM2e stacks: 70
_H100_DIE_mm2 = 814.0  # [NV] H100 (GH100) die area
_PIM_mm2_PER_STACK = 17.80  # [D] Logic-PIM units per stack
_PIM_STATIC_W = 5 * _PIM_mm2_PER_STACK * _H100_XPU_STATIC_W / _H100_DIE_mm2  # assumed: the H100 die's static power
# per mm^2 at P0 over the Logic-PIM area of 5 stacks: 14.2 W (Bank-PIM and BankGroup-PIM: the same, their areas
# not being published in [D])

_H100_HBM_GBps = 3352.0  # [D]: 5 stacks x 670.4 GB/s


def _sram(space: Space, capacity_B: int) -> MemorySpec:
    return MemorySpec(space=space, capacity_B=capacity_B, read_pJ_per_bit=_SRAM_PJ_PER_BIT,
                      write_pJ_per_bit=_SRAM_PJ_PER_BIT)


def _gpu(
    name: str, *, matrix_TFLOPS: float, vector_TFLOPS: float, hbm_B: int, hbm_GBps: float, smem_B: int,
    smem_GBps: float, host_B: int, host_GBps: float, interconnect: Interconnect, static_W: float, source: str,
    efficiency: KernelEfficiency | None = None, fp8_matrix_TFLOPS: float = 0.0,
) -> DeviceSpec:
    """A GPU board: its static power is the board's (the host and its DDR lie outside, as in a
    GPU power measurement), HBM background from five stacks."""
    return DeviceSpec(
        name=name,
        units=(
            ComputeSpec(unit=Unit.XPU, matrix_TFLOPS=matrix_TFLOPS, vector_TFLOPS=vector_TFLOPS,
                        issue_ns=1000.0,  # [JL] one kernel of a replayed CUDA graph (0.88 us, rounded up)
                        static_W=static_W, efficiency=efficiency, fp8_matrix_TFLOPS=fp8_matrix_TFLOPS),
            ComputeSpec(unit=Unit.DMA, matrix_TFLOPS=0.0, vector_TFLOPS=0.0,
                        issue_ns=1000.0),  # assumed: one copy-engine launch
        ),
        memories=(
            MemorySpec(space=Space.HBM, capacity_B=hbm_B, **HBM_DRAM,
                       background_W=5 * _HBM_STACK_BACKGROUND_W),
            _sram(Space.SRAM, smem_B),
            MemorySpec(space=Space.HOST, capacity_B=host_B, **DDR_DRAM),  # the host's DDR: no background
            # charged to the GPU (outside the board)
        ),
        channels=(
            Channel(name="hbm", bw_GBps=hbm_GBps),
            Channel(name="smem", bw_GBps=smem_GBps),
            Channel(name="pcie", bw_GBps=host_GBps),
        ),
        paths=(
            Path(unit=Unit.XPU, space=Space.HBM, channels=("hbm",), datapath_pJ_per_bit=_XPU_DATAPATH_PJ_PER_BIT),
            Path(unit=Unit.XPU, space=Space.SRAM, channels=("smem",), datapath_pJ_per_bit=0.0),
            Path(unit=Unit.DMA, space=Space.HBM, channels=("hbm",), datapath_pJ_per_bit=_XPU_DATAPATH_PJ_PER_BIT),
            Path(unit=Unit.DMA, space=Space.SRAM, channels=("smem",), datapath_pJ_per_bit=0.0),
            Path(unit=Unit.DMA, space=Space.HOST, channels=("pcie",),
                 datapath_pJ_per_bit=DDR_IO_PJ_PER_BIT + _PCIE_PJ_PER_BIT),  # DDR channel, then PCIe
        ),
        flop_energy_pJ=_MAC_PJ_PER_FLOP,
        interconnect=interconnect,
        source=source,
        model=GPU,
    )


h100 = _gpu(
    "h100",
    matrix_TFLOPS=989.4,  # [D] dense FP16/BF16 tensor
    fp8_matrix_TFLOPS=1979.0,  # [NV] H100 SXM: 3,958 TFLOPS FP8 tensor with sparsity, half dense
    vector_TFLOPS=67.0,  # [NV] FP32 non-tensor, SXM
    hbm_B=80 * GiB,  # [D] 5 stacks x 16 GB
    hbm_GBps=_H100_HBM_GBps,
    smem_B=132 * 256 * 1024,  # AttAcc's H100 config: 132 SMs x 256 KB
    smem_GBps=132 * 128 * 1.755,  # derived: 128 B/clock/SM at the 1755 MHz boost clock [NV]
    host_B=2048 * GiB // 8,  # assumed: 2 TiB DGX host memory shared by 8 GPUs
    host_GBps=64.0,  # [S] host -> GPU in a DGX H100
    interconnect=nvlink4_node(),  # [D] NVLink 900 GB/s bidirectional; links.py
    static_W=_H100_XPU_STATIC_W,
    source="Duplex paper [D] sec. VI; NVIDIA H100 SXM datasheet",
    efficiency=HOPPER,  # gpu_efficiency.py: kernel-level benchmarks
)

a100 = _gpu(
    "a100",
    matrix_TFLOPS=312.0,  # [S] BF16
    vector_TFLOPS=19.5,  # [NV] FP32
    hbm_B=80 * GiB,  # [S]
    hbm_GBps=2039.0,  # [NV] A100 80GB SXM ("~2.0 TB/s" [S])
    smem_B=108 * 164 * 1024,  # [NV] 108 SMs x 164 KB
    smem_GBps=108 * 128 * 1.41,  # derived: 128 B/clock/SM at 1410 MHz [NV]
    host_B=2048 * GiB // 8,  # assumed: 2 TiB DGX host memory shared by 8 GPUs
    host_GBps=32.0,  # [S] host -> GPU in a DGX A100
    interconnect=nvlink3_node(),  # [NV] NVLink3 600 GB/s bidirectional; links.py
    static_W=_A100_STATIC_W,
    source="SN40L paper [S]; NVIDIA A100 datasheet",
    efficiency=AMPERE,  # gpu_efficiency.py: kernel-level benchmarks
)


def _idle_share(tdp_W: float) -> float:
    """assumed: the H100 SXM's idle share of its 700 W TDP [NV] applied to ``tdp_W``, less 5 HBM stacks."""
    return _H100_IDLE_W / 700 * tdp_W - 5 * _HBM_STACK_BACKGROUND_W


h100_pcie = _gpu(
    "h100-pcie",
    matrix_TFLOPS=756.0,  # [NV] H100 PCIe: 1,513 TFLOPS BF16 with sparsity, half dense
    fp8_matrix_TFLOPS=1513.0,  # [NV] H100 PCIe: 3,026 TFLOPS FP8 with sparsity, half dense
    vector_TFLOPS=51.0,  # [NV] FP32, PCIe
    hbm_B=80 * GiB,  # [NV] 80 GB HBM2e
    hbm_GBps=2000.0,  # [NV] 2 TB/s
    smem_B=114 * 256 * 1024,  # [NV] 114 SMs x 256 KB
    smem_GBps=114 * 128 * 1.755,  # derived: 128 B/clock/SM at 1755 MHz (assumed: the SXM boost clock)
    host_B=2048 * GiB // 8,  # assumed: as the DGX
    host_GBps=64.0,  # [NV] PCIe Gen5 x16: 128 GB/s both directions, 64 per direction
    interconnect=pcie_node(600.0),  # [NV] NVLink bridge 600 GB/s bidirectional (pairs); links.py
    static_W=_idle_share(350.0),  # [NV] 350 W TDP
    source="NVIDIA H100 PCIe datasheet",
    efficiency=HOPPER,
)

h200 = _gpu(
    "h200",
    matrix_TFLOPS=989.4,  # [NV] H200 SXM: 1,979 TFLOPS BF16 with sparsity, half dense (the H100's die)
    fp8_matrix_TFLOPS=1979.0,  # [NV] H200 SXM: 3,958 TFLOPS FP8 with sparsity, half dense
    vector_TFLOPS=67.0,  # [NV] FP32
    hbm_B=141 * 10**9,  # [NV] 141 GB HBM3e
    hbm_GBps=4800.0,  # [NV] 4.8 TB/s
    smem_B=132 * 256 * 1024,  # the H100 die: 132 SMs x 256 KB
    smem_GBps=132 * 128 * 1.755,  # derived as for the H100
    host_B=2048 * GiB // 8,  # assumed: as the DGX H100
    host_GBps=64.0,  # assumed: as the DGX H100 [S]
    interconnect=nvlink4_node(),  # [NV] NVLink 900 GB/s bidirectional
    static_W=_H100_XPU_STATIC_W,  # assumed: the H100 SXM's (same die, same 700 W TDP [NV])
    source="NVIDIA H200 datasheet",
    efficiency=HOPPER,
)

l40s = _gpu(
    "l40s",
    matrix_TFLOPS=362.05,  # [NV] L40S: 733 TFLOPS BF16 with sparsity, 362.05 dense
    fp8_matrix_TFLOPS=733.0,  # [NV] L40S: 1,466 TFLOPS FP8 with sparsity, half dense
    vector_TFLOPS=91.6,  # [NV] FP32
    hbm_B=48 * 10**9,  # [NV] 48 GB GDDR6 (timed as the HBM space; its energies are HBM's: assumed)
    hbm_GBps=864.0,  # [NV] 864 GB/s
    smem_B=142 * 128 * 1024,  # [NV] 142 SMs x 128 KB (Ada)
    smem_GBps=142 * 128 * 2.52,  # derived: 128 B/clock/SM at the 2520 MHz boost clock [NV]
    host_B=2048 * GiB // 8,  # assumed: as the DGX
    host_GBps=32.0,  # [NV] PCIe Gen4 x16: 64 GB/s both directions
    interconnect=pcie_node(64.0),  # [NV] no NVLink: peers over PCIe Gen4 x16
    static_W=_idle_share(350.0),  # [NV] 350 W TDP
    source="NVIDIA L40S datasheet",
    efficiency=AMPERE,  # assumed: Ada tensor cores are mma.sync like Ampere's
)

_LOGIC_PIM_TFLOPS = 5 * 32 * 512 * 2 * 0.650 / 1000  # [D] per stack 32 modules x 512 MACs at 650 MHz: 106.5
_PIM_VECTOR_TFLOPS = 5 * 1024 * 0.650 / 1000  # assumed: 1024 fp32 lanes per stack (softmax/activation units)
_PIMBUF_B = 5 * (2 * MiB + 32 * 8 * 1024)  # [D] per stack 2 x 1 MB buffers + 32 modules x 8 KB


def _with_pim(
    base: DeviceSpec, name: str, *, internal_GBps: float, matrix_TFLOPS: float, datapath_pJ_per_bit: float,
    sections: int, source: str,
) -> DeviceSpec:
    """The xPU of ``base`` plus PIM units that reach HBM through an internal channel."""
    hbm = replace(base.memory(Space.HBM), sections=sections, exclusive_sections=True,
                  buffered_B=MiB)  # [D] a 1 MB input buffer per stack: broadcast activations are loaded once
    return replace(
        base,
        name=name,
        units=(*base.units, ComputeSpec(unit=Unit.PIM, matrix_TFLOPS=matrix_TFLOPS, vector_TFLOPS=_PIM_VECTOR_TFLOPS,
                                        issue_ns=100.0,  # assumed: command issue from the instruction queue
                                        static_W=_PIM_STATIC_W)),
        memories=(*(m if m.space is not Space.HBM else hbm for m in base.memories), _sram(Space.PIMBUF, _PIMBUF_B)),
        channels=(*base.channels, Channel(name="hbm_internal", bw_GBps=internal_GBps),
                  Channel(name="pimbuf", bw_GBps=internal_GBps)),  # assumed: buffers keep pace with the TSVs
        paths=(*base.paths,
               Path(unit=Unit.PIM, space=Space.HBM, channels=("hbm_internal",),
                    datapath_pJ_per_bit=datapath_pJ_per_bit),
               Path(unit=Unit.PIM, space=Space.PIMBUF, channels=("pimbuf",), datapath_pJ_per_bit=0.0),
               Path(unit=Unit.DMA, space=Space.PIMBUF, channels=("pimbuf",), datapath_pJ_per_bit=0.0)),
        source=source,
        model=PIM,
    )


duplex = _with_pim(
    h100, "duplex",
    internal_GBps=4 * _H100_HBM_GBps,  # [D] 4x TSVs: ~13.4 TB/s per device
    matrix_TFLOPS=_LOGIC_PIM_TFLOPS,
    datapath_pJ_per_bit=_LOGIC_PIM_DATAPATH_PJ_PER_BIT,
    sections=4,  # [D] 4 sections by bank-bundle index
    source="Duplex paper [D] sec. IV-V, Table II; LLMSimulator [LS] energies",
)

bankgroup_pim = _with_pim(
    h100, "bankgroup-pim",
    internal_GBps=4 * _H100_HBM_GBps,  # [D] same bandwidth as Logic-PIM
    matrix_TFLOPS=_LOGIC_PIM_TFLOPS,  # [D] same compute as Logic-PIM
    datapath_pJ_per_bit=_BANKGROUP_PIM_DATAPATH_PJ_PER_BIT,
    sections=4,  # assumed: bank-group units contend like bank bundles
    source="Duplex paper [D] BankGroup-PIM baseline; LLMSimulator [LS] energies",
)

bank_pim = _with_pim(
    h100, "bank-pim",
    internal_GBps=16 * _H100_HBM_GBps,  # [D] 16x bandwidth
    matrix_TFLOPS=16 * _H100_HBM_GBps / 1000,  # [D] Op/B 1 at that bandwidth (derived): 53.6
    datapath_pJ_per_bit=_BANK_PIM_DATAPATH_PJ_PER_BIT,
    sections=1,  # assumed: in-bank compute occupies every bank, so xPU and PIM alternate
    source="Duplex paper [D] Bank-PIM baseline (AttAcc-style); LLMSimulator [LS] energies",
)

PRESETS: dict[str, DeviceSpec] = {d.name: d for d in (h100, a100, h100_pcie, h200, l40s, duplex, bankgroup_pim,
                                                       bank_pim, sn40l)}
