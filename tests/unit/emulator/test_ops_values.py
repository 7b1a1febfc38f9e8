"""The layer definitions interpreted on an ``Ops`` (emulator/ops_values.py): every computing
instruction has a kernel, and one without (a collective) is refused by name. That a whole layer
equals the numerics definition bit for bit is tests/gpu/test_layers_cpu.py."""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.emulator.ops_values import SUPPORTED, OpsBuilder
from opbsim.isa.spec import BY_OPCODE, Opcode, OpGroup
from opbsim.isa.types import DType
from opbsim.layers.view import View
from opbsim.reference.numpy_ops import NumpyOps
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.stage import Stage

_NOT_COMPUTING = {OpGroup.COLLECTIVE, OpGroup.DATAFLOW, OpGroup.SYNC, OpGroup.CONTROL}


def _builder() -> OpsBuilder:
    model = ModelConfig(name="tiny", hidden_size=8, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=4,
                        vocab_size=16, dense_ffn=16, norm_eps=1e-5, rope_theta=1e4)
    return OpsBuilder(NumpyOps(), model, Stage.decode(2, 3), lambda name: None)


def test_every_instruction_that_computes_has_an_ops_kernel():
    computing = {o for o in Opcode if BY_OPCODE[o].group not in _NOT_COMPUTING}
    assert computing - SUPPORTED == set()


def test_an_instruction_is_computed_into_a_strided_destination_view():
    b = _builder()
    src = b.const("src", np.arange(6, dtype=np.float32).reshape(2, 3), DType.FP32)
    dst = b.buf("dst", DType.FP32, (3, 2))
    transposed = View(dst.buffer, dst.space, 0, DType.FP32, (2, 3), (1, 2))
    b.emit("scale", transposed, src, 2.0)
    assert b.raw("dst").reshape(3, 2).tolist() == [[0, 6], [2, 8], [4, 10]]


def test_a_collective_is_refused_by_name():
    b = _builder()
    x = b.buf("x", DType.BF16, (2, 8))
    with pytest.raises(ValueError, match="allreduce has no Ops kernel"):
        b.emit("allreduce", b.buf("y", DType.BF16, (2, 8)), x, 2)
