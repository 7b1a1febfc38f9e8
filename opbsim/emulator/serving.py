"""Continuous batching: a request stream served stage by stage on a cluster, and its metrics.

The loop (docs/serving.md). Before each stage, waiting requests whose arrival time has
come are admitted, oldest first, while fewer than ``max_batch`` requests run. A stage runs the
model once over:
- the prompt tokens of admitted requests still in prefill, in admission order: whole prompts, or
  with ``prefill_chunk_tokens`` > 0 at most that many prompt tokens per stage (chunked prefill;
  a request's later chunks attend to its earlier ones);
- one decode token for every running request that has its first token.
The stage that completes a prompt samples the request's first output token; every later stage
gives it one more, so a request of ``output_tokens`` tokens decodes in ``output_tokens - 1``
stages after its last prefill chunk and then leaves. Its KV cache holds ``input + generated``
tokens; the token of the j-th decode stage attends to ``input_tokens + j`` keys.

Closed loop: a finished request is replaced at once (its successor arrives when it finishes and
is admitted into the next stage). Open loop: requests arrive at their Poisson times; when nothing
runs, time jumps to the next arrival.

Time and energy of a stage come from ``StageTimer`` (compiled and timed on the engine, memoised by
shape bucket). Kernel launches (``ServingConfig.cuda_graphs``, vLLM's default): a decode-only stage
of at most CUDA_GRAPH_MAX_BATCH requests replays a CUDA graph; any other stage (prefill, or every
stage with ``cuda_graphs`` False) is launched kernel by kernel from the host and lasts
``StageCost.eager_extra_s`` longer, host time during which the devices idle (as the step overhead).

Capacity (``ServingConfig.preemption``): ``none`` caps the batch so that the weights
and the KV cache of ``max_batch`` requests at the longest context of the stream fit each device
(``Cluster.capacity_batch``: every request's whole context reserved, nothing is ever preempted).
``recompute`` is vLLM's paged KV cache (its default, and V1's only preemption mode:
``preemption_mode`` "recompute" in vllm/config.py): a request is admitted while its prompt fits
next to the KV the running requests hold now; when the tokens of the next stage do not fit
(``Cluster.kv_capacity_tokens``), the request that joined decoding last is preempted (vLLM preempts
the tail of its running list): its KV
is dropped and it goes back to the head of the queue with its prompt and the tokens it has generated
as a new prompt, recomputed by prefill; it keeps its first-token time and its remaining outputs.

Metrics: tokens/s = output tokens / makespan. Time between tokens: one sample per decode token,
the duration of the stage that emitted it (the request's previous token came from the stage
before). TTFT: arrival to the end of the stage that samples the first token (queueing included).
End-to-end latency: arrival to the last token. Energy per token: all devices' energy / output
tokens, split by component (emulator/energy.py); in open loop the devices also draw their static
power while no request is running (the idle gaps between stages). Utilisation: a unit's busy
time (per device) / makespan. Class shares: the wall-clock split of ``StageCost.time_s_by_class``,
summed over stages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from opbsim.emulator.cluster import Cluster
from opbsim.emulator.energy import static_energy
from opbsim.emulator.serving_engines import CUDA_GRAPH_MAX_BATCH
from opbsim.emulator.serving_metrics import percentile, weighted_percentile
from opbsim.emulator.stage_timer import StageCost, StageTimer
from opbsim.errors import DoesNotFit, InputError
from opbsim.isa.types import Space
from opbsim.units import GiB
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.scenarios import Loop, Scenario
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["DEFAULT_PREFILL_CHUNK_TOKENS", "PREEMPTION_MODES", "capacity_of", "prefill_chunks", "ServingConfig",
           "ServingResult", "simulate", "context_error", "graphed", "launch_extra_s"]

PREEMPTION_MODES = ("none", "recompute")  # see the module doc; vLLM's default is "recompute"

DEFAULT_PREFILL_CHUNK_TOKENS = 8192  # assumed: prompt tokens per stage (chunked prefill), as a serving engine bounds
# them; the default of the CLI, compare, sweeps and the reproductions

@dataclass(frozen=True, slots=True, kw_only=True)
class ServingConfig:
    """``batch``: the most requests running at once (capped by capacity). ``prefill_chunk_tokens``:
    the most prompt tokens per stage, 0 for whole prompts. ``step_overhead_s``: host time the serving
    engine adds to every stage, the devices idle (emulator/serving_engines.py; 0: none).
    ``preemption``: what happens when the KV cache is full (PREEMPTION_MODES, module doc).
    ``cuda_graphs``: decode stages of up to CUDA_GRAPH_MAX_BATCH requests replay CUDA graphs, as
    vLLM's default (``graphed``); False: every stage is launched kernel by kernel (``--eager``)."""

    batch: int
    prefill_chunk_tokens: int = 0
    step_overhead_s: float = 0.0
    preemption: str = "none"
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise InputError(f"batch must be a positive integer, got {self.batch!r}")
        n = self.prefill_chunk_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(f"prefill_chunk_tokens must be an integer >= 0, got {n!r}")
        h = self.step_overhead_s
        if isinstance(h, bool) or not isinstance(h, int | float) or not (math.isfinite(h) and h >= 0):
            raise InputError(f"step_overhead_s must be a finite number >= 0, got {h!r}")
        if self.preemption not in PREEMPTION_MODES:
            raise InputError(f"preemption must be one of {', '.join(PREEMPTION_MODES)}, got {self.preemption!r}")
        if not isinstance(self.cuda_graphs, bool):
            raise InputError(f"cuda_graphs must be true or false, got {self.cuda_graphs!r}")


def graphed(cuda_graphs: bool, chunks: tuple[PrefillChunk, ...], decode_count: int) -> bool:
    """Whether a stage replays a CUDA graph: with ``cuda_graphs``, a decode-only stage of at most
    CUDA_GRAPH_MAX_BATCH requests (vLLM captures graphs for decode batches only); any other stage is
    launched kernel by kernel and pays ``StageCost.eager_extra_s``."""
    return cuda_graphs and not chunks and 0 < decode_count <= CUDA_GRAPH_MAX_BATCH


def launch_extra_s(cost: StageCost, cuda_graphs: bool, chunks: tuple[PrefillChunk, ...], decode_count: int) -> float:
    """The time a stage's eager kernel launches add to ``cost`` (0 when it replays a graph)."""
    return 0.0 if graphed(cuda_graphs, chunks, decode_count) else cost.eager_extra_s


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingResult:
    """Metrics of one serving run (units in the names), and the stages it ran (for traces)."""

    model: str
    device: str
    policy: str
    devices_per_node: int
    nodes: int
    parallel: str
    loop: str
    requests: int
    requested_batch: int
    capacity_batch: int
    preemptions: int  # requests preempted (recompute) because the KV cache was full
    max_batch: int
    output_tokens: int
    duration_s: float
    tokens_per_s: float
    tbt_p50_ms: float
    tbt_p90_ms: float
    tbt_p99_ms: float
    ttft_p50_ms: float
    ttft_p90_ms: float
    ttft_p99_ms: float
    e2e_mean_s: float
    e2e_p50_s: float
    e2e_p90_s: float
    e2e_p99_s: float
    energy_J: float
    energy_per_token_mJ: float
    energy_breakdown_mJ_per_token: tuple[tuple[str, float], ...]  # by component; the parts sum to the total
    utilisation_by_unit: tuple[tuple[str, float], ...]
    time_share_by_class: tuple[tuple[str, float], ...]
    time_share_by_bound: tuple[tuple[str, float], ...]  # compute / memory / communication / idle
    communication_share: float  # share of stage time with links busy and no unit
    decode_stage_ms_mean: float  # mean over decode-only stages (NaN: none)
    prefill_stage_ms_mean: float  # mean over stages carrying prefill tokens (NaN: none)
    stages: int
    decode_only_stages: int
    compiled_shapes: int
    stage_start_s: tuple[float, ...]
    stage_time_s: tuple[float, ...]
    stage_prefill_tokens: tuple[int, ...]
    stage_decode_tokens: tuple[int, ...]

    @property
    def batch_capped(self) -> bool:
        return self.max_batch < self.requested_batch

    @property
    def decode_only_stage_share(self) -> float:
        return self.decode_only_stages / self.stages if self.stages else 0.0

    def summary(self) -> dict[str, object]:
        """Every scalar metric, by name (the ``opbsim simulate --json`` object)."""
        out: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name.startswith("stage_"):
                continue
            out[name] = dict(value) if isinstance(value, tuple) else value
        out["batch_capped"] = self.batch_capped
        out["decode_only_stage_share"] = self.decode_only_stage_share
        return out


def prefill_chunks(prefilling, input_tokens: list[int], chunk_tokens: int) -> tuple[PrefillChunk, ...]:
    """The prompt chunks of one stage: each prefilling request ``[r, done]`` in admission order takes the
    rest of its ``input_tokens[r]``, all of it with ``chunk_tokens`` 0, else while the stage's budget of
    ``chunk_tokens`` lasts (the request where it runs out takes what is left)."""
    budget = chunk_tokens or None
    chunks = []
    for r, done in prefilling:
        take = input_tokens[r] - done if budget is None else min(input_tokens[r] - done, budget)
        if take <= 0:
            break
        chunks.append(PrefillChunk(take, done, final=done + take == input_tokens[r]))
        if budget is not None:
            budget -= take
    return tuple(chunks)


def capacity_of(model: ModelConfig, cluster: Cluster, max_ctx: int) -> int:
    """The most requests of ``max_ctx`` tokens that fit each device's HBM with the weights (at least
    1); raises DoesNotFit, with the sizes, when not even one does."""
    capacity = cluster.capacity_batch(model, max_ctx)
    if capacity < 1:
        hbm = cluster.device.memory(Space.HBM).capacity_B
        raise DoesNotFit(
            f"does not fit: {model.name} needs {cluster.weight_bytes_per_device(model) / GiB:.1f} GiB of weights and "
            f"{cluster.kv_bytes_per_device(model, max_ctx) / GiB:.2f} GiB of KV cache per request ({max_ctx} tokens) "
            f"on each {cluster.device.name} ({hbm / GiB:.0f} GiB of HBM); use more devices (--tp, --ep or --pp)")
    return capacity


def context_error(model: ModelConfig, scenario: Scenario) -> str | None:
    """Why ``scenario``'s longest request cannot run on ``model`` (past its learned positions), or None.
    A request's last token is never fed back, so it needs input + output - 1 positions."""
    longest = max(r.input_tokens + r.output_tokens - 1 for r in scenario.requests)
    if model.learned_positions and longest > model.learned_positions:
        return (f"a request reaches {longest} tokens, past the {model.learned_positions} learned positions of "
                f"{model.name}")
    return None


def simulate(model: ModelConfig, cluster: Cluster, scenario: Scenario, config: ServingConfig, *,
             timer: StageTimer | None = None, on_finished: Callable[[int], None] | None = None) -> ServingResult:
    """Serve ``scenario`` on ``cluster``. ``timer`` (for this model and cluster) may be shared
    between runs to reuse its memo. ``on_finished(n)`` is told after each stage that finishes
    ``n`` > 0 requests (progress). Deterministic: the same inputs give the same result."""
    timer = timer or StageTimer(model, cluster)
    if timer.model != model or timer.cluster != cluster:
        raise InputError("the stage timer was made for another model or cluster")
    if (reason := context_error(model, scenario)) is not None:
        raise InputError(reason)
    capacity = capacity_of(model, cluster, max(r.input_tokens + r.output_tokens for r in scenario.requests))
    paged = config.preemption == "recompute"
    loop = _Loop(scenario, config.batch if paged else min(config.batch, capacity), config.prefill_chunk_tokens,
                 timer, on_finished, step_overhead_s=config.step_overhead_s,
                 kv_tokens=cluster.kv_capacity_tokens(model) if paged else 0, cuda_graphs=config.cuda_graphs)
    loop.run()
    return loop.result(model, cluster, config.batch, capacity)


class _Loop:
    """The state of one run; ``run`` advances it stage by stage."""

    def __init__(self, scenario: Scenario, max_batch: int, chunk_tokens: int, timer: StageTimer,
                 on_finished: Callable[[int], None] | None = None, *, step_overhead_s: float = 0.0,
                 kv_tokens: int = 0, cuda_graphs: bool = True):
        self.on_finished = on_finished
        self.cuda_graphs = cuda_graphs
        self.kv_tokens = kv_tokens  # > 0: the paged KV cache's tokens per device group (recompute preemption)
        self.preemptions = 0
        self.step_overhead_s = step_overhead_s
        self.host_s = 0.0  # the engine's host time over all stages (and eager launches), devices idle
        self.scenario = scenario
        self.max_batch = max_batch
        self.chunk_tokens = chunk_tokens
        self.timer = timer
        self.exact = timer.bucketing.steps_per_octave == 0
        reqs = scenario.requests
        self.inp = [r.input_tokens for r in reqs]
        self.out = [r.output_tokens for r in reqs]
        self.prompt = list(self.inp)  # tokens to prefill: the input, plus the generated ones after a preemption
        self.left = list(self.out)  # output tokens still to sample
        self.arrival = [r.arrival_s for r in reqs]
        self.released = scenario.concurrency if scenario.loop is Loop.CLOSED else len(reqs)
        self.first_token_s = np.full(len(reqs), np.nan)
        self.done_s = np.full(len(reqs), np.nan)
        self.stage_start: list[float] = []
        self.stage_time: list[float] = []
        self.stage_prefill: list[int] = []
        self.stage_decode: list[int] = []
        self.costs: dict[int, tuple[StageCost, int]] = {}
        self.idle_s = 0.0  # open loop: time with no request running

    def run(self) -> None:
        n = len(self.inp)
        admitted = finished = 0
        requeued: list[int] = []  # preempted requests, readmitted before new arrivals
        prefilling: list[list[int]] = []  # [request, prompt tokens done], in admission order
        decoding: dict[int, int] = {}  # request -> stage that sampled its latest prefill's token
        finish_at: dict[int, list[int]] = {}  # stage -> requests whose last token it emits
        ctx_sum = 0  # keys the decode tokens of the next stage attend to, summed
        now, s = 0.0, 0
        while finished < n:
            while len(prefilling) + len(decoding) < self.max_batch:
                r = requeued[0] if requeued else admitted
                if not requeued and not (admitted < self.released and self.arrival[admitted] <= now):
                    break
                held = ctx_sum + sum(self.prompt[e[0]] for e in prefilling)
                if self.kv_tokens and held + self.prompt[r] > self.kv_tokens:
                    break
                if requeued:
                    requeued.pop(0)
                else:
                    admitted += 1
                prefilling.append([r, 0])
            while self.kv_tokens and decoding and ctx_sum + sum(self.prompt[e[0]] for e in prefilling) > self.kv_tokens:
                r = next(reversed(decoding))  # the request that joined decoding last
                s0 = decoding.pop(r)
                ctx = self.prompt[r] + s - s0
                ctx_sum -= ctx
                finish_at[s0 + self.left[r]].remove(r)
                self.left[r] -= s - s0 - 1
                self.prompt[r] = ctx
                requeued.insert(0, r)
                self.preemptions += 1
            if not prefilling and not decoding:
                idle_until = max(now, self.arrival[admitted])  # open loop, idle: wait for the next arrival
                self.idle_s += idle_until - now
                now = idle_until
                continue
            chunks = self._chunks(prefilling)
            if self.exact:
                ctx = tuple(self.prompt[r] + s - s0 for r, s0 in decoding.items())
                cost = self.timer.cost(Stage(prefill=chunks, decode_ctx_tokens=ctx))
            else:
                cost = self.timer.cost_of(chunks, len(decoding), ctx_sum)
            host = self.step_overhead_s + launch_extra_s(cost, self.cuda_graphs, chunks, len(decoding))
            self._record(now, cost, chunks, len(decoding), host)
            now += cost.time_s + host
            self.host_s += host
            ctx_sum += len(decoding)
            ended = finish_at.pop(s, [])
            for r in ended:
                ctx_sum -= self.prompt[r] + s + 1 - decoding.pop(r)
            for entry, chunk in zip(prefilling, chunks):
                entry[1] += chunk.new_tokens
                if chunk.final:
                    r = entry[0]
                    if np.isnan(self.first_token_s[r]):
                        self.first_token_s[r] = now
                    self.left[r] -= 1
                    if self.left[r] == 0:
                        ended.append(r)
                    else:
                        decoding[r] = s
                        finish_at.setdefault(s + self.left[r], []).append(r)
                        ctx_sum += self.prompt[r] + 1
            prefilling = [e for e in prefilling if e[1] < self.prompt[e[0]]]
            for r in ended:
                self.done_s[r] = now
                finished += 1
                if self.released < n:  # closed loop: the successor arrives now
                    self.arrival[self.released] = now
                    self.released += 1
            if ended and self.on_finished is not None:
                self.on_finished(len(ended))
            s += 1

    def _chunks(self, prefilling: list[list[int]]) -> tuple[PrefillChunk, ...]:
        return prefill_chunks(prefilling, self.prompt, self.chunk_tokens)

    def _record(self, start_s: float, cost: StageCost, chunks: tuple[PrefillChunk, ...], decode: int,
                host_s: float) -> None:
        self.stage_start.append(start_s)
        self.stage_time.append(cost.time_s + host_s)
        self.stage_prefill.append(sum(c.new_tokens for c in chunks))
        self.stage_decode.append(decode)
        key = id(cost)
        seen = self.costs.get(key)
        self.costs[key] = (cost, 1 if seen is None else seen[1] + 1)

    def result(self, model: ModelConfig, cluster: Cluster, requested: int, capacity: int) -> ServingResult:
        arrival = np.asarray(self.arrival, dtype=np.float64)
        times = np.asarray(self.stage_time)
        decode = np.asarray(self.stage_decode, dtype=np.int64)
        duration = float(self.done_s.max())
        tokens = int(sum(self.out))
        parts = static_energy(cluster.fabric_device, self.idle_s + self.host_s).scaled(cluster.devices)
        for c, k in self.costs.values():
            parts = parts + c.energy_parts.scaled(k)
        energy = parts.total_J
        busy: dict[str, float] = {}
        by_class: dict[str, float] = {}
        exposed = sum(c.comm_exposed_s * k for c, k in self.costs.values())
        by_bound: dict[str, float] = {}
        for cost, k in self.costs.values():
            for b, t in cost.time_s_by_bound:
                by_bound[b] = by_bound.get(b, 0.0) + t * k
        if self.host_s:
            by_bound["idle"] = by_bound.get("idle", 0.0) + self.host_s
        prefill = np.asarray(self.stage_prefill, dtype=np.int64) > 0
        for cost, k in self.costs.values():
            for u, b in cost.busy_s_by_unit:
                busy[u.name.lower()] = busy.get(u.name.lower(), 0.0) + b * k
            for c, t in cost.time_s_by_class:
                by_class[c.value] = by_class.get(c.value, 0.0) + t * k
        if self.host_s:
            by_class["host"] = self.host_s
        total = float(times.sum())
        ttft = (self.first_token_s - arrival) * 1e3
        e2e = self.done_s - arrival
        return ServingResult(
            model=model.name, device=cluster.device.name, policy=cluster.policy,
            devices_per_node=cluster.devices_per_node, nodes=cluster.nodes, parallel=cluster.parallel.label,
            loop=self.scenario.loop.value,
            requests=len(self.inp), requested_batch=requested, capacity_batch=capacity, max_batch=self.max_batch,
            preemptions=self.preemptions,
            output_tokens=tokens, duration_s=duration, tokens_per_s=tokens / duration,
            tbt_p50_ms=weighted_percentile(times * 1e3, decode, 50),
            tbt_p90_ms=weighted_percentile(times * 1e3, decode, 90),
            tbt_p99_ms=weighted_percentile(times * 1e3, decode, 99),
            ttft_p50_ms=percentile(ttft, 50), ttft_p90_ms=percentile(ttft, 90), ttft_p99_ms=percentile(ttft, 99),
            e2e_mean_s=float(e2e.mean()), e2e_p50_s=percentile(e2e, 50), e2e_p90_s=percentile(e2e, 90),
            e2e_p99_s=percentile(e2e, 99),
            energy_J=energy, energy_per_token_mJ=energy / tokens * 1e3,
            energy_breakdown_mJ_per_token=tuple((k, v / tokens * 1e3) for k, v in parts.items().items()),
            utilisation_by_unit=tuple(sorted((u, b / duration) for u, b in busy.items())),
            time_share_by_class=tuple((c, t / total) for c, t in by_class.items()),
            time_share_by_bound=tuple((b, t / total) for b, t in by_bound.items()),
            communication_share=exposed / total,
            decode_stage_ms_mean=float(times[~prefill].mean() * 1e3) if (~prefill).any() else float("nan"),
            prefill_stage_ms_mean=float(times[prefill].mean() * 1e3) if prefill.any() else float("nan"),
            stages=len(times), decode_only_stages=int(sum(p == 0 for p in self.stage_prefill)),
            compiled_shapes=self.timer.compiled_shapes,
            stage_start_s=tuple(self.stage_start), stage_time_s=tuple(self.stage_time),
            stage_prefill_tokens=tuple(self.stage_prefill), stage_decode_tokens=tuple(decode.tolist()),
        )
