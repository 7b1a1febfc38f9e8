"""Routing trace files: a user's router logs (per layer, per token, the top-k expert ids and
optionally their weights) replayed as a Routing. The format is documented in docs/routing.md;
example: docs/examples/routing_trace.jsonl.

JSON Lines, UTF-8. A header line
``{"format": "opbsim-routing-trace", "version": 1, "num_experts": E, "top_k": k}`` (optionally
``"num_layers": L``, the decoder layers of the model the log came from), then records
``{"layer": l, "experts": [[e, ...], ...]}`` (optionally ``"weights": [[w, ...], ...]``, the same
shape, finite and >= 0), one row of k distinct experts per token.

Token identity: the records of one layer, in file order, form that layer's token stream, and
token i of every layer's stream is the same token (so every layer must hold the same number of
tokens: what a router log of one run has). Replay takes the next T rows of a layer's stream for a
stage of T tokens and wraps around at its end; the stage timer routes every layer with the same T,
so the layers stay aligned and a token keeps its path through the layers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from opbsim.errors import InputError
from opbsim.fileio import atomic_write_text, read_text
from opbsim.jsonin import parse_json
from opbsim.workloads.routing import check_shape

__all__ = ["TraceRouting", "write_trace", "TRACE_FORMAT"]

TRACE_FORMAT = "opbsim-routing-trace"
_HEAD_KEYS = {"format", "version", "num_experts", "top_k"}
_HEAD_OPTIONAL = {"num_layers"}


class TraceRouting:
    """Replays per-layer routing rows; each layer's token stream wraps around at its end.
    ``weights[layer]`` (float64 [tokens, top_k]) where the trace gave them."""

    def __init__(self, num_experts: int, top_k: int, layers: Mapping[int, np.ndarray], *,
                 weights: Mapping[int, np.ndarray] | None = None, num_layers: int | None = None,
                 source: str = "<trace>"):
        check_shape(num_experts, top_k)
        self.num_experts = num_experts
        self.top_k = top_k
        self.source = source
        self.num_layers = num_layers
        self._layers = {layer: np.ascontiguousarray(rows, dtype=np.int32) for layer, rows in layers.items()}
        self.weights = dict(weights or {})
        self._cursor = dict.fromkeys(self._layers, 0)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TraceRouting:
        return _read_trace(Path(path))

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted(self._layers))

    def tokens(self, layer: int) -> int:
        """Rows in layer ``layer``'s stream."""
        return len(self._layers[layer])

    def route(self, layer: int, tokens: int) -> np.ndarray:
        if layer not in self._layers:
            raise InputError(f"{self.source}: no routing records for layer {layer}")
        rows = self._layers[layer]
        start = self._cursor[layer]
        idx = (start + np.arange(tokens)) % len(rows)
        self._cursor[layer] = (start + tokens) % len(rows)
        return rows[idx]

    def check_model(self, model) -> None:
        """Raise InputError unless this trace fits ``model`` (a ModelConfig): its experts and top-k,
        its layer count when the header gives one, and records for exactly its MoE layers."""
        if (self.num_experts, self.top_k) != (model.num_experts, model.top_k):
            raise InputError(f"{self.source}: the trace has {self.num_experts} experts, top-{self.top_k}; "
                             f"{model.name} has {model.num_experts}, top-{model.top_k}")
        if self.num_layers is not None and self.num_layers != model.num_layers:
            raise InputError(f"{self.source}: num_layers is {self.num_layers}; {model.name} has "
                             f"{model.num_layers} layers")
        moe = {i for i in range(model.num_layers) if model.is_moe_layer(i)}
        extra = sorted(set(self._layers) - moe)
        if extra:
            raise InputError(f"{self.source}: layer {extra[0]} is not a MoE layer of {model.name} "
                             f"(MoE layers: {_ranges(sorted(moe))})")
        missing = sorted(moe - set(self._layers))
        if missing:
            raise InputError(f"{self.source}: no records for MoE layer {missing[0]} of {model.name} "
                             f"(the trace has layers {_ranges(self.layers)}; {len(moe)} MoE layers expected)")


def _ranges(layers: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` as ``0..2, 5``."""
    out, start = [], None
    for i, x in enumerate(layers):
        if start is None:
            start = x
        if i + 1 == len(layers) or layers[i + 1] != x + 1:
            out.append(str(start) if start == x else f"{start}..{x}")
            start = None
    return ", ".join(out)


def write_trace(path: str | os.PathLike, num_experts: int, top_k: int,
                records: Iterable[tuple[int, Sequence[Sequence[int]] | np.ndarray]], *,
                num_layers: int | None = None,
                weights: Iterable[Sequence[Sequence[float]] | np.ndarray | None] | None = None) -> None:
    """Write ``(layer, rows)`` records (and, when given, one weights array per record) as a routing
    trace file (atomically)."""
    check_shape(num_experts, top_k)
    head = {"format": TRACE_FORMAT, "version": 1, "num_experts": num_experts, "top_k": top_k}
    if num_layers is not None:
        head["num_layers"] = num_layers
    records = list(records)
    ws = list(weights) if weights is not None else [None] * len(records)
    if len(ws) != len(records):
        raise InputError(f"write_trace: {len(ws)} weights arrays for {len(records)} records")
    lines = [json.dumps(head)]
    for (layer, rows), w in zip(records, ws, strict=True):
        rec = {"layer": int(layer), "experts": np.asarray(rows).tolist()}
        if w is not None:
            rec["weights"] = np.asarray(w, dtype=np.float64).tolist()
        lines.append(json.dumps(rec))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _read_trace(path: Path) -> TraceRouting:
    lines = read_text(path).splitlines()
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise InputError(f"{path}: empty routing trace (expected a header line)")
    n, head = numbered[0]
    head = _json(path, n, head)
    if head.get("format") != TRACE_FORMAT or head.get("version") != 1:
        raise InputError(f"{path}:{n}: expected a header with \"format\": \"{TRACE_FORMAT}\" and \"version\": 1")
    if not _HEAD_KEYS <= set(head) <= _HEAD_KEYS | _HEAD_OPTIONAL:
        raise InputError(f"{path}:{n}: header keys must be format, version, num_experts, top_k "
                         "(and optionally num_layers)")
    try:
        check_shape(head["num_experts"], head["top_k"])
    except InputError as e:
        raise InputError(f"{path}:{n}: {e}") from None
    num_layers = head.get("num_layers")
    if num_layers is not None and (isinstance(num_layers, bool) or not isinstance(num_layers, int)
                                   or num_layers < 1):
        raise InputError(f"{path}:{n}: num_layers must be a positive integer, got {json.dumps(num_layers)}")
    num_experts, top_k = head["num_experts"], head["top_k"]
    parts: dict[int, list[np.ndarray]] = {}
    weights: dict[int, list[np.ndarray | None]] = {}
    for n, line in numbered[1:]:
        layer, rows, w = _record(path, n, _json(path, n, line), num_experts, top_k)
        if num_layers is not None and layer >= num_layers:
            raise InputError(f"{path}:{n}: layer {layer} is outside 0..{num_layers - 1} (num_layers {num_layers})")
        if layer in weights and (weights[layer][0] is None) != (w is None):
            raise InputError(f"{path}:{n}: layer {layer} gives weights in some records and not in others")
        parts.setdefault(layer, []).append(rows)
        weights.setdefault(layer, []).append(w)
    if not parts:
        raise InputError(f"{path}: no routing records after the header")
    layers = {layer: np.concatenate(p) for layer, p in parts.items()}
    first = min(layers)
    for layer in sorted(layers):
        if len(layers[layer]) != len(layers[first]):
            raise InputError(f"{path}: layer {layer} has {len(layers[layer])} tokens, layer {first} "
                             f"{len(layers[first])}: every layer routes the same tokens")
    ws = {layer: np.concatenate(w) for layer, w in weights.items() if w[0] is not None}
    return TraceRouting(num_experts, top_k, layers, weights=ws, num_layers=num_layers, source=str(path))


def _json(path: Path, n: int, line: str) -> dict:
    value = parse_json(line, f"{path}:{n}")
    if not isinstance(value, dict):
        raise InputError(f"{path}:{n}: expected a JSON object")
    return value


def _record(path: Path, n: int, rec: dict, num_experts: int,
            top_k: int) -> tuple[int, np.ndarray, np.ndarray | None]:
    if not {"layer", "experts"} <= set(rec) <= {"layer", "experts", "weights"}:
        raise InputError(f"{path}:{n}: a record has the keys layer and experts (and optionally weights)")
    layer, rows = rec["layer"], rec["experts"]
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise InputError(f"{path}:{n}: layer must be an integer >= 0, got {json.dumps(layer)}")
    ok = isinstance(rows, list) and rows and all(
        isinstance(r, list) and all(isinstance(e, int) and not isinstance(e, bool) for e in r) for r in rows)
    if not ok:
        raise InputError(f"{path}:{n}: experts must be a non-empty list of rows of {top_k} integers")
    for t, r in enumerate(rows):
        if len(r) != top_k:
            raise InputError(f"{path}:{n}: experts row {t} has {len(r)} ids; top_k is {top_k}")
    arr = np.asarray(rows, dtype=np.int64)
    bad = np.argwhere((arr < 0) | (arr >= num_experts))
    if len(bad):
        t, j = bad[0]
        raise InputError(f"{path}:{n}: experts row {t}: expert id {arr[t, j]} is outside 0..{num_experts - 1}")
    if top_k > 1:
        dup = np.nonzero((np.diff(np.sort(arr, axis=1), axis=1) == 0).any(axis=1))[0]
        if len(dup):
            raise InputError(f"{path}:{n}: experts row {dup[0]} lists the same expert twice")
    return layer, arr.astype(np.int32), _weights(path, n, rec.get("weights"), arr.shape)


def _weights(path: Path, n: int, w: object, shape: tuple[int, int]) -> np.ndarray | None:
    if w is None:
        return None
    ok = isinstance(w, list) and len(w) == shape[0] and all(
        isinstance(r, list) and len(r) == shape[1]
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in r) for r in w)
    if not ok:
        raise InputError(f"{path}:{n}: weights must be {shape[0]} rows of {shape[1]} numbers, like experts")
    arr = np.asarray(w, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(arr) | (arr < 0))
    if len(bad):
        t, j = bad[0]
        raise InputError(f"{path}:{n}: weights row {t}: {float(arr[t, j])!r} is not a finite number >= 0")
    return arr
