"""A stand-in GPU for tests without one: ``HostDevice`` runs each launch through the host build
of the kernels (host_kernels.cpp), after checking the launch against the real kernel source.

Checks on every launch: the kernel exists in kernels/*.cu; each argument's numpy type matches
the declared parameter (pointer <-> np.uint64, long long <-> np.int64, int <-> np.int32, float
<-> np.float32); every pointer lies inside a live allocation; the block fits the kernel's
__launch_bounds__ (1024 otherwise) and the grid fits CUDA's limits. So GpuOps' marshalling,
strides, offsets and launch geometry are exercised on the CPU with the kernels' own scalar code.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from opbsim.reference.backends import Backend
from opbsim.reference.sources import KERNEL_DIR, KERNEL_FILES

__all__ = ["HostDevice", "build_host_library", "kernel_signatures"]

_SIG = re.compile(r'extern "C" __global__ void\s+(?:__launch_bounds__\((\w+)\)\s*)?(\w+)\s*\(([^)]*)\)', re.S)
_NUMPY_FOR = {"pointer": np.uint64, "long long": np.int64, "int": np.int32, "float": np.float32,
              "unsigned int": np.uint32}
_CTYPE_FOR = {np.uint64: ctypes.c_uint64, np.int64: ctypes.c_int64, np.int32: ctypes.c_int32,
              np.float32: ctypes.c_float, np.uint32: ctypes.c_uint32}


def kernel_signatures() -> dict[str, tuple[int, tuple[str, ...]]]:
    """kernel name -> (max threads per block, parameter kinds) parsed from kernels/*.cu."""
    defines = {}
    out = {}
    for f in KERNEL_FILES:
        text = (KERNEL_DIR / f).read_text()
        defines.update(dict(re.findall(r"#define (\w+) (\d+)", text)))
        for bounds, name, params in _SIG.findall(text):
            kinds = []
            for p in params.split(","):
                decl = " ".join(p.split()[:-1]).replace("const ", "")
                kinds.append("pointer" if "*" in p else decl)
            out[name] = (int(defines.get(bounds, bounds)) if bounds else 1024, tuple(kinds))
    return out


def build_host_library(out_dir: Path) -> Path | None:
    """Compile host_kernels.cpp with the system C++ compiler; None when there is none."""
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        return None
    lib = out_dir / "libopbsim_host_kernels.so"
    cmd = [cxx, "-O2", "-std=c++17", "-ffp-contract=off", "-fno-fast-math", "-Wno-unknown-pragmas", "-shared",
           "-fPIC", f"-I{KERNEL_DIR}", "-o", str(lib), str(Path(__file__).with_name("host_kernels.cpp"))]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)
    return lib


class HostDevice(Backend):
    name = "host"

    def __init__(self, library: Path):
        super().__init__()
        self._lib = ctypes.CDLL(str(library))
        self._sigs = kernel_signatures()
        self._bufs: dict[int, np.ndarray] = {}
        self.launches: list[str] = []

    def alloc(self, nbytes: int) -> np.ndarray:
        buf = np.zeros(max(int(nbytes), 1), np.uint8)
        self._bufs[buf.ctypes.data] = buf
        return buf

    def ptr(self, buf: np.ndarray) -> int:
        return buf.ctypes.data

    def htod(self, buf: np.ndarray, host: np.ndarray) -> None:
        flat = np.ascontiguousarray(host).reshape(-1).view(np.uint8)
        buf[: flat.size] = flat

    def dtoh(self, buf: np.ndarray, nbytes: int) -> np.ndarray:
        return buf[:nbytes].copy()

    def _inside(self, address: int) -> bool:
        return any(base <= address < base + b.size for base, b in self._bufs.items())

    def launch(self, kernel, grid, block, args) -> None:
        if kernel not in self._sigs:
            raise AssertionError(f"no kernel {kernel} in kernels/*.cu")
        bound, kinds = self._sigs[kernel]
        if len(args) != len(kinds):
            raise AssertionError(f"{kernel}: {len(args)} arguments for {len(kinds)} parameters")
        for i, (kind, arg) in enumerate(zip(kinds, args)):
            if type(arg) is not _NUMPY_FOR[kind]:
                raise AssertionError(f"{kernel} parameter {i}: {kind} passed as {type(arg).__name__}")
            if kind == "pointer" and not self._inside(int(arg)):
                raise AssertionError(f"{kernel} parameter {i}: pointer {int(arg):#x} outside every allocation")
        threads = block[0] * block[1] * block[2]
        if not 1 <= threads <= bound or grid[0] >= 2**31 or grid[1] > 65535 or grid[2] > 65535 or min(grid) < 1:
            raise AssertionError(f"{kernel}: launch grid {grid} block {block} (at most {bound} threads)")
        self.launches.append(kernel)
        geometry = [ctypes.c_int32(v) for v in (*grid, *block)]
        getattr(self._lib, kernel)(*geometry, *(_CTYPE_FOR[type(a)](a) for a in args))

    def synchronize(self) -> None:
        pass

    def event_pair(self):
        return [0.0], [0.0]

    def elapsed_ms(self, start, end) -> float:
        return 1e3 * (end[0] - start[0])

    def record(self, event) -> None:
        event[0] = time.perf_counter()

    def info(self) -> dict:
        return {"backend": self.name, "name": "host emulation (no GPU)", "sm_count": 132}
