"""The measured serving points (docs/data/measured_serving.json): read and checked at the edge.

Every point names its source (a key of ``sources``), the GPU (``GPU_DEVICES``), the tensor
parallelism, the model (an opbsim preset or a config.json path relative to the repository), a
fixed request shape, the concurrency and how requests arrive (``batch``: all at once, as vLLM's
benchmark_latency; ``closed``: a finished request is replaced at once), the engine's chunked
prefill budget, and at least one measured metric (``METRICS``). A bad row is one line naming the
point and the key; unknown keys are errors, never ignored. Each source names its serving engine
preset (emulator/serving_engines.py: the host time per scheduler step of that engine version).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from opbsim.emulator.serving_engines import SERVING_ENGINES
from opbsim.errors import InputError

__all__ = ["DATA_FILE", "GPU_DEVICES", "METRICS", "Source", "MeasuredPoint", "MeasuredData", "load_measured"]

DATA_FILE = Path(__file__).resolve().parents[2] / "docs" / "data" / "measured_serving.json"

GPU_DEVICES: dict[str, str] = {  # the GPU as the data names it -> the opbsim device preset
    "a100-80gb": "a100",
    "h100-sxm": "h100",
    "h100-pcie": "h100-pcie",
    "h200": "h200",
    "l40s": "l40s",
}

METRICS: dict[str, str] = {  # name -> what it is
    "latency_s": "end-to-end latency of the whole batch, s",
    "output_tokens_per_s": "output tokens per second over the run",
    "output_tokens_per_s_per_gpu": "output tokens per second over the run, per GPU",
    "ttft_ms": "mean time to first token, ms",
    "tpot_ms": "mean time per output token after the first, ms",
}

_SOURCE_KEYS = {"url", "detail", "engine", "engine_version", "serving_engine"}
_POINT_KEYS = {"id", "source", "gpu", "gpus", "tp", "model", "input_tokens", "output_tokens", "concurrency",
               "requests", "loop", "max_batched_tokens", "moe_kernel_config", "measured"}
_LOOPS = ("batch", "closed")
_KERNEL_CONFIGS = ("tuned", "default", "none")


@dataclass(frozen=True, slots=True)
class Source:
    key: str
    url: str
    detail: str
    engine: str
    engine_version: str
    serving_engine: str  # the emulator/serving_engines.py preset of this engine version


@dataclass(frozen=True, slots=True)
class MeasuredPoint:
    """One measured configuration; ``measured`` holds (metric, value) pairs in ``METRICS`` units."""

    id: str
    source: str
    gpu: str
    gpus: int
    tp: int
    model: str
    input_tokens: int
    output_tokens: int
    concurrency: int
    requests: int
    loop: str
    max_batched_tokens: int
    moe_kernel_config: str
    measured: tuple[tuple[str, float], ...]

    @property
    def device(self) -> str:
        return GPU_DEVICES[self.gpu]


@dataclass(frozen=True, slots=True)
class MeasuredData:
    sources: dict[str, Source]
    points: tuple[MeasuredPoint, ...]


def _int(where: str, row: dict, key: str, minimum: int) -> int:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise InputError(f"{where}: {key}: must be an integer >= {minimum}, got {json.dumps(v)[:40]}")
    return v


def _text(where: str, row: dict, key: str) -> str:
    v = row.get(key)
    if not isinstance(v, str) or not v.strip():
        raise InputError(f"{where}: {key}: must be a non-empty string, got {json.dumps(v)[:40]}")
    return v


def _keys(where: str, row: object, allowed: set[str]) -> dict:
    if not isinstance(row, dict):
        raise InputError(f"{where}: must be an object")
    unknown = sorted(set(row) - allowed)
    if unknown:
        raise InputError(f"{where}: {unknown[0]}: unknown key (known: {', '.join(sorted(allowed))})")
    missing = sorted(allowed - set(row))
    if missing:
        raise InputError(f"{where}: {missing[0]}: missing")
    return row


def _point(i: int, row: object, sources: dict[str, Source]) -> MeasuredPoint:
    where = f"points[{i}]"
    row = _keys(where, row, _POINT_KEYS)
    where = f"point {_text(where, row, 'id')}"
    if row["source"] not in sources:
        raise InputError(f"{where}: source: {json.dumps(row['source'])[:40]} is not a key of sources")
    if row["gpu"] not in GPU_DEVICES:
        raise InputError(f"{where}: gpu: {json.dumps(row['gpu'])[:40]} is not one of {', '.join(GPU_DEVICES)}")
    for key, allowed in (("loop", _LOOPS), ("moe_kernel_config", _KERNEL_CONFIGS)):
        if row[key] not in allowed:
            raise InputError(f"{where}: {key}: {json.dumps(row[key])[:40]} is not one of {', '.join(allowed)}")
    gpus, tp = _int(where, row, "gpus", 1), _int(where, row, "tp", 1)
    if gpus % tp:
        raise InputError(f"{where}: tp: {tp} does not divide gpus ({gpus})")
    concurrency, requests = _int(where, row, "concurrency", 1), _int(where, row, "requests", 1)
    if requests < concurrency:
        raise InputError(f"{where}: requests: {requests} is fewer than the concurrency ({concurrency})")
    measured = row["measured"]
    if not isinstance(measured, dict) or not measured:
        raise InputError(f"{where}: measured: must be an object with at least one of {', '.join(METRICS)}")
    for name, value in measured.items():
        if name not in METRICS:
            raise InputError(f"{where}: measured.{name}: unknown metric (known: {', '.join(METRICS)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise InputError(f"{where}: measured.{name}: must be a finite positive number, got "
                             f"{json.dumps(value)[:40]}")
    return MeasuredPoint(
        id=row["id"], source=row["source"], gpu=row["gpu"], gpus=gpus, tp=tp, model=_text(where, row, "model"),
        input_tokens=_int(where, row, "input_tokens", 1), output_tokens=_int(where, row, "output_tokens", 1),
        concurrency=concurrency, requests=requests, loop=row["loop"],
        max_batched_tokens=_int(where, row, "max_batched_tokens", 0), moe_kernel_config=row["moe_kernel_config"],
        measured=tuple((k, float(v)) for k, v in measured.items()))


def parse_measured(doc: object) -> MeasuredData:
    """The data of a parsed measured_serving.json; InputError (one line) on the first bad entry."""
    doc = _keys("measured data", doc, {"schema", "about", "sources", "points"})
    if doc["schema"] != 1:
        raise InputError(f"measured data: schema: {json.dumps(doc['schema'])[:40]} is not 1")
    if not isinstance(doc["sources"], dict) or not isinstance(doc["points"], list) or not doc["points"]:
        raise InputError("measured data: sources must be an object and points a non-empty list")
    sources = {}
    for key, row in doc["sources"].items():
        row = _keys(f"source {key}", row, _SOURCE_KEYS)
        sources[key] = Source(key, *(_text(f"source {key}", row, k) for k in ("url", "detail", "engine",
                                                                                "engine_version", "serving_engine")))
        if sources[key].serving_engine not in SERVING_ENGINES:
            raise InputError(f"source {key}: serving_engine: {json.dumps(row['serving_engine'])[:40]} is not one of "
                             f"{', '.join(SERVING_ENGINES)}")
    points = tuple(_point(i, row, sources) for i, row in enumerate(doc["points"]))
    seen: set[str] = set()
    for p in points:
        if p.id in seen:
            raise InputError(f"point {p.id}: id: appears twice")
        seen.add(p.id)
    return MeasuredData(sources, points)


def load_measured(path: Path = DATA_FILE) -> MeasuredData:
    """Read and check ``path``."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON (line {e.lineno}: {e.msg})") from None
    try:
        return parse_measured(doc)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
