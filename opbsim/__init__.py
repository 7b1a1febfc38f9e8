"""opbsim: an Op/B-driven co-design emulator for LLM inference hardware.

Subpackages, strictly layered (each imports only those to its left):
isa <- workloads <- compiler <- emulator <- report <- cli; reference and rtl_models use only isa.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
