"""The parallel-layout flags shared by simulate, compare, compile, sweep and reproduce."""

from __future__ import annotations

from collections.abc import Callable

import click

from opbsim.errors import InputError

__all__ = ["parallel_options", "parallel_of", "layout_of", "layout_given", "PARALLEL_HELP"]

PARALLEL_HELP = {
    "tp": "Attention tensor parallelism: heads (and dense FFN widths) split over this many devices.",
    "dp": "Attention data parallelism: groups of tp devices, each serving 1/dp of the requests.",
    "ep": "Expert parallelism: each device holds E/ep experts; token rows move by all-to-all.",
    "etp": "Expert tensor parallelism: each expert's width split over etp devices "
           "[default: tp x dp / ep].",
    "pp": "Pipeline stages: layers split over pp groups of tp x dp devices.",
}


def parallel_options(fn: Callable) -> Callable:
    """Adds --tp --dp --ep --etp --pp, --parallel, --node-size and the older --devices-per-node /
    --nodes shorthand."""
    opts = [click.option(f"--{name}", type=click.IntRange(1, 4096), help=text) for name, text in PARALLEL_HELP.items()]
    opts += [
        click.option("--parallel", "parallel_spec", metavar="NAME=N,...",
                     help="All degrees in one string, e.g. tp=4,ep=4 (instead of the separate flags)."),
        click.option("--node-size", type=click.IntRange(1, 4096),
                     help="Devices per physical node sharing the scale-up fabric [default: the device's]."),
        click.option("--devices-per-node", type=click.IntRange(min=1),
                     help="Shorthand: tp = etp = N in each node of N devices (with --nodes M: dp = ep = M)."),
        click.option("--nodes", type=click.IntRange(min=1), help="Shorthand: see --devices-per-node."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def parallel_of(kw: dict) -> tuple[object, int]:
    """Pops the flags of ``parallel_options`` from ``kw``; returns (Parallelism, node size or 0)."""
    from opbsim.workloads.parallel import Parallelism, parse_parallel

    degrees = {n: kw.pop(n) for n in PARALLEL_HELP}
    spec, node_size = kw.pop("parallel_spec"), kw.pop("node_size")
    dpn, nodes = kw.pop("devices_per_node"), kw.pop("nodes")
    given = {n: v for n, v in degrees.items() if v is not None}
    if spec is not None:
        if given:
            raise InputError(f"--parallel and --{next(iter(given))} both given: use one or the other")
        given = parse_parallel(spec)
    if dpn is not None or nodes is not None:
        if given:
            raise InputError("--devices-per-node/--nodes and --tp/--dp/--ep/--etp/--pp both given: use "
                             "--tp/--dp/--ep/--etp/--pp (--devices-per-node N --nodes M is tp=etp=N, dp=ep=M)")
        n, m = dpn or 1, nodes or 1
        if node_size is not None and node_size != n:
            raise InputError(f"--node-size {node_size} contradicts --devices-per-node {n}")
        return Parallelism(tp=n, dp=m, ep=m, etp=n), n
    return Parallelism.of(**given), node_size or 0


def layout_given(kw: dict) -> bool:
    """Whether any layout flag of ``parallel_options`` is set in ``kw`` (before ``parallel_of``)."""
    return any(kw.get(n) is not None for n in (*PARALLEL_HELP, "parallel_spec", "devices_per_node", "nodes"))


def layout_of(kw: dict, model, spec, policy: str, *, context_tokens: int, batch: int) -> tuple[object, int, str]:
    """``parallel_of(kw)`` and a note for stderr: when no layout flag is given, the smallest
    tensor-parallel degree whose devices hold the weights and ``batch`` requests of
    ``context_tokens`` tokens, and a note saying so when it is more than one device ('' else).
    Commands print the note once their work succeeded, so that a failure stays one line."""
    from opbsim.emulator.cluster import smallest_tp

    given = layout_given(kw)
    parallel, node_size = parallel_of(kw)
    if given:
        return parallel, node_size, ""
    chosen = smallest_tp(model, spec, policy, context_tokens=context_tokens, batch=batch, node_devices=node_size)
    if chosen is None or chosen.parallel.devices == 1:
        return parallel, node_size, ""
    return chosen.parallel, node_size, (
        f"layout: {layout_text(chosen.parallel)}, the fewest {spec.name} devices that hold {model.name}'s weights "
        f"and the KV cache of {batch} requests of {context_tokens} tokens (give --tp to choose)")


def layout_text(parallel) -> str:
    """``tp=2`` within one node; ``tp=8, dp=2, ep=2 (2 nodes of 8)`` across nodes."""
    if parallel.dp == 1:
        return f"tp={parallel.tp}"
    return f"tp={parallel.tp}, dp={parallel.dp}, ep={parallel.ep} ({parallel.dp} nodes of {parallel.tp})"
