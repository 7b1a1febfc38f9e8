"""``opbsim reproduce measured``: the GPU baseline against published serving measurements.

Each point of docs/data/measured_serving.json (report/measured_data.py) is simulated as it was run:
its model on ``tp`` devices of its GPU's preset (policy ``xpu-only``, tensor parallelism over the
attention and the experts, as vLLM shards them), ``requests`` requests of the fixed shape with
``concurrency`` in flight (``batch``: all arriving at once), and the engine's per-step token budget
as the chunked-prefill size, and the host time per step and the CUDA-graph use of its source's
serving engine (emulator/serving_engines.py: vLLM replays graphs on decode from v0.2.7,
TensorRT-LLM's gptSessionBenchmark launches eagerly). Nothing is fitted to these points: the GPU's
kernel efficiencies come from kernel-level benchmarks (hardware/gpu_efficiency.py); the points only
test.

Metrics: ``latency_s`` is the run's makespan (benchmark_latency times one batch from submission to
its last token); ``output_tokens_per_s`` the output tokens over the makespan (``_per_gpu``: divided
by the GPUs); ``tpot_ms`` the mean decode-stage time over decode tokens; ``ttft_ms`` our median time
to first token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from opbsim.emulator.cluster import Cluster
from opbsim.emulator.serving import ServingConfig, ServingResult, simulate
from opbsim.emulator.serving_engines import get_serving_engine
from opbsim.emulator.stage_timer import StageTimer
from opbsim.errors import InputError
from opbsim.hardware.registry import get_device
from opbsim.report.measured_data import DATA_FILE, MeasuredData, MeasuredPoint, Source, load_measured
from opbsim.workloads import FixedLengths, closed_loop
from opbsim.workloads.lookup import load_model

__all__ = ["PointResult", "ours_metric", "run_point", "reproduce_measured", "mape"]

_REPO = DATA_FILE.parents[2]


@dataclass(frozen=True, slots=True)
class PointResult:
    """One point: its measurement, our simulation (None with ``error``: it could not run)."""

    point: MeasuredPoint
    ours: ServingResult | None
    error: str = ""

    def metrics(self) -> tuple[tuple[str, float, float, float], ...]:
        """(metric, measured, ours, signed relative error ours/measured - 1) per measured metric."""
        if self.ours is None:
            return ()
        out = []
        for name, measured in self.point.measured:
            ours = ours_metric(self.ours, name)
            out.append((name, measured, ours, ours / measured - 1))
        return tuple(out)


def ours_metric(result: ServingResult, name: str) -> float:
    """Our value of metric ``name`` (measured_data.METRICS) from a serving run."""
    if name == "latency_s":
        return result.duration_s
    if name == "output_tokens_per_s":
        return result.tokens_per_s
    if name == "output_tokens_per_s_per_gpu":
        return result.tokens_per_s / (result.devices_per_node * result.nodes)
    if name == "ttft_ms":
        return result.ttft_p50_ms
    if name == "tpot_ms":
        times = np.asarray(result.stage_time_s)
        decode = np.asarray(result.stage_decode_tokens)
        return float((times * decode).sum() / decode.sum() * 1e3)
    raise InputError(f"unknown metric {name!r}")


def _model_name(point: MeasuredPoint) -> str:
    path = _REPO / point.model
    return str(path) if path.suffix == ".json" else point.model


def run_point(point: MeasuredPoint, sources: dict[str, Source],
              timers: dict[tuple[str, str, int], StageTimer]) -> PointResult:
    """Simulate ``point`` with its source's serving engine; ``timers`` (by model, device, tp) is shared
    between points of one setup."""
    try:
        model = load_model(_model_name(point))
        key = (point.model, point.device, point.tp)
        if key not in timers:
            cluster = Cluster.from_nodes(device=get_device(point.device), policy="xpu-only",
                                         devices_per_node=point.tp, nodes=point.gpus // point.tp)
            timers[key] = StageTimer(model, cluster)
        timer = timers[key]
        scenario = closed_loop(point.concurrency, FixedLengths(point.input_tokens, point.output_tokens),
                               num_requests=point.requests, seed=0)
        engine = get_serving_engine(sources[point.source].serving_engine)
        config = ServingConfig(batch=point.concurrency, prefill_chunk_tokens=point.max_batched_tokens,
                               step_overhead_s=engine.step_overhead_s, cuda_graphs=engine.cuda_graphs)
        return PointResult(point, simulate(model, timer.cluster, scenario, config, timer=timer))
    except InputError as e:
        return PointResult(point, None, str(e))


def reproduce_measured(data: MeasuredData | None = None,
                       progress: Callable[[str], None] | None = None) -> tuple[PointResult, ...]:
    """Every point of ``data`` (default: the repository's data file) simulated."""
    data = data or load_measured()
    say = progress or (lambda _: None)
    timers: dict[tuple[str, str, int], StageTimer] = {}
    out = []
    for p in data.points:
        r = run_point(p, data.sources, timers)
        out.append(r)
        if r.ours is None:
            say(f"{p.id}: not run: {r.error}")
        else:
            say(f"{p.id}: " + ", ".join(f"{n} measured {m:.4g} ours {o:.4g} ({e:+.1%})" for n, m, o, e in r.metrics()))
    return tuple(out)


def mape(results: tuple[PointResult, ...], metric: str, *, gpu: str | None = None,
         kernel_config: str | None = None) -> tuple[float, int]:
    """(mean absolute percentage error, number of points) of ``metric`` over the points that ran,
    optionally of one GPU or one MoE kernel configuration; (nan, 0) when none."""
    errors = [abs(e) for r in results if (gpu is None or r.point.gpu == gpu)
              and (kernel_config is None or r.point.moe_kernel_config in (kernel_config, "none"))
              for n, _, _, e in r.metrics() if n == metric]
    return (float(np.mean(errors)) * 100 if errors else float("nan")), len(errors)
