"""`opbsim reproduce measured` writes its section; bad input is one line and a non-zero exit."""

import json

from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.report.measured_data import DATA_FILE, parse_measured
from opbsim.report.reproduce_measured import mape, reproduce_measured
from opbsim.report.reproduce_measured_render import BEGIN, END


def _small(tmp_path, ids=("vllm-4002-mixtral-8x22b-tp8-bs8-tuned", "mlenergy-v3-llama-3-70b-tp4-bs64")):
    doc = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    doc["points"] = [p for p in doc["points"] if p["id"] in ids]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path, doc


def test_each_point_is_simulated_and_its_error_is_ours_over_measured_minus_one(tmp_path):
    _, doc = _small(tmp_path)
    results = reproduce_measured(parse_measured(doc))
    assert [r.point.id for r in results] == [p["id"] for p in doc["points"]]
    for r in results:
        ((name, measured, ours, err),) = r.metrics()
        assert err == ours / measured - 1
    value, n = mape(results, "latency_s")
    assert n == 1 and value == abs(results[0].metrics()[0][3]) * 100


def test_the_command_writes_the_measured_serving_section_and_keeps_the_others(tmp_path):
    data, _ = _small(tmp_path)
    page = tmp_path / "validation.md"
    page.write_text("# Validation\n\n<!-- other: begin -->\nkept\n<!-- other: end -->\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["reproduce", "measured", "--data", str(data), "-o", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    assert "kept" in text and BEGIN in text and END in text
    assert "MAPE latency_s" in text and "Worst points" in text


def test_a_bad_data_file_is_one_line_and_exit_status_1(tmp_path):
    data, doc = _small(tmp_path)
    doc["points"][0]["gpu"] = "tpu"
    data.write_text(json.dumps(doc), encoding="utf-8")
    result = CliRunner().invoke(cli, ["reproduce", "measured", "--data", str(data), "-o", str(tmp_path / "v.md")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "gpu" in result.output and "Traceback" not in result.output
