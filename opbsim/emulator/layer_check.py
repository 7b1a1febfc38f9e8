"""One full-size decoder layer, compiled, executed on the functional executor and checked bit for
bit against the numerics definition, with its error against the float64 golden layer.

Weights are seeded bf16 bit patterns (seeded_bits: magnitudes 2^-10..2^-2 with random signs,
norm gains in [1, 2)), each generated once, where it stays: the weights the routing needs are
held while the reference routes the tokens; every weight the compiled program holds is then
generated (or moved) into the emulated memory, and the reference, the executor and the float64
golden all read it there (a weight the program does not hold stays held). The MoE layer is
specialised on the routing the reference computes (docs/compiler.md, "Routing specialisation").

The numerics reference is the layer's definitions executed by layer_values.py (its products by
ordered_gemm, the definition's k-ordered sums, which share no code with the executor's GEMM
kernels), so every output is compared bit for bit with the definition. The golden
checks a seeded sample of tokens (``golden.sample_rows``) unless asked for all.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from opbsim.compiler import Compiled, compile_graph
from opbsim.emulator import golden, seeded_bits
from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.faults import MemoryFault
from opbsim.emulator.functional import ExecutionStats, execute
from opbsim.emulator.gemm_backend import RtlGemmStats, rtl_pim_gemm
from opbsim.emulator.layer_golden import MAX_NORM, MEAN_NORM, GoldenError, golden_errors
from opbsim.emulator.layer_values import StageValues, stage_values
from opbsim.emulator.seeded_weights import SeededWeights
from opbsim.errors import DoesNotFit, InputError
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa import numerics as N
from opbsim.isa.types import Descriptor, DType
from opbsim.layers.stage_rows import cache_buffers, requests
from opbsim.workloads import build_model
from opbsim.workloads.features import check_lowerable
from opbsim.workloads.graph import build_layer
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.ops import Role
from opbsim.workloads.routing import expert_counts
from opbsim.workloads.stage import Stage
from opbsim.workloads.weight_format import fp8_block

__all__ = ["GoldenError", "LayerCheck", "LayerRun", "check_layer", "run_layer", "bytes_needed", "MAX_NORM",
           "MEAN_NORM"]


@dataclass(frozen=True, slots=True)
class LayerCheck:
    """Outcome of one check. ``mismatches`` names each output whose bits differ; the golden
    errors are those of the attention result and of the MoE result vs float64."""

    model: str
    layer: int
    instructions: int
    generate_s: float
    reference_s: float
    compile_s: float
    execute_s: float
    golden_s: float
    outputs_checked: tuple[str, ...]
    mismatches: tuple[str, ...]
    attention_error: GoldenError
    ffn_error: GoldenError
    rtl_tiles: int = 0  # GEMM tiles run on the RTL Logic-PIM unit (``rtl_lanes``), and their cycles
    rtl_cycles: int = 0
    golden_rows: tuple[int, ...] = ()  # the tokens (rows) the float64 golden checked
    golden_seed: int = 0  # the seed that drew them

    @property
    def bit_exact(self) -> bool:
        return not self.mismatches


def _layer_graph(model: ModelConfig, stage: Stage, layer: int, ids: np.ndarray | None = None):
    """The model graph of decoder layer ``layer`` alone; its experts' token counts from ``ids``."""
    graph = build_model(model, stage)
    if ids is not None:
        counts = expert_counts(ids, model.num_experts)
        graph = replace(graph, layers=(build_layer(model, stage, layer, expert_tokens=counts),))
    else:
        graph = replace(graph, layers=(graph.layers[layer],))
    return replace(graph, prologue=(), epilogue=())


def weight_shapes(model: ModelConfig, stage: Stage, layer: int) -> dict[str, tuple[int, ...]]:
    """Every weight of decoder layer ``layer`` by name, every expert's included: the routing
    decides which experts a stage uses, and one that gets no token at a small batch is normal."""
    return {name: shape for name, (shape, _) in _weight_specs(model, stage, layer).items()}


def _weight_specs(model: ModelConfig, stage: Stage, layer: int) -> dict[str, tuple[tuple[int, ...], DType]]:
    """(shape, stored dtype) of every weight of decoder layer ``layer`` (see ``weight_shapes``).
    MLA's absorbing ops read views of w_kv_b: its buffer (and an fp8 one's scales) is the whole matrix's."""
    graph = _layer_graph(model, stage, layer)
    specs = {t.name: (t.shape, t.dtype) for op in graph.ops for t in op.inputs if t.role is Role.WEIGHT}
    if model.mla is not None:
        a, name = model.mla, f"L{layer}.w_kv_b"
        k, n = a.kv_lora_rank, model.num_heads * (a.qk_nope_head_dim + a.v_head_dim)
        specs[name] = ((k, n), specs[name][1])
        block = fp8_block(model)
        if block is not None:
            specs[f"{name}.scale"] = ((-(-k // block[0]), -(-n // block[1])), DType.FP32)
    template = f"L{layer}.expert."
    present = sorted({n for n in specs if n.startswith(template)})
    for name in present:
        suffix = name[len(template):].split(".", 1)[1]
        for e in range(model.num_experts):
            specs.setdefault(f"{template}{e}.{suffix}", specs[name])
    return specs


def bytes_needed(model: ModelConfig, stage: Stage, layer: int) -> int:
    """Memory the check needs: the layer's weights once, counted in bf16 in the emulated memory
    (with its record of written bytes, a bit a byte), the largest once more (a weight the program
    does not hold is generated whole) or, with fp8 weights (always generated whole), 8 times more
    (its bf16 bits, fp32 values and float64 rounding temporaries), the KV caches four times in bf16
    bytes (their bits, their fp32 values, the emulated memory's copy) and activations."""
    shape_of = weight_shapes(model, stage, layer)
    weights = {n: 2 * math.prod(s) for n, s in shape_of.items()}  # bf16
    largest = max(weights.values(), default=0) * (8 if model.weight_dtype is DType.FP8_E4M3 else 1)
    reqs = requests(stage)
    kv = 2 * len(reqs) * max(r.context for r in reqs) * model.kv_dim * 2
    acts = 64 * stage.tokens * max(model.hidden_size, model.expert_ffn, model.dense_ffn) * 4
    return sum(weights.values()) * 9 // 8 + largest + 4 * kv + acts


def _available_B() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


CHECK_STEPS = 5  # calls of ``on_step``: inputs, reference, compile, execute, golden


def _caches(model: ModelConfig, stage: Stage, layer: int, seed: int) -> dict[str, np.ndarray]:
    """The layer's KV-cache buffers' raw storage by name (``cache_buffers``: K and V [R, S, KV, d],
    or MLA's latents and RoPE keys [R, S, c + dr]): roughly standard normal values in each
    request's past rows (seeded_bits.normal_bits; an fp8 cache holds their e4m3 codes), zeros after."""
    reqs = requests(stage)
    out = {}
    for name, shape in cache_buffers(model, stage, layer).items():
        bits = np.zeros(shape, np.uint16)
        for slot, r in enumerate(reqs):
            seeded_bits.normal_bits(seed, f"{name}.{slot}", (r.past, *shape[2:]), out=bits[slot, :r.past])
        out[name] = N.store(N.widen(bits, DType.BF16), model.kv_dtype) if model.kv_dtype is not DType.BF16 else bits
    return out


def _cache_values(run: LayerRun) -> tuple[np.ndarray, ...]:
    """The exact values of the layer's KV caches before the stage (an fp8 cache's codes times its scale)."""
    out = []
    for name, raw in run.caches.items():
        if raw.dtype == np.uint8:
            out.append(N.widen(raw, DType.FP8_E4M3) * N.widen(run.weights.bits(f"{name}.scale"), DType.FP32)[0])
        else:
            out.append(N.widen(raw, DType.BF16))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LayerRun:
    """One decoder layer compiled and executed (``run_layer``): the executor's memory after the
    program, the numerics definition's values ``want`` (StageValues), the inputs (raw bf16: the
    residual ``stream`` [T, hidden], the previous layer's FFN output ``delta`` or None, the KV
    caches by buffer name as they were before the stage), ``weights`` (bits by name) and what the
    execution did (``stats``)."""

    model: ModelConfig
    stage: Stage
    layer: int
    compiled: Compiled
    memory: DataMemory
    want: StageValues
    weights: SeededWeights
    stream_bits: np.ndarray
    delta_bits: np.ndarray | None
    caches: dict[str, np.ndarray]
    routed: bool
    generate_s: float
    reference_s: float
    compile_s: float
    execute_s: float
    stats: ExecutionStats
    rtl_tiles: int = 0
    rtl_cycles: int = 0

    @property
    def k_bits(self) -> np.ndarray:
        """The K cache's bits [R, S, KV, d] (a GQA / MHA layer)."""
        return self.caches[f"L{self.layer}.k_cache"]

    @property
    def v_bits(self) -> np.ndarray:
        return self.caches[f"L{self.layer}.v_cache"]

    @property
    def instructions(self) -> int:
        return len(self.compiled.program.instructions)

    def got(self, name: str) -> np.ndarray:
        """The raw storage the program left in buffer ``name``, shaped as its view."""
        view = self.compiled.buffers[name]
        return self.memory.raw(view.descriptor()).reshape(view.shape)


def run_layer(model: ModelConfig, layer: int, stage: Stage, device: DeviceSpec, policy: str, seed: int = 0,
              rtl_lanes: int | None = None, on_step: Callable[[str], None] | None = None) -> LayerRun:
    """Generate the seeded inputs and weights, compute the numerics definition of decoder layer
    ``layer`` (routing it), compile the layer for ``device`` / ``policy`` (specialised on that
    routing) and execute it. ``on_step`` is told after the first four ``CHECK_STEPS`` phases."""
    step = on_step or (lambda done: None)
    if not 0 <= layer < model.num_layers:
        raise InputError(f"layer {layer} is outside 0..{model.num_layers - 1} ({model.name})")
    check_lowerable(model)
    need, have = bytes_needed(model, stage, layer), _available_B()
    if need > have:
        raise DoesNotFit(f"does not fit in this machine's memory: the check needs about {need / 2**30:.1f} GiB, "
                         f"{have / 2**30:.1f} GiB are available")
    T, h = stage.tokens, model.hidden_size
    t0 = time.perf_counter()
    specs = _weight_specs(model, stage, layer)
    w = SeededWeights({n: shape for n, (shape, _) in specs.items()}, seed,
                 {n: dtype for n, (_, dtype) in specs.items() if dtype is not DType.BF16})
    rng = np.random.default_rng([seed, layer])
    stream_bits = N.store(rng.standard_normal((T, h)).astype(np.float32), DType.BF16)
    delta_bits = N.store(rng.standard_normal((T, h)).astype(np.float32) * np.float32(0.5), DType.BF16) if layer \
        else None
    caches = _caches(model, stage, layer, seed)
    generate_s = time.perf_counter() - t0
    step("inputs")

    program = _Program(model, stage, layer, device, policy, w)
    t0 = time.perf_counter()
    want = stage_values(model, stage, w.bits_or_none, caches={layer: tuple(c.copy() for c in caches.values())},
                        layers=(layer,), stream=stream_bits, delta=delta_bits,
                        routed=lambda _, ids: program.build({layer: ids}))
    if program.compiled is None:  # a dense layer: no routing to wait for
        program.build(None)
    reference_s = time.perf_counter() - t0 - program.compile_s - program.place_s
    compiled, memory = program.compiled, program.memory
    step("reference")
    step("compiled")

    _load(memory, compiled, f"L{layer - 1}.h" if layer else "x0", stream_bits)
    if delta_bits is not None:
        _load(memory, compiled, f"L{layer - 1}.ffn_out", delta_bits)
    for name, bits in caches.items():
        _load(memory, compiled, name, bits)
    for name, data in compiled.constants.items():
        memory.write_raw(compiled.buffers[name].descriptor(), data)
    t0 = time.perf_counter()
    with rtl_pim_gemm(rtl_lanes) if rtl_lanes else contextlib.nullcontext(RtlGemmStats()) as rtl:
        stats = execute(compiled.program, memory)
    execute_s = time.perf_counter() - t0
    step("executed")
    return LayerRun(model, stage, layer, compiled, memory, want, w, stream_bits, delta_bits, caches,
                    bool(program.routing), generate_s + program.place_s, reference_s, program.compile_s, execute_s,
                    stats, rtl.tiles, rtl.cycles)


def check_layer(model: ModelConfig, layer: int, stage: Stage, device: DeviceSpec, policy: str,
                seed: int = 0, rtl_lanes: int | None = None, on_step: Callable[[str], None] | None = None,
                golden_rows: int | None = golden.GOLDEN_ROWS) -> LayerCheck:
    """With ``rtl_lanes``, the program's PIM GEMMs run on the RTL unit of that many lanes.
    ``on_step(done)`` is told after each of the ``CHECK_STEPS`` phases (progress). Every output
    is compared bit for bit; the float64 golden errors cover ``golden_rows`` tokens drawn by
    ``seed`` (``golden.sample_rows``; None: every token). The phase times: ``generate_s`` makes
    the inputs and the weights (into the emulated memory), ``reference_s`` routes the tokens
    and computes the reference layer."""
    step = on_step or (lambda done: None)
    run = run_layer(model, layer, stage, device, policy, seed, rtl_lanes, step)
    L, want, memory, compiled = f"L{layer}", run.want, run.memory, run.compiled
    checked = [n for n in (f"{L}.h", f"{L}.ffn_out", *run.caches) if n in want]
    mismatches = [n for n in checked if not np.array_equal(memory.raw(compiled.buffers[n].descriptor()).reshape(-1),
                                                           want.raw(n).reshape(-1))]
    if run.routed and not np.array_equal(_read(memory, compiled, f"{L}.topk_ids", DType.I32),
                                         want[f"{L}.topk_ids"]):
        mismatches.append(f"{L}.topk_ids")
    t0 = time.perf_counter()
    rows = golden.sample_rows(stage.tokens, golden_rows, seed)
    stream = N.widen(run.stream_bits, DType.BF16)
    delta = None if run.delta_bits is None else N.widen(run.delta_bits, DType.BF16)
    caches = _cache_values(run)
    attention_error, ffn_error = golden_errors(model, stage, layer, run.weights.bits, stream, delta, caches, want,
                                               rows)
    golden_s = time.perf_counter() - t0
    step("golden")
    return LayerCheck(model.name, layer, run.instructions, run.generate_s, run.reference_s, run.compile_s,
                      run.execute_s, golden_s, tuple(checked), tuple(mismatches), attention_error, ffn_error,
                      run.rtl_tiles, run.rtl_cycles, tuple(int(r) for r in rows), seed)


class _Program:
    """The layer's program, compiled once the routing is known (``build``), and its memory with
    every weight the program holds placed in it."""

    def __init__(self, model: ModelConfig, stage: Stage, layer: int, device: DeviceSpec, policy: str, w: SeededWeights):
        self._args, self._w = (model, stage, layer, device, policy), w
        self.memory = DataMemory({m.space: m.capacity_B for m in device.memories})
        self.compiled, self.routing = None, None
        self.compile_s = self.place_s = 0.0

    def build(self, routing: dict[int, np.ndarray] | None) -> None:
        model, stage, layer, device, policy = self._args
        t0 = time.perf_counter()
        graph = _layer_graph(model, stage, layer, routing[layer] if routing else None)
        self.compiled, self.routing = compile_graph(graph, device, policy, routing=routing), routing
        t1 = time.perf_counter()
        placed = {name: view.descriptor() for name, view in self.compiled.buffers.items() if name in self._w.shapes}
        _check_apart(placed)
        for name, desc in placed.items():
            self._w.place(name, self.memory, desc)
        self.compile_s, self.place_s = t1 - t0, time.perf_counter() - t1


def _check_apart(descs: Mapping[str, Descriptor]) -> None:
    """The reference reads the weights where the program holds them, so two weights sharing
    bytes would agree with the executor on whatever the later one left there: refuse that."""
    spans = sorted((d.space.value, d.base_B, d.base_B + d.extent_B, n) for n, d in descs.items())
    for (space, _, end, name), (space2, base2, _, name2) in zip(spans, spans[1:]):
        if space == space2 and base2 < end:
            raise MemoryFault(f"the program places weights {name} and {name2} on the same bytes")


def _load(memory: DataMemory, compiled, name: str, bits: np.ndarray) -> None:
    view = compiled.buffers[name]
    memory.write_raw(view.descriptor(), bits.reshape(view.shape))


def _read(memory: DataMemory, compiled, name: str, dtype: DType) -> np.ndarray:
    return N.widen(memory.raw(compiled.buffers[name].descriptor()), dtype)
