"""The cluster flags of ``opbsim simulate`` and ``opbsim capacity``: replicas behind a router and
open-loop traces (Poisson, gamma bursts, a trace file)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from opbsim.cli.path import FilePath
from opbsim.errors import InputError

__all__ = ["fleet_options", "pop_fleet", "check_fleet", "trace_of", "lengths_of", "arrivals_trace", "fleet_config",
           "cluster_of", "simulate_cluster", "ARRIVALS_HELP"]

ARRIVALS_HELP = ("Open-loop arrivals at --qps: poisson, or gamma:CV (gamma gaps of coefficient of variation CV; "
                 "above 1 is bursty).")
_NAMES = ("replicas", "router", "arrivals", "trace_file", "workers", "scheduler")


def fleet_options(fn: Callable) -> Callable:
    """Adds --replicas, --router, --arrivals, --trace-file, --workers and --scheduler."""
    from opbsim.emulator.router import ROUTERS

    opts = [
        click.option("--replicas", type=click.IntRange(1, 4096),
                     help="Replicas of the layout behind a request router (open loop: --qps or --trace-file)."),
        click.option("--router", type=click.Choice(list(ROUTERS)), default="round-robin", show_default=True,
                     help="; ".join(f"{p.name}: {p.doc}" for p in ROUTERS.values()) + "."),
        click.option("--arrivals", default="poisson", show_default=True, help=ARRIVALS_HELP),
        click.option("--trace-file", type=FilePath(exists=True, dir_okay=False, path_type=Path),
                     help="Requests from a CSV file: arrival_s,input_tokens,output_tokens (docs/serving.md)."),
        click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
                     help="Local processes for the replicas (round-robin and random routers only)."),
        click.option("--scheduler", metavar="tcp://HOST:PORT",
                     help="Run the replicas on this Dask cluster instead (round-robin and random routers only)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def pop_fleet(kw: dict) -> dict:
    """Pops the flags of ``fleet_options`` from ``kw``."""
    return {n: kw.pop(n) for n in _NAMES}


def check_fleet(fleet: dict) -> None:
    """Rejects combinations that cannot mean anything (one line each)."""
    from opbsim.emulator.router import router_policy

    static = router_policy(fleet["router"]).static
    if not static and (fleet["workers"] > 1 or fleet["scheduler"]):
        raise InputError(f"--router {fleet['router']} routes by the replicas' load, so they run in one process: "
                         "drop --workers/--scheduler or use round-robin or random")


def lengths_of(lin: int | None, lout: int | None, lin_std: float, lout_std: float):
    from opbsim.workloads import FixedLengths, GaussianLengths

    if lin is None or lout is None:
        raise click.UsageError(f"Missing option '--{'lin' if lin is None else 'lout'}' (or give --trace-file).")
    return FixedLengths(lin, lout) if lin_std == 0 and lout_std == 0 else \
        GaussianLengths(float(lin), float(lin_std), float(lout), float(lout_std))


def trace_of(fleet: dict, qps: float | None, lengths: Callable[[], object], num_requests: int, seed: int):
    """The open-loop trace the flags describe: the file, or ``num_requests`` arrivals at ``qps``."""
    from opbsim.workloads.traces import read_trace

    if fleet["trace_file"] is not None:
        if qps is not None:
            raise InputError("--trace-file and --qps both given: the file holds the arrival times")
        return read_trace(fleet["trace_file"])
    if qps is None:
        raise InputError("a cluster run needs an open loop: give --qps RATE or --trace-file FILE")
    return arrivals_trace(fleet["arrivals"], qps, lengths(), num_requests, seed)


def arrivals_trace(arrivals: str, qps: float, lengths, num_requests: int, seed: int):
    from opbsim.workloads.traces import gamma_trace, poisson_trace

    if arrivals == "poisson":
        return poisson_trace(qps, lengths, num_requests=num_requests, seed=seed)
    if arrivals.startswith("gamma:"):
        try:
            cv = float(arrivals[6:])
        except ValueError:
            raise InputError(f"--arrivals {arrivals[:40]}: CV must be a number, e.g. gamma:2") from None
        return gamma_trace(qps, cv, lengths, num_requests=num_requests, seed=seed)
    raise InputError(f"--arrivals {arrivals[:40]!r}: expected poisson or gamma:CV")


def cluster_of(model: str, layout: dict, *, context_tokens: int, batch: int, formats: dict | None = None):
    """(ModelConfig, Cluster, note) of the device and layout flags in ``layout`` (popped); ``formats``:
    ``load_model``'s dtype and kv_dtype."""
    from opbsim.cli.device import device_of
    from opbsim.cli.parallel import layout_of
    from opbsim.emulator.cluster import Cluster
    from opbsim.workloads import load_model

    spec, policy = device_of(layout)
    cfg = load_model(model, **(formats or {}))
    parallel, node_size, note = layout_of(layout, cfg, spec, policy, context_tokens=context_tokens, batch=batch)
    return cfg, Cluster(device=spec, policy=policy, parallel=parallel, node_devices=node_size), note


def fleet_config(fleet: dict, *, batch: int, prefill_chunk: int, seed: int, buckets: int, overlap: bool,
                 cuda_graphs: bool = True):
    from opbsim.emulator.fleet import FleetConfig

    check_fleet(fleet)
    return FleetConfig(replicas=fleet["replicas"] or 1, batch=batch, router=fleet["router"],
                       prefill_chunk_tokens=prefill_chunk, seed=seed, workers=fleet["workers"],
                       scheduler=fleet["scheduler"], buckets=buckets, overlap=overlap, cuda_graphs=cuda_graphs)


def simulate_cluster(model: str, fleet: dict, layout: dict, *, batch: int, lengths: Callable[[], object],
                     qps: float | None, num_requests: int | None, seed: int, prefill_chunk: int, routing: str,
                     buckets: int, overlap: bool, as_json: bool, stage_trace: Path | None,
                     cuda_graphs: bool = True, formats: dict | None = None) -> None:
    """``opbsim simulate --replicas N`` / ``--trace-file``: a trace on replicas behind a router."""
    from opbsim.emulator.fleet_run import simulate_fleet
    from opbsim.report.fleet import fleet_json, fleet_table

    if routing != "balanced":
        raise InputError(f"--routing {routing[:40]}: a cluster run takes balanced expert routing only")
    if stage_trace is not None:
        raise InputError("--trace (a trace of stages) is for one replica: drop --replicas and --trace-file")
    config = fleet_config(fleet, batch=batch, prefill_chunk=prefill_chunk, seed=seed, buckets=buckets,
                          overlap=overlap, cuda_graphs=cuda_graphs)
    trace = trace_of(fleet, qps, lengths, num_requests or batch * config.replicas, seed)
    cfg, cluster, note = cluster_of(model, layout, context_tokens=trace.longest_context_tokens, batch=batch,
                                   formats=formats)
    result = simulate_fleet(cfg, cluster, trace, config)
    click.echo(fleet_json(result) if as_json else fleet_table(result))
    if note:
        click.echo(note, err=True)
