"""Stage-shape buckets: the stages of a run reduced to a grid of representative shapes.

Shape buckets (``Bucketing``): the decode requests of a stage are represented by their count and
their mean context, both rounded to a grid of ``steps_per_octave`` points per power of two; each
prefill chunk's new and past tokens are rounded the same way. Decode attention reads every
request's KV cache once, so its cost is linear in the summed context and the mean loses nothing
but the (small) per-request fixed costs; rounding to a grid of 8 steps per octave moves a
dimension by at most 1/16 (6.25%), by 2.2% on average over evenly spread values, up or down, so
the errors of successive stages largely cancel: benchmarks/bucketing_error.py measures the
effect on whole runs against unbucketed ones (docs/serving.md). ``steps_per_octave = 0``
disables bucketing (every distinct stage is compiled as it is).
"""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.errors import InputError
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["DEFAULT_STEPS_PER_OCTAVE", "Bucketing"]

DEFAULT_STEPS_PER_OCTAVE = 8  # stage-shape grid points per power of two: the CLI's, compare's and sweeps' default


@dataclass(frozen=True, slots=True)
class Bucketing:
    """Rounds token counts to ``steps_per_octave`` grid points per power of two (0: exact).
    Values up to ``steps_per_octave`` are kept as they are (the grid step there is below 1)."""

    steps_per_octave: int = DEFAULT_STEPS_PER_OCTAVE

    def __post_init__(self) -> None:
        n = self.steps_per_octave
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(f"steps_per_octave must be an integer >= 0, got {n!r}")

    def round(self, n: int) -> int:
        """``n`` rounded to the nearest grid point (ties upward); 0 stays 0."""
        s = self.steps_per_octave
        if s == 0 or n <= s:
            return n
        step = max(2 ** (n.bit_length() - 1) // s, 1)
        return (n + step // 2) // step * step

    def stage(self, stage: Stage) -> Stage:
        """The representative of ``stage``'s bucket (``stage`` itself when disabled)."""
        if self.steps_per_octave == 0:
            return stage
        return self.representative(stage.prefill, len(stage.decode_ctx_tokens), sum(stage.decode_ctx_tokens))

    def representative(self, prefill: tuple[PrefillChunk, ...], decode_count: int, decode_ctx_sum: int) -> Stage:
        """The bucket's representative stage: ``round(decode_count)`` decode requests at the
        rounded mean context, and the prefill chunks rounded and sorted (largest first)."""
        chunks = tuple(sorted((PrefillChunk(max(self.round(c.new_tokens), 1), self.round(c.past_tokens), c.final)
                               for c in prefill), key=lambda c: (-c.new_tokens, -c.past_tokens, not c.final)))
        decode: tuple[int, ...] = ()
        if decode_count:
            mean = max(round(decode_ctx_sum / decode_count), 1)
            decode = (self.round(mean),) * self.round(decode_count)
        return Stage(prefill=chunks, decode_ctx_tokens=decode)
