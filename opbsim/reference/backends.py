"""The two ways to reach a GPU: PyCUDA (``SourceModule``, nvcc) and CuPy (``RawModule``, from nvcc or NVRTC).

Both compile the same self-contained kernel sources (sources.py) with the same exactness
options, allocate raw byte buffers, copy to and from the host, launch by name with a grid and a
block, and time with CUDA events. Kernel arguments are passed as numpy scalars (np.uint64 for
pointers, np.int64 / np.int32 / np.float32 for the rest), which both pack by their dtype.

``find_backend`` returns the first that can run (PyCUDA, then CuPy) or raises ``GpuUnavailable``
with one line saying why neither can.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from opbsim.reference.sources import KERNEL_FILES, KERNELS, NVCC_OPTIONS, NVRTC_OPTIONS, nvcc_path, source

__all__ = ["GpuUnavailable", "Backend", "PyCudaBackend", "CupyBackend", "find_backend", "unavailable_reason"]


class GpuUnavailable(RuntimeError):
    """No GPU backend can run here; the message is one line naming why."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


class Backend:
    """A GPU reached through one Python package. Subclasses fill in the primitives."""

    name = "abstract"

    def __init__(self) -> None:
        self._functions: dict[str, Any] = {}

    def function(self, kernel: str) -> Any:
        """The compiled kernel ``kernel`` (its file is compiled on first use)."""
        if kernel not in self._functions:
            file = KERNELS[kernel]
            module = self._compile(source(file))
            for name, f in KERNELS.items():
                if f == file:
                    self._functions[name] = self._get(module, name)
        return self._functions[kernel]

    def compile_all(self) -> None:
        for file in KERNEL_FILES:
            self.function(next(k for k, f in KERNELS.items() if f == file))

    def _compile(self, text: str) -> Any:
        raise NotImplementedError

    def _get(self, module: Any, name: str) -> Any:
        raise NotImplementedError

    def alloc(self, nbytes: int) -> Any:
        raise NotImplementedError

    def ptr(self, buf: Any) -> int:
        raise NotImplementedError

    def htod(self, buf: Any, host: np.ndarray) -> None:
        raise NotImplementedError

    def dtoh(self, buf: Any, nbytes: int) -> np.ndarray:
        raise NotImplementedError

    def launch(self, kernel: str, grid: tuple[int, int, int], block: tuple[int, int, int], args: tuple) -> None:
        raise NotImplementedError

    def synchronize(self) -> None:
        raise NotImplementedError

    def event_pair(self) -> tuple[Any, Any]:
        raise NotImplementedError

    def record(self, event: Any) -> None:
        """Record ``event`` on the default stream (after everything launched so far)."""
        event.record()

    def elapsed_ms(self, start: Any, end: Any) -> float:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """GPU name, compute capability, SM count, clocks and driver, as far as known."""
        raise NotImplementedError


class PyCudaBackend(Backend):
    name = "pycuda"

    def __init__(self) -> None:
        super().__init__()
        import pycuda.driver as drv

        drv.init()
        if drv.Device.count() < 1:
            raise GpuUnavailable("pycuda found no CUDA device")
        import pycuda.autoprimaryctx  # noqa: F401  retains and pushes device 0's primary context
        from pycuda.compiler import SourceModule

        self._drv, self._source_module = drv, SourceModule
        self._device = drv.Context.get_device()
        major, minor = self._device.compute_capability()
        self._arch = f"sm_{major}{minor}"

    def _compile(self, text: str) -> Any:
        return self._source_module(text, nvcc=nvcc_path() or "nvcc", options=list(NVCC_OPTIONS), no_extern_c=True,
                                   arch=self._arch)

    def _get(self, module: Any, name: str) -> Any:
        return module.get_function(name)

    def alloc(self, nbytes: int) -> Any:
        return self._drv.mem_alloc(max(int(nbytes), 1))

    def ptr(self, buf: Any) -> int:
        return int(buf)

    def htod(self, buf: Any, host: np.ndarray) -> None:
        self._drv.memcpy_htod(buf, np.ascontiguousarray(host))

    def dtoh(self, buf: Any, nbytes: int) -> np.ndarray:
        out = np.empty(nbytes, np.uint8)
        if nbytes:
            self._drv.memcpy_dtoh(out, buf)
        return out

    def launch(self, kernel, grid, block, args) -> None:
        self.function(kernel)(*args, grid=grid, block=block)

    def synchronize(self) -> None:
        self._drv.Context.synchronize()

    def event_pair(self):
        return self._drv.Event(), self._drv.Event()

    def elapsed_ms(self, start, end) -> float:
        end.synchronize()
        return float(end.time_since(start))

    def _attribute(self, name: str) -> int | None:
        """A device attribute, or None where this driver no longer reports it."""
        try:
            return self._device.get_attribute(getattr(self._drv.device_attribute, name))
        except Exception:
            return None

    def info(self) -> dict[str, Any]:
        clock, mem = self._attribute("CLOCK_RATE"), self._attribute("MEMORY_CLOCK_RATE")  # kHz
        return _with_smi({
            "backend": self.name, "name": self._device.name(), "compute_capability": self._arch,
            "sm_count": self._attribute("MULTIPROCESSOR_COUNT"),
            "sm_clock_max_MHz": clock / 1000.0 if clock else None,
            "mem_clock_max_MHz": mem / 1000.0 if mem else None,
            "cuda_driver_api": self._drv.get_driver_version(),
        })


class CupyBackend(Backend):
    """CuPy's ``RawModule(code=...)`` appends ``-ftz=true`` after the caller's options (CuPy's
    compiler ``_compile_with_cache_cuda``), which flushes subnormal inputs and results to zero and
    breaks exactness (seen on an H200: exp, rsqrt, silu, add, gemm and scatter_add corner values).
    So the source is compiled here with the exactness options, by nvcc into a cubin where nvcc is
    installed, else by NVRTC through CuPy into PTX, and the file is loaded with ``RawModule(path=...)``,
    which compiles nothing."""

    name = "cupy"

    def __init__(self) -> None:
        super().__init__()
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise GpuUnavailable("cupy found no CUDA device")
        self._cp = cupy
        self._cc = str(cupy.cuda.Device().compute_capability)  # "90" for sm_90
        self._files = tempfile.TemporaryDirectory(prefix="opbsim-cubin-")  # kept while the backend lives
        self._count = 0

    def _compile(self, text: str) -> Any:
        self._count += 1
        stem = Path(self._files.name) / f"kernels{self._count}"
        nvcc = nvcc_path()
        if nvcc is not None:
            stem.with_suffix(".cu").write_text(text, encoding="utf-8")
            out = stem.with_suffix(".cubin")
            done = subprocess.run([nvcc, "--cubin", f"-arch=sm_{self._cc}", *NVCC_OPTIONS, "-o", str(out),
                                   str(stem.with_suffix(".cu"))], capture_output=True, text=True)
            if done.returncode != 0:
                lines = (done.stderr or done.stdout).strip().splitlines()
                raise GpuUnavailable(f"nvcc failed on the kernels: {lines[0] if lines else done.returncode}")
        else:
            from cupy.cuda import compiler

            built = compiler.compile_using_nvrtc(text, NVRTC_OPTIONS, self._cc)
            binary = built[0] if isinstance(built, tuple) else built
            out = stem.with_suffix(".ptx" if isinstance(binary, str) or binary[:2] == b"//" else ".cubin")
            out.write_bytes(binary.encode("utf-8") if isinstance(binary, str) else binary)
        return self._cp.RawModule(path=str(out))

    def _get(self, module: Any, name: str) -> Any:
        return module.get_function(name)

    def alloc(self, nbytes: int) -> Any:
        return self._cp.empty(max(int(nbytes), 1), dtype=self._cp.uint8)

    def ptr(self, buf: Any) -> int:
        return int(buf.data.ptr)

    def htod(self, buf: Any, host: np.ndarray) -> None:
        flat = np.ascontiguousarray(host).reshape(-1).view(np.uint8)
        buf[: flat.size].set(flat)

    def dtoh(self, buf: Any, nbytes: int) -> np.ndarray:
        return buf[:nbytes].get() if nbytes else np.empty(0, np.uint8)

    def launch(self, kernel, grid, block, args) -> None:
        self.function(kernel)(grid, block, args)

    def synchronize(self) -> None:
        self._cp.cuda.runtime.deviceSynchronize()

    def event_pair(self):
        return self._cp.cuda.Event(), self._cp.cuda.Event()

    def elapsed_ms(self, start, end) -> float:
        end.synchronize()
        return float(self._cp.cuda.get_elapsed_time(start, end))

    def info(self) -> dict[str, Any]:
        rt = self._cp.cuda.runtime
        p = rt.getDeviceProperties(rt.getDevice())
        name = p.get("name", b"?")
        return _with_smi({
            "backend": self.name, "name": name.decode() if isinstance(name, bytes) else str(name),
            "compute_capability": f"sm_{p.get('major', '?')}{p.get('minor', '?')}",
            "sm_count": p.get("multiProcessorCount"),
            "sm_clock_max_MHz": p["clockRate"] / 1000.0 if "clockRate" in p else None,
            "mem_clock_max_MHz": p["memoryClockRate"] / 1000.0 if "memoryClockRate" in p else None,
            "cuda_driver_api": rt.driverGetVersion(),
        })


def _with_smi(info: dict[str, Any]) -> dict[str, Any]:
    """Add the driver version and current / maximum clocks that nvidia-smi reports, if it runs."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return info
    fields = ("driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm", "clocks.max.mem", "power.limit")
    try:
        out = subprocess.run([smi, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return info
    values = [v.strip() for v in out.strip().splitlines()[0].split(",")] if out.strip() else []
    if len(values) == len(fields):
        info.update({"driver": values[0], "sm_clock_MHz": values[1], "mem_clock_MHz": values[2],
                     "sm_clock_max_MHz_smi": values[3], "mem_clock_max_MHz_smi": values[4],
                     "power_limit_W": values[5]})
    return info


_BACKENDS = {"pycuda": PyCudaBackend, "cupy": CupyBackend}


def find_backend(prefer: str | None = None) -> Backend:
    """The first backend that reaches a GPU (``prefer`` only: that one), else GpuUnavailable."""
    if prefer and prefer not in _BACKENDS:
        raise ValueError(f"unknown GPU backend {prefer!r}; known: {', '.join(_BACKENDS)}")
    why = []
    for name in (prefer,) if prefer else tuple(_BACKENDS):
        if importlib.util.find_spec(name) is None:
            why.append(f"{name} is not installed")
            continue
        try:
            return _BACKENDS[name]()
        except GpuUnavailable as e:
            why.append(str(e))
        except Exception as e:  # no driver, no device, no context, no compiler: say so, never raise
            why.append(f"{name} cannot use a GPU ({_first_line(e)})")
    raise GpuUnavailable("no GPU to run on: " + "; ".join(why))


def unavailable_reason(prefer: str | None = None) -> str | None:
    """None when a GPU backend can run, else the one-line reason (nothing is kept open)."""
    try:
        find_backend(prefer)
    except GpuUnavailable as e:
        return str(e)
    return None
