"""Sweep files: a grid of serving configurations, read and checked before anything runs.

A sweep file is one mapping, in YAML (``.yaml``/``.yml``, read with PyYAML, which the ``cluster``
extra installs) or JSON (``.json``, read by the standard library, so a base install can sweep).
Every key takes one value or a list of values; the sweep is the product of the lists::

    model: mixtral-8x7b              # a preset, a config.json path or a cached Hugging Face id
    device: [h100, duplex]
    policy: auto                     # auto: the device's default (opbsim compare's rule)
    devices_per_node: 4
    batch: [32, 64, 128]
    lengths: [[256, 256], [1024, 1024]]   # (prompt, output) pairs; or lin: and lout: (a product)
    requests_per_slot: 1             # requests = this x batch; or requests: N
    hw:                              # hardware parameters (hardware/params.py), each a value or a list
      pim_bw_multiple: [2, 4, 8]

The layout: ``devices_per_node`` and ``nodes`` (tensor parallel in a node, experts spread across
nodes), or ``parallel: "tp=4,ep=4"`` (the degrees of ``opbsim simulate --parallel``), not both.

Optional keys and defaults: ``nodes`` 1, ``parallel`` none, ``lin_std``/``lout_std`` 0 (Gaussian lengths when > 0),
``prefill_chunk`` 8192, ``routing`` balanced (or uniform, zipf:SKEW), ``buckets`` 8, ``seed`` 0.
``grids``: a list of such mappings, each a grid of its own, with the file's other keys as the
defaults of each (so ``hw.pim_bw_multiple`` can vary for duplex while h100 runs once).

Every problem (an unknown key, a bad value, an unknown model, device or policy, a hardware
parameter a device cannot take) is one ``InputError`` naming the key, raised by ``load_sweep``.
A configuration is a plain dict (picklable, JSON-able); ``config_hash`` keys it in the results.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

from opbsim.compiler import policy_names
from opbsim.compiler.policies import default_policy
from opbsim.emulator.serving import DEFAULT_PREFILL_CHUNK_TOKENS
from opbsim.emulator.stage_timer import DEFAULT_STEPS_PER_OCTAVE
from opbsim.errors import InputError
from opbsim.hardware import device_names, get_device
from opbsim.hardware.params import apply_hw
from opbsim.jsonin import read_data_file
from opbsim.workloads import load_model
from opbsim.workloads.hf_reader import quoted
from opbsim.workloads.parallel import Parallelism, parse_parallel
from opbsim.workloads.routing import MAX_SKEW

__all__ = ["CONFIG_KEYS", "DEFAULTS", "load_sweep", "parse_sweep", "expand", "config_hash", "read_sweep_file"]

DEFAULTS: dict[str, object] = {
    "policy": "auto", "devices_per_node": 1, "nodes": 1, "parallel": "", "lin_std": 0.0, "lout_std": 0.0,
    "prefill_chunk": DEFAULT_PREFILL_CHUNK_TOKENS, "routing": "balanced", "buckets": DEFAULT_STEPS_PER_OCTAVE,
    "seed": 0,
}
_REQUIRED = ("model", "device", "batch")
_INT_MIN = {"devices_per_node": 1, "nodes": 1, "batch": 1, "lin": 1, "lout": 1, "requests": 1, "requests_per_slot": 1,
            "prefill_chunk": 0, "buckets": 0, "seed": 0}
_FLOAT_MIN = {"lin_std": 0.0, "lout_std": 0.0}
_STR = ("model", "device", "policy", "routing")
_GRID_KEYS = (*_STR, *_INT_MIN, *_FLOAT_MIN, "lengths", "hw", "parallel")
CONFIG_KEYS = ("model", "device", "policy", "devices_per_node", "nodes", "parallel", "batch", "lin", "lout", "lin_std",
               "lout_std", "requests", "prefill_chunk", "routing", "buckets", "seed")
"""The keys of a configuration dict, in column order; ``hw`` (a dict) follows them."""


def read_sweep_file(path: Path) -> object:
    """The parsed content of ``path``: JSON for ``.json``, else YAML (needs PyYAML)."""
    return read_data_file(path, "sweep")


def load_sweep(path: Path) -> list[dict]:
    """Read, check and expand the sweep file at ``path``: every configuration, each once. Errors
    start with the file's name."""
    content = read_sweep_file(path)
    try:
        return expand(parse_sweep(content, str(path)))
    except InputError as e:
        raise InputError(str(e) if str(e).startswith(str(path)) else f"{path}: {e}") from None


def _values(key: str, value: object) -> list:
    if isinstance(value, list):
        if not value:
            raise InputError(f"{key}: an empty list gives no configuration")
        return value
    return [value]


def _check_scalar(key: str, value: object) -> object:
    name = key.rsplit(".", 1)[-1]
    if name in _STR:
        if not isinstance(value, str) or not value:
            raise InputError(f"{key}: expected a name, got {quoted(value)}")
    elif name in _INT_MIN:
        if isinstance(value, bool) or not isinstance(value, int) or value < _INT_MIN[name]:
            raise InputError(f"{key}: expected an integer >= {_INT_MIN[name]}, got {quoted(value)}")
    elif name in _FLOAT_MIN:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < _FLOAT_MIN[name]:
            raise InputError(f"{key}: expected a number >= {_FLOAT_MIN[name]:g}, got {quoted(value)}")
        value = float(value)
    elif name == "parallel":
        if not isinstance(value, str):
            raise InputError(f"{key}: expected a string such as \"tp=4,ep=4\", got {quoted(value)}")
        try:
            value = Parallelism.of(**parse_parallel(value)).label
        except InputError as e:
            raise InputError(f"{key}: {str(e).removeprefix('--parallel').lstrip(': ')}") from None
    elif name == "lengths":
        ok = isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        if not ok:
            raise InputError(f"{key}: expected [prompt tokens, output tokens] pairs, got {quoted(value)}")
        value = tuple(value)
    return value


def _grid(where: str, raw: dict) -> dict[str, list]:
    """One grid's keys, each as its list of checked values."""
    unknown = sorted(set(raw) - set(_GRID_KEYS))
    if unknown:
        raise InputError(f"{where}{unknown[0]}: unknown key (known: {', '.join(sorted(_GRID_KEYS))})")
    out: dict[str, list] = {}
    for key, value in raw.items():
        if key == "hw":
            if not isinstance(value, dict):
                raise InputError(f"{where}hw: expected a mapping of hardware parameters to values")
            for name, v in value.items():
                out[f"hw.{name}"] = _values(f"{where}hw.{name}", v)
            continue
        if key == "lengths" and isinstance(value, list) and value and not isinstance(value[0], list):
            value = [value]  # one pair
        out[key] = [_check_scalar(f"{where}{key}", v) for v in _values(f"{where}{key}", value)]
    if "lengths" in out and ({"lin", "lout"} & set(out)):
        raise InputError(f"{where}lengths: give either lengths or lin and lout, not both")
    if "lengths" not in out and not {"lin", "lout"} <= set(out):
        missing = "lin" if "lin" not in out else "lout"
        raise InputError(f"{where}{missing}: missing (give lin and lout, or lengths)")
    if "parallel" in out and ({"devices_per_node", "nodes"} & set(out)):
        raise InputError(f"{where}parallel: give either parallel or devices_per_node and nodes, not both")
    if "requests" in out and "requests_per_slot" in out:
        raise InputError(f"{where}requests: give either requests or requests_per_slot, not both")
    for key in _REQUIRED:
        if key not in out:
            raise InputError(f"{where}{key}: missing")
    return out


def parse_sweep(content: object, source: str = "sweep") -> list[dict[str, list]]:
    """The grids of a parsed sweep file, each key a list of checked values (see the module doc)."""
    if not isinstance(content, dict):
        raise InputError(f"{source}: a sweep file is one mapping of keys to values or lists")
    grids = content.get("grids")
    base = {k: v for k, v in content.items() if k != "grids"}
    if grids is None:
        return [_grid("", base)]
    if not isinstance(grids, list) or not grids or not all(isinstance(g, dict) for g in grids):
        raise InputError("grids: expected a list of mappings")
    out = []
    for i, g in enumerate(grids):
        merged = {**base, **g}
        if "hw" in base and "hw" in g and isinstance(base["hw"], dict) and isinstance(g["hw"], dict):
            merged["hw"] = {**base["hw"], **g["hw"]}
        out.append(_grid(f"grids[{i}].", merged))
    return out


def config_hash(config: dict) -> str:
    """16 hex digits of the SHA-256 of the configuration's canonical JSON."""
    canon = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def expand(grids: list[dict[str, list]]) -> list[dict]:
    """Every configuration of ``grids`` (the product of each grid's lists, in file order), each
    once, with ``policy: auto`` resolved and ``requests`` computed; models, devices, policies and
    hardware parameters are checked here, before anything runs."""
    models: dict[str, None] = {}
    seen: dict[str, dict] = {}
    for gi, grid in enumerate(grids):
        where = f"grids[{gi}]." if len(grids) > 1 else ""
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            raw = dict(zip(keys, combo))
            cfg = _config(where, raw, models)
            seen.setdefault(config_hash(cfg), cfg)
    return list(seen.values())


def _config(where: str, raw: dict, models: dict[str, None]) -> dict:
    model = raw["model"]
    if model not in models:
        try:
            load_model(model)
        except InputError as e:
            raise InputError(f"{where}model: {e}") from None
        models[model] = None
    if raw["device"] not in device_names():
        raise InputError(f"{where}device: unknown device {raw['device']!r} (known: {', '.join(device_names())})")
    spec = get_device(raw["device"])
    hw = {k[3:]: v for k, v in raw.items() if k.startswith("hw.")}
    try:
        apply_hw(spec, hw)
    except InputError as e:
        raise InputError(f"{where}{e}") from None
    policy = raw.get("policy", DEFAULTS["policy"])
    if policy == "auto":
        policy = default_policy(spec)
    elif policy not in policy_names():
        raise InputError(f"{where}policy: unknown policy {quoted(policy)} (known: auto, {', '.join(policy_names())})")
    routing = raw.get("routing", DEFAULTS["routing"])
    if routing not in ("balanced", "uniform") and not _is_zipf(routing):
        raise InputError(f"{where}routing: expected balanced, uniform or zipf:SKEW (SKEW in 0..{MAX_SKEW:g}), "
                         f"got {quoted(routing)}")
    lin, lout = raw["lengths"] if "lengths" in raw else (raw["lin"], raw["lout"])
    requests = raw.get("requests") or raw.get("requests_per_slot", 1) * raw["batch"]
    cfg = {k: raw.get(k, DEFAULTS.get(k)) for k in CONFIG_KEYS}
    cfg.update(policy=policy, lin=lin, lout=lout, requests=requests, lin_std=float(cfg["lin_std"]),
               lout_std=float(cfg["lout_std"]), hw={k: float(v) for k, v in sorted(hw.items())})
    return cfg


def _is_zipf(spec: str) -> bool:
    try:
        return spec.startswith("zipf:") and 0 <= float(spec[5:]) <= MAX_SKEW
    except ValueError:
        return False
