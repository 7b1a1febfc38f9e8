"""Running the Duplex reproduction's simulations: one unit per (setup, system), over processes.

A unit serves every configuration of the grid on one system of one setup, in grid order, with
one stage timer (its memo and its seeded uniform expert routing, drawn per shape in the order the
shapes are met). Units share nothing, so running them in parallel processes gives the results one
process gives, bit for bit (tested on a small grid); only the order of the progress lines changes.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable

from opbsim.emulator.serving import ServingConfig, ServingResult, simulate
from opbsim.emulator.stage_timer import StageTimer
from opbsim.errors import InputError
from opbsim.workloads import GaussianLengths, UniformRouting, closed_loop, get_preset

__all__ = ["Unit", "run_units"]

Unit = tuple[object, object, tuple[tuple[int, int, int], ...]]  # (Setup, System, (batch, lin, lout) in order)


def _run_unit(unit: Unit) -> list[ServingResult]:
    from opbsim.emulator.serving import DEFAULT_PREFILL_CHUNK_TOKENS
    from opbsim.report.reproduce import REQUESTS_PER_SLOT, SEED, STD_FRACTION, cluster_of

    setup, system, configs = unit
    model = get_preset(setup.model)
    cluster = cluster_of(system, setup, model)
    # exchanged experts: balanced, the expectation under uniform routing (cluster.py)
    uniform = model.is_moe and not cluster.parallel.experts_exchanged
    routing = UniformRouting(model.num_experts, model.top_k, seed=SEED) if uniform else None
    timer = StageTimer(model, cluster, routing=routing)
    results = []
    for batch, lin, lout in configs:
        lengths = GaussianLengths(lin, lin * STD_FRACTION, lout, lout * STD_FRACTION)
        scenario = closed_loop(batch, lengths, num_requests=REQUESTS_PER_SLOT * batch, seed=SEED)
        config = ServingConfig(batch=batch, prefill_chunk_tokens=DEFAULT_PREFILL_CHUNK_TOKENS)
        results.append(simulate(model, cluster, scenario, config, timer=timer))
    return results


def run_units(units: list[Unit], workers: int, say: Callable[[str], None]) -> list[list[ServingResult]]:
    """Each unit's results, in the order of ``units``; ``workers`` processes (1: this process)."""
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if workers == 1 or len(units) == 1:
        out = []
        for unit in units:
            out.append(_run_unit(unit))
            say(_done(unit))
        return out
    results: list[list[ServingResult] | None] = [None] * len(units)
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=min(workers, len(units)), mp_context=ctx) as pool:
        futures = {pool.submit(_run_unit, u): i for i, u in enumerate(units)}
        try:
            for fut in cf.as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                say(_done(units[i]))
        except cf.process.BrokenProcessPool:
            raise InputError("a worker process died (out of memory?); try --workers 1") from None
    return results  # type: ignore[return-value]


def _done(unit: Unit) -> str:
    setup, system, configs = unit
    return f"{setup.model} on {system.label}: {len(configs)} configurations done"
