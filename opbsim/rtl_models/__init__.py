"""Verilog models of the datapath units and their pyverilator bridges.

Depends only on opbsim.isa."""

__all__: list[str] = []
