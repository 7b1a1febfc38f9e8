"""Run a compiled stage on the functional executor with random weights, inputs and KV caches."""

from __future__ import annotations

import numpy as np

from opbsim.compiler import compile_graph
from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.functional import execute
from opbsim.emulator.layer_values import stage_values
from opbsim.hardware import get_device
from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.layers.stage_rows import cache_buffers, requests
from opbsim.workloads.graph import build_model
from opbsim.workloads.routing_trace import TraceRouting


def random_bf16(rng, shape, scale=1.0) -> np.ndarray:
    return N.widen(N.store(rng.standard_normal(shape).astype(np.float32) * np.float32(scale), DType.BF16), DType.BF16)


def weights_for(compiled, model, rng):
    """(name, random exact-bf16 values) of every weight buffer the program reads, one at a time; an
    fp8 weight's block scales (``<w>.scale``) are positive fp32 values in [0.5, 2)."""
    for name, view in compiled.buffers.items():
        if name.endswith(".scale") and view.dtype is DType.FP32:
            yield name, np.exp2(rng.uniform(-1, 1, view.shape)).astype(np.float32)
            continue
        if not _is_weight(name):
            continue
        fan_in = view.shape[0] if len(view.shape) == 2 else 1
        scale = 1.0 if name.endswith(("norm.weight", "bias")) or ".b_" in name else 1.0 / np.sqrt(fan_in)
        yield name, random_bf16(rng, view.shape, scale)


def _is_weight(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf.startswith(("w_", "b_")) or leaf in ("weight", "bias", "e_score_correction_bias", "sinks") or name in (
        "embed_tokens", "embed_positions", "lm_head")


def run_stage(model, stage, *, device="duplex", policy="duplex", seed=0):
    """(reference values, executor memory, compiled) for one stage of ``model``."""
    rng = np.random.default_rng(seed)
    reqs = requests(stage)
    caches = {}  # layer -> {cache buffer: fp32 values of its bf16 past rows, zeros after}
    for layer in range(model.num_layers):
        caches[layer] = {}
        for name, shape in cache_buffers(model, stage, layer).items():
            c = np.zeros(shape, np.float32)
            for slot, r in enumerate(reqs):
                c[slot, :r.past] = random_bf16(rng, (r.past, *shape[2:]))
            caches[layer][name] = c
    token_ids = rng.integers(0, model.vocab_size, size=stage.tokens).astype(np.int32)
    # a first compile lays out every weight; the reference then gives the routing to specialise on
    probe = compile_graph(build_model(model, stage), get_device(device), policy)
    bits = {}  # each weight's raw storage, its fp32 values dropped at once (a full-size layer is GBs)
    for name, values in weights_for(probe, model, rng):
        bits[name] = N.store(values, probe.buffers[name].dtype)
    cache_bits = {layer: tuple(N.store(c, model.kv_dtype) for c in named.values()) for layer, named in caches.items()}
    ref = stage_values(model, stage, bits.get, token_ids=token_ids, caches=cache_bits)
    routing = {int(k[1:].split(".")[0]): v for k, v in ref.items() if k.endswith(".topk_ids")}
    graph = build_model(model, stage, routing=TraceRouting(model.num_experts, model.top_k, routing)
                        if routing else None)
    compiled = compile_graph(graph, get_device(device), policy, routing=routing)
    dev = get_device(device)
    memory = DataMemory({m.space: m.capacity_B for m in dev.memories})
    for name, raw in bits.items():
        if name not in compiled.buffers:  # an expert the data routes no token to
            continue
        memory.write_raw(compiled.buffers[name].descriptor(), raw)
    memory.write_raw(compiled.buffers["token_ids"].descriptor(), token_ids)
    for name, data in compiled.constants.items():
        memory.write_raw(compiled.buffers[name].descriptor(), data)
    for named in caches.values():
        for cache, values in named.items():
            memory.write_raw(compiled.buffers[cache].descriptor(), N.store(values, model.kv_dtype))
    execute(compiled.program, memory)
    return ref, memory, compiled


def read(memory, compiled, name, dtype=DType.BF16) -> np.ndarray:
    return N.widen(memory.raw(compiled.buffers[name].descriptor()), dtype)
