"""CPU seconds of one reproduce-duplex unit on one configuration (best of 2, this process):
``mix`` = Mixtral-8x7B on Duplex+PE+ET, batch 64, 1024/1024; ``glam`` = GLaM on the GPU, batch 32, 256/256.

Usage: PYTHONPATH=<checkout> python benchmarks/stage_costing_cpu.py mix|glam LABEL
"""
import sys, time
from opbsim.report.reproduce import SETUPS, DUPLEX, GPU
from opbsim.report import reproduce_run as rr
setup, system, cfg = {"mix": (0, DUPLEX, (64, 1024, 1024)), "glam": (1, GPU, (32, 256, 256))}[sys.argv[1]]
best = 1e9
for _ in range(2):
    t = time.process_time(); rr._run_unit((SETUPS[setup], system, (cfg,))); best = min(best, time.process_time() - t)
print(sys.argv[1], sys.argv[2], "cpu best", round(best, 2))
