"""GPU reference: CUDA kernels implementing isa/numerics.py exactly, run through PyCUDA.

Depends only on opbsim.isa."""

__all__: list[str] = []
