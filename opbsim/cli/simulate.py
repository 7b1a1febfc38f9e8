"""``opbsim simulate``: continuous-batching serving of a model on a cluster of devices."""

from __future__ import annotations

from pathlib import Path

import click

from opbsim.cli.device import device_of, device_options
from opbsim.cli.fleet import fleet_options, lengths_of, pop_fleet, simulate_cluster
from opbsim.cli.parallel import layout_of, parallel_options
from opbsim.cli.path import FilePath
from opbsim.cli.progress import progress_bar, progress_option
from opbsim.cli.stage_options import (
    buckets_option,
    cuda_graphs_option,
    format_options,
    preemption_of,
    preemption_option,
    prefill_chunk_option,
)
from opbsim.errors import InputError
from opbsim.fileio import atomic_write_text

__all__ = ["simulate_cmd", "routing_of"]


def routing_of(spec: str, model, seed: int):
    """``balanced`` (None), ``uniform``, ``zipf:SKEW``, ``skew[:CONCENTRATION[,CORRELATION]]`` or
    ``trace:FILE`` as a Routing (a trace checked against ``model``)."""
    from opbsim.workloads import SkewRouting, TraceRouting, UniformRouting, ZipfRouting
    from opbsim.workloads.routing_skew import parse_skew

    if spec == "balanced":
        return None
    if not model.is_moe:
        raise InputError(f"--routing {spec}: {model.name} has no experts")
    if spec == "uniform":
        return UniformRouting(model.num_experts, model.top_k, seed=seed)
    if spec.startswith("zipf:"):
        try:
            skew = float(spec[5:])
        except ValueError:
            raise InputError(f"--routing {spec}: the skew must be a number") from None
        return ZipfRouting(model.num_experts, model.top_k, skew=skew, seed=seed)
    if spec == "skew" or spec.startswith("skew:"):
        alpha, rho = parse_skew(spec)
        layers = [i for i in range(model.num_layers) if model.is_moe_layer(i)]
        try:
            return SkewRouting(model.num_experts, model.top_k, layers=layers, concentration=alpha,
                               correlation=rho, seed=seed)
        except InputError as e:
            raise InputError(f"--routing {spec[:60]}: {e}") from None
    if spec.startswith("trace:"):
        routing = TraceRouting.from_file(spec[6:])
        routing.check_model(model)
        return routing
    raise InputError(f"--routing {spec[:60]!r}: expected balanced, uniform, zipf:SKEW, "
                     "skew[:CONCENTRATION[,CORRELATION]] or trace:FILE")


@click.command("simulate")
@click.argument("model")
@device_options
@parallel_options
@click.option("--batch", type=click.IntRange(min=1), required=True, help="Most requests running at once.")
@click.option("--lin", type=click.IntRange(min=1),
              help="Prompt tokens (mean with --lin-std); required without --trace-file.")
@click.option("--lout", type=click.IntRange(min=1),
              help="Output tokens (mean with --lout-std); required without --trace-file.")
@click.option("--lin-std", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Standard deviation of Gaussian prompt lengths (0: fixed).")
@click.option("--lout-std", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Standard deviation of Gaussian output lengths (0: fixed).")
@click.option("--qps", type=click.FloatRange(min=0, min_open=True),
              help="Open loop: Poisson arrivals at this rate. Default: closed loop at --batch requests.")
@click.option("--requests", "num_requests", type=click.IntRange(min=1),
              help="Requests to serve [default: --batch, one per batch slot, as compare and demo run].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the request lengths, arrivals and random routing.")
@prefill_chunk_option
@preemption_option
@cuda_graphs_option
@click.option("--routing", default="balanced", show_default=True,
              help="Expert routing: balanced, uniform, zipf:SKEW, skew[:CONCENTRATION[,CORRELATION]] or "
                   "trace:FILE (docs/routing.md). skew: per-layer Dirichlet expert popularity and inter-layer "
                   "affinity; the defaults 2.0,0.5 are assumptions (sensitivity in docs/routing.md). With "
                   "expert parallelism the busiest device decides each MoE layer.")
@buckets_option
@format_options
@click.option("--overlap", is_flag=True,
              help="Two-batch overlap: a MoE layer's all-to-alls hide behind the other micro-batch's compute.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--trace", type=FilePath(dir_okay=False, path_type=Path),
              help="Write a Chrome/Perfetto trace of the stages here.")
@fleet_options
@progress_option
def simulate_cmd(model: str, batch: int, lin: int, lout: int, lin_std: float,
                 lout_std: float, qps: float | None, num_requests: int, seed: int, prefill_chunk: int, preemption: str,
                 cuda_graphs: bool, routing: str, buckets: int, overlap: bool, as_json: bool, trace: Path | None,
                 no_progress: bool, dtype: str | None, kv_dtype: str | None, **layout) -> None:
    """Serve requests of MODEL (a preset, a config.json or a cached Hugging Face id org/name) with
    continuous batching on a cluster.

    The layout of one replica: attention --tp x --dp, experts --ep x --etp over the same devices
    (ep x etp = tp x dp), --pp pipeline stages; e.g. --tp 4 --ep 4, or --tp 4 --dp 2 on 8 devices.
    With --replicas N or --trace-file: an open-loop trace on N such replicas behind --router."""
    fleet = pop_fleet(layout)
    formats = {"dtype": dtype, "kv_dtype": kv_dtype}
    preemption = preemption_of(preemption)
    if fleet["replicas"] is not None or fleet["trace_file"] is not None:
        if preemption != "none":
            raise InputError(f"--preemption {preemption}: a run on replicas (--replicas, --trace-file) reserves each "
                             "request's whole context; recompute preemption is modelled for one replica")
        return simulate_cluster(model, fleet, layout, batch=batch,
                                lengths=lambda: lengths_of(lin, lout, lin_std, lout_std),
                                qps=qps, num_requests=num_requests, seed=seed, prefill_chunk=prefill_chunk,
                                routing=routing, buckets=buckets, overlap=overlap, as_json=as_json, stage_trace=trace,
                                cuda_graphs=cuda_graphs, formats=formats)
    from opbsim.emulator.cluster import Cluster
    from opbsim.emulator.serving import ServingConfig, simulate
    from opbsim.emulator.stage_timer import Bucketing, StageTimer
    from opbsim.report.serving import serving_json, serving_table, serving_trace
    from opbsim.workloads import closed_loop, load_model, open_loop

    spec, policy = device_of(layout)
    cfg = load_model(model, **formats)
    lengths = lengths_of(lin, lout, lin_std, lout_std)
    num_requests = num_requests or batch
    scenario = open_loop(qps, lengths, num_requests=num_requests, seed=seed) if qps is not None else \
        closed_loop(batch, lengths, num_requests=num_requests, seed=seed)
    longest = max(r.input_tokens + r.output_tokens for r in scenario.requests)
    parallel, node_size, note = layout_of(layout, cfg, spec, policy, context_tokens=longest, batch=batch)
    cluster = Cluster(device=spec, policy=policy, parallel=parallel, node_devices=node_size)
    timer = StageTimer(cfg, cluster, routing=routing_of(routing, cfg, seed), bucketing=Bucketing(buckets),
                       overlap=overlap)
    with progress_bar(len(scenario.requests), "serving", enabled=not no_progress) as step:
        config = ServingConfig(batch=batch, prefill_chunk_tokens=prefill_chunk, preemption=preemption,
                               cuda_graphs=cuda_graphs)
        result = simulate(cfg, cluster, scenario, config, timer=timer, on_finished=lambda n: step("requests done", n))
    if trace is not None:
        atomic_write_text(trace, serving_trace(result))
    click.echo(serving_json(result) if as_json else serving_table(result))
    if trace is not None:
        click.echo(f"wrote {trace}", err=True)
    if note:
        click.echo(note, err=True)
