"""The stage-shape, serving-engine and storage-format options shared by simulate, compare, capacity
and compile."""

from __future__ import annotations

import click

from opbsim.emulator.serving import DEFAULT_PREFILL_CHUNK_TOKENS, PREEMPTION_MODES
from opbsim.emulator.serving_engines import CUDA_GRAPH_MAX_BATCH, EAGER_LAUNCH_US
from opbsim.emulator.stage_timer import DEFAULT_STEPS_PER_OCTAVE
from opbsim.errors import InputError
from opbsim.workloads.weight_format import FORMAT_NAMES

__all__ = ["prefill_chunk_option", "buckets_option", "preemption_option", "cuda_graphs_option", "preemption_of",
           "format_options"]

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



def format_options(command):
    """``--dtype`` (weights) and ``--kv-dtype`` (KV cache), each ``bf16`` or ``fp8``; unset: the model
    config's own (fp8 weights where its quantization_config says fp8). Passed on to ``load_model``,
    which checks the values (one line)."""
    names = "|".join(FORMAT_NAMES)
    command = click.option("--kv-dtype", "kv_dtype", default=None, metavar=names,
                           help="KV-cache storage: fp8 is e4m3 with a per-tensor fp32 scale [default: bf16].")(command)
    return click.option("--dtype", "dtype", default=None, metavar=names,
                        help="Weight storage: fp8 is e4m3 with 128 x 128 fp32 block scales (DeepSeek-V3's) on "
                             "every projection [default: the config's: fp8 where its quantization_config says "
                             "fp8, else bf16].")(command)


def preemption_of(value: str) -> str:
    """``--preemption``'s value, or InputError (one line) naming the choices."""
    if value not in PREEMPTION_MODES:
        raise InputError(f"--preemption {value[:40]!r}: expected one of {', '.join(PREEMPTION_MODES)}")
    return value
