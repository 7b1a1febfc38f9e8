"""One full-size decoder layer, compiled, executed on the functional executor and checked bit for
bit against the numerics definition, with its error against the float64 golden layer.

Weights are seeded per tensor name (bf16 bit patterns of magnitude 2^-10..2^-2, random signs; norm
gains in [1, 2)) and generated once: held in bf16 while the reference widens them one tensor at a
time, then handed to the emulated memory, from which the float64 golden reads them back (a weight
the program does not hold is generated again). The MoE layer is specialised on the routing the
reference computes (docs/compiler.md, "Routing specialisation"). The golden checks a seeded
sample of tokens (``golden.sample_rows``) unless asked for all; every output is compared bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np

from opbsim.compiler import compile_graph
from opbsim.compiler.lower_attention import requests
from opbsim.emulator import golden
from opbsim.emulator import stage_reference as ref
from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.functional import execute
from opbsim.emulator.gemm_backend import RtlGemmStats, rtl_pim_gemm
from opbsim.errors import DoesNotFit, InputError
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.workloads import build_model
from opbsim.workloads.graph import build_layer
from opbsim.workloads.models import FFNAct, ModelConfig, Norm, QKNorm
from opbsim.workloads.ops import Role
from opbsim.workloads.routing import expert_counts
from opbsim.workloads.stage import Stage

__all__ = ["GoldenError", "LayerCheck", "check_layer", "bytes_needed", "MAX_NORM", "MEAN_NORM"]

MAX_NORM = "max|y-g|/max|g|"  # the infinity norm of the error over that of the golden result
MEAN_NORM = "mean|y-g|/mean|g|"  # the 1-norm (per element), robust to results that cross zero


@dataclass(frozen=True, slots=True)
class GoldenError:
    """One result ``y`` against its float64 golden ``g``: ``max_rel`` is ``MAX_NORM``, ``mean_rel``
    is ``MEAN_NORM``. Both are None where the golden layer does not model this layer, and
    ``unchecked`` says what it lacks."""

    max_rel: float | None
    mean_rel: float | None
    unchecked: str = ""

    @classmethod
    def skipped(cls, why: str) -> GoldenError:
        return cls(None, None, why)

    def describe(self, which: str) -> str:
        """``"0.0138"`` or ``"n/a (why)"`` for one of ``"max"`` / ``"mean"``."""
        value = self.max_rel if which == "max" else self.mean_rel
        return f"n/a ({self.unchecked})" if value is None else f"{value:.3g}"


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


class _Weights(Mapping[str, np.ndarray]):
    """Seeded bf16 weights by name, widened to fp32 values on each access. The bf16 bits of each
    tensor are generated once and held until ``take`` hands them over (to the emulated memory),
    so the layer's weights exist once in bf16 at any time."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], seed: int):
        self.shapes, self.seed = shapes, seed
        self._held: dict[str, np.ndarray] = {}

    def raw(self, name: str) -> np.ndarray:
        held = self._held.get(name)
        if held is None:
            held = self._held[name] = self._generate(name)
        return held

    def take(self, name: str) -> np.ndarray:
        """The bits of ``name``, no longer held here."""
        held = self._held.pop(name, None)
        return self._generate(name) if held is None else held

    def release(self) -> None:
        self._held.clear()

    def _generate(self, name: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        r = rng.integers(0, 1 << 16, self.shapes[name], dtype=np.uint16)
        # sign and 7 mantissa bits as drawn; 3 bits pick the exponent: magnitudes 2^-10 .. 2^-2
        if name.endswith("norm.weight"):
            return np.uint16(127 << 7) | (r & np.uint16(0x7F))  # positive gains in [1, 2)
        return (r & np.uint16(0x807F)) | (((r >> np.uint16(7)) & np.uint16(7)) + np.uint16(127 - 10)) << np.uint16(7)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.shapes:
            raise KeyError(name)
        return N.widen(self.raw(name), DType.BF16)

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


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
    graph = _layer_graph(model, stage, layer)
    ops = graph.ops
    shapes = {t.name: t.shape for op in ops for t in op.inputs if t.role is Role.WEIGHT}
    template = f"L{layer}.expert."
    present = sorted({n for n in shapes if n.startswith(template)})
    for name in present:
        suffix = name[len(template):].split(".", 1)[1]
        for e in range(model.num_experts):
            shapes.setdefault(f"{template}{e}.{suffix}", shapes[name])
    return shapes


def bytes_needed(model: ModelConfig, stage: Stage, layer: int) -> int:
    """Memory the check needs: the layer's weights twice over in the worst transient (one bf16
    copy in the emulated memory, the largest tensor widened), KV caches and activations."""
    shape_of = weight_shapes(model, stage, layer)
    weights = {n: 2 * math.prod(s) for n, s in shape_of.items()}  # bf16
    largest = max(weights.values(), default=0)
    reqs = requests(stage)
    kv = 2 * len(reqs) * max(r.context for r in reqs) * model.kv_dim * 2
    acts = 64 * stage.tokens * max(model.hidden_size, model.expert_ffn, model.dense_ffn) * 4
    return sum(weights.values()) + 3 * largest + 3 * kv + acts


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
def check_layer(model: ModelConfig, layer: int, stage: Stage, device: DeviceSpec, policy: str,
                seed: int = 0, rtl_lanes: int | None = None, on_step: Callable[[str], None] | None = None,
                golden_rows: int | None = golden.GOLDEN_ROWS) -> LayerCheck:
    """With ``rtl_lanes``, the program's PIM GEMMs run on the RTL unit of that many lanes.
    ``on_step(done)`` is told after each of the ``CHECK_STEPS`` phases (progress). Every output
    is compared bit for bit; the float64 golden errors cover ``golden_rows`` tokens drawn by
    ``seed`` (``golden.sample_rows``; None: every token), reading the weights back from the emulated
    memory where the program holds them."""
    step = on_step or (lambda done: None)
    if not 0 <= layer < model.num_layers:
        raise InputError(f"layer {layer} is outside 0..{model.num_layers - 1} ({model.name})")
    if model.mla is not None:
        raise InputError(f"{model.name}: MLA attention is not in the numerics reference layer (stage_reference.py), "
                         "so its layers cannot be checked")
    need, have = bytes_needed(model, stage, layer), _available_B()
    if need > have:
        raise DoesNotFit(f"does not fit in this machine's memory: the check needs about {need / 2**30:.1f} GiB, "
                         f"{have / 2**30:.1f} GiB are available")
    L, T, h = f"L{layer}", stage.tokens, model.hidden_size
    t0 = time.perf_counter()
    w = _Weights(weight_shapes(model, stage, layer), seed)
    rng = np.random.default_rng([seed, layer])
    stream = ref.r16(rng.standard_normal((T, h)).astype(np.float32))
    delta = ref.r16(rng.standard_normal((T, h)).astype(np.float32) * np.float32(0.5)) if layer else None
    reqs = requests(stage)
    S, kv = max(r.context for r in reqs), model.num_kv_heads
    k = np.zeros((len(reqs), S, kv, model.head_dim), np.float32)
    v = np.zeros_like(k)
    for slot, r in enumerate(reqs):
        k[slot, :r.past] = ref.r16(rng.standard_normal((r.past, kv, model.head_dim)).astype(np.float32))
        v[slot, :r.past] = ref.r16(rng.standard_normal((r.past, kv, model.head_dim)).astype(np.float32))
    caches = {layer: (k, v)}
    generate_s = time.perf_counter() - t0
    step("inputs")

    t0 = time.perf_counter()
    want = ref.stage(model, stage, w, None, caches, layers=(layer,), stream=stream, delta=delta)
    reference_s = time.perf_counter() - t0
    step("reference")

    t0 = time.perf_counter()
    routing = {layer: want[f"{L}.topk_ids"]} if f"{L}.topk_ids" in want else None
    graph = _layer_graph(model, stage, layer, routing[layer] if routing else None)
    compiled = compile_graph(graph, device, policy, routing=routing)
    compile_s = time.perf_counter() - t0
    step("compiled")

    memory = DataMemory({m.space: m.capacity_B for m in device.memories})
    t0 = time.perf_counter()
    for name in compiled.buffers:
        if name in w.shapes:
            memory.write_raw(compiled.buffers[name].descriptor(), w.take(name))
    w.release()
    generate_s += time.perf_counter() - t0
    _load(memory, compiled, f"L{layer - 1}.h" if layer else "x0", stream)
    if delta is not None:
        _load(memory, compiled, f"L{layer - 1}.ffn_out", delta)
    _load(memory, compiled, f"{L}.k_cache", caches[layer][0])
    _load(memory, compiled, f"{L}.v_cache", caches[layer][1])
    for name, data in compiled.constants.items():
        memory.write_raw(compiled.buffers[name].descriptor(), data)
    t0 = time.perf_counter()
    with rtl_pim_gemm(rtl_lanes) if rtl_lanes else contextlib.nullcontext(RtlGemmStats()) as rtl:
        execute(compiled.program, memory)
    execute_s = time.perf_counter() - t0
    step("executed")

    checked = [n for n in (f"{L}.h", f"{L}.ffn_out", f"{L}.k_cache", f"{L}.v_cache") if n in want]
    mismatches = [n for n in checked if not _same_bits(_read(memory, compiled, n, DType.BF16), want[n])]
    if routing and not np.array_equal(_read(memory, compiled, f"{L}.topk_ids", DType.I32), routing[layer]):
        mismatches.append(f"{L}.topk_ids")
    t0 = time.perf_counter()
    rows = golden.sample_rows(T, golden_rows, seed)
    held = _HeldWeights(w, memory, compiled)
    attention_error, ffn_error = _golden_errors(model, stage, layer, held, stream, delta, caches[layer], want, rows)
    golden_s = time.perf_counter() - t0
    step("golden")
    return LayerCheck(model.name, layer, len(compiled.program.instructions), generate_s, reference_s, compile_s,
                      execute_s, golden_s, tuple(checked), tuple(mismatches), attention_error, ffn_error,
                      rtl.tiles, rtl.cycles, tuple(int(r) for r in rows), seed)


class _HeldWeights(Mapping[str, np.ndarray]):
    """The weights as fp32 values, read back from the emulated memory where the program holds
    them (the bits written there), else generated again."""

    def __init__(self, w: _Weights, memory: DataMemory, compiled):
        self.w, self.memory, self.compiled = w, memory, compiled

    def __getitem__(self, name: str) -> np.ndarray:
        view = self.compiled.buffers.get(name)
        if view is None:
            return self.w[name]
        return N.widen(self.memory.raw(view.descriptor()), DType.BF16).reshape(self.w.shapes[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self.w)

    def __len__(self) -> int:
        return len(self.w)


def _load(memory: DataMemory, compiled, name: str, values: np.ndarray) -> None:
    view = compiled.buffers[name]
    memory.write_raw(view.descriptor(), N.store(values.reshape(view.shape), DType.BF16))


def _read(memory: DataMemory, compiled, name: str, dtype: DType) -> np.ndarray:
    return N.widen(memory.raw(compiled.buffers[name].descriptor()), dtype)


def _same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    got = np.asarray(got, np.float32).reshape(want.shape)
    return np.array_equal(got.view(np.uint32), np.asarray(want, np.float32).view(np.uint32))


class _Stacked:
    """One of w1 / w3 / w2 for golden.moe_layer, [E, out, in] float64, built one expert at a time
    (the three share a one-expert cache: golden asks for w1[e], w3[e], w2[e] in turn)."""

    def __init__(self, count: int, which: int, load, cache: dict):
        self.shape, self._which, self._load, self._cache = (count,), which, load, cache

    def __getitem__(self, e: int) -> np.ndarray:
        if e not in self._cache:
            self._cache.clear()
            self._cache[e] = self._load(e)
        return self._cache[e][self._which]


def _attention_gap(model: ModelConfig, stage: Stage) -> str:
    """What the float64 golden attention (golden.gqa_decode) lacks to check this layer, or ""."""
    if stage.prefill:
        return "a prefill stage: the golden attention is decode only"
    if model.norm is not Norm.RMS:
        return f"{model.norm.value}: the golden layers use RMSNorm only"
    if not model.has_rope:
        return "no RoPE (rope_theta 0): the golden attention rotates queries and keys"
    if model.qkv_bias or model.qk_norm is not QKNorm.NONE:
        return "q/k/v bias or q/k norm: not in the golden attention"
    if model.sliding_window and max(r.context for r in requests(stage)) > model.sliding_window:
        return f"context beyond the {model.sliding_window}-token sliding window: the golden attention sees all"
    return ""


def _ffn_gap(model: ModelConfig, layer: int) -> str:
    """What the float64 golden MoE block (golden.moe_layer on routed SwiGLU experts) lacks to
    check this layer's FFN, or ""."""
    if not model.is_moe_layer(layer):
        return f"layer {layer} is dense: the golden FFN check covers MoE layers only"
    if model.num_shared_experts:
        return "shared experts: the golden MoE check covers routed experts only"
    if model.ffn_act is not FFNAct.SWIGLU:
        return f"{model.ffn_act.value} experts: the golden MoE block is SwiGLU only"
    if model.norm is not Norm.RMS:
        return f"{model.norm.value}: the golden layers use RMSNorm only"
    return ""


def _golden_errors(model, stage, layer, w, stream, delta, cache, want, rows) -> tuple[GoldenError, GoldenError]:
    """The errors of this layer's attention result and FFN result vs float64 over the tokens
    ``rows``, each skipped with its reason where the golden layers do not model it."""
    L = f"L{layer}"
    gap = _attention_gap(model, stage)
    attention_error = GoldenError.skipped(gap) if gap else _attention_error(model, stage, layer, w, stream, cache,
                                                                            want, rows)
    gap = _ffn_gap(model, layer)
    if gap:
        return attention_error, GoldenError.skipped(gap)
    F, hid, E = model.expert_ffn, model.hidden_size, model.num_experts

    def load(e):  # (w1, w3, w2) of expert e in the Hugging Face [out, in] layout
        if f"{L}.expert.{e}.w_gate_up" not in w:
            return np.zeros((F, hid)), np.zeros((F, hid)), np.zeros((hid, F))
        gate_up = w[f"{L}.expert.{e}.w_gate_up"]
        return (gate_up[:, :F].T.astype(np.float64), gate_up[:, F:].T.astype(np.float64),
                w[f"{L}.expert.{e}.w_down"].T.astype(np.float64))

    h = want[f"{L}.h"][rows].astype(np.float64)
    cache_e: dict = {}
    empty = np.zeros((0, F, hid))
    mw = golden.MoEWeights(w[f"{L}.ffn_norm.weight"].astype(np.float64), w[f"{L}.w_router"].astype(np.float64).T,
                           _Stacked(E, 0, load, cache_e), _Stacked(E, 1, load, cache_e),
                           _Stacked(E, 2, load, cache_e), empty, empty, empty)
    moe = golden.moe_layer(h, mw, model.top_k, float(model.norm_eps), renormalize=model.norm_topk_prob,
                           selected=want[f"{L}.topk_ids"][rows])
    ffn = want[f"{L}.ffn_out"][rows].astype(np.float64)
    return attention_error, GoldenError(*golden.relative_error(h + ffn, moe.out))


def _attention_error(model, stage, layer, w, stream, cache, want, rows) -> GoldenError:
    L, H, KV, d = f"L{layer}", model.num_heads, model.num_kv_heads, model.head_dim
    x = want.get(f"{L}.x", stream)[rows].astype(np.float64)
    wqkv = w[f"{L}.w_qkv"].astype(np.float64)
    gw = golden.GQAWeights(w[f"{L}.attn_norm.weight"].astype(np.float64), wqkv[:, :H * d].T,
                           wqkv[:, H * d:(H + KV) * d].T, wqkv[:, (H + KV) * d:].T,
                           w[f"{L}.w_o"].astype(np.float64).T, H, KV, d)
    reqs = requests(stage)
    k_past = [cache[0][i, :reqs[i].past].transpose(1, 0, 2).astype(np.float64) for i in rows]
    v_past = [cache[1][i, :reqs[i].past].transpose(1, 0, 2).astype(np.float64) for i in rows]
    attn = golden.gqa_decode(x, gw, k_past, v_past, float(model.rope_theta), float(model.norm_eps))
    return GoldenError(*golden.relative_error(want[f"{L}.h"][rows], attn))
