"""The results table of a sweep: one row per configuration, appended the moment it finishes.

CSV (``results.csv``): rows are appended to the file itself. Each row is written with one
``write`` call, flushed and fsync'ed before the next configuration's result is taken, so a
killed sweep loses at most the row being written. Every row ends with ``row_crc``, the CRC-32 of
its other cells, so a row cut by a kill (even inside a quoted multi-line field), garbage between
rows and bytes that are not UTF-8 are detected: on open such rows are dropped from the file
(rewritten atomically, ``dropped`` counts them) and their configurations run again; the valid
rows' ``config_hash`` values are the configurations the sweep does not run again. A file whose header differs from the
columns this sweep writes is refused (it belongs to another sweep).

Parquet (``results.parquet``, needs pyarrow): a parquet file cannot be appended to, so rows go to
a journal beside it (``results.parquet.partial.csv``, the CSV rules above); when the sweep ends,
the journal and any rows of an existing parquet file are written as one parquet file
(atomically) and the journal is removed.
"""

from __future__ import annotations

import csv
import io
import math
import os
import zlib
from pathlib import Path

from opbsim.emulator.energy import COMPONENTS
from opbsim.errors import InputError
from opbsim.fileio import atomic_write_text
from opbsim.report.sweep_spec import CONFIG_KEYS

__all__ = ["METRICS", "columns_of", "ResultsFile", "open_results"]

METRICS = ("max_batch", "batch_capped", "tokens_per_s", "tbt_p50_ms", "tbt_p90_ms", "tbt_p99_ms", "ttft_p50_ms",
           "ttft_p90_ms", "ttft_p99_ms", "e2e_mean_s", "e2e_p99_s", "energy_per_token_mJ", "duration_s", "stages",
           "decode_only_stage_share", *(f"energy_{c}_mJ_per_token" for c in COMPONENTS))
"""The serving metrics of each row, named as in ``opbsim simulate --json``; ``energy_<component>_mJ_per_token``
is that component of its ``energy_breakdown_mJ_per_token`` (the components sum to ``energy_per_token_mJ``)."""

_INT = {"devices_per_node", "nodes", "batch", "lin", "lout", "requests", "prefill_chunk", "buckets", "seed",
        "max_batch", "stages"}
_STR = {"config_hash", "status", "error", "model", "device", "policy", "parallel", "routing", "batch_capped",
        "row_crc"}


def columns_of(configs: list[dict]) -> list[str]:
    """The header: hash, status, error, the configuration keys, every ``hw.*`` parameter the
    sweep uses (sorted), then the metrics."""
    hw = sorted({k for c in configs for k in c["hw"]})
    return ["config_hash", "status", "error", *CONFIG_KEYS, *(f"hw.{k}" for k in hw), *METRICS, "row_crc"]


def _crc(cells: list[str]) -> str:
    return f"{zlib.crc32(chr(31).join(cells).encode('utf-8', 'surrogateescape')):08x}"


def _valid(row: list[str], width: int) -> bool:
    return len(row) == width and row[-1] == _crc(row[:-1]) and row[1] in ("ok", "error")


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return str(value)


class ResultsFile:
    """An open results table. ``done`` holds the hashes of the rows already in it; ``append``
    writes one row durably; ``close`` finishes the file (writes the parquet file, if any)."""

    def __init__(self, path: Path, columns: list[str], parquet: Path | None = None):
        self.path = path
        self.columns = columns
        self.parquet = parquet
        self.done: set[str] = set()
        self.dropped = 0  # corrupt or torn rows removed on open; their configurations run again
        self._prior: list[dict] = []  # rows of an existing parquet file
        if parquet is not None and parquet.exists():
            self._prior = _read_parquet(parquet, columns)
            self.done.update(r["config_hash"] for r in self._prior)
        self._open()

    def _open(self) -> None:
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            text = self.path.read_bytes().decode("utf-8", "surrogateescape")
            reader = csv.reader(io.StringIO(text, newline=""))
            header = next(reader, None)
            if header is not None and header != self.columns:
                raise InputError(f"{self.path}: its columns differ from this sweep's (another sweep file wrote "
                                 f"it?); write to another file with -o")
            rows = [row for row in reader if row]
            good = [row for row in rows if _valid(row, len(self.columns))]
            self.dropped = len(rows) - len(good)
            if self.dropped or (text and not text.endswith("\n")):
                buf = io.StringIO()
                csv.writer(buf, lineterminator="\n").writerows([self.columns, *good])
                atomic_write_text(self.path, buf.getvalue().encode("utf-8", "surrogateescape").decode("utf-8",
                                                                                                       "replace"))
            self.done.update(row[0] for row in good)
            fresh = header is None
        self._f = self.path.open("a", newline="", encoding="utf-8")
        if fresh:
            self._write(self.columns)

    def _write(self, cells: list[str]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(cells)
        self._f.write(buf.getvalue())
        self._f.flush()
        os.fsync(self._f.fileno())

    def append(self, row: dict) -> None:
        """Write ``row`` (keys: the columns; missing ones empty) at the end, durably."""
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"row has columns the table lacks: {sorted(unknown)}")
        cells = [_cell(row.get(c)) for c in self.columns[:-1]]
        self._write([*cells, _crc(cells)])
        self.done.add(row["config_hash"])

    def close(self) -> None:
        self._f.close()
        if self.parquet is None:
            return
        with self.path.open(newline="", encoding="utf-8") as f:
            rows = [_typed(r) for r in csv.DictReader(f)]
        unique = {r["config_hash"]: r for r in reversed(self._prior + rows)}  # a row twice (killed while
        _write_parquet(self.parquet, self.columns, list(reversed(unique.values())))  # finishing): keep the first
        self.path.unlink()

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._f.close()  # keep the journal: the next run resumes from it


def _typed(row: dict) -> dict:
    out: dict = {}
    for k, v in row.items():
        if v == "" or v is None:
            out[k] = None
        elif k in _INT:
            out[k] = int(v)
        elif k in _STR:
            out[k] = v
        else:
            out[k] = float(v)
    return out


def _need_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise InputError("writing parquet needs pyarrow (pip install pyarrow); or write CSV: -o results.csv") from None
    return pyarrow


def _read_parquet(path: Path, columns: list[str]) -> list[dict]:
    pa = _need_pyarrow()
    table = pa.parquet.read_table(path)
    if table.column_names != columns:
        raise InputError(f"{path}: its columns differ from this sweep's (another sweep file wrote it?); write to "
                         f"another file with -o")
    return table.to_pylist()


def _write_parquet(path: Path, columns: list[str], rows: list[dict]) -> None:
    pa = _need_pyarrow()
    types = {c: pa.int64() if c in _INT else pa.string() if c in _STR else pa.float64() for c in columns}
    schema = pa.schema([(c, types[c]) for c in columns])
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows], schema=schema)
    tmp = path.with_name(f".{path.name}.tmp")
    pa.parquet.write_table(table, tmp)
    os.replace(tmp, path)


def open_results(out: Path, columns: list[str]) -> ResultsFile:
    """The results table for ``-o out``: ``.csv`` or ``.parquet`` (checked for pyarrow first)."""
    suffix = out.suffix.lower()
    if suffix == ".csv":
        return ResultsFile(out, columns)
    if suffix == ".parquet":
        _need_pyarrow()
        return ResultsFile(out.with_name(out.name + ".partial.csv"), columns, parquet=out)
    raise InputError(f"-o {out}: the results file must end in .csv or .parquet")
