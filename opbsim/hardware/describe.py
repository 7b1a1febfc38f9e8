"""Every field of a DeviceSpec as data: a nested JSON-ready dict, and flat rows of (field, value,
unit) for a table. Units come from the field names (``bw_GBps``: GB/s); enums print by name."""

from __future__ import annotations

import dataclasses
import enum

from opbsim.hardware.device_model import DeviceModel
from opbsim.hardware.spec import DeviceSpec

__all__ = ["as_dict", "field_rows", "unit_of"]

_UNITS = (("_GBps", "GB/s"), ("_TFLOPS", "TFLOP/s"), ("_pJ_per_bit", "pJ/bit"), ("_pJ_per_B", "pJ/B"), ("_pJ", "pJ"),
          ("_ns", "ns"), ("_us", "µs"), ("_B", "bytes"), ("_MHz", "MHz"), ("_GHz", "GHz"), ("_W", "W"),
          ("_cycles", "cycles"))


def unit_of(field: str) -> str:
    """The unit a field name ends in ('' when it names none)."""
    return next((unit for suffix, unit in _UNITS if field.endswith(suffix)), "")


def as_dict(value: object) -> object:
    """``value`` (a dataclass, tuple, enum or scalar) as JSON-ready data, recursively; a device
    model by its name and its parameters."""
    if isinstance(value, DeviceModel):
        return {"name": value.name, **{f.name: as_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if dataclasses.is_dataclass(value):
        return {f.name: as_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [as_dict(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name.lower() if isinstance(value.value, int) else value.value
    return value


def _label(item: dict) -> str:
    for key in ("name", "unit", "space", "algorithm"):
        if isinstance(item.get(key), str):
            extra = f"/{item['protocol']}" if key == "algorithm" and "protocol" in item else ""
            if key == "unit" and "space" in item:
                extra = f"->{item['space']}"
            return item[key] + extra
    return ""


def field_rows(spec: DeviceSpec) -> list[tuple[str, str, str]]:
    """(dotted field path, value, unit) for every scalar field of ``spec``; list items are named by
    their name, unit or space (``channels[hbm].bw_GBps``)."""
    rows: list[tuple[str, str, str]] = []

    def walk(prefix: str, value: object, field: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v, k)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                walk(f"{prefix}[{_label(v) or i}]", v, field)
        elif not (field in ("name", "unit", "space") and f"[{value}" in prefix):  # the item's own label
            text = ", ".join(map(str, value)) if isinstance(value, list) else \
                f"{value:.6g}" if isinstance(value, float) else str(value)
            rows.append((prefix, text, unit_of(field)))

    walk("", as_dict(spec), "")
    return rows
