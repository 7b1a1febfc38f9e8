"""JSON read at the edge, bounded: size, nesting depth, integer length and finite numbers.

Python's json module turns a 5,000-digit integer into a ValueError, a deeply nested document into
a RecursionError and ``1e400`` into infinity; every JSON input of opbsim (model configs, sweep
files, routing traces, device files) goes through ``parse_json`` instead, which refuses each with
one line. ``read_data_file`` reads a file as JSON (``.json``) or else YAML (with PyYAML, which the
``cluster`` extra installs).
"""

from __future__ import annotations

import json
from pathlib import Path

from opbsim.errors import InputError

__all__ = ["parse_json", "read_data_file", "MAX_JSON_B", "MAX_DEPTH", "MAX_INT_DIGITS"]

MAX_JSON_B = 64 * 2**20  # a config.json is a few KB; a sweep file or a trace line far less than this
MAX_DEPTH = 64  # Hugging Face configs nest 3 deep
MAX_INT_DIGITS = 30  # no count or size of a model comes near 10^30


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise InputError(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise InputError(f"{text[:40]} is too large for a number")
    return value


def _constant(name: str) -> float:
    raise InputError(f"{name} is not a JSON number")


def parse_json(text: str, source: str) -> object:
    """The value of the JSON ``text``; every problem is an InputError starting with ``source``."""
    if len(text) > MAX_JSON_B:
        raise InputError(f"{source}: {len(text)} characters of JSON, more than the {MAX_JSON_B} read")
    if _depth(text) > MAX_DEPTH:
        raise InputError(f"{source}: JSON nested more than {MAX_DEPTH} deep")
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as e:
        raise InputError(f"{source}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    except InputError as e:
        raise InputError(f"{source}: {e}") from None


def read_data_file(path: Path, what: str) -> object:
    """The parsed content of the ``what`` file at ``path`` (e.g. "sweep"): JSON for ``.json``,
    else YAML (needs PyYAML). Errors start with the path."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    if path.suffix.lower() == ".json":
        return parse_json(text, str(path))
    if len(text) > MAX_JSON_B:
        raise InputError(f"{path}: {len(text)} characters, more than the {MAX_JSON_B} read")
    try:
        import yaml
    except ImportError:
        raise InputError(f"{path}: reading YAML needs PyYAML (pip install 'opbsim[cluster]' or pyyaml); "
                         f"or write the {what} file as JSON (.json)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise InputError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
