"""The CUDA sources of the GPU reference and the one set of compiler options they need.

Every kernel file includes ``numerics.cuh`` (the scalar fp32 helpers), which includes the generated
``opb_constants.cuh``. ``source`` returns a file's text with both includes replaced by the headers,
so PyCUDA's ``SourceModule`` and CuPy's ``RawModule`` (NVRTC) compile one self-contained string
without include paths.

Options: no fast-math, no multiply-add contraction, IEEE division and square root, subnormals
kept. These are what make the kernels bit-exact; nothing else may be passed (``NVCC_OPTIONS``
for nvcc and PyCUDA, ``NVRTC_OPTIONS`` for CuPy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KERNEL_DIR", "HEADER", "CONSTANTS_HEADER", "KERNEL_FILES", "KERNELS", "NVCC_OPTIONS", "NVRTC_OPTIONS",
    "source", "nvcc_path", "compile_all", "CompileResult",
]

KERNEL_DIR = Path(__file__).parent / "kernels"
HEADER = "numerics.cuh"
CONSTANTS_HEADER = "opb_constants.cuh"  # generated (constants_header.py); numerics.cuh includes it
KERNEL_FILES = ("elementwise.cu", "gemm.cu", "gemm_fp8.cu", "rows.cu", "dispatch.cu", "timing.cu")
KERNELS: dict[str, str] = {
    "opb_unary": "elementwise.cu", "opb_binary": "elementwise.cu", "opb_scale": "elementwise.cu",
    "opb_cvt": "elementwise.cu", "opb_quant": "elementwise.cu",
    "opb_act_quant": "elementwise.cu", "opb_clamp_kernel": "elementwise.cu",
    "opb_topk_grouped": "rows.cu", "opb_gemm": "gemm.cu", "opb_gemv": "gemm.cu", "opb_gemm_fp8": "gemm_fp8.cu",
    "opb_softmax": "rows.cu", "opb_rmsnorm": "rows.cu", "opb_layernorm": "rows.cu", "opb_reduce": "rows.cu",
    "opb_topk": "rows.cu", "opb_rope": "rows.cu", "opb_gather": "dispatch.cu", "opb_scatter": "dispatch.cu",
    "opb_scatter_add": "dispatch.cu", "opb_copy4": "dispatch.cu", "opb_spin": "timing.cu", "opb_flush": "timing.cu",
}
"""Each ``extern "C"`` kernel and the file that defines it."""

NVCC_OPTIONS = ("-fmad=false", "-ftz=false", "-prec-div=true", "-prec-sqrt=true")
NVRTC_OPTIONS = ("--fmad=false", "--ftz=false", "--prec-div=true", "--prec-sqrt=true", "--std=c++17")

_INCLUDE = f'#include "{HEADER}"'
_CONSTANTS = f'#include "{CONSTANTS_HEADER}"'
_NVCC_FALLBACK = Path("/usr/local/cuda/bin/nvcc")


def source(name: str) -> str:
    """The text of kernel file ``name`` with the header inlined (a self-contained module)."""
    if name not in KERNEL_FILES:
        raise ValueError(f"no kernel file {name!r}; known: {', '.join(KERNEL_FILES)}")
    text = (KERNEL_DIR / name).read_text(encoding="utf-8")
    if _INCLUDE not in text:
        raise ValueError(f"{name} does not include {HEADER}")
    header = (KERNEL_DIR / HEADER).read_text(encoding="utf-8")
    header = header.replace(_CONSTANTS, (KERNEL_DIR / CONSTANTS_HEADER).read_text(encoding="utf-8"), 1)
    return text.replace(_INCLUDE, header, 1)


def nvcc_path() -> str | None:
    """``nvcc`` on PATH, else /usr/local/cuda/bin/nvcc if it exists, else None."""
    found = shutil.which("nvcc")
    if found:
        return found
    return str(_NVCC_FALLBACK) if _NVCC_FALLBACK.is_file() and os.access(_NVCC_FALLBACK, os.X_OK) else None


@dataclass(frozen=True)
class CompileResult:
    """One nvcc run over every kernel file: the command, its exit status and its output."""

    command: tuple[str, ...]
    returncode: int
    output: str
    outputs: tuple[Path, ...]

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def compile_all(out_dir: Path, nvcc: str, target: str = "ptx", arch: str = "sm_90",
                timeout_s: float = 300.0) -> CompileResult:
    """Compile every kernel file in one nvcc invocation into ``out_dir`` (``--ptx`` or
    ``--cubin``) with ``NVCC_OPTIONS``; no GPU is needed."""
    if target not in ("ptx", "cubin"):
        raise ValueError(f"target must be ptx or cubin, got {target!r}")
    cmd = (nvcc, f"--{target}", f"-arch={arch}", *NVCC_OPTIONS, f"-I{KERNEL_DIR}", "-odir", str(out_dir),
           *(str(KERNEL_DIR / f) for f in KERNEL_FILES))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    outs = tuple(out_dir / (Path(f).stem + "." + target) for f in KERNEL_FILES)
    return CompileResult(cmd, proc.returncode, proc.stdout + proc.stderr, outs)
