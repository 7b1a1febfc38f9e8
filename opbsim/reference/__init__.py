"""GPU reference: CUDA kernels implementing isa/numerics.py exactly, run through PyCUDA or CuPy.

kernels/*.cu and kernels/numerics.cuh: the kernels and their shared scalar fp32 helpers.
sources.py: the sources and the one set of compiler options (no fast-math, -fmad=false).
backends.py: PyCUDA (SourceModule) and CuPy (RawModule) behind one interface.
pycuda_runner.py: ``GpuOps``, the kernels as operations on numpy inputs.
numpy_ops.py: ``NumpyOps``, the same operations computed by numerics.py (no GPU).
checks.py, compare.py: per-kernel checks, bit comparisons. (Whole layers run on an ``Ops`` through
the layer definitions' interpreter, emulator/ops_values.py.)
timing.py: CUDA-event timing of GEMM / GEMV across Op/B and of decode attention.

Depends only on opbsim.isa.
"""

from opbsim.reference.backends import GpuUnavailable, unavailable_reason
from opbsim.reference.compare import Comparison, compare
from opbsim.reference.interface import Ops
from opbsim.reference.numpy_ops import NumpyOps

__all__ = ["GpuUnavailable", "unavailable_reason", "Comparison", "compare", "Ops", "NumpyOps"]
