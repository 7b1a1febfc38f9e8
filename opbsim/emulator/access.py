"""Access streams: how an instruction's bytes lie in memory, and how many DRAM rows they open.

Every descriptor operand an instruction reads or writes is one stream; a read-modify-write
operand is a read stream and a write stream. A stream is ``runs`` of contiguous bytes laid out by
the descriptor's strides, or, for a gather or scatter, rows at addresses the instruction's index
operand picks.

Rows opened (``Stream.rows``), where DRAM is taken as consecutive rows of ``row_B`` bytes (the
address mapping spreads consecutive rows over banks and channels, so a sequential stream keeps
each bank's open row until it has used all of it):
- a sequential stream of B bytes opens ceil(B / row_B) rows, spread over the banks: one row
  activation per row_B bytes, not per burst (a weight matrix streamed by a GEMM or GEMV; one
  request's KV cache read by decode attention, one stream per request);
- a strided view opens the rows its strides touch: a dimension of n copies at a stride of s bytes
  multiplies the rows of one copy by n, capped at the rows that the dimension's whole span covers
  (copies closer together than a row share rows); run alignment is ignored, so a run may open
  one row fewer than an unaligned one would;
- a gather or scatter of r rows of L bytes at indexed addresses opens r x ceil(L / row_B) rows:
  the rows are taken as distinct and far apart, as random indices into a large table are (the
  embedding lookup, MoE dispatch and combine, the KV-cache store of each new token).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from opbsim.isa.types import Descriptor, Space

__all__ = ["Stream", "view_stream", "row_stream"]


@dataclass(frozen=True, slots=True)
class Stream:
    """``nbytes`` moved from (``write`` False) or to ``space``: contiguous runs of ``run_B`` bytes,
    repeated over ``dims`` ((count, stride in bytes), innermost first); ``scattered`` when the
    runs sit at indexed, unrelated addresses (one ``dims`` entry, its stride unused)."""

    space: Space
    nbytes: int
    write: bool
    run_B: int
    dims: tuple[tuple[int, int], ...] = ()
    scattered: bool = False

    def rows(self, row_B: int) -> int:
        """DRAM rows of ``row_B`` bytes this stream opens (the module docstring's rule)."""
        if self.nbytes <= 0:
            return 0
        rows = -(-self.run_B // row_B)
        span = self.run_B
        for count, stride_B in self.dims:
            if self.scattered:
                rows *= count
                continue
            span = (count - 1) * stride_B + span
            rows = min(count * rows, -(-span // row_B))
        return rows


@functools.lru_cache(maxsize=1 << 16)
def view_stream(d: Descriptor, *, write: bool) -> Stream:
    """The stream of descriptor ``d``'s distinct bytes moved once. Broadcast (stride 0) and size-1
    dimensions move nothing extra; dimensions whose stride continues the contiguous run merge
    into it."""
    item = d.dtype.itemsize_B
    dims = sorted((s * item, n) for n, s in zip(d.shape, d.strides_elems) if n > 1 and s > 0)
    run = item
    rest: list[tuple[int, int]] = []
    for stride_B, count in dims:
        if not rest and stride_B == run:
            run *= count
        else:
            rest.append((count, stride_B))
    return Stream(d.space, d.footprint_B, write, run, tuple(rest))


def row_stream(space: Space, rows: int, row_bytes: int, *, write: bool) -> Stream:
    """``rows`` rows of ``row_bytes`` each at indexed addresses (a gather's source, a scatter's
    destination)."""
    return Stream(space, rows * row_bytes, write, row_bytes, ((rows, 0),) if rows > 1 else (), scattered=True)
