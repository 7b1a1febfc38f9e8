"""Hardware presets, each value with its source.

[D] Duplex paper, arXiv 2409.01141 (MICRO 2024). [S] SN40L paper, arXiv 2405.07518.
[LS] the Duplex authors' simulator (scale-snu/LLMSimulator). [NV] NVIDIA H100 / A100 datasheets.
"derived" = arithmetic on sourced values. "assumed" = no source gives it; a parameter to change.
"""

from __future__ import annotations

from dataclasses import replace

from opbsim.hardware.interconnect import Interconnect
from opbsim.hardware.links import nvlink3_node, nvlink4_node
from opbsim.hardware.sn40l import sn40l
from opbsim.hardware.spec import Channel, ComputeSpec, DeviceSpec, MemorySpec, Path
from opbsim.isa.types import Space, Unit

__all__ = ["h100", "a100", "duplex", "bank_pim", "bankgroup_pim", "PRESETS"]

GiB = 2**30
MiB = 2**20
_ACCESS_B = 32  # energies below are per 32-byte DRAM access [LS]
_ACTIVATE_NJ = 0.909  # [LS]
_XPU_DRAM_PJ_PER_B = (_ACTIVATE_NJ + 0.891) * 1000 / _ACCESS_B  # derived from [LS]: 56.25
_LOGIC_PIM_DRAM_PJ_PER_B = (_ACTIVATE_NJ + 0.464) * 1000 / _ACCESS_B  # derived from [LS]: 42.91
_BANKGROUP_PIM_DRAM_PJ_PER_B = (_ACTIVATE_NJ + 0.686) * 1000 / _ACCESS_B  # derived from [LS]: 49.84
_BANK_PIM_DRAM_PJ_PER_B = (_ACTIVATE_NJ + 0.187) * 1000 / _ACCESS_B  # derived from [LS]: 34.25
_SRAM_PJ_PER_B = 0.5  # assumed: on-chip SRAM access, not in [D]/[LS]
_HOST_PJ_PER_B = 60.0  # assumed: host DRAM over PCIe, not in [D]/[S]
_MAC_PJ_PER_FLOP = 0.23  # [LS]

_H100_HBM_GBps = 3352.0  # [D]: 5 stacks x 670.4 GB/s


def _gpu(
    name: str, *, matrix_TFLOPS: float, vector_TFLOPS: float, hbm_B: int, hbm_GBps: float, smem_B: int,
    smem_GBps: float, host_B: int, host_GBps: float, interconnect: Interconnect, source: str,
) -> DeviceSpec:
    return DeviceSpec(
        name=name,
        units=(
            ComputeSpec(unit=Unit.XPU, matrix_TFLOPS=matrix_TFLOPS, vector_TFLOPS=vector_TFLOPS,
                        issue_ns=1000.0),  # assumed: one kernel launch, CUDA-graph class
            ComputeSpec(unit=Unit.DMA, matrix_TFLOPS=0.0, vector_TFLOPS=0.0,
                        issue_ns=1000.0),  # assumed: one copy-engine launch
        ),
        memories=(
            MemorySpec(space=Space.HBM, capacity_B=hbm_B),
            MemorySpec(space=Space.SRAM, capacity_B=smem_B),
            MemorySpec(space=Space.HOST, capacity_B=host_B),
        ),
        channels=(
            Channel(name="hbm", bw_GBps=hbm_GBps),
            Channel(name="smem", bw_GBps=smem_GBps),
            Channel(name="pcie", bw_GBps=host_GBps),
        ),
        paths=(
            Path(unit=Unit.XPU, space=Space.HBM, channels=("hbm",), energy_pJ_per_B=_XPU_DRAM_PJ_PER_B),
            Path(unit=Unit.XPU, space=Space.SRAM, channels=("smem",), energy_pJ_per_B=_SRAM_PJ_PER_B),
            Path(unit=Unit.DMA, space=Space.HBM, channels=("hbm",), energy_pJ_per_B=_XPU_DRAM_PJ_PER_B),
            Path(unit=Unit.DMA, space=Space.SRAM, channels=("smem",), energy_pJ_per_B=_SRAM_PJ_PER_B),
            Path(unit=Unit.DMA, space=Space.HOST, channels=("pcie",), energy_pJ_per_B=_HOST_PJ_PER_B),
        ),
        flop_energy_pJ=_MAC_PJ_PER_FLOP,
        interconnect=interconnect,
        source=source,
    )


h100 = _gpu(
    "h100",
    matrix_TFLOPS=989.4,  # [D] dense FP16/BF16 tensor
    vector_TFLOPS=67.0,  # [NV] FP32 non-tensor, SXM
    hbm_B=80 * GiB,  # [D] 5 stacks x 16 GB
    hbm_GBps=_H100_HBM_GBps,
    smem_B=132 * 256 * 1024,  # AttAcc's H100 config: 132 SMs x 256 KB
    smem_GBps=132 * 128 * 1.755,  # derived: 128 B/clock/SM at the 1755 MHz boost clock [NV]
    host_B=2048 * GiB // 8,  # assumed: 2 TiB DGX host memory shared by 8 GPUs
    host_GBps=64.0,  # [S] host -> GPU in a DGX H100
    interconnect=nvlink4_node(),  # [D] NVLink 900 GB/s bidirectional; links.py
    source="Duplex paper [D] sec. VI; NVIDIA H100 SXM datasheet",
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
    source="SN40L paper [S]; NVIDIA A100 datasheet",
)

_LOGIC_PIM_TFLOPS = 5 * 32 * 512 * 2 * 0.650 / 1000  # [D] per stack 32 modules x 512 MACs at 650 MHz: 106.5
_PIM_VECTOR_TFLOPS = 5 * 1024 * 0.650 / 1000  # assumed: 1024 fp32 lanes per stack (softmax/activation units)
_PIMBUF_B = 5 * (2 * MiB + 32 * 8 * 1024)  # [D] per stack 2 x 1 MB buffers + 32 modules x 8 KB


def _with_pim(
    base: DeviceSpec, name: str, *, internal_GBps: float, matrix_TFLOPS: float, dram_pJ_per_B: float,
    sections: int, source: str,
) -> DeviceSpec:
    """The xPU of ``base`` plus PIM units that reach HBM through an internal channel."""
    hbm = replace(base.memory(Space.HBM), sections=sections, exclusive_sections=True,
                  buffered_B=MiB)  # [D] a 1 MB input buffer per stack: broadcast activations are loaded once
    return replace(
        base,
        name=name,
        units=(*base.units, ComputeSpec(unit=Unit.PIM, matrix_TFLOPS=matrix_TFLOPS, vector_TFLOPS=_PIM_VECTOR_TFLOPS,
                                        issue_ns=100.0)),  # assumed: command issue from the instruction queue
        memories=(*(m if m.space is not Space.HBM else hbm for m in base.memories),
                  MemorySpec(space=Space.PIMBUF, capacity_B=_PIMBUF_B)),
        channels=(*base.channels, Channel(name="hbm_internal", bw_GBps=internal_GBps),
                  Channel(name="pimbuf", bw_GBps=internal_GBps)),  # assumed: buffers keep pace with the TSVs
        paths=(*base.paths,
               Path(unit=Unit.PIM, space=Space.HBM, channels=("hbm_internal",), energy_pJ_per_B=dram_pJ_per_B),
               Path(unit=Unit.PIM, space=Space.PIMBUF, channels=("pimbuf",), energy_pJ_per_B=_SRAM_PJ_PER_B),
               Path(unit=Unit.DMA, space=Space.PIMBUF, channels=("pimbuf",), energy_pJ_per_B=_SRAM_PJ_PER_B)),
        source=source,
    )


duplex = _with_pim(
    h100, "duplex",
    internal_GBps=4 * _H100_HBM_GBps,  # [D] 4x TSVs: ~13.4 TB/s per device
    matrix_TFLOPS=_LOGIC_PIM_TFLOPS,
    dram_pJ_per_B=_LOGIC_PIM_DRAM_PJ_PER_B,
    sections=4,  # [D] 4 sections by bank-bundle index
    source="Duplex paper [D] sec. IV-V, Table II; LLMSimulator [LS] energies",
)

bankgroup_pim = _with_pim(
    h100, "bankgroup-pim",
    internal_GBps=4 * _H100_HBM_GBps,  # [D] same bandwidth as Logic-PIM
    matrix_TFLOPS=_LOGIC_PIM_TFLOPS,  # [D] same compute as Logic-PIM
    dram_pJ_per_B=_BANKGROUP_PIM_DRAM_PJ_PER_B,
    sections=4,  # assumed: bank-group units contend like bank bundles
    source="Duplex paper [D] BankGroup-PIM baseline; LLMSimulator [LS] energies",
)

bank_pim = _with_pim(
    h100, "bank-pim",
    internal_GBps=16 * _H100_HBM_GBps,  # [D] 16x bandwidth
    matrix_TFLOPS=16 * _H100_HBM_GBps / 1000,  # [D] Op/B 1 at that bandwidth (derived): 53.6
    dram_pJ_per_B=_BANK_PIM_DRAM_PJ_PER_B,
    sections=1,  # assumed: in-bank compute occupies every bank, so xPU and PIM alternate
    source="Duplex paper [D] Bank-PIM baseline (AttAcc-style); LLMSimulator [LS] energies",
)

PRESETS: dict[str, DeviceSpec] = {d.name: d for d in (h100, a100, duplex, bankgroup_pim, bank_pim, sn40l)}
