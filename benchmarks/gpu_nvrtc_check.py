"""Every GPU kernel check through CuPy with the kernels compiled by NVRTC (nvcc hidden), as on a
machine with CuPy but no CUDA toolkit: prints each check's verdict; exit status 1 on a mismatch.

Usage (on a GPU machine with CuPy): PYTHONPATH=. python benchmarks/gpu_nvrtc_check.py
"""

import sys

import opbsim.reference.backends as backends
from opbsim.reference.checks import run_checks
from opbsim.reference.pycuda_runner import open_gpu

backends.nvcc_path = lambda: None  # the CuPy backend falls back to NVRTC
results = run_checks(open_gpu("cupy"), 0)
bad = [c for c in results if not c.bit_exact]
for c in results:
    print(c.lines()[0])
print(f"NVRTC path: {len(results) - len(bad)} of {len(results)} checks bit-exact")
sys.exit(1 if bad else 0)
