"""The sn40l socket, its dataflow parameters, and the SN40L and DGX nodes."""

import dataclasses
import re

import pytest

from opbsim.errors import InputError
from opbsim.hardware import DataflowParams, get_device, get_node, node_names
from opbsim.hardware.device_models.dataflow import DataflowModel
from opbsim.isa.types import Space, Unit

SN40L = get_device("sn40l")
GiB, MiB, KiB = 2**30, 2**20, 2**10


def test_an_sn40l_socket_has_1040_pcus_and_pmus_638_bf16_tflops_and_three_memory_tiers():
    df = SN40L.model.params
    assert (df.pcus, df.pmus) == (1040, 1040)
    assert SN40L.compute(Unit.PCU).matrix_TFLOPS == 638.0
    assert SN40L.memory(Space.SRAM).capacity_B == 520 * MiB
    assert df.pmu_B == 520 * MiB // 1040 == 512 * KiB  # derived: SRAM per PMU
    assert SN40L.memory(Space.HBM).capacity_B == 64 * 10**9  # [S] "64 GB": a vendor's GB
    assert SN40L.memory(Space.DDR).capacity_B == 1_500 * 10**9  # [S] "1.5 TB"
    assert SN40L.channel_bw_GBps("hbm") == pytest.approx(1800.0 * (1 - 450 / 3900))  # [S] peak, all-bank refresh
    assert SN40L.channel_bw_GBps("ddr") == 200.0


def test_the_assumed_pcu_geometry_gives_the_vector_rate_and_the_pmu_fabric_hundreds_of_tb_per_s():
    df = SN40L.model.params
    assert SN40L.compute(Unit.PCU).vector_TFLOPS == pytest.approx(1040 * 32 * 6 * df.clock_MHz * 1e6 / 1e12)
    assert SN40L.channel_bw_GBps("pmu") == pytest.approx(1040 * df.pmu_GBps)
    assert 100_000 < SN40L.channel_bw_GBps("pmu") < 1_000_000  # "hundreds of TB/s" [S]


def test_software_orchestration_costs_more_per_kernel_than_the_on_chip_sequencer():
    df = SN40L.model.params
    assert df.host_launch_us + df.host_sync_us > df.hw_launch_us
    assert df.hop_s == df.hop_cycles / (df.clock_MHz * 1e6)
    assert df.config_s(2080) == 2080 * df.config_B_per_unit / (df.config_GBps * 1e9)


def test_assumed_parameters_are_fields_a_user_can_change():
    ic = SN40L.interconnect
    params = dataclasses.replace(SN40L.model.params, host_launch_us=2.0)
    faster = dataclasses.replace(SN40L, model=DataflowModel(params),
                                 interconnect=dataclasses.replace(ic, scale_up=dataclasses.replace(ic.scale_up,
                                                                                                    bw_GBps=400.0)))
    assert faster.model.params.host_launch_us == 2.0 and faster.link_GBps == 400.0
    assert SN40L.model.params.host_launch_us != 2.0  # the preset is untouched


@pytest.mark.parametrize("field,value,message", [
    ("pcus", 0, "dataflow: pcus must be a positive number, got 0"),
    ("pmu_B", 1.5, "dataflow: pmu_B must be an integer, got 1.5"),
    ("host_launch_us", -1.0, "dataflow: host_launch_us must be a non-negative number, got -1.0"),
    ("config_B_per_unit", 1.5, "dataflow: config_B_per_unit must be an integer, got 1.5"),
])
def test_bad_dataflow_parameters_are_input_errors_naming_the_field(field, value, message):
    with pytest.raises(InputError, match=f"^{message}$"):
        dataclasses.replace(SN40L.model.params, **{field: value})


def test_dataflow_parameters_on_a_device_without_a_pcu_are_an_input_error():
    with pytest.raises(InputError, match="^device h100: dataflow parameters need a pcu unit$"):
        dataclasses.replace(get_device("h100"), model=SN40L.model)
    assert isinstance(SN40L.model.params, DataflowParams)


def test_an_sn40l_node_is_8_sockets_whose_ddr_holds_the_experts_and_copies_over_1_tb_per_s():
    node = get_node("sn40l")
    assert node.devices == 8 and node.device is SN40L
    assert node.store_space is Space.DDR and node.store_B == 8 * 1_500 * 10**9
    assert node.hbm_B == 8 * 64 * 10**9
    assert node.copy_GBps >= 1000.0  # "over 1 TB/s" [S]


@pytest.mark.parametrize("name,gpu,host_to_gpu_GBps", [("dgx-h100", "h100", 64.0), ("dgx-a100", "a100", 32.0)])
def test_a_dgx_node_is_8_gpus_with_host_memory_behind_pcie(name, gpu, host_to_gpu_GBps):
    node = get_node(name)
    assert node.devices == 8 and node.device is get_device(gpu)
    assert node.store_space is Space.HOST
    assert node.store_B == 8 * get_device(gpu).memory(Space.HOST).capacity_B
    assert node.copy_GBps == host_to_gpu_GBps  # [S]


def test_an_unknown_node_is_an_input_error_listing_the_known_ones():
    assert node_names() == ["dgx-a100", "dgx-h100", "sn40l"]
    with pytest.raises(InputError, match=r"^unknown node 'tpu' \(known: dgx-a100, dgx-h100, sn40l\)$"):
        get_node("tpu")


def test_a_node_with_its_store_in_hbm_is_an_input_error():
    with pytest.raises(InputError, match="^node x: the store must be ddr or host memory, got hbm$"):
        dataclasses.replace(get_node("sn40l"), name="x", store_space=Space.HBM)


def test_hbm_sustains_its_peak_less_refresh_and_activations_never_limit_a_sequential_stream():
    from opbsim.hardware.dram import HBM2E_16GB

    assert HBM2E_16GB.refresh_loss == 450 / 3900  # unavailable tRFC out of every tREFI
    per_channel = 1800.0 / 64  # GB/s, 64 pseudo-channels
    assert 4 * 1024 / 15 > per_channel  # four 1 KiB rows per tFAW outrun a pseudo-channel's stream
    assert HBM2E_16GB.activation_bound(1800.0) == 1.0
    per_bank = dataclasses.replace(HBM2E_16GB, refresh="per-bank")
    assert per_bank.sustained_GBps(1800.0) == 1800.0
    assert HBM2E_16GB.activation_bound(1800.0 * 100) < 1.0  # a much faster interface would be activation-bound


@pytest.mark.parametrize("field,value,message", [
    ("tRFC_ns", 5000.0, "dram hbm2e-16gb: tRFC_ns (5000.0) must be below tREFI_ns (3900.0)"),
    ("refresh", "sometimes", "dram hbm2e-16gb: refresh must be one of all-bank, per-bank, got 'sometimes'"),
    ("row_B", 0, "dram hbm2e-16gb: row_B must be a positive number, got 0"),
])
def test_bad_dram_timings_are_input_errors(field, value, message):
    from opbsim.hardware.dram import HBM2E_16GB

    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        dataclasses.replace(HBM2E_16GB, **{field: value})
