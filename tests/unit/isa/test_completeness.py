"""Every instruction of the ISA table is implemented everywhere it must be: one record, checked here
once instead of by asserts at import time."""

from __future__ import annotations

from opbsim.emulator.collectives import GROUP_HANDLERS
from opbsim.emulator.energy import COMPONENTS
from opbsim.emulator.ops import HANDLERS
from opbsim.emulator.work import COST
from opbsim.isa.spec import TABLE
from opbsim.isa.types import OpGroup
from opbsim.report.energy import COMPONENT_LABEL
from opbsim.report.plot_style import COMPONENT_COLOURS

_CONTROL = {"launch", "halt", "signal", "wait"}  # the executor's control flow, no values


def test_every_instruction_has_a_cost_for_the_timing_model():
    assert set(COST) == {s.mnemonic for s in TABLE}


def test_every_instruction_has_exactly_one_value_handler_or_is_control():
    for s in TABLE:
        owners = [s.mnemonic in HANDLERS, s.mnemonic in GROUP_HANDLERS, s.mnemonic in _CONTROL]
        assert owners.count(True) == 1, s.mnemonic
    assert set(HANDLERS) | set(GROUP_HANDLERS) | _CONTROL == {s.mnemonic for s in TABLE}


def test_collectives_are_group_handled_and_elementwise_work_is_counted_per_element():
    for s in TABLE:
        assert (s.mnemonic in GROUP_HANDLERS) == (s.group is OpGroup.COLLECTIVE), s.mnemonic
        if s.group is OpGroup.VECTOR:
            assert s.ops_per_element > 0, s.mnemonic
        if s.group in (OpGroup.MATRIX, OpGroup.DMA, OpGroup.COLLECTIVE, OpGroup.SYNC, OpGroup.CONTROL):
            assert s.ops_per_element == 0, s.mnemonic


def test_every_energy_component_has_a_label_and_a_colour():
    assert set(COMPONENT_LABEL) == set(COMPONENTS)
    assert {n for n, _ in COMPONENT_COLOURS} == set(COMPONENTS)


def test_every_device_model_has_a_kernel_model_table_and_a_default_policy_and_every_preset_names_one():
    from opbsim.compiler.policies import MODEL_POLICY, POLICIES
    from opbsim.emulator.devices import KERNEL_MODELS
    from opbsim.hardware import device_names, get_device
    from opbsim.hardware.spec import DEVICE_MODELS

    assert set(KERNEL_MODELS) == set(DEVICE_MODELS) == set(MODEL_POLICY)
    assert set(MODEL_POLICY.values()) <= set(POLICIES)
    assert {get_device(d).model for d in device_names()} == set(DEVICE_MODELS)
