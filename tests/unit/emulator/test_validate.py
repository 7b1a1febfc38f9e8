"""`opbsim validate`: the compiled layers run bit-exact against the numerics definition, with
bf16-level error against float64; the command's exit status and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.emulator import validation
from opbsim.emulator.validation import LAYERS


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_program_is_bit_exact_and_within_bf16_error_of_float64(layer):
    report = LAYERS[layer](1)
    assert report.bit_exact, [o for o in report.outputs if not o.bit_exact]
    for o in report.outputs:
        if o.max_rel is not None:
            assert o.max_rel < 2.0**-6 and o.mean_rel < 2.0**-7, o


def test_validate_prints_a_table_and_exits_0_when_everything_is_bit_exact():
    result = CliRunner().invoke(cli, ["validate", "--layer", "gqa-decode", "--ctx", "5,1,17"])
    assert result.exit_code == 0, result.output
    assert "kc2[17]" in result.output
    assert result.output.rstrip().endswith("errors are against the float64 golden layers")


def test_validate_json_has_one_entry_per_layer():
    result = CliRunner().invoke(cli, ["validate", "--json", "--tokens", "5", "--hidden", "64", "--ffn", "96"])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.output)
    assert [r["layer"] for r in reports] == ["moe", "moe-shared", "gqa-decode", "gqa-prefill"]
    assert all(r["bit_exact"] for r in reports)


def test_validate_exits_1_on_a_bit_mismatch(monkeypatch):
    real = validation.expected

    def off_by_one_bit(run, name):
        out = real(run, name).copy()
        if name == "L0.ffn_out":
            out.flat[3] ^= np.uint16(1)
        return out

    monkeypatch.setattr(validation, "expected", off_by_one_bit)
    result = CliRunner().invoke(cli, ["validate", "--layer", "moe"])
    assert result.exit_code == 1
    assert "NO (4095/4096)" in result.output
    assert "bit mismatch against numerics.py in moe:y" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--heads", "3"], "Error: GQA heads=3 is not a multiple of kv_heads=2"),
    (["--layer", "moe", "--top-k", "9"], "Error: MoE top_k=9 exceeds experts=8"),
    (["--ctx", "4,x"], "Error: --ctx must be comma-separated integers, got '4,x'"),
    (["--layer", "moe", "--hidden", "100000"],
     "Error: moe at these sizes needs 2,388 MiB, over --max-mib 64"),
    (["--ctx", "300000", "--max-mib", "100"], "Error: gqa-decode at these sizes needs 154 MiB, over --max-mib 100"),
])
def test_bad_input_is_one_line_and_exit_status_1(args, message):
    result = CliRunner().invoke(cli, ["validate", *args])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [message]
