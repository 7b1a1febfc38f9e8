"""Running sweeps: every configuration exactly once in the table, failures recorded, resume after a
kill, the local pool and a Dask cluster giving the same rows."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.emulator.energy import COMPONENTS
from opbsim.errors import InputError
from opbsim.report.sweep_run import run_config, run_sweep
from opbsim.report.sweep_spec import config_hash, load_sweep
from opbsim.report.sweep_store import METRICS, columns_of


def rows_of(path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def by_hash(path) -> dict[str, dict]:
    rows = rows_of(path)
    assert len({r["config_hash"] for r in rows}) == len(rows), "a configuration appears twice"
    return {r["config_hash"]: r for r in rows}


def test_every_configuration_gets_one_row_and_a_failing_one_is_recorded(sweep_file, tmp_path):
    configs = load_sweep(sweep_file)
    out = tmp_path / "r.csv"
    summary = run_sweep(configs, out, workers=1)
    assert (summary.total, summary.ran, summary.failed) == (16, 16, 4)
    rows = by_hash(out)
    assert set(rows) == {config_hash(c) for c in configs}
    failed = [r for r in rows.values() if r["status"] == "error"]
    assert {r["device"] for r in failed} == {"sn40l"}
    assert all(r["error"] == "policy duplex needs a xpu unit, which device sn40l lacks" for r in failed)
    assert all(r["tokens_per_s"] == "" for r in failed)
    assert all(float(r["tokens_per_s"]) > 0 for r in rows.values() if r["status"] == "ok")
    assert list(rows_of(out)[0]) == columns_of(configs)


def test_a_row_holds_the_metrics_of_opbsim_simulate(sweep_file):
    cfg = next(c for c in load_sweep(sweep_file) if c["device"] == "h100")
    row = run_config(cfg)
    args = [cfg["model"], "-d", "h100", "-p", cfg["policy"], "--batch", str(cfg["batch"]), "--lin", str(cfg["lin"]),
            "--lout", str(cfg["lout"]), "--requests", str(cfg["requests"]), "--json"]
    sim = json.loads(CliRunner().invoke(cli, ["simulate", *args]).output)
    sim.update({f"energy_{c}_mJ_per_token": mJ for c, mJ in sim["energy_breakdown_mJ_per_token"].items()})
    assert {m: row[m] for m in METRICS} == {m: sim[m] for m in METRICS}


def test_a_row_breaks_its_energy_per_token_into_components_that_sum_to_it(sweep_file):
    cfg = next(c for c in load_sweep(sweep_file) if c["device"] == "duplex")
    row = run_config(cfg)
    parts = {m: row[m] for m in METRICS if m.startswith("energy_") and m != "energy_per_token_mJ"}
    assert set(parts) == {f"energy_{c}_mJ_per_token" for c in COMPONENTS}
    assert parts["energy_static_mJ_per_token"] > 0 and parts["energy_dram_activation_mJ_per_token"] > 0
    assert sum(parts.values()) == pytest.approx(row["energy_per_token_mJ"], rel=1e-9)


def test_a_sweep_interrupted_mid_way_resumes_with_nothing_lost_or_duplicated(sweep_file, tmp_path):
    configs = load_sweep(sweep_file)
    out = tmp_path / "r.csv"

    def stop_after_five(row, seen=[]):  # noqa: B006  the counter of this one run
        seen.append(row)
        if len(seen) == 5:
            raise KeyboardInterrupt  # a kill between two configurations

    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, out, workers=1, on_row=stop_after_five)
    assert len(rows_of(out)) == 5
    with out.open("a") as f:
        f.write("deadbeefdeadbeef,ok,,cut-off-mid-wr")  # and a kill in the middle of writing a row
    summary = run_sweep(configs, out, workers=1)
    assert (summary.skipped, summary.ran) == (5, 11)
    assert set(by_hash(out)) == {config_hash(c) for c in configs}
    assert run_sweep(configs, out, workers=1).ran == 0  # finished: nothing left to run


@pytest.mark.slow
def test_a_sweep_killed_by_sigkill_and_restarted_has_every_configuration_exactly_once(tiny_model, tmp_path):
    sweep = tmp_path / "long.json"  # 24 configurations of a few hundred stages each: seconds in all
    sweep.write_text(json.dumps({"model": tiny_model, "device": ["h100", "duplex"], "batch": [2, 3, 4, 5, 6, 8],
                                 "lin": 16, "lout": [200, 300]}))
    out = tmp_path / "r.csv"
    cmd = [sys.executable, "-c", "from opbsim.cli import main; main()", "sweep", str(sweep), "-o", str(out),
           "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 4:  # the header and 3 rows
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    assert proc.wait() == -signal.SIGKILL, "the sweep finished before it could be killed"
    first = len(rows_of(out))
    assert 3 <= first < 24
    done = CliRunner().invoke(cli, ["sweep", str(sweep), "-o", str(out), "--no-progress"])
    assert done.exit_code == 0, done.output
    assert f"24 configurations; {first} already there, {24 - first} run" in done.output
    assert set(by_hash(out)) == {config_hash(c) for c in load_sweep(sweep)}


def test_the_local_pool_gives_the_rows_of_a_single_process(sweep_file, tmp_path):
    configs = load_sweep(sweep_file)
    run_sweep(configs, tmp_path / "one.csv", workers=1)
    run_sweep(configs, tmp_path / "pool.csv", workers=2)
    assert by_hash(tmp_path / "one.csv") == by_hash(tmp_path / "pool.csv")


@pytest.mark.slow
def test_a_dask_cluster_gives_the_rows_of_the_local_pool(sweep_file, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    configs = load_sweep(sweep_file)
    run_sweep(configs, tmp_path / "local.csv", workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        out = CliRunner().invoke(cli, ["sweep", str(sweep_file), "-o", str(tmp_path / "dask.csv"), "--scheduler",
                                       lc.scheduler_address, "--no-progress"])
    assert out.exit_code == 0, out.output
    assert by_hash(tmp_path / "dask.csv") == by_hash(tmp_path / "local.csv")


def test_without_dask_the_scheduler_option_is_one_clear_error(sweep_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    out = CliRunner().invoke(cli, ["sweep", str(sweep_file), "-o", str(tmp_path / "r.csv"), "--scheduler",
                                   "tcp://127.0.0.1:8786", "--no-progress"])
    assert out.exit_code == 1
    assert out.output.strip() == "Error: --scheduler needs Dask distributed: pip install 'opbsim[cluster]'"


def test_workers_and_scheduler_together_are_refused(sweep_file, tmp_path):
    out = CliRunner().invoke(cli, ["sweep", str(sweep_file), "-o", str(tmp_path / "r.csv"), "--workers", "2",
                                   "--scheduler", "tcp://127.0.0.1:8786"])
    assert out.exit_code == 1 and "--workers sets the local pool" in out.output


def test_a_results_file_of_another_sweep_is_refused(sweep_file, tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("config_hash,status,something_else\n")
    with pytest.raises(InputError, match="its columns differ from this sweep's"):
        run_sweep(load_sweep(sweep_file), out, workers=1)


def test_parquet_without_pyarrow_suggests_csv(sweep_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(InputError, match=r"writing parquet needs pyarrow .*-o results.csv"):
        run_sweep(load_sweep(sweep_file), tmp_path / "r.parquet", workers=1)
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.json"]  # no results file, not even a journal


def test_parquet_results_hold_every_configuration_once(sweep_file, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    configs = load_sweep(sweep_file)
    out = tmp_path / "r.parquet"

    def stop(row, seen=[]):  # noqa: B006
        seen.append(row)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, out, workers=1, on_row=stop)
    assert not out.exists() and (tmp_path / "r.parquet.partial.csv").exists()
    run_sweep(configs, out, workers=1)
    table = pq.read_table(out)
    assert sorted(table.column("config_hash").to_pylist()) == sorted(config_hash(c) for c in configs)
    assert table.column_names == columns_of(configs)
    assert not (tmp_path / "r.parquet.partial.csv").exists()


def test_an_unknown_output_suffix_is_refused(sweep_file, tmp_path):
    with pytest.raises(InputError, match="must end in .csv or .parquet"):
        run_sweep(load_sweep(sweep_file), tmp_path / "r.xlsx", workers=1)
