"""FP8 weights and KV caches through compiled layers: every projection quantizes its activations per
row (act_quant) and runs the block-scaled GEMM, MLA's absorbed w_kv_b views run weight-only, an fp8
KV cache stores e4m3 codes by its per-tensor scale and is read by gemm_fp8; compiled programs equal
the numerics definition bit for bit on Duplex (xPU and Logic-PIM) and on a GPU, and the definition is
within the e4m3 bound of the float64 golden layers.

The bound: the weights' and the cached rows' fp8 values are exact in the golden, so the error is the
quantization of the activations and of the new cache rows, at most 2^-4 of each element (e4m3's 3
fraction bits), plus the bf16 roundings (2^-9 each); a layer's relative error is bounded by 2^-4
here. The bf16 layer's error (about 2^-9) is measured too: the fp8 error must be several times
larger, or nothing was quantized."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

from opbsim.emulator.layer_check import check_layer, run_layer
from opbsim.emulator.layer_golden import fp8_values
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.isa.types import DType
from opbsim.workloads.models import WeightQuant
from opbsim.workloads.presets import PRESETS
from opbsim.workloads.stage import Stage

from ..compiler.harness import read, run_stage
from ..compiler.test_compiled_values import MIXED
from ..compiler.test_every_preset_lowers import reduced

FP8_BOUND = 2.0 ** -4
DEVICES = [("duplex", "duplex"), ("h100", "xpu-only")]


def small_deepseek_v3():
    """DeepSeek-V3 at small widths, fp8 as its checkpoint (16 x 16 blocks: MLA heads start on a block)."""
    model = reduced(PRESETS["deepseek-v3"])
    assert model.weight_dtype is DType.FP8_E4M3
    return model


def fp8_mixtral(block=(16, 16)):
    return dataclasses.replace(reduced(PRESETS["mixtral-8x7b"]), weight_dtype=DType.FP8_E4M3,
                               weight_quant=WeightQuant(kind="fp8_e4m3", block=block, scope="linear"))


@pytest.mark.parametrize("stage", [Stage.decode(3, 9), MIXED], ids=["decode", "mixed"])
@pytest.mark.parametrize(("device", "policy"), DEVICES)
def test_a_deepseek_v3_shaped_fp8_layer_compiles_to_its_numerics_definition_bit_for_bit(device, policy, stage):
    model = small_deepseek_v3()
    layer = next(i for i in range(model.num_layers) if model.is_moe_layer(i))
    check = check_layer(model, layer, stage, get_device(device), policy)
    assert check.bit_exact and {f"L{layer}.h", f"L{layer}.ffn_out", f"L{layer}.kv_cache"} <= set(check.outputs_checked)


def test_on_duplex_both_units_quantize_activations_and_run_fp8_gemms():
    model = small_deepseek_v3()
    run = run_layer(model, 3, MIXED, get_device("duplex"), "duplex")
    units = collections.Counter((i.spec.mnemonic, i.unit.name) for i in run.compiled.program.instructions)
    for unit in ("XPU", "PIM"):
        assert units[("act_quant", unit)] and units[("gemm_fp8", unit)]


def test_an_fp8_moe_layer_is_within_the_e4m3_bound_of_the_float64_golden_and_above_the_bf16_error():
    model = fp8_mixtral()
    bf16 = dataclasses.replace(model, weight_dtype=DType.BF16, weight_quant=None)
    stage = Stage.decode(8, 20)
    fp8_check = check_layer(model, 1, stage, get_device("duplex"), "duplex", golden_rows=None)
    bf16_check = check_layer(bf16, 1, stage, get_device("duplex"), "duplex", golden_rows=None)
    assert fp8_check.bit_exact
    for fp8_err, bf16_err in ((fp8_check.attention_error, bf16_check.attention_error),
                              (fp8_check.ffn_error, bf16_check.ffn_error)):
        assert fp8_err.max_rel <= FP8_BOUND
        assert fp8_err.mean_rel > 4 * bf16_err.mean_rel


@pytest.mark.parametrize("kv_dtype", [DType.BF16, DType.FP8_E4M3])
def test_mla_decode_and_prefill_with_fp8_weights_are_within_the_e4m3_bound_of_float64_attention(kv_dtype):
    from opbsim.emulator.golden_mla import mla_attention
    from opbsim.layers.stage_rows import requests

    model = dataclasses.replace(small_deepseek_v3(), num_layers=2, first_dense_layers=1, kv_dtype=kv_dtype)
    ref, memory, compiled = run_stage(model, MIXED, device="h100", policy="xpu-only")
    a, L, block = model.mla, "L1", model.weight_quant.block

    def weight(name: str) -> np.ndarray:
        view = compiled.buffers[f"{L}.{name}"]
        raw = memory.raw(view.descriptor()).reshape(view.shape)
        if view.dtype is DType.BF16:
            return read(memory, compiled, f"{L}.{name}").astype(np.float64).reshape(view.shape)
        scale_view = compiled.buffers[f"{L}.{name}.scale"]
        scales = read(memory, compiled, scale_view.buffer, DType.FP32).reshape(scale_view.shape)
        return fp8_values(raw, scales, block)

    w = {n: weight(n) for n in ("w_q_a", "w_q_a_norm", "w_q_b", "w_kv_a", "w_kv_a_norm", "w_kv_b")}
    reqs = requests(MIXED)
    cache = ref[f"{L}.kv_cache"].reshape(len(reqs), -1, a.cache_dim).astype(np.float64)
    if kv_dtype is DType.FP8_E4M3:  # the codes' values times the cache's scale
        cache = cache * float(read(memory, compiled, f"{L}.kv_cache.scale", DType.FP32)[0])
    past = [cache[i, :r.past] for i, r in enumerate(reqs)]
    want = mla_attention(ref[f"{L}.x_norm"].astype(np.float64), w, a, model.num_heads, reqs, past,
                         model.rope_theta, model.norm_eps, model.rope_scaling)
    got = ref[f"{L}.attn"].astype(np.float64).reshape(want.shape)
    assert np.abs(want).max() > 0.01
    assert np.abs(got - want).max() <= MLA_FP8_BOUND[kv_dtype] * np.abs(want).max()


MLA_FP8_BOUND = {DType.BF16: FP8_BOUND, DType.FP8_E4M3: 2.0 ** -3}
"""With an fp8 cache every cached latent (the new rows too) is off by up to 2^-4 of itself, and the
softmax turns a score's error d into a factor e^d on its probability: at this test's scores (DeepSeek's
yarn-scaled softmax, 1.87 times 1/sqrt(dn + dr)) the output error measured 7.8e-2 of the largest
output (5.4e-2 with fp8 weights and a bf16 cache, the quantized activations of the projections
amplified the same way), bounded by 2^-3 and 2^-4."""


def test_mla_with_an_fp8_w_kv_b_whose_heads_straddle_weight_blocks_is_refused_in_one_line():
    model = dataclasses.replace(small_deepseek_v3(), weight_quant=WeightQuant(kind="fp8_e4m3", block=(32, 32),
                                                                              scope="linear"))
    with pytest.raises(InputError) as refusal:
        check_layer(model, 3, Stage.decode(2, 5), get_device("h100"), "xpu-only")
    assert "multiples of the weight block's 32 columns" in str(refusal.value) and "\n" not in str(refusal.value)


KV_FAMILIES = ["mixtral-8x7b", "deepseek-v3", "deepseek-v2-lite", "gpt-oss-20b", "llama4-scout", "qwen3-30b-a3b"]


def fp8_kv(name: str):
    """``name`` at small widths with an fp8 KV cache (gpt-oss's mxfp4 experts as bf16, as --dtype bf16 runs them)."""
    model = dataclasses.replace(reduced(PRESETS[name]), kv_dtype=DType.FP8_E4M3)
    if model.weight_quant is not None and model.weight_quant.kind == "mxfp4":
        model = dataclasses.replace(model, weight_quant=None, weight_dtype=DType.BF16)
    return model


@pytest.mark.parametrize("stage", [Stage.decode(3, 9), MIXED], ids=["decode", "mixed"])
@pytest.mark.parametrize(("device", "policy"), DEVICES)
@pytest.mark.parametrize("name", KV_FAMILIES)
def test_an_fp8_kv_cache_compiles_to_its_numerics_definition_bit_for_bit(name, device, policy, stage):
    """GQA (full, sliding with sinks, chunked and NoPE layers, q/k norm) and MLA caches."""
    model = fp8_kv(name)
    layer = next((i for i in range(model.num_layers) if model.is_moe_layer(i)), 0)
    check = check_layer(model, layer, stage, get_device(device), policy)
    caches = {f"L{layer}.kv_cache"} if model.mla is not None else {f"L{layer}.k_cache", f"L{layer}.v_cache"}
    assert check.bit_exact and caches <= set(check.outputs_checked)


def test_an_fp8_kv_cache_holds_e4m3_codes_of_the_new_rows_by_its_scale():
    from opbsim.isa import numerics as N

    model = fp8_kv("mixtral-8x7b")
    run = run_layer(model, 1, Stage.decode(3, 9), get_device("h100"), "xpu-only")
    k = run.got("L1.k_cache")
    assert k.dtype == np.uint8
    scale = N.widen(run.weights.bits("L1.k_cache.scale"), DType.FP32)
    qkv = N.widen(run.want.raw("L1.qkv"), DType.BF16).reshape(3, -1)
    H, KV, d = model.num_heads, model.num_kv_heads, model.head_dim
    new_keys = qkv[:, H * d:(H + KV) * d]
    np.testing.assert_array_equal(k[:, 8].reshape(3, -1), N.quant(new_keys, np.repeat(scale[None], 3, 0), KV * d))


def test_gqa_decode_over_an_fp8_kv_cache_is_within_the_e4m3_bound_of_the_float64_golden():
    model = fp8_kv("mixtral-8x7b")
    stage = Stage.decode(8, 20)
    check = check_layer(model, 1, stage, get_device("duplex"), "duplex", golden_rows=None)
    bf16 = check_layer(dataclasses.replace(model, kv_dtype=DType.BF16), 1, stage, get_device("duplex"), "duplex",
                       golden_rows=None)
    assert check.bit_exact and check.attention_error.max_rel <= FP8_BOUND
    # the past rows' fp8 values are exact in the golden: only each request's one new row is quantized
    assert check.attention_error.mean_rel > bf16.attention_error.mean_rel


@pytest.mark.parametrize(("name", "parallel", "what"), [
    ("qwen3-30b-a3b", dict(tp=4, etp=4), "an expert's FFN width holds 192 of its 768"),
    ("deepseek-v3", dict(tp=32, etp=32), "the dense FFN width holds 576 of its 18432")])
def test_a_tensor_parallel_shard_that_cuts_fp8_scale_blocks_is_refused_in_one_line(name, parallel, what):
    """Qwen3-30B-A3B-FP8 at tp 4 is the layout vLLM refuses (issue 17569: 192 not divisible by block_n 128)."""
    from opbsim.emulator.cluster import Cluster
    from opbsim.workloads.parallel import Parallelism
    from opbsim.workloads.weight_format import with_formats

    model = with_formats(PRESETS[name], weights="fp8")
    with pytest.raises(InputError) as refusal:
        Cluster(device=get_device("h100"), policy="xpu-only", parallel=Parallelism(**parallel)).check(model)
    assert what in str(refusal.value) and "\n" not in str(refusal.value)
    whole = dict(tp=parallel["tp"], ep=parallel["tp"], etp=1) if name.startswith("qwen3") else dict(tp=8, etp=8)
    Cluster(device=get_device("h100"), policy="xpu-only", parallel=Parallelism(**whole)).check(model)
