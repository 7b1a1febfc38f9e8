"""Interconnect presets: ports and collective libraries, each value with its source.

[NV] NVIDIA H100 / A100 / DGX datasheets and the NVLink / NVSwitch pages.
[NCCL] NCCL's own cost model, src/graph/tuning.cc and src/graph/topo.h of NCCL 2.30.7 (commit
5067397): the per-link bandwidth NCCL assumes for an NVLink (its achievable share of the 25 GB/s
nominal), the base and per-hop latencies per (algorithm, protocol) (ncclTunerConstantsDefaults:
baseLatencies, hwLatencies), the protocol bandwidth factors and the NVLS efficiency.
[vLLM] vLLM's custom all-reduce (vllm/distributed/device_communicators/custom_all_reduce.py).
[TRT] TensorRT-LLM's custom all-reduce (cpp/tensorrt_llm/kernels/customAllReduceKernels.cu):
one-shot and two-shot kernels over NVLink peer memory, synchronised by flags.
[SG2904] sgl-project/sglang PR #2904 (2025-01-15), "unit test performance in H100 (without cuda
graph)": the TensorRT-LLM-derived custom all-reduce (input copied inside the kernel, one launch) at
512 B and 4 KiB takes 3.7-3.9 us at tp 2, 3.7-4.8 us at tp 4, 5.7-5.9 us at tp 8; vLLM's of the
time (a copy kernel into its peer buffer, then the reduce) 8.5-10.1 us. Inside a CUDA graph vLLM
registers the graph's buffers and skips the copy, so the one-launch figure is the one a decode step
pays.
[S] SN40L paper, arXiv 2405.07518.
[C2C] NVIDIA's comparison of NVLink-C2C with an off-package SerDes link (Grace Hopper; quoted in
"Why Nvidia's NVLink C2C Is Redefining GPU-CPU Interconnects", besthub.dev): 1.3 pJ/bit on
NVLink-C2C, 5.5 pJ/bit on a SerDes link. [CAB] NVIDIA DGX SuperPOD cabling guide, "Port Power":
an active (HDR) cable can require 6 W per port.
Link energies are per bit a device sends, end to end; a switch's core is not counted.
"assumed" = no source gives it; a parameter a user can change (see docs/collectives.md for the
sensitivity of results to each).
"""

from __future__ import annotations

from dataclasses import replace

from opbsim.hardware.interconnect import AlgoCost, Algorithm, Fabric, Interconnect, Library, Port, Protocol

__all__ = ["NCCL", "NCCL_CUSTOM_AR", "DIRECT_LINKS", "nvlink4_node", "nvlink3_node", "pcie_node", "sn40l_links"]

_LL, _LL128, _SIMPLE = Protocol.LL, Protocol.LL128, Protocol.SIMPLE
_NVLINK_NOMINAL_GBps = 25.0  # [NV] one NVLink (gen 3 and 4): 25 GB/s per direction
_SERDES_PJ_PER_BIT = 5.5  # [C2C] one off-package SerDes link, both ends
_NVSWITCH_PJ_PER_BIT = 2 * _SERDES_PJ_PER_BIT  # derived: GPU -> NVSwitch -> GPU, two links: 11
_NET_PJ_PER_BIT = 4 * 6.0 / 400e9 * 1e12  # assumed: [CAB]'s 6 W per port (an HDR figure) at 400 Gb/s, four ports
# crossed (NIC, switch in, switch out, NIC): 60; NIC and switch ASICs not counted


def _cost(algorithm: Algorithm, protocol: Protocol, base_us: float, intra_us: float, inter_us: float,
          bw_factor: float, max_size_B: int = 0) -> AlgoCost:
    return AlgoCost(algorithm=algorithm, protocol=protocol, base_us=base_us, intra_step_us=intra_us,
                    inter_step_us=inter_us, bw_factor=bw_factor, max_size_B=max_size_B)


_CUSTOM_AR_MAX_B = 8 * 2**20  # [vLLM] custom all-reduce staging buffer: max_size = 8 MiB (custom_all_reduce.py)
_CUSTOM_AR_BASE_US = 5.8 - 1.0 - 0.6  # [SG2904] one-shot at tp 8, less the issue and the one step (below)


NCCL = Library(
    name="nccl",
    costs=(
        # [NCCL] baseLatencies (Ring 6.6 / 14.0 / 8.4 us; Tree 6.8 / 14.0 / 8.4), hwLatencies NVLink (Ring
        # 0.6 / 1.9 / 3.4; Tree 0.6 / 1.25 / 4.0) and NET (Ring 2.7 / 4.0 / 14.0; Tree 5.0 / 8.5 / 14) us per
        # step, for LL / LL128 / Simple; bandwidth: ring LL 0.5, LL128 0.92, Simple 1; tree LL 1/3.8, LL128 7/9
        # (one node), Simple 0.92.
        _cost(Algorithm.RING, _LL, 6.6, 0.6, 2.7, 0.5),
        _cost(Algorithm.RING, _LL128, 14.0, 1.9, 4.0, 0.92),
        _cost(Algorithm.RING, _SIMPLE, 8.4, 3.4, 14.0, 1.0),
        _cost(Algorithm.TREE, _LL, 6.8, 0.6, 5.0, 1 / 3.8),
        _cost(Algorithm.TREE, _LL128, 14.0, 1.25, 8.5, 7 / 9),
        _cost(Algorithm.TREE, _SIMPLE, 8.4, 4.0, 14.0, 0.92),
        # [NCCL] NVLS: Simple only, latency hwLatencies NVLink NVLS 25 us for the call (2 steps of 12.5),
        # bandwidth nvlsEfficiency 0.85 on Hopper
        _cost(Algorithm.NVLS, _SIMPLE, 0.0, 12.5, 0.0, 0.85),
        # hierarchical: ring phases at ring costs ([NCCL] the intra/inter split of its ring model)
        _cost(Algorithm.HIER, _LL128, 14.0, 1.9, 4.0, 0.92),
        _cost(Algorithm.HIER, _SIMPLE, 8.4, 3.4, 14.0, 1.0),
        # all-to-all: grouped send/receive, Simple protocol, one step to every peer at once
        _cost(Algorithm.DIRECT, _SIMPLE, 8.4, 3.4, 14.0, 1.0),
    ),
    source="NCCL tuning.cc cost model",
)

NCCL_CUSTOM_AR = Library(
    name="nccl+custom-ar",
    costs=(
        *NCCL.costs,
        # [TRT] custom all-reduce: a flag barrier per step at NVLink LL step latency (assumed: the
        # kernels synchronise like LL, one 0.6 us hop), full bandwidth (plain stores to peer memory).
        # Base: [SG2904] 5.8 us at tp 8 for 512 B-4 KiB, one launch included: 5.8 - the instruction's
        # own issue (1 us, presets.py) - one 0.6 us step = 4.2 us (tp 2 / 4 measured 1-2 us less: one
        # base for every group size, the tp 8 figure, where the small all-reduces weigh most)
        _cost(Algorithm.ONESHOT, _SIMPLE, _CUSTOM_AR_BASE_US, 0.6, 0.0, 1.0, _CUSTOM_AR_MAX_B),
        _cost(Algorithm.TWOSHOT, _SIMPLE, _CUSTOM_AR_BASE_US, 0.6, 0.0, 1.0, _CUSTOM_AR_MAX_B),  # assumed: as one-shot
    ),
    source="NCCL tuning.cc cost model; TensorRT-LLM custom all-reduce (as serving engines use for small messages)",
)

DIRECT_LINKS = Library(
    name="direct-links",
    costs=(
        # assumed: [S] publishes no collective costs; a hardware-orchestrated collective over direct peer
        # links, 1 us per step, no host involved (the preset's former assumption), full bandwidth
        _cost(Algorithm.RING, _SIMPLE, 1.0, 1.0, 5.0, 1.0),
        _cost(Algorithm.ONESHOT, _SIMPLE, 1.0, 1.0, 5.0, 1.0),
        _cost(Algorithm.TWOSHOT, _SIMPLE, 1.0, 1.0, 5.0, 1.0),
        _cost(Algorithm.HIER, _SIMPLE, 1.0, 1.0, 5.0, 1.0),
        _cost(Algorithm.DIRECT, _SIMPLE, 1.0, 1.0, 5.0, 1.0),
    ),
    source="assumed (SN40L paper [S] publishes no collective costs)",
)


def nvlink4_node() -> Interconnect:
    """DGX / HGX H100: 18 NVLink4 links into NVSwitch gen 3 (NVLink SHARP), one 400 Gb/s NDR NIC per GPU."""
    return Interconnect(
        scale_up=Port(name="nvlink4", bw_GBps=18 * _NVLINK_NOMINAL_GBps,  # [NV] 900 GB/s bidirectional
                      efficiency=20.6 / _NVLINK_NOMINAL_GBps,  # [NCCL] SM90_NVLINK_BW 20.6 GB/s per link
                      energy_pJ_per_bit=_NVSWITCH_PJ_PER_BIT),
        scale_out=Port(name="ib-ndr", bw_GBps=400 / 8,  # [NV] ConnectX-7 NDR 400 Gb/s per GPU
                       efficiency=47 / 50,  # NVIDIA/nccl-tests#290, NCCL maintainer: "46-48GB/s per NIC"
                       energy_pJ_per_bit=_NET_PJ_PER_BIT),
        fabric=Fabric.SWITCH,
        in_switch_reduction=True,  # [NV] NVSwitch gen 3 NVLink SHARP
        node_devices=8,  # [NV] 8 GPUs per DGX H100
        library=NCCL_CUSTOM_AR,
    )


def nvlink3_node() -> Interconnect:
    """DGX A100: 12 NVLink3 links into NVSwitch gen 2 (no reduction), one 200 Gb/s HDR NIC per GPU."""
    return Interconnect(
        scale_up=Port(name="nvlink3", bw_GBps=12 * _NVLINK_NOMINAL_GBps,  # [NV] 600 GB/s bidirectional
                      efficiency=20.0 / _NVLINK_NOMINAL_GBps,  # [NCCL] SM80_NVLINK_BW 20.0 GB/s per link
                      energy_pJ_per_bit=_NVSWITCH_PJ_PER_BIT),  # assumed: NVLink3 SerDes as [C2C]'s
        scale_out=Port(name="ib-hdr", bw_GBps=200 / 8,  # [NV] ConnectX-6 HDR 200 Gb/s per GPU
                       efficiency=47 / 50,  # assumed: the NDR figure's share
                       energy_pJ_per_bit=2 * _NET_PJ_PER_BIT),  # [CAB] 6 W per HDR port at 200 Gb/s: 120
        fabric=Fabric.SWITCH,
        in_switch_reduction=False,  # [NV] NVSwitch gen 2 has no in-network reduction
        node_devices=8,  # [NV] 8 GPUs per DGX A100
        library=NCCL_CUSTOM_AR,
    )


def pcie_node(bidirectional_GBps: float) -> Interconnect:
    """A PCIe server (H100 PCIe with NVLink bridges, L40S): peers over ``bidirectional_GBps``
    (half per direction), modelled as the DGX A100's switch without reduction (assumed: no
    published collective costs), one 200 Gb/s NIC per GPU (assumed)."""
    base = nvlink3_node()
    return replace(base, scale_up=Port(name="pcie-peer", bw_GBps=bidirectional_GBps / 2,
                                       efficiency=0.8,  # assumed: the NVLink3 share [NCCL]
                                       energy_pJ_per_bit=_NVSWITCH_PJ_PER_BIT))  # assumed: two SerDes links


def sn40l_links() -> Interconnect:
    """SN40L node: 8 sockets with direct peer links (a mesh), one NIC share per socket."""
    return Interconnect(
        scale_up=Port(name="sn40l-peer", bw_GBps=100.0,  # assumed: [S] does not publish the peer links
                      efficiency=1.0,  # assumed
                      energy_pJ_per_bit=_SERDES_PJ_PER_BIT),  # assumed: one direct SerDes link as [C2C]'s
        scale_out=Port(name="sn40l-net", bw_GBps=50.0,  # assumed: as the DGX presets' 400 Gb/s per device
                       efficiency=47 / 50,  # assumed: as the DGX NDR figure
                       energy_pJ_per_bit=_NET_PJ_PER_BIT),  # assumed: as the DGX NDR network
        fabric=Fabric.MESH,  # assumed: [S] shows sockets linked peer to peer, no switch
        in_switch_reduction=False,
        node_devices=8,  # [S] 8 sockets per node
        library=DIRECT_LINKS,
    )
