"""The results table: a torn, corrupt or non-UTF-8 row is never taken as done."""

from opbsim.report.sweep_store import open_results

COLUMNS = ["config_hash", "status", "error", "model", "tokens_per_s", "row_crc"]


def _row(h: str, tps: float = 1.0) -> dict:
    return {"config_hash": h, "status": "ok", "error": "", "model": "m", "tokens_per_s": tps}


def _write(path, *hashes: str) -> None:
    with open_results(path, COLUMNS) as r:
        for h in hashes:
            r.append(_row(h))


def test_valid_rows_are_done_and_nothing_is_dropped(tmp_path):
    path = tmp_path / "r.csv"
    _write(path, "a" * 16, "b" * 16)
    with open_results(path, COLUMNS) as r:
        assert r.done == {"a" * 16, "b" * 16} and r.dropped == 0


def test_a_final_row_torn_inside_a_quoted_multi_line_field_is_dropped_and_run_again(tmp_path):
    path = tmp_path / "r.csv"
    _write(path, "a" * 16)
    with path.open("a") as f:
        f.write('bbbbbbbbbbbbbbbb,error,"Traceback\nline two')  # killed mid-row
    with open_results(path, COLUMNS) as r:
        assert r.done == {"a" * 16} and r.dropped == 1
    assert path.read_text().count("\n") == 2  # the header and the one good row


def test_garbage_rows_in_the_middle_and_non_utf8_bytes_are_dropped(tmp_path):
    path = tmp_path / "r.csv"
    _write(path, "a" * 16)
    with path.open("ab") as f:
        f.write(b"cccccccccccccccc,ok,,m,3.0,deadbeef\n")  # a row whose checksum does not match
        f.write(b"\xff\xfe garbage\n")
    with open_results(path, COLUMNS) as r:
        assert r.done == {"a" * 16} and r.dropped == 2
        r.append(_row("d" * 16))
    with open_results(path, COLUMNS) as r:  # the file was rewritten without them
        assert r.done == {"a" * 16, "d" * 16} and r.dropped == 0
