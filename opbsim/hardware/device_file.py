"""Device files: a registered device (``base``) with hardware parameters changed (``hw``, the
vocabulary of hardware/params.py), in JSON (``.json``) or YAML. Accepted wherever a device name
is (``-d my_device.json``); ``opbsim devices export NAME`` writes one to start from.

    {"name": "h100-2xhbm", "base": "h100", "description": "twice the HBM bandwidth",
     "hw": {"hbm_bw_GBps": 6704}}

``name`` (letters, digits, ``.-_+``, at most 64) and ``base`` are required; ``description`` is
free text; unknown keys are refused. Parameters follow the rules of hardware/params.py: a derived
one (the PIM bandwidth under ``hbm_bw_GBps``) follows what it derives from unless it is given too.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from opbsim.errors import InputError
from opbsim.hardware.params import apply_hw, read_hw
from opbsim.hardware.spec import DeviceSpec
from opbsim.jsonin import read_data_file

__all__ = ["DEVICE_FILE_KEYS", "device_file", "is_device_file", "load_device_file"]

DEVICE_FILE_KEYS = ("name", "base", "description", "hw")
_NAME = re.compile(r"[A-Za-z0-9._+-]{1,64}")
_SUFFIXES = (".json", ".yaml", ".yml")


def is_device_file(name: str) -> bool:
    """Whether ``name`` names a device file (by its suffix) rather than a registered device."""
    return name.lower().endswith(_SUFFIXES)


def load_device_file(path: Path, base_of) -> DeviceSpec:
    """The device the file at ``path`` describes; ``base_of(name)`` looks up its base. Every error
    is one line starting with the path."""
    if not path.is_file():
        raise InputError(f"{path}: no such device file")
    content = read_data_file(path, "device")
    try:
        return _parse(content, base_of, path)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None


def _parse(content: object, base_of, path: Path) -> DeviceSpec:
    if not isinstance(content, dict):
        raise InputError("a device file is one mapping (name, base, hw, description)")
    unknown = sorted(set(content) - set(DEVICE_FILE_KEYS))
    if unknown:
        raise InputError(f"unknown key {str(unknown[0])[:40]!r} (known: {', '.join(DEVICE_FILE_KEYS)})")
    for key in ("name", "base"):
        if key not in content:
            raise InputError(f"{key} is missing")
    name, base, hw = content["name"], content["base"], content.get("hw", {})
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"name must be 1 to 64 letters, digits or .-_+, got {str(name)[:40]!r}")
    if not isinstance(base, str) or is_device_file(base):
        raise InputError(f"base must name a registered device (see `opbsim devices`), got {str(base)[:40]!r}")
    if not isinstance(content.get("description", ""), str):
        raise InputError("description must be text")
    if not isinstance(hw, dict):
        raise InputError("hw must be a mapping of hardware parameters to numbers")
    spec = apply_hw(base_of(base), hw)
    source = f"device file {path.name}: {base} with {_hw_text(hw)}; {spec.source}"
    return replace(spec, name=name, base=spec.base or base, source=source)


def _hw_text(hw: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(hw.items())) or "no change"


def device_file(spec: DeviceSpec, name: str) -> dict:
    """A device file reproducing registered device ``spec``: every parameter it can take, with
    its value, as a starting point to edit. The PIM bandwidth is given as its multiple of the HBM
    bandwidth only, so that it follows an edited ``hbm_bw_GBps``."""
    hw = {k: v for k, v in read_hw(spec).items() if k != "pim_bw_GBps"}
    return {"name": name, "base": spec.base or spec.name,
            "description": f"{spec.name} as registered; edit hw to change it", "hw": hw}
