"""CPU seconds of one reproduce-duplex unit on one configuration (best of 2, this process):
``mix`` = Mixtral-8x7B on Duplex+PE+ET, batch 64, 1024/1024; ``glam`` = GLaM on the GPU, batch 32, 256/256.

Usage: PYTHONPATH=<checkout> python benchmarks/stage_costing_cpu.py mix|glam LABEL
"""

import sys
import time

from opbsim.report import reproduce_run
from opbsim.report.reproduce import DUPLEX, GPU, SETUPS

CASES = {"mix": (0, DUPLEX, (64, 1024, 1024)), "glam": (1, GPU, (32, 256, 256))}

setup, system, config = CASES[sys.argv[1]]
best = float("inf")
for _ in range(2):
    start = time.process_time()
    reproduce_run._run_unit((SETUPS[setup], system, (config,)))
    best = min(best, time.process_time() - start)
print(sys.argv[1], sys.argv[2], "cpu best", round(best, 2))
