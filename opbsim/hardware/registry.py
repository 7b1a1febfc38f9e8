"""Devices registered by name. ``get_device`` is the one way a name becomes a DeviceSpec."""

from __future__ import annotations

from pathlib import Path

from opbsim.errors import InputError
from opbsim.hardware.device_file import is_device_file, load_device_file
from opbsim.hardware.presets import PRESETS
from opbsim.hardware.spec import DeviceSpec

__all__ = ["register", "get_device", "device_names"]

_REGISTRY: dict[str, DeviceSpec] = dict(PRESETS)


def register(spec: DeviceSpec, *, replace: bool = False) -> None:
    """Make ``spec`` available by its name; registering a taken name needs ``replace=True``."""
    if spec.name in _REGISTRY and not replace:
        raise InputError(f"device {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


def get_device(name: str) -> DeviceSpec:
    """The registered device ``name``, or the device file at that path (``.json``, ``.yaml``)."""
    if is_device_file(name):
        return load_device_file(Path(name), _registered)
    return _registered(name)


def _registered(name: str) -> DeviceSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise InputError(f"unknown device {shown!r} (known: {', '.join(device_names())}; or a device file "
                         f"NAME.json)") from None


def device_names() -> list[str]:
    return sorted(_REGISTRY)
