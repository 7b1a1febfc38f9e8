"""Every instruction of the ISA table is implemented everywhere it must be: one record, checked here
once instead of by asserts at import time."""

from __future__ import annotations

from collections.abc import Mapping

from opbsim.emulator.collectives import GROUP_HANDLERS
from opbsim.emulator.energy import COMPONENTS
from opbsim.emulator.ops import HANDLERS
from opbsim.emulator.work import COST, VECTOR_OPS_PER_ELEMENT
from opbsim.isa import numerics
from opbsim.isa.spec import BY_MNEMONIC, BY_OPCODE, TABLE, Opcode
from opbsim.isa.types import OpGroup
from opbsim.report.energy import COMPONENT_LABEL
from opbsim.report.plot_style import COMPONENT_COLOURS

_CONTROL = {OpGroup.DATAFLOW, OpGroup.SYNC, OpGroup.CONTROL}  # the executor's control flow, no values


def _lacking(registry: Mapping[Opcode, object]) -> set[str]:
    """The mnemonics of the instructions ``registry`` has no entry for, and of its keys that are
    not an instruction of the table."""
    return {o.mnemonic for o in set(Opcode) ^ set(registry)}


def test_every_table_entry_is_the_opcode_member_named_after_its_mnemonic_and_every_member_has_one():
    assert len(TABLE) == len(Opcode)
    assert {s.opcode for s in TABLE} == set(Opcode)
    for s in TABLE:
        assert type(s.opcode) is Opcode
        assert s.opcode.mnemonic == s.mnemonic
        assert BY_OPCODE[s.opcode] is BY_MNEMONIC[s.mnemonic] is s


def test_the_completeness_check_names_an_instruction_a_registry_lacks():
    partial = {o: None for o in Opcode if o is not Opcode.GELU}
    assert _lacking(partial) == {"gelu"}
    assert _lacking({**partial, Opcode.GELU: None}) == set()


def test_every_instruction_has_a_cost_for_the_timing_model():
    assert _lacking(COST) == set()


def test_every_instruction_has_a_numerics_definition_or_moves_no_values():
    assert _lacking(numerics.SEMANTICS) == set()
    for s in TABLE:
        assert (numerics.SEMANTICS[s.opcode] is None) == (s.group in _CONTROL), s.mnemonic


def test_every_instruction_has_exactly_one_value_handler_or_is_control():
    for s in TABLE:
        owners = [s.opcode in HANDLERS, s.opcode in GROUP_HANDLERS, s.group in _CONTROL]
        assert owners.count(True) == 1, s.mnemonic
    assert _lacking({**HANDLERS, **GROUP_HANDLERS, **{s.opcode: None for s in TABLE if s.group in _CONTROL}}) == set()


def test_collectives_are_group_handled_and_elementwise_work_is_counted_per_element():
    for s in TABLE:
        assert (s.opcode in GROUP_HANDLERS) == (s.group is OpGroup.COLLECTIVE), s.mnemonic
        if s.group is OpGroup.VECTOR:
            assert s.ops_per_element > 0, s.mnemonic
            assert VECTOR_OPS_PER_ELEMENT[s.opcode] == s.ops_per_element, s.mnemonic
        if s.group in (OpGroup.MATRIX, OpGroup.DMA, OpGroup.COLLECTIVE, OpGroup.SYNC, OpGroup.CONTROL):
            assert s.ops_per_element == 0, s.mnemonic


def test_every_instruction_the_executor_runs_as_a_unary_or_binary_elementwise_op_has_a_gpu_reference_kernel_op():
    from opbsim.reference.interface import BINARY_OPS, UNARY_OPS

    for kernel_ops, like in ((UNARY_OPS, Opcode.EXP), (BINARY_OPS, Opcode.ADD)):
        same_handler = {o.mnemonic for o, h in HANDLERS.items() if h is HANDLERS[like]}
        assert same_handler <= set(kernel_ops)
        assert {BY_MNEMONIC[op].group for op in kernel_ops if op in BY_MNEMONIC} == {OpGroup.VECTOR}


def test_every_energy_component_has_a_label_and_a_colour():
    assert set(COMPONENT_LABEL) == set(COMPONENTS)
    assert {n for n, _ in COMPONENT_COLOURS} == set(COMPONENTS)


def test_every_device_model_has_a_name_and_a_registered_default_policy_and_every_preset_names_one():
    from opbsim.compiler.policies import POLICIES
    from opbsim.hardware import DeviceModel, device_names, get_device

    models = {get_device(d).model for d in device_names()}
    assert all(isinstance(m, DeviceModel) for m in models)
    assert {m.name for m in models} == {"gpu", "pim", "dataflow"}
    assert {m.default_policy for m in models} <= set(POLICIES)
