"""Expert routing: which experts each token of a stage is sent to.

A router's ``route(layer, tokens)`` returns an int32 array of shape (tokens, top_k): the experts of
each token, distinct within a row. Every MoE layer is its own stream: the routing a layer gets
depends only on the seed (or trace), the layer index and the calls made for that layer before, so
results are reproducible whatever order layers are routed in.

Routing trace files (JSON Lines, documented in docs/models.md): a header line
``{"format": "opbsim-routing-trace", "version": 1, "num_experts": E, "top_k": k}`` and then records
``{"layer": l, "experts": [[e, ...], ...]}``, one row of k experts per token. The records of one
layer, in file order, form that layer's token stream; replay wraps around at its end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from opbsim.errors import InputError
from opbsim.fileio import atomic_write_text
from opbsim.jsonin import parse_json

__all__ = ["Routing", "BalancedRouting", "UniformRouting", "ZipfRouting", "TraceRouting", "expert_counts",
           "expected_fraction_touched", "write_trace", "TRACE_FORMAT"]

TRACE_FORMAT = "opbsim-routing-trace"


class Routing(Protocol):
    num_experts: int
    top_k: int

    def route(self, layer: int, tokens: int) -> np.ndarray: ...


def expert_counts(assignment: np.ndarray, num_experts: int) -> np.ndarray:
    """Tokens sent to each expert (int64, length ``num_experts``)."""
    return np.bincount(np.asarray(assignment).ravel(), minlength=num_experts).astype(np.int64)


def expected_fraction_touched(num_experts: int, top_k: int, tokens: int) -> float:
    """Expected share of experts that get at least one of ``tokens`` tokens under uniform routing:
    each token misses a given expert with probability 1 - k/E, so 1 - (1 - k/E)^tokens."""
    return 1.0 - (1.0 - top_k / num_experts) ** tokens


def _check_shape(num_experts: object, top_k: object) -> None:
    if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts < 1:
        raise InputError(f"num_experts must be a positive integer, got {num_experts!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_experts:
        raise InputError(f"top_k must be in 1..num_experts ({num_experts}), got {top_k!r}")


class BalancedRouting:
    """Deterministic round-robin: token t goes to experts (t k + j) mod E, j < k, so every expert
    gets floor(T k / E) or one more token. The default when no routing is given."""

    def __init__(self, num_experts: int, top_k: int):
        _check_shape(num_experts, top_k)
        self.num_experts = num_experts
        self.top_k = top_k

    def route(self, layer: int, tokens: int) -> np.ndarray:
        slots = np.arange(tokens * self.top_k, dtype=np.int64).reshape(tokens, self.top_k)
        return (slots % self.num_experts).astype(np.int32)


MAX_SKEW = 100.0  # past a skew of about 40 every token already takes the top_k highest-ranked experts


class ZipfRouting:
    """Skewed routing: expert of rank r (0-based) is chosen with weight (r + 1)^-skew, top_k distinct
    experts per token drawn without replacement in proportion to the weights (Gumbel top-k). Each
    layer ranks its experts by its own seeded permutation. ``skew = 0`` is uniform routing."""

    def __init__(self, num_experts: int, top_k: int, *, skew: float, seed: int):
        _check_shape(num_experts, top_k)
        if not (isinstance(skew, (int, float)) and not isinstance(skew, bool) and 0 <= skew <= MAX_SKEW):
            raise InputError(f"skew must be a number in 0..{MAX_SKEW:g}, got {skew!r}")
        self.num_experts = num_experts
        self.top_k = top_k
        self.skew = float(skew)
        self.seed = seed
        self._streams: dict[int, tuple[np.random.Generator, np.ndarray]] = {}

    def _stream(self, layer: int) -> tuple[np.random.Generator, np.ndarray]:
        if layer not in self._streams:
            rng = np.random.default_rng([self.seed, layer])
            log_w = -self.skew * np.log(np.arange(1, self.num_experts + 1, dtype=np.float64))
            self._streams[layer] = (rng, log_w[rng.permutation(self.num_experts)])
        return self._streams[layer]

    def route(self, layer: int, tokens: int) -> np.ndarray:
        rng, log_w = self._stream(layer)
        keys = log_w + rng.gumbel(size=(tokens, self.num_experts))
        if self.top_k == self.num_experts:
            return np.argsort(-keys, axis=1).astype(np.int32)
        return np.argpartition(-keys, self.top_k - 1, axis=1)[:, : self.top_k].astype(np.int32)


class UniformRouting(ZipfRouting):
    """Each token picks top_k distinct experts uniformly at random (seeded)."""

    def __init__(self, num_experts: int, top_k: int, *, seed: int):
        super().__init__(num_experts, top_k, skew=0.0, seed=seed)


class TraceRouting:
    """Replays a routing trace file; each layer's token stream wraps around at its end."""

    def __init__(self, num_experts: int, top_k: int, layers: Mapping[int, np.ndarray], *, source: str = "<trace>"):
        _check_shape(num_experts, top_k)
        self.num_experts = num_experts
        self.top_k = top_k
        self.source = source
        self._layers = {layer: np.ascontiguousarray(rows, dtype=np.int32) for layer, rows in layers.items()}
        self._cursor = dict.fromkeys(self._layers, 0)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TraceRouting:
        return _read_trace(Path(path))

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted(self._layers))

    def route(self, layer: int, tokens: int) -> np.ndarray:
        if layer not in self._layers:
            raise InputError(f"{self.source}: no routing records for layer {layer}")
        rows = self._layers[layer]
        start = self._cursor[layer]
        idx = (start + np.arange(tokens)) % len(rows)
        self._cursor[layer] = (start + tokens) % len(rows)
        return rows[idx]


def write_trace(path: str | os.PathLike, num_experts: int, top_k: int,
                records: Iterable[tuple[int, Sequence[Sequence[int]] | np.ndarray]]) -> None:
    """Write ``(layer, rows)`` records as a routing trace file (atomically)."""
    _check_shape(num_experts, top_k)
    head = {"format": TRACE_FORMAT, "version": 1, "num_experts": num_experts, "top_k": top_k}
    lines = [json.dumps(head)]
    lines += [json.dumps({"layer": int(layer), "experts": np.asarray(rows).tolist()}) for layer, rows in records]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _read_trace(path: Path) -> TraceRouting:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise InputError(f"{path}: empty routing trace (expected a header line)")
    n, head = numbered[0]
    head = _json(path, n, head)
    if head.get("format") != TRACE_FORMAT or head.get("version") != 1:
        raise InputError(f"{path}:{n}: expected a header with \"format\": \"{TRACE_FORMAT}\" and \"version\": 1")
    if set(head) != {"format", "version", "num_experts", "top_k"}:
        raise InputError(f"{path}:{n}: header keys must be format, version, num_experts, top_k")
    try:
        _check_shape(head["num_experts"], head["top_k"])
    except InputError as e:
        raise InputError(f"{path}:{n}: {e}") from None
    num_experts, top_k = head["num_experts"], head["top_k"]
    parts: dict[int, list[np.ndarray]] = {}
    for n, line in numbered[1:]:
        layer, rows = _record(path, n, _json(path, n, line), num_experts, top_k)
        parts.setdefault(layer, []).append(rows)
    if not parts:
        raise InputError(f"{path}: no routing records after the header")
    return TraceRouting(num_experts, top_k, {layer: np.concatenate(p) for layer, p in parts.items()},
                        source=str(path))


def _json(path: Path, n: int, line: str) -> dict:
    value = parse_json(line, f"{path}:{n}")
    if not isinstance(value, dict):
        raise InputError(f"{path}:{n}: expected a JSON object")
    return value


def _record(path: Path, n: int, rec: dict, num_experts: int, top_k: int) -> tuple[int, np.ndarray]:
    if set(rec) != {"layer", "experts"}:
        raise InputError(f"{path}:{n}: a record has exactly the keys layer and experts")
    layer, rows = rec["layer"], rec["experts"]
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise InputError(f"{path}:{n}: layer must be an integer >= 0, got {json.dumps(layer)}")
    ok = isinstance(rows, list) and rows and all(
        isinstance(r, list) and len(r) == top_k and all(isinstance(e, int) and not isinstance(e, bool) for e in r)
        for r in rows)
    if not ok:
        raise InputError(f"{path}:{n}: experts must be a non-empty list of rows of {top_k} integers")
    arr = np.asarray(rows, dtype=np.int64)
    if arr.min() < 0 or arr.max() >= num_experts:
        raise InputError(f"{path}:{n}: expert ids must be in 0..{num_experts - 1}")
    if top_k > 1 and (np.diff(np.sort(arr, axis=1), axis=1) == 0).any():
        raise InputError(f"{path}:{n}: a token lists the same expert twice")
    return layer, arr.astype(np.int32)
