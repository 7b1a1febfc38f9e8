"""The asm / disasm / isa commands: outputs, exit codes, no partial files."""

import json

import pytest
from click.testing import CliRunner

from opbsim import __version__
from opbsim.cli import cli

SOURCE = """\
.desc x hbm 0x0 bf16 [4, 8]
.desc w hbm 0x40 bf16 [8, 8]
.desc y sram 0 fp32 [4, 8]
    gemm.xpu y, x, w
    halt
"""


@pytest.fixture
def runner():
    return CliRunner()


def test_asm_writes_a_binary_that_disasm_prints_back_as_reassemblable_text(runner, tmp_path):
    src = tmp_path / "k.s"
    src.write_text(SOURCE)
    result = runner.invoke(cli, ["asm", str(src), "-o", str(tmp_path / "k.bin")])
    assert result.exit_code == 0, result.output
    listing = runner.invoke(cli, ["disasm", str(tmp_path / "k.bin")])
    assert listing.exit_code == 0
    (tmp_path / "again.s").write_text(listing.output)
    assert runner.invoke(cli, ["asm", str(tmp_path / "again.s")]).exit_code == 0
    assert (tmp_path / "again.bin").read_bytes() == (tmp_path / "k.bin").read_bytes()


def test_an_assembly_error_is_one_line_with_exit_status_1_and_no_output_file(runner, tmp_path):
    src = tmp_path / "bad.s"
    src.write_text(SOURCE.replace("gemm.xpu", "gemm.dma"))
    out = tmp_path / "bad.bin"
    result = runner.invoke(cli, ["asm", str(src), "-o", str(out)])
    assert result.exit_code == 1
    assert result.output == f"Error: {src}:4:10: expected gemm.xpu|gemm.pim|gemm.pcu, found 'gemm.dma'\n"
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary file left behind


def test_a_failed_asm_leaves_an_existing_output_file_untouched(runner, tmp_path):
    src = tmp_path / "bad.s"
    src.write_text("nonsense\n")
    out = tmp_path / "old.bin"
    out.write_bytes(b"previous")
    assert runner.invoke(cli, ["asm", str(src), "-o", str(out)]).exit_code == 1
    assert out.read_bytes() == b"previous"


def test_disasm_of_a_corrupt_binary_names_the_byte_offset_and_exits_1(runner, tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"OPBS\x01\x00\x00\x00" + b"\xff" * 30)
    result = runner.invoke(cli, ["disasm", str(tmp_path / "junk.bin")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: byte offset ")
    assert result.output.count("\n") == 1


def test_non_utf8_source_is_an_input_error_not_a_traceback(runner, tmp_path):
    (tmp_path / "b.s").write_bytes(b"halt \xff\n")
    result = runner.invoke(cli, ["asm", str(tmp_path / "b.s")])
    assert result.exit_code == 1
    assert "not UTF-8 text" in result.output


def test_usage_errors_exit_2_and_a_missing_file_is_bad_input(runner, tmp_path):
    assert runner.invoke(cli, ["asm", str(tmp_path / "missing.s")]).exit_code == 1
    assert runner.invoke(cli, ["isa", "--format", "pdf"]).exit_code == 2
    assert runner.invoke(cli, ["no-such-command"]).exit_code == 2


def test_every_command_has_help_and_the_tool_has_a_version(runner):
    assert runner.invoke(cli, ["--version"]).output == f"opbsim, version {__version__}\n"
    for name in cli.commands:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert result.output.startswith(f"Usage: cli {name} "), name


def test_isa_prints_the_table_and_json_lists_every_opcode(runner):
    from opbsim.isa import TABLE

    text = runner.invoke(cli, ["isa"]).output
    assert all(s.mnemonic in text for s in TABLE)
    table = json.loads(runner.invoke(cli, ["isa", "--format", "json"]).output)
    assert [row["opcode"] for row in table] == [s.opcode for s in TABLE]


def test_isa_example_writes_its_folder_and_confirms_the_round_trip(runner, tmp_path):
    result = runner.invoke(cli, ["isa", "--example", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "identical" in result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["round_trip_ok"] is True
    assert summary["instructions"] == 14
