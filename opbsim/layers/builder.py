"""What a layer definition is written against: ``Builder``.

A definition (``DEFINITIONS[op.kind](builder, op)``) states the instructions one graph op computes,
over views of named buffers, in order. Two interpreters implement ``Builder``:
- the compiler's ``Lowerer`` (compiler/lower.py) records them as a kernel for the op's unit, with
  buffers placed by the device's layout and PIM GEMMs split into row tiles;
- ``NumericsBuilder`` (emulator/layer_values.py) executes each at once with numerics.py on buffers
  held apart: the numerics definition of a stage, which a compiled program must reproduce bit for
  bit.
So each layer is written once; what differs between the two is placement, tiling and addresses,
never the values.

Contracts: ``buf`` names a stage-wide buffer (weights, activations that cross ops, KV caches);
``scratch`` an intermediate of the op being lowered (``new_part`` starts a part of the op whose
scratch may reuse the previous part's); ``const`` a table the program reads, fixed at compile time;
``emit`` one instruction (operands as the ISA table orders them); ``gemm(out, x, w)`` the product
``out = x w`` however the unit tiles it. ``layer`` is the decoder layer of the op (None outside
the layers); ``routing.layer(l)`` the routing MoE layer ``l`` is specialised on.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from opbsim.isa.program import AttentionPart
from opbsim.isa.types import DType
from opbsim.layers.routing import LayerRouting
from opbsim.layers.view import View
from opbsim.workloads.attention import Shard
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.stage import Stage

__all__ = ["Builder", "Routing"]


class Routing(Protocol):
    def layer(self, layer: int) -> LayerRouting: ...


class Builder(Protocol):
    model: ModelConfig
    stage: Stage
    shard: Shard
    tp: int
    layer: int | None
    routing: Routing

    def buf(self, name: str, dtype: DType, shape: tuple[int, ...], *, expert: int | None = None,
            kv_layer: int | None = None) -> View:
        """The stage-wide buffer ``name``; ``expert`` / ``kv_layer``: the routed expert or the
        layer whose KV cache it belongs to (a layout may place those apart)."""

    def const(self, name: str, values: np.ndarray, dtype: DType = DType.I32, *,
              expert: int | None = None) -> View:
        """A constant table (bf16 given as raw bits); the same name twice must hold the same values."""

    def scratch(self, name: str, dtype: DType, shape: tuple[int, ...]) -> View: ...

    def new_part(self) -> None:
        """The op's next part starts: its scratch may reuse the previous part's."""

    def emit(self, mnemonic: str, *operands: View | int | float, grouped: bool = False,
             attention: AttentionPart | None = None) -> None: ...

    def gemm(self, out: View, x: View, w: View, *, grouped: bool = False) -> None: ...

    def row_tile(self, k: int, n: int, *, partial_B: int = 4) -> int | None:
        """Rows per tile of a GEMM of k inputs and n outputs per row on this unit, None: untiled;
        ``partial_B``: bytes the GEMM keeps per output (4: one fp32 sum; gemm_fp8 keeps two, 8)."""
