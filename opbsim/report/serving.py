"""Serving results for people and tools: a text table, a JSON object, a Chrome/Perfetto trace."""

from __future__ import annotations

import json
import math

from opbsim.emulator.serving import ServingResult
from opbsim.report.energy import COMPONENT_LABEL
from opbsim.report.tables import format_table

__all__ = ["serving_table", "serving_json", "serving_trace"]


def _clean(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def serving_json(result: ServingResult) -> str:
    """One JSON object with every scalar metric (NaN, e.g. no decode token to time, as null)."""
    return json.dumps({k: _clean(v) for k, v in result.summary().items()}, indent=2)


def serving_table(result: ServingResult) -> str:
    r = result
    cap = f"{r.max_batch} (capped from {r.requested_batch}: KV cache and weights fit {r.capacity_batch})" \
        if r.batch_capped else str(r.max_batch)
    rows = [
        ("system", f"{r.nodes} x {r.devices_per_node} {r.device}, policy {r.policy}; {r.parallel}"),
        ("requests", f"{r.requests} ({r.loop} loop), {r.output_tokens} output tokens"),
        ("max batch", cap),
        ("makespan", f"{r.duration_s:.3f} s"),
        ("throughput", f"{r.tokens_per_s:.1f} tokens/s"),
        ("time between tokens p50 / p90 / p99", f"{r.tbt_p50_ms:.3f} / {r.tbt_p90_ms:.3f} / {r.tbt_p99_ms:.3f} ms"),
        ("time to first token p50 / p90 / p99", f"{r.ttft_p50_ms:.1f} / {r.ttft_p90_ms:.1f} / {r.ttft_p99_ms:.1f} ms"),
        ("end-to-end latency mean / p50 / p99", f"{r.e2e_mean_s:.3f} / {r.e2e_p50_s:.3f} / {r.e2e_p99_s:.3f} s"),
        ("energy per token", f"{r.energy_per_token_mJ:.2f} mJ"),
        *((f"  {COMPONENT_LABEL[k]}", f"{mJ:.2f} mJ ({mJ / r.energy_per_token_mJ:.0%})")
          for k, mJ in r.energy_breakdown_mJ_per_token if mJ > 0),
        ("stages (decode-only)", f"{r.stages} ({r.decode_only_stage_share:.1%})"),
        ("stage time decode-only / with prefill", f"{r.decode_stage_ms_mean:.3f} / {r.prefill_stage_ms_mean:.3f} ms"),
        ("communication (links busy, units idle)", f"{r.communication_share:.1%}"),
        ("stage shapes compiled", str(r.compiled_shapes)),
    ]
    rows += [(f"  {u} utilisation", f"{share:.1%}") for u, share in r.utilisation_by_unit]
    rows += [(f"  {c} share of time", f"{share:.1%}") for c, share in r.time_share_by_class]
    return format_table((f"{r.model} serving", "value"), rows)


def serving_trace(result: ServingResult) -> str:
    """Trace-event JSON: one complete event per stage on a "stages" track (named decode or mixed,
    with its token counts), and counters of the decode batch and the prefill tokens; times in us."""
    events: list[dict] = [
        {"name": "process_name", "ph": "M", "pid": 0, "args": {"name": f"opbsim serving {result.model} on "
                                                                       f"{result.device}"}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 0, "args": {"name": "stages"}},
    ]
    for i, (start, dur, pre, dec) in enumerate(zip(result.stage_start_s, result.stage_time_s,
                                                   result.stage_prefill_tokens, result.stage_decode_tokens)):
        ts = start * 1e6
        events.append({"name": "decode" if pre == 0 else "mixed", "cat": "stage", "ph": "X", "pid": 0, "tid": 0,
                       "ts": ts, "dur": dur * 1e6, "args": {"stage": i, "prefill_tokens": pre, "decode_tokens": dec}})
        events.append({"name": "tokens", "ph": "C", "pid": 0, "ts": ts, "args": {"decode": dec, "prefill": pre}})
    return json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}, separators=(",", ":")) + "\n"
