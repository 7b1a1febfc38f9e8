"""Running a sweep: each configuration is one serving simulation, on a local process pool or on
a Dask distributed cluster, its row appended to the results table as soon as it finishes.

``run_config`` is a pure function of the configuration dict: the same configuration gives the
same row wherever it runs (no wall times, no counters shared between configurations), which is
what lets a Dask cluster and the local pool produce the same table. A configuration that fails
(does not fit, cannot be compiled, any exception) gives a row with ``status`` ``error`` and the
message, and the sweep goes on. ``run_sweep`` skips configurations already in the table, so a
sweep that was killed resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from opbsim.errors import InputError
from opbsim.report.sweep_spec import CONFIG_KEYS, config_hash
from opbsim.report.sweep_store import METRICS, columns_of, open_results

__all__ = ["run_config", "SweepSummary", "run_sweep"]


def _routing(spec: str, model, seed: int):
    from opbsim.workloads import UniformRouting, ZipfRouting

    if spec == "balanced":
        return None
    if not model.is_moe:
        raise InputError(f"routing {spec}: {model.name} has no experts")
    if spec == "uniform":
        return UniformRouting(model.num_experts, model.top_k, seed=seed)
    return ZipfRouting(model.num_experts, model.top_k, skew=float(spec[5:]), seed=seed)


def _simulate(cfg: dict) -> dict:
    from opbsim.emulator.cluster import Cluster
    from opbsim.emulator.serving import ServingConfig, simulate
    from opbsim.emulator.stage_timer import Bucketing, StageTimer
    from opbsim.hardware import get_device
    from opbsim.hardware.params import apply_hw
    from opbsim.workloads import FixedLengths, GaussianLengths, closed_loop, load_model
    from opbsim.workloads.parallel import Parallelism, parse_parallel

    model = load_model(cfg["model"])
    spec = apply_hw(get_device(cfg["device"]), cfg["hw"])
    if cfg["parallel"]:
        parallel = Parallelism.of(**parse_parallel(cfg["parallel"]))
        cluster = Cluster(device=spec, policy=cfg["policy"], parallel=parallel)
    else:
        cluster = Cluster.from_nodes(device=spec, policy=cfg["policy"], devices_per_node=cfg["devices_per_node"],
                                     nodes=cfg["nodes"])
    lengths = FixedLengths(cfg["lin"], cfg["lout"]) if cfg["lin_std"] == 0 and cfg["lout_std"] == 0 else \
        GaussianLengths(float(cfg["lin"]), cfg["lin_std"], float(cfg["lout"]), cfg["lout_std"])
    scenario = closed_loop(cfg["batch"], lengths, num_requests=cfg["requests"], seed=cfg["seed"])
    timer = StageTimer(model, cluster, routing=_routing(cfg["routing"], model, cfg["seed"]),
                       bucketing=Bucketing(cfg["buckets"]))
    result = simulate(model, cluster, scenario,
                      ServingConfig(batch=cfg["batch"], prefill_chunk_tokens=cfg["prefill_chunk"]), timer=timer)
    summary = result.summary()
    summary.update({f"energy_{c}_mJ_per_token": mJ for c, mJ in result.energy_breakdown_mJ_per_token})
    return {m: summary[m] for m in METRICS}


def run_config(cfg: dict) -> dict:
    """The results row of one configuration: its hash, ``status`` (``ok`` or ``error``), the
    error message, the configuration (``hw.*`` flattened) and the serving metrics."""
    row: dict = {"config_hash": config_hash(cfg), **{k: cfg[k] for k in CONFIG_KEYS},
                 **{f"hw.{k}": v for k, v in cfg["hw"].items()}}
    try:
        row.update(_simulate(cfg), status="ok", error="")
    except InputError as e:
        row.update(status="error", error=str(e))
    except Exception as e:  # a failing configuration is recorded, never the end of the sweep
        row.update(status="error", error=f"{type(e).__name__}: {e}")
    return row


@dataclass(frozen=True, slots=True)
class SweepSummary:
    total: int
    skipped: int  # already in the results table
    ran: int
    failed: int
    dropped: int = 0  # corrupt or torn rows found in the results table and run again


def _local(configs: list[dict], workers: int) -> Iterator[dict]:
    if workers == 1:
        yield from map(run_config, configs)
        return
    ctx = multiprocessing.get_context("spawn")  # no inherited threads or locks from the parent
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(run_config, c) for c in configs]
        try:
            for fut in cf.as_completed(futures):
                try:
                    yield fut.result()
                except cf.process.BrokenProcessPool:
                    raise InputError("a worker process died (out of memory?); run the same command again to resume "
                                     "(finished configurations are kept)") from None
        finally:
            for f in futures:
                f.cancel()


def _dask(configs: list[dict], scheduler: str) -> Iterator[dict]:
    from opbsim.emulator.dask_client import open_client

    client = open_client(scheduler)
    from dask.distributed import as_completed

    with client:
        futures = client.map(run_config, configs, pure=False)
        by_key = {f.key: c for f, c in zip(futures, configs)}
        try:
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except Exception as e:  # the worker died running it (KilledWorker): record it as failed
                    cfg = by_key[fut.key]
                    row = {"config_hash": config_hash(cfg), **{k: cfg[k] for k in CONFIG_KEYS},
                           **{f"hw.{k}": v for k, v in cfg["hw"].items()}}
                    yield {**row, "status": "error", "error": f"worker failed: {type(e).__name__}: {e}"}
        finally:
            client.cancel(futures)


def run_sweep(configs: list[dict], out: Path, *, workers: int | None = None, scheduler: str | None = None,
              on_start: Callable[[int], None] | None = None,
              on_row: Callable[[dict], None] | None = None) -> SweepSummary:
    """Run every configuration not yet in ``out`` and append its row. ``workers``: local processes
    (default: the CPU count; 1 runs in this process); ``scheduler``: a Dask scheduler address
    instead. ``on_start(n)`` gets the number of configurations to run, ``on_row(row)`` each row
    once it is written."""
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    with open_results(out, columns_of(configs)) as results:
        pending = [c for c in configs if config_hash(c) not in results.done]
        if on_start is not None:
            on_start(len(pending))
        rows: Iterable[dict]
        if not pending:
            rows = ()
        elif scheduler is not None:
            rows = _dask(pending, scheduler)
        else:
            rows = _local(pending, min(workers or os.cpu_count() or 1, len(pending)))
        ran = failed = 0
        for row in rows:
            results.append(row)
            ran += 1
            failed += row["status"] != "ok"
            if on_row is not None:
                on_row(row)
    return SweepSummary(total=len(configs), skipped=len(configs) - len(pending), ran=ran, failed=failed,
                        dropped=results.dropped)
