"""Bad input exits 1 with one line, before any work: missing files, folder paths, nothing to run."""

import os
import time

from click.testing import CliRunner

from opbsim.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_a_missing_input_file_is_bad_input_not_a_usage_error():
    result = invoke("asm", "/no/such/file.s")
    assert result.exit_code == 1
    assert result.output == "Error: 'SOURCE': File '/no/such/file.s' does not exist.\n"


def test_an_output_path_that_is_a_directory_is_bad_input(tmp_path):
    source = tmp_path / "p.s"
    source.write_text("halt.ctrl\n")
    result = invoke("asm", str(source), "-o", str(tmp_path))
    assert result.exit_code == 1
    assert result.output == f"Error: '-o' / '--output': File '{tmp_path}' is a directory.\n"


def test_reproduce_refuses_an_output_in_a_missing_folder_before_computing():
    start = time.perf_counter()
    result = invoke("reproduce", "duplex", "-o", "/no/such/dir/v.md")
    assert result.exit_code == 1
    assert result.output == "Error: '-o' / '--output': the folder /no/such/dir does not exist\n"
    assert time.perf_counter() - start < 5  # nothing was run


def test_an_output_file_in_a_missing_folder_is_refused_naming_the_users_path(tmp_path):
    result = invoke("simulate", "mixtral-8x7b", "-d", "duplex", "--batch", "2", "--lin", "8", "--lout", "2",
                    "--trace", "/no/such/t.json")
    assert result.output == "Error: '--trace': the folder /no/such does not exist\n"


def test_a_file_that_cannot_be_written_is_named_as_the_user_gave_it(tmp_path):
    from opbsim.fileio import atomic_write_text

    (tmp_path / "ro").mkdir(mode=0o500)
    try:
        atomic_write_text(tmp_path / "ro" / "x.txt", "data")
    except OSError as e:
        assert e.filename == str(tmp_path / "ro" / "x.txt")
    else:
        assert os.geteuid() == 0  # root writes anywhere


def test_compare_where_no_device_can_run_exits_1_with_the_reason():
    result = invoke("compare", "mixtral-8x7b", "--devices", "sn40l:duplex", "--batch", "2",
                    "--batches", "2", "--lin", "8", "--lout", "2", "--no-progress")
    assert result.exit_code == 1
    assert result.output == ("Error: no device could run this configuration (sn40l: policy duplex needs a xpu unit, "
                             "which device sn40l lacks)\n")


def test_compare_with_an_unknown_policy_exits_1_before_anything_runs():
    start = time.perf_counter()
    result = invoke("compare", "mixtral-8x7b", "--devices", "h100", "-p", "h100=nopolicy", "--no-progress")
    assert result.exit_code == 1
    assert result.output.startswith("Error: --policy h100=nopolicy: unknown policy 'nopolicy' (known: ")
    assert result.output.count("\n") == 1
    assert time.perf_counter() - start < 5  # nothing was run
