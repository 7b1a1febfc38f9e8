"""``opbsim capacity``: SLO goodput, the largest request rate at which a cluster of replicas keeps
p99 time to first token and p99 time per output token within targets (emulator/goodput.py)."""

from __future__ import annotations

import json

import click

from opbsim.cli.device import device_options
from opbsim.cli.fleet import arrivals_trace, cluster_of, fleet_config, fleet_options, lengths_of, pop_fleet
from opbsim.cli.parallel import parallel_options
from opbsim.cli.stage_options import buckets_option, cuda_graphs_option, prefill_chunk_option
from opbsim.errors import InputError
from opbsim.report.tables import format_table

__all__ = ["capacity_cmd", "KEEP_UP"]

KEEP_UP = 0.9  # a trial fails when the cluster serves fewer requests/s than this share of the offered rate


@click.command("capacity")
@click.argument("model")
@device_options
@parallel_options
@click.option("--slo-ttft-ms", type=click.FloatRange(min=0, min_open=True), required=True,
              help="Target for the p99 time to first token.")
@click.option("--slo-tpot-ms", type=click.FloatRange(min=0, min_open=True), required=True,
              help="Target for the p99 time per output token.")
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Most requests running at once on a replica.")
@click.option("--lin", type=click.IntRange(min=1), help="Prompt tokens (mean with --lin-std).")
@click.option("--lout", type=click.IntRange(min=1), help="Output tokens (mean with --lout-std).")
@click.option("--lin-std", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Standard deviation of Gaussian prompt lengths (0: fixed).")
@click.option("--lout-std", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Standard deviation of Gaussian output lengths (0: fixed).")
@click.option("--requests", "num_requests", type=click.IntRange(min=1),
              help="Requests per trial rate [default: 1000 per replica]; the trace must last much longer than "
                   "one request's latency. With --trace-file: its requests, replayed faster or slower.")
@click.option("--start-qps", type=click.FloatRange(min=0, min_open=True),
              help="First rate tried [default: 1 request/s per replica].")
@click.option("--tolerance", type=click.FloatRange(0.001, 0.5), default=0.02, show_default=True,
              help="Stop when the passing and failing rates are this close (relative).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the request lengths, arrivals and random router.")
@prefill_chunk_option
@cuda_graphs_option
@buckets_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@fleet_options
def capacity_cmd(model: str, slo_ttft_ms: float, slo_tpot_ms: float, batch: int, lin: int | None, lout: int | None,
                 lin_std: float, lout_std: float, num_requests: int, start_qps: float | None, tolerance: float,
                 seed: int, prefill_chunk: int, cuda_graphs: bool, buckets: int, as_json: bool, **layout) -> None:
    """The SLO goodput of MODEL on --replicas replicas (default 1): the largest arrival rate whose
    p99 TTFT <= --slo-ttft-ms and p99 TPOT <= --slo-tpot-ms and which the cluster keeps up with
    (it serves at least 90% of the offered requests/s), bracketed by doubling and bisection.
    Every trial serves the same requests (the same seed), arriving faster or slower."""
    from opbsim.emulator.fleet import timer_for
    from opbsim.emulator.fleet_run import simulate_fleet
    from opbsim.emulator.goodput import bracket
    from opbsim.workloads.traces import Trace, read_trace

    fleet = pop_fleet(layout)
    config = fleet_config(fleet, batch=batch, prefill_chunk=prefill_chunk, seed=seed, buckets=buckets, overlap=False,
                          cuda_graphs=cuda_graphs)
    if fleet["trace_file"] is not None:
        base = read_trace(fleet["trace_file"])
        if base.arrival_s[-1] <= 0:
            raise InputError(f"{fleet['trace_file']}: every request arrives at time 0; there is no rate to scale")
        base_rate = len(base) / float(base.arrival_s[-1])

        def trace_at(rate: float) -> Trace:
            return Trace(base.arrival_s * (base_rate / rate), base.input_tokens, base.output_tokens, base.source)
    else:
        lengths = lengths_of(lin, lout, lin_std, lout_std)

        def trace_at(rate: float) -> Trace:
            return arrivals_trace(fleet["arrivals"], rate, lengths, num_requests or 1000 * config.replicas, seed)
    probe = trace_at(1.0)
    cfg, cluster, note = cluster_of(model, layout, context_tokens=probe.longest_context_tokens, batch=batch)
    timer = timer_for(cfg, cluster, config) if config.workers == 1 and not config.scheduler else None
    seen: list[tuple[float, object]] = []

    def meets(rate: float) -> bool:
        result = simulate_fleet(cfg, cluster, trace_at(rate), config, timer=timer)
        seen.append((rate, result))
        return (result.ttft_p99_ms <= slo_ttft_ms and result.tpot_p99_ms <= slo_tpot_ms
                and result.served_requests_per_s >= KEEP_UP * result.requests_per_s)

    found = bracket(meets, start_qps or float(config.replicas), rel_tol=tolerance)
    rows = [(f"{rate:.3f}", f"{r.served_requests_per_s:.3f}", f"{r.ttft_p99_ms:.1f}", f"{r.tpot_p99_ms:.2f}",
             f"{r.tokens_per_s:.0f}", "yes" if ok else "no") for (rate, r), (_, ok) in zip(seen, found.runs)]
    per = config.replicas
    if as_json:
        click.echo(json.dumps({
            "model": cfg.name, "device": cluster.device.name, "parallel": cluster.parallel.label,
            "replicas": per, "router": config.router, "slo_ttft_ms": slo_ttft_ms, "slo_tpot_ms": slo_tpot_ms,
            "goodput_requests_per_s": found.lo_per_s, "goodput_requests_per_s_per_replica": found.lo_per_s / per,
            "failing_requests_per_s": found.hi_per_s if found.hi_per_s != float("inf") else None,
            "trials": [{"requests_per_s": rate, "served_requests_per_s": r.served_requests_per_s,
                        "ttft_p99_ms": r.ttft_p99_ms, "tpot_p99_ms": r.tpot_p99_ms,
                        "tokens_per_s": r.tokens_per_s, "meets_slo": ok}
                       for (rate, r), (_, ok) in zip(seen, found.runs)]}, indent=2))
    else:
        header = ("requests/s", "served/s", "ttft p99 ms", "tpot p99 ms", "tokens/s", "meets SLO")
        click.echo(format_table(header, rows))
        click.echo(f"\ngoodput of {per} x {cluster.parallel.label} {cluster.device.name} ({cfg.name}, p99 TTFT <= "
                   f"{slo_ttft_ms:g} ms, p99 TPOT <= {slo_tpot_ms:g} ms): {found.lo_per_s:.3f} requests/s "
                   f"({found.lo_per_s / per:.3f} per replica); {found.hi_per_s:.3f} fails")
    if note:
        click.echo(note, err=True)
