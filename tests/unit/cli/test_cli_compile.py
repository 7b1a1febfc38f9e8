"""`opbsim compile`: assembly out, explanations, pass dumps, and one-line errors."""

from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.compiler import PASS_NAMES
from opbsim.isa import assemble, decode

ARGS = ["mixtral-8x7b", "-d", "duplex", "--batch", "8", "--ctx", "256", "--layer", "1", "--tp", "4"]


def test_compile_writes_assembly_that_reassembles_and_a_binary_that_decodes(tmp_path):
    runner = CliRunner()
    text = runner.invoke(cli, ["compile", *ARGS, "-o", str(tmp_path / "l1.s")])
    assert text.exit_code == 0, text.output
    program = assemble((tmp_path / "l1.s").read_text())
    binary = runner.invoke(cli, ["compile", *ARGS, "-o", str(tmp_path / "l1.bin")])
    assert binary.exit_code == 0
    assert decode((tmp_path / "l1.bin").read_bytes()) == program
    assert {i.note for i in program.instructions} >= {"L1.qkv_proj", "L1.attn_decode", "L1.combine"}


def test_explain_names_each_op_its_op_per_byte_and_the_unit_chosen():
    out = CliRunner().invoke(cli, ["compile", *ARGS, "--explain"]).output
    line = next(ln for ln in out.splitlines() if ln.startswith("L1.attn_decode"))
    op_per_B, unit = line.split()[1:3]
    assert unit == "pim"
    assert abs(float(op_per_B) - 4) < 0.1  # decode attention's Op/B is the group size, 32 / 8


def test_every_pass_can_be_dumped_and_an_unknown_pass_is_a_usage_error():
    runner = CliRunner()
    for name in PASS_NAMES:
        result = runner.invoke(cli, ["compile", *ARGS, "--dump-after", name])
        assert result.exit_code == 0 and result.output, name
    bad = runner.invoke(cli, ["compile", *ARGS, "--dump-after", "optimise"])
    assert bad.exit_code == 2
    assert "'optimise' is not a pass (analyze, place, tile, fuse, schedule, emit)" in bad.output


def test_a_model_that_does_not_fit_the_given_layout_is_one_line_and_exit_1(tmp_path):
    out = tmp_path / "x.s"
    result = CliRunner().invoke(cli, ["compile", "mixtral-8x7b", "-d", "h100", "--tp", "1", "-o", str(out)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: does not fit: ") and result.output.count("\n") == 1
    assert not out.exists()


def test_without_a_layout_compile_takes_the_fewest_devices_that_hold_the_model_and_says_so():
    result = CliRunner().invoke(cli, ["compile", "mixtral-8x7b", "-d", "duplex", "--layer", "1"])
    assert result.exit_code == 0, result.output
    assert "mixtral-8x7b on duplex (duplex, tp=2,dp=1,ep=1,etp=2,pp=1): " in result.stdout
    assert result.stderr == ("layout: tp=2, the fewest duplex devices that hold mixtral-8x7b's weights and the KV "
                             "cache of 32 requests of 1024 tokens (give --tp to choose)\n")


def test_compile_defaults_to_the_devices_own_policy():
    result = CliRunner().invoke(cli, ["compile", "mixtral-8x7b", "-d", "h100", "--layer", "1"])
    assert result.exit_code == 0, result.output
    assert " on h100 (xpu-only, tp=2," in result.stdout


def test_an_unknown_policy_or_model_is_one_line_and_exit_1():
    runner = CliRunner()
    policy = runner.invoke(cli, ["compile", *ARGS[:3], "-p", "magic"])
    assert policy.exit_code == 1 and policy.output.startswith("Error: unknown policy 'magic' (known: ")
    model = runner.invoke(cli, ["compile", "gpt-9", "-d", "duplex"])
    assert model.exit_code == 1 and "unknown model 'gpt-9'" in model.output


def test_with_experts_exchanged_compile_emits_one_part_of_a_devices_stage():
    base = ["compile", "mixtral-8x7b", "-d", "duplex", "--batch", "8", "--ctx", "256", "--tp", "4", "--ep", "4"]
    experts = CliRunner().invoke(cli, [*base, "--layer", "1", "--part", "experts", "--explain"])
    assert experts.exit_code == 0, experts.output
    names = {ln.split()[0] for ln in experts.output.splitlines() if ln.startswith("L1.")}
    assert names == {"L1.expert.0", "L1.expert.1"}  # 8 experts over ep = 4: two per device
    missing = CliRunner().invoke(cli, base)
    assert missing.exit_code == 1
    assert missing.output == ("Error: --layer is needed: under tp=4,dp=1,ep=4,etp=1,pp=1 a device runs one program "
                              "per part (--part layer, experts or head)\n")


def test_compiling_one_layer_of_a_very_deep_model_costs_that_layer_only(tmp_path):
    import json
    import time

    from tests.unit.workloads.test_hf_families import MIXTRAL_8X22B

    path = tmp_path / "config.json"
    path.write_text(json.dumps(MIXTRAL_8X22B | {"num_hidden_layers": 10_000}))
    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["compile", str(path), "-d", "h100", "-p", "xpu-only", "--layer", "0",
                                      "--batch", "2", "--ctx", "8"])
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - start < 20  # a whole 10,000-layer graph would take minutes
