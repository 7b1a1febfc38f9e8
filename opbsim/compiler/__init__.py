"""Op/B analysis, placement, tiling, scheduling and emission: named pure passes from a model graph
for one serving stage to an ISA Program (pipeline.py lists them)."""

from opbsim.compiler.ir import Compiled, Source, Target
from opbsim.compiler.pipeline import PASS_NAMES, PASSES, compile_graph, run_passes
from opbsim.compiler.policies import POLICIES, policy_names, register_policy

__all__ = ["Compiled", "Source", "Target", "PASSES", "PASS_NAMES", "compile_graph", "run_passes", "POLICIES",
           "policy_names", "register_policy"]
