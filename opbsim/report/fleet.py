"""Cluster serving results for people and tools: a text table (cluster-wide, then per replica)
and a JSON object."""

from __future__ import annotations

import json
import math

from opbsim.emulator.fleet_run import FleetResult
from opbsim.report.tables import format_table

__all__ = ["fleet_table", "fleet_json"]


def _clean(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def fleet_json(result: FleetResult) -> str:
    """One JSON object with every metric (NaN as null) and a ``per_replica`` list."""
    return json.dumps({k: _clean(v) for k, v in result.summary().items()}, indent=2)


def fleet_table(result: FleetResult) -> str:
    r = result
    rows = [
        ("system", f"{r.replicas} replicas of {r.parallel} {r.device}, policy {r.policy}; router {r.router}"),
        ("requests", f"{r.requests} from {r.trace} ({r.requests_per_s:.2f} req/s offered), {r.output_tokens} "
                     "output tokens"),
        ("max batch per replica", f"{r.max_batch} (KV cache and weights fit {r.capacity_batch})"),
        ("makespan", f"{r.duration_s:.3f} s"),
        ("throughput", f"{r.tokens_per_s:.1f} tokens/s ({r.tokens_per_s_per_replica:.1f} per replica)"),
        ("time between tokens p50 / p90 / p99", f"{r.tbt_p50_ms:.3f} / {r.tbt_p90_ms:.3f} / {r.tbt_p99_ms:.3f} ms"),
        ("time to first token p50 / p90 / p99", f"{r.ttft_p50_ms:.1f} / {r.ttft_p90_ms:.1f} / {r.ttft_p99_ms:.1f} ms"),
        ("time per output token p50 / p99", f"{r.tpot_p50_ms:.3f} / {r.tpot_p99_ms:.3f} ms"),
        ("end-to-end latency p50 / p99", f"{r.e2e_p50_s:.3f} / {r.e2e_p99_s:.3f} s"),
        ("energy per token", f"{r.energy_per_token_mJ:.2f} mJ"),
        ("stages (all replicas)", str(r.stages)),
        ("stage shapes compiled", str(r.compiled_shapes)),
    ]
    head = format_table((f"{r.model} on a cluster", "value"), rows)
    per = [(str(p.replica), str(p.requests), str(p.stages), f"{p.busy_share:.1%}", f"{p.tokens_per_s:.1f}",
            f"{p.tbt_p99_ms:.3f}", f"{p.ttft_p50_ms:.1f}", f"{p.ttft_p99_ms:.1f}") for p in r.per_replica]
    return head + "\n\n" + format_table(("replica", "requests", "stages", "busy", "tokens/s", "tbt p99 ms",
                                         "ttft p50 ms", "ttft p99 ms"), per)
