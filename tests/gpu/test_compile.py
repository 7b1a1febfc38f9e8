"""Every CUDA kernel compiles with nvcc for sm_90 under the exactness options (no GPU needed).

Not marked ``gpu``: it runs wherever nvcc exists (on PATH or /usr/local/cuda/bin/nvcc), so a
kernel that does not compile cannot land. The PTX is also searched for the instructions the
options forbid: a fused multiply-add, flush-to-zero or an approximate operation.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

from opbsim.reference.sources import (
    KERNEL_FILES,
    KERNELS,
    NVCC_OPTIONS,
    NVRTC_OPTIONS,
    compile_all,
    nvcc_path,
    source,
)

NVCC = nvcc_path()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found (neither on PATH nor /usr/local/cuda/bin/nvcc)")

_FORBIDDEN_PTX = re.compile(r"\b(fma|mad)(\.\w+)*\.f(16|32|64)\b|\.ftz\b|\.approx\b")  # integer mad.lo is fine


@needs_nvcc
def test_every_kernel_compiles_to_ptx_for_sm90_with_no_fused_flushed_or_approximate_arithmetic(tmp_path):
    result = compile_all(tmp_path, NVCC, "ptx", "sm_90")
    assert result.ok, f"{' '.join(result.command)}\n{result.output}"
    ptx = {p.name: p.read_text() for p in result.outputs}
    entries = set(re.findall(r"\.entry\s+(\w+)\s*\(", "\n".join(ptx.values())))
    assert entries == set(KERNELS)
    for name, text in ptx.items():
        bad = sorted({m.group(0) for m in _FORBIDDEN_PTX.finditer(text)})
        assert not bad, f"{name}: {bad}"
        assert name in ("dispatch.ptx", "timing.ptx") or "mul.rn.f32" in text


@needs_nvcc
def test_the_self_contained_sources_the_runners_compile_build_to_cubin_through_ptxas(tmp_path):
    """The header-inlined text is what PyCUDA and CuPy compile; ptxas checks registers and
    shared memory for sm_90."""
    for name in KERNEL_FILES:
        (tmp_path / name).write_text(source(name))
    out = tmp_path / "out"
    out.mkdir()
    cmd = [NVCC, "--cubin", "-arch=sm_90", *NVCC_OPTIONS, "-odir", str(out), *(str(tmp_path / n) for n in KERNEL_FILES)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(n.replace(".cu", ".cubin") for n in KERNEL_FILES)


def test_the_options_never_include_fast_math_and_always_forbid_contraction():
    assert "-fmad=false" in NVCC_OPTIONS
    assert not any("fast_math" in o or "fast-math" in o for o in NVCC_OPTIONS)


def test_a_kernel_file_that_is_not_known_is_a_value_error_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"no kernel file 'fma.cu'; known: elementwise.cu, gemm.cu"):
        source("fma.cu")


def _nvrtc() -> ctypes.CDLL | None:
    """libnvrtc from the system or from the nvidia-cuda-nvrtc wheel (CuPy's compiler), if any."""
    name = ctypes.util.find_library("nvrtc")
    if name is None and importlib.util.find_spec("nvidia") is not None:
        for root in importlib.util.find_spec("nvidia").submodule_search_locations:
            found = sorted(Path(root).glob("cuda_nvrtc/lib/libnvrtc.so*"))
            name = str(found[0]) if found else None
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def test_the_cupy_path_compiles_every_source_with_nvrtc_and_no_fused_arithmetic():
    """CuPy's RawModule compiles with NVRTC: the same sources with NVRTC_OPTIONS for sm_90."""
    lib = _nvrtc()
    if lib is None:
        pytest.skip("libnvrtc not found (CuPy's compiler; pip install nvidia-cuda-nvrtc-cu12 provides it)")
    for name in KERNEL_FILES:
        prog = ctypes.c_void_p()
        assert lib.nvrtcCreateProgram(ctypes.byref(prog), source(name).encode(), name.encode(), 0, None, None) == 0
        opts = [o.encode() for o in NVRTC_OPTIONS] + [b"--gpu-architecture=compute_90"]
        rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        assert rc == 0, f"{name}: {log.value.decode()}"
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(prog, ptx)
        text = ptx.value.decode()
        assert not _FORBIDDEN_PTX.search(text), name
        assert set(re.findall(r"\.entry\s+(\w+)", text)) == {k for k, f in KERNELS.items() if f == name}
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
