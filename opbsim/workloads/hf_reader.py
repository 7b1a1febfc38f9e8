"""Typed, key-tracking access to the JSON objects of a Hugging Face config.json.

Every problem is an ``InputError`` of one line: ``<file>: <key>: <problem>``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from opbsim.errors import InputError

__all__ = ["Reader", "REQUIRED", "shown", "quoted"]

REQUIRED = object()


_SHOWN_CHARS = 40  # an error message quotes at most this much of an offending value


def shown(value: object) -> str:
    """``value`` as JSON for an error message, cut to ``_SHOWN_CHARS`` characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return _clip(text)


def quoted(value: object) -> str:
    """``repr(value)`` for an error message, cut like ``shown``."""
    return _clip(repr(value))


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 3] + "..."


class Reader:
    """Typed access to one JSON object of a config file; remembers which keys were read."""

    def __init__(self, data: Mapping[str, object], file: str, prefix: str = ""):
        self.data = data
        self.file = file
        self.prefix = prefix
        self.used: set[str] = set()

    def error(self, key: str, problem: str) -> InputError:
        return InputError(f"{self.file}: {self.prefix}{key}: {problem}")

    def get(self, key: str, default: object = REQUIRED) -> object:
        """The raw value; absent and ``null`` both count as missing."""
        self.used.add(key)
        value = self.data.get(key)
        if value is None:
            if default is REQUIRED:
                raise self.error(key, "missing")
            return default
        return value

    def count(self, key: str, default: object = REQUIRED, *, minimum: int = 1) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.error(key, f"expected {kind}, got {shown(value)}")
        return value

    def number(self, key: str, default: object = REQUIRED, *, positive: bool = False) -> float | None:
        """A finite JSON number (integer or not) as a float; ``None`` when absent and ``default`` is None."""
        value = self.get(key, default)
        if value is None and default is None:
            return None
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or value < 0 or (positive and value == 0)):
            kind = "a finite number > 0" if positive else "a finite number >= 0"
            raise self.error(key, f"expected {kind}, got {shown(value)}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {shown(value)}")
        return value

    def text(self, key: str, default: object = REQUIRED) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {shown(value)}")
        return value

    def int_list(self, key: str) -> list[int]:
        value = self.get(key, [])
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise self.error(key, f"expected a list of integers, got {shown(value)}")
        return value

    def section(self, key: str) -> Reader:
        value = self.get(key)
        if not isinstance(value, dict):
            raise self.error(key, f"expected an object, got {shown(value)}")
        return Reader(value, self.file, f"{self.prefix}{key}.")

    def ignore(self, keys: frozenset[str] | set[str] | tuple[str, ...]) -> None:
        self.used.update(k for k in keys if k in self.data)

    def reject_true(self, key: str, reason: str) -> None:
        if self.flag(key, False):
            raise self.error(key, f"true is not supported ({reason})")

    def check_unknown(self, family: str) -> None:
        for key in self.data:
            if key not in self.used:
                raise self.error(key, f"unknown key for model_type {family!r}")
