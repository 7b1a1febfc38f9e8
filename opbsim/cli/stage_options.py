"""The stage-shape options shared by simulate, compare and capacity."""

from __future__ import annotations

import click

from opbsim.emulator.serving import DEFAULT_PREFILL_CHUNK_TOKENS
from opbsim.emulator.stage_timer import DEFAULT_STEPS_PER_OCTAVE

__all__ = ["prefill_chunk_option", "buckets_option"]

prefill_chunk_option = click.option(
    "--prefill-chunk", type=click.IntRange(min=0), default=DEFAULT_PREFILL_CHUNK_TOKENS, show_default=True,
    help="Most prompt tokens per stage (chunked prefill); 0: whole prompts.")
buckets_option = click.option(
    "--buckets", type=click.IntRange(min=0), default=DEFAULT_STEPS_PER_OCTAVE, show_default=True,
    help="Stage shape buckets per power of two (0: compile every distinct stage).")
