"""Run a compiled stage on the functional executor with random weights, inputs and KV caches."""

from __future__ import annotations

import numpy as np

from opbsim.compiler import compile_graph
from opbsim.compiler.lower_attention import requests
from opbsim.emulator import stage_reference as reference
from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.functional import execute
from opbsim.hardware import get_device
from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.workloads.graph import build_model
from opbsim.workloads.routing_trace import TraceRouting


def random_bf16(rng, shape, scale=1.0) -> np.ndarray:
    return reference.r16(rng.standard_normal(shape).astype(np.float32) * np.float32(scale))


def weights_for(compiled, model, rng) -> dict[str, np.ndarray]:
    """Random exact-bf16 values for every weight buffer the program reads."""
    w = {}
    for name, view in compiled.buffers.items():
        if not _is_weight(name):
            continue
        fan_in = view.shape[0] if len(view.shape) == 2 else 1
        scale = 1.0 if name.endswith(("norm.weight", "bias")) or ".b_" in name else 1.0 / np.sqrt(fan_in)
        w[name] = random_bf16(rng, view.shape, scale)
    return w


def _is_weight(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf.startswith(("w_", "b_")) or leaf in ("weight", "bias") or name in (
        "embed_tokens", "embed_positions", "lm_head")


def run_stage(model, stage, *, device="duplex", policy="duplex", seed=0):
    """(reference values, executor memory, compiled) for one stage of ``model``."""
    rng = np.random.default_rng(seed)
    reqs = requests(stage)
    S = max(r.context for r in reqs)
    kv = model.num_kv_heads
    caches = {}
    for layer in range(model.num_layers):
        k = np.zeros((len(reqs), S, kv, model.head_dim), np.float32)
        v = np.zeros_like(k)
        for slot, r in enumerate(reqs):
            k[slot, :r.past] = random_bf16(rng, (r.past, kv, model.head_dim))
            v[slot, :r.past] = random_bf16(rng, (r.past, kv, model.head_dim))
        caches[layer] = (k, v)
    token_ids = rng.integers(0, model.vocab_size, size=stage.tokens).astype(np.int32)
    # a first compile lays out every weight; the reference then gives the routing to specialise on
    probe = compile_graph(build_model(model, stage), get_device(device), policy)
    w = weights_for(probe, model, rng)
    ref = reference.stage(model, stage, w, token_ids, caches)
    routing = {int(k[1:].split(".")[0]): v for k, v in ref.items() if k.endswith(".topk_ids")}
    graph = build_model(model, stage, routing=TraceRouting(model.num_experts, model.top_k, routing)
                        if routing else None)
    compiled = compile_graph(graph, get_device(device), policy, routing=routing)
    dev = get_device(device)
    memory = DataMemory({m.space: m.capacity_B for m in dev.memories})
    for name, values in w.items():
        if name not in compiled.buffers:  # an expert the data routes no token to
            continue
        memory.write_raw(compiled.buffers[name].descriptor(), N.store(values, DType.BF16))
    memory.write_raw(compiled.buffers["token_ids"].descriptor(), token_ids)
    for name, data in compiled.constants.items():
        memory.write_raw(compiled.buffers[name].descriptor(), data)
    for layer, (k, v) in caches.items():
        for cache, values in ((f"L{layer}.k_cache", k), (f"L{layer}.v_cache", v)):
            memory.write_raw(compiled.buffers[cache].descriptor(), N.store(values, DType.BF16))
    execute(compiled.program, memory)
    return ref, memory, compiled


def read(memory, compiled, name, dtype=DType.BF16) -> np.ndarray:
    return N.widen(memory.raw(compiled.buffers[name].descriptor()), dtype)
