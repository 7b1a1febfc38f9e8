"""Serving engines: the host (CPU) time a serving engine adds to every scheduler step.

A serving engine runs a step as: schedule, prepare the inputs, launch the model, wait, sample,
turn the sampled tokens into Python objects and text. Before vLLM's multi-step scheduling and
asynchronous output processing (v0.6.0), the GPU sat idle during the host part of every step; the
simulator adds ``step_overhead_ms`` to each stage (``ServingConfig.step_overhead_s``). The values
come from the engines' own profiles, never from the serving points they are tested on.

Sources: [V6854] vLLM RFC #6854 "Multi-Step Scheduling" (2024-07-26, vLLM v0.5.3 era):
"GPU is often idle, waiting for CPU operations (5-13ms of GPU bubble)"; in its profile "each
highlighted redbox is about 4ms of GPU bubble ... For baseline, this overhead is incurred on
every decode" (https://github.com/vllm-project/vllm/issues/6854). vLLM's engine loop had the same
synchronous structure from v0.2 to v0.5 (scheduler, prepare_input, sampler, detokenizer on one
thread); the lower end of the RFC's profile is taken for all of them.

Kernel launches (``cuda_graphs``): with CUDA graphs, decode stages of up to ``CUDA_GRAPH_MAX_BATCH``
requests replay a captured graph (each kernel costs its unit's ``issue_ns`` on the device); other
stages, and every stage without graphs, are launched kernel by kernel from the host, at
``EAGER_LAUNCH_US`` each (emulator/stage_timer.py: the host bound). [V1926] vLLM PR #1926
"Optimize model execution with CUDA graph" (merged 2023-12-17, v0.2.7): decode batches run as
captured graphs unless ``enforce_eager``, which defaults to False; prefill runs eagerly.
[V-MR] vllm/worker/model_runner.py (v0.3-v0.5): "Capture graphs for batch size 1, 2, 4, 8, 16, 24,
32, 40, ..., 256" (``_BATCH_SIZES_TO_CAPTURE``). [HTA] facebookresearch/HolisticTraceAnalysis,
docs "CUDA kernel launch statistics": "Usually, the launch time on the CPU side is between 5-20
microseconds" (the lower end). [TRT-PERF] TensorRT-LLM docs/source/performance.md (commit 77d24b5):
its gptSessionBenchmark commands pass no ``--enable_cuda_graph`` (off unless given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from opbsim.errors import InputError

__all__ = ["ServingEngine", "SERVING_ENGINES", "get_serving_engine", "EAGER_LAUNCH_US", "CUDA_GRAPH_MAX_BATCH"]

EAGER_LAUNCH_US = 5.0  # [HTA] host (CPU) time to launch one kernel, the lower end of 5-20 us
CUDA_GRAPH_MAX_BATCH = 256  # [V-MR] the largest decode batch vLLM captures a graph for


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingEngine:
    """``step_overhead_ms``: host time per scheduler step during which the devices are idle;
    ``cuda_graphs``: whether decode stages replay CUDA graphs (module doc)."""

    name: str
    step_overhead_ms: float
    source: str
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        v = self.step_overhead_ms
        if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v >= 0):
            raise InputError(f"serving engine {self.name}: step_overhead_ms must be a finite number >= 0, got {v!r}")
        if not isinstance(self.cuda_graphs, bool):
            raise InputError(f"serving engine {self.name}: cuda_graphs must be true or false, got {self.cuda_graphs!r}")

    @property
    def step_overhead_s(self) -> float:
        return self.step_overhead_ms / 1e3


SERVING_ENGINES: dict[str, ServingEngine] = {e.name: e for e in (
    ServingEngine(name="ideal", step_overhead_ms=0.0, source="no host time: the devices never wait"),
    ServingEngine(name="vllm-pre-0.6", step_overhead_ms=4.0,
                  source="[V6854] about 4 ms of GPU bubble per decode step before multi-step scheduling "
                         "(v0.2-v0.5 engine loop); CUDA graphs on decode from v0.2.7 [V1926]"),
    ServingEngine(name="vllm-v1", step_overhead_ms=0.0,
                  source="not modelled: the V1 engine (v0.8+) overlaps scheduling with the GPU step; no "
                         "per-step host figure of its own found; CUDA graphs on decode [V1926]"),
    ServingEngine(name="trtllm", step_overhead_ms=0.0, cuda_graphs=False,
                  source="not modelled: TensorRT-LLM's C++ runtime (gptSessionBenchmark, static batching); "
                         "no per-step host figure found; no CUDA graphs [TRT-PERF]"),
)}


def get_serving_engine(name: str) -> ServingEngine:
    """The engine preset ``name``; InputError (one line) naming the known ones otherwise."""
    try:
        return SERVING_ENGINES[name]
    except KeyError:
        raise InputError(f"unknown serving engine {name!r} (known: {', '.join(SERVING_ENGINES)})") from None
