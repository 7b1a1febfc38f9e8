"""The stage-shape and serving-engine options shared by simulate, compare and capacity."""

from __future__ import annotations

import click

from opbsim.emulator.serving import DEFAULT_PREFILL_CHUNK_TOKENS, PREEMPTION_MODES
from opbsim.emulator.serving_engines import CUDA_GRAPH_MAX_BATCH, EAGER_LAUNCH_US
from opbsim.emulator.stage_timer import DEFAULT_STEPS_PER_OCTAVE
from opbsim.errors import InputError

__all__ = ["prefill_chunk_option", "buckets_option", "preemption_option", "cuda_graphs_option", "preemption_of"]

prefill_chunk_option = click.option(
    "--prefill-chunk", type=click.IntRange(min=0), default=DEFAULT_PREFILL_CHUNK_TOKENS, show_default=True,
    help="Most prompt tokens per stage (chunked prefill); 0: whole prompts.")
buckets_option = click.option(
    "--buckets", type=click.IntRange(min=0), default=DEFAULT_STEPS_PER_OCTAVE, show_default=True,
    help="Stage shape buckets per power of two (0: compile every distinct stage).")
preemption_option = click.option(
    "--preemption", default="none", show_default=True, metavar="|".join(PREEMPTION_MODES),
    help="When the KV cache is full: none (the batch is capped so that every request's whole context fits) "
         "or recompute (a paged KV cache, vLLM's default: the request that joined decoding last drops its KV "
         "and is recomputed).")
cuda_graphs_option = click.option(
    "--cuda-graphs/--eager", "cuda_graphs", default=True, show_default=True,
    help=f"Decode stages of up to {CUDA_GRAPH_MAX_BATCH} requests replay CUDA graphs, as vLLM does by default; "
         f"--eager: every stage's kernels are launched one by one by the host ({EAGER_LAUNCH_US:g} us each).")


def preemption_of(value: str) -> str:
    """``--preemption``'s value, or InputError (one line) naming the choices."""
    if value not in PREEMPTION_MODES:
        raise InputError(f"--preemption {value[:40]!r}: expected one of {', '.join(PREEMPTION_MODES)}")
    return value
