"""Weight and KV-cache storage formats: fp8 weights with block scales, fp8 KV cache, their bytes."""

import dataclasses
import re

import pytest

from opbsim.emulator.cluster import Cluster
from opbsim.errors import InputError
from opbsim.hardware.registry import get_device
from opbsim.isa.types import DType
from opbsim.workloads import load_model
from opbsim.workloads.models import ConfigError, WeightQuant
from opbsim.workloads.parallel import Parallelism
from opbsim.workloads.presets import PRESETS
from opbsim.workloads.weight_format import with_formats

V3 = PRESETS["deepseek-v3"]


def _v3_fp8_bytes() -> int:
    """DeepSeek-V3 (config.json of deepseek-ai/DeepSeek-V3): every projection e4m3 with one fp32
    scale per 128 x 128 block, the rest (embeddings, LM head, norms, routers, correction biases) bf16."""
    h, layers, dense, moe = 7168, 61, 3, 58
    blocks = lambda k, n: -(-k // 128) * -(-n // 128)  # noqa: E731
    attention = [(h, 1536), (1536, 128 * 192), (h, 512 + 64), (512, 128 * (128 + 128)), (128 * 128, h)]
    ffn = lambda f: [(h, f), (h, f), (f, h)]  # noqa: E731
    mats = [(layers, k, n) for k, n in attention] + [(dense, k, n) for k, n in ffn(18432)]
    mats += [(moe * 257, k, n) for k, n in ffn(2048)]  # 256 routed + 1 shared expert
    fp8_elems = sum(c * k * n for c, k, n in mats)
    fp8_B = sum(c * (k * n + 4 * blocks(k, n)) for c, k, n in mats)
    return (V3.params_total - fp8_elems) * 2 + fp8_B


def test_deepseek_v3_stores_fp8_weights_by_default_as_its_quantization_config_says():
    assert V3.weight_dtype is DType.FP8_E4M3 and V3.kv_dtype is DType.BF16
    assert V3.weight_bytes == _v3_fp8_bytes() == 673_150_582_112


def test_deepseek_v3_fp8_weights_are_about_half_its_bf16_weights():
    bf16 = dataclasses.replace(V3, weight_dtype=DType.BF16)
    assert bf16.weight_bytes == V3.params_total * 2 == 1_342_052_838_400
    assert 0.50 < V3.weight_bytes / bf16.weight_bytes < 0.503


def test_the_storage_format_leaves_the_parameter_counts_alone():
    assert dataclasses.replace(V3, weight_dtype=DType.BF16).param_counts() == V3.param_counts()


def test_an_fp8_kv_cache_holds_one_byte_per_element():
    fp8 = dataclasses.replace(V3, kv_dtype=DType.FP8_E4M3)
    assert fp8.kv_bytes_per_token == 61 * (512 + 64) == V3.kv_bytes_per_token // 2
    assert fp8.kv_bytes(1000) == 1000 * 61 * 576


def test_fp8_weights_without_a_checkpoint_record_get_deepseek_v3_blocks_over_every_projection():
    m = dataclasses.replace(PRESETS["llama-2-7b"], weight_dtype=DType.FP8_E4M3)
    assert m.weight_quant == WeightQuant(kind="fp8_e4m3", block=(128, 128), scope="linear")
    assert m.weight_bytes < PRESETS["llama-2-7b"].weight_bytes * 0.6


def test_routed_expert_bytes_follow_the_weight_format():
    bf16 = dataclasses.replace(V3, weight_dtype=DType.BF16)
    assert bf16.expert_weight_bytes == bf16.param_counts().experts * 2
    per_expert = 3 * (7168 * 2048 + 4 * 56 * 16)
    assert V3.expert_weight_bytes == 58 * 256 * per_expert
    cluster = Cluster(device=get_device("h100"), policy="xpu-only", parallel=Parallelism(tp=8, ep=8))
    rest = V3.weight_bytes - V3.expert_weight_bytes
    assert cluster.weight_bytes_per_device(V3) == -(-rest // 8) + -(-V3.expert_weight_bytes // 8)


@pytest.mark.parametrize(("changes", "message"), [
    ({"weight_dtype": DType.FP32}, "weight_dtype must be the model's dtype (bf16) or fp8_e4m3, got fp32"),
    ({"kv_dtype": DType.I32}, "kv_dtype must be the model's dtype (bf16) or fp8_e4m3, got i32"),
])
def test_a_storage_format_other_than_the_dtype_or_fp8_is_refused(changes, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        dataclasses.replace(PRESETS["llama-2-7b"], **changes)


def test_fp8_weights_over_an_mxfp4_checkpoint_record_are_refused():
    with pytest.raises(ConfigError, match="^fp8 weights, but the checkpoint stores mxfp4"):
        dataclasses.replace(PRESETS["gpt-oss-20b"], weight_dtype=DType.FP8_E4M3)


def test_the_format_flags_override_the_config():
    assert with_formats(V3, weights="bf16").weight_dtype is DType.BF16
    assert with_formats(V3, kv="fp8").kv_dtype is DType.FP8_E4M3
    oss = with_formats(PRESETS["gpt-oss-20b"], weights="bf16")
    assert oss.weight_quant is None and oss.weight_dtype is DType.BF16
    fp8 = with_formats(PRESETS["gpt-oss-20b"], weights="fp8")
    assert fp8.weight_quant == WeightQuant(kind="fp8_e4m3", block=(128, 128), scope="linear")
    assert load_model("deepseek-v3", dtype="bf16").weight_bytes == V3.params_total * 2


@pytest.mark.parametrize(("kw", "message"), [
    ({"weights": "fp16"}, "--dtype 'fp16': expected one of bf16, fp8"),
    ({"kv": "int8"}, "--kv-dtype 'int8': expected one of bf16, fp8"),
])
def test_an_unknown_format_name_is_one_line(kw, message):
    with pytest.raises(InputError, match=f"^{message}$"):
        with_formats(V3, **kw)


def _ops(model, stage):
    from opbsim.workloads import build_model
    return {op.name: op for op in build_model(model, stage).ops}


def test_the_graph_reads_fp8_projections_with_their_block_scales_and_one_byte_kv():
    from opbsim.workloads.stage import Stage
    m = dataclasses.replace(V3, num_layers=4, kv_dtype=DType.FP8_E4M3)
    ops = _ops(m, Stage.decode(2, 100))
    q_a = ops["L0.q_a_proj"]
    assert [(t.name, t.dtype, t.shape) for t in q_a.inputs[1:]] == [
        ("L0.w_q_a", DType.FP8_E4M3, (7168, 1536)), ("L0.w_q_a.scale", DType.FP32, (56, 12))]
    assert q_a.estimates.read_B == 2 * 7168 * 2 + 7168 * 1536 + 56 * 12 * 4
    assert q_a.estimates.flops == 2 * 2 * 7168 * 1536 + 2 * 2 * 1536 * 56  # + promotion per k block
    store = ops["L0.kv_store"]
    assert store.outputs[0].dtype is DType.FP8_E4M3 and store.estimates.write_B == 2 * 576
    expert = next(op for name, op in ops.items() if name.startswith("L3.expert."))
    assert [t.name.rsplit(".", 1)[-1] for t in expert.inputs[-2:]] == ["scale", "scale"]
    assert ops["L3.router"].inputs[1].dtype is DType.BF16 and ops["lm_head"].inputs[1].dtype is DType.BF16


def test_bf16_weights_leave_the_graph_as_it_was():
    from opbsim.workloads.stage import Stage
    ops = _ops(dataclasses.replace(V3, num_layers=4, weight_dtype=DType.BF16), Stage.decode(2, 100))
    assert all(t.dtype is not DType.FP8_E4M3 and not t.name.endswith(".scale") for op in ops.values()
               for t in op.inputs)


def test_a_deepseek_v3_config_json_with_an_fp8_quantization_config_stores_fp8_weights():
    import json
    from pathlib import Path

    from opbsim.workloads import parse_hf_config
    data = json.loads((Path(__file__).parents[2] / "fixtures" / "deepseek-v3.config.json").read_text())
    assert parse_hf_config(data, file="f", name="x").weight_dtype is DType.FP8_E4M3
    del data["quantization_config"]
    assert parse_hf_config(data, file="f", name="x").weight_dtype is DType.BF16
