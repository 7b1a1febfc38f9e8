"""The measured serving data file: its schema, and one-line errors for bad rows."""

import copy
import json

import pytest

from opbsim.errors import InputError
from opbsim.report.measured_data import DATA_FILE, GPU_DEVICES, METRICS, load_measured, parse_measured


def _doc():
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


def test_the_repository_data_file_holds_at_least_30_points_of_4_models_2_of_them_moe_with_mixtral_8x7b():
    data = load_measured()
    assert len(data.points) >= 30
    models = {p.model for p in data.points}
    assert len(models) >= 4
    assert "mixtral-8x7b" in models
    assert {"mixtral-8x7b", "mixtral-8x22b"} <= models  # two MoE models among them


def test_the_data_spans_30_distinct_configurations_and_holds_ttft_points():
    data = load_measured()
    configs = {(p.gpu, p.tp, p.model, p.input_tokens, p.output_tokens, p.concurrency, p.source) for p in data.points
               if p.moe_kernel_config != "default"}  # a default-kernel row repeats its tuned row's configuration
    assert len(configs) >= 30
    assert any(name == "ttft_ms" for p in data.points for name, _ in p.measured)


def test_the_data_spans_three_gpu_kinds_and_holds_tpot_points_of_mixtral_8x7b_on_h200():
    data = load_measured()
    assert {p.gpu for p in data.points} >= {"a100-80gb", "h100-sxm", "h200"}
    tpot = {p.source: dict(p.measured)["tpot_ms"] for p in data.points
            if p.gpu == "h200" and p.model == "mixtral-8x7b"}
    assert tpot == {"vllm-41306-v0.19": 2.66, "vllm-41306-v0.20": 3.22}  # vLLM issue #41306, concurrency 1


def test_every_source_names_a_serving_engine_preset():
    from opbsim.emulator.serving_engines import SERVING_ENGINES

    data = load_measured()
    assert all(s.serving_engine in SERVING_ENGINES for s in data.sources.values())
    assert data.sources["vllm-3692"].serving_engine == "vllm-pre-0.6"  # vLLM of March 2024, before multi-step


def test_every_point_names_a_known_source_gpu_preset_and_metric():
    data = load_measured()
    for p in data.points:
        assert p.source in data.sources
        assert p.device in GPU_DEVICES.values()
        assert p.measured and all(name in METRICS and value > 0 for name, value in p.measured)
        assert data.sources[p.source].url and data.sources[p.source].engine_version


def test_every_gpu_of_the_data_is_a_registered_device():
    from opbsim.hardware.registry import get_device

    for device in GPU_DEVICES.values():
        assert get_device(device).name == device


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["points"][0].update(gpu="tpu-v5"),
     r'^point [^:]+: gpu: "tpu-v5" is not one of a100-80gb, h100-sxm, h100-pcie, h200, l40s$'),
    (lambda d: d["points"][0]["measured"].update(latency_s=-1),
     r"^point [^:]+: measured.latency_s: must be a finite positive number, got -1$"),
    (lambda d: d["points"][0]["measured"].update(speed=3),
     r"^point [^:]+: measured.speed: unknown metric \(known: latency_s, output_tokens_per_s, "
     r"output_tokens_per_s_per_gpu, ttft_ms, tpot_ms\)$"),
    (lambda d: d["points"][0].update(tp=3),
     r"^point [^:]+: tp: 3 does not divide gpus \(2\)$"),
    (lambda d: d["points"][0].update(source="nowhere"),
     r'^point [^:]+: source: "nowhere" is not a key of sources$'),
    (lambda d: d["points"][0].update(colour="red"),
     r"^points\[0\]: colour: unknown key \(known: .*\)$"),
    (lambda d: d["points"][0].pop("model"), r"^points\[0\]: model: missing$"),
    (lambda d: d["points"].append(copy.deepcopy(d["points"][0])), r"^point [^:]+: id: appears twice$"),
])
def test_a_bad_row_is_one_line_naming_the_point_and_the_key(edit, message):
    doc = _doc()
    edit(doc)
    with pytest.raises(InputError, match=message) as e:
        parse_measured(doc)
    assert "\n" not in str(e.value)


def test_a_file_that_is_not_json_is_one_line(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match=r"^.*m\.json: not JSON \(line 1: .*\)$"):
        load_measured(bad)
