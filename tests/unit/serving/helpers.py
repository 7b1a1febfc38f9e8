"""Small models, clusters and a scripted stage timer for the serving tests."""

from __future__ import annotations

from dataclasses import replace

from opbsim.emulator.cluster import Cluster
from opbsim.emulator.stage_timer import Bucketing, StageCost
from opbsim.hardware import get_device
from opbsim.isa.types import Space, Unit
from opbsim.workloads import ModelConfig, Stage
from opbsim.workloads.ops import OpClass

# A 2-layer MoE model small enough to compile in milliseconds: 4 experts, top-2, GQA group 2.
TINY_MOE = ModelConfig(name="tiny-moe", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16,
                       vocab_size=128, num_experts=4, top_k=2, expert_ffn=64, rope_theta=10000.0, norm_eps=1e-5)
# A 2-layer dense model whose parameter count is easy to derive (see test_cluster.py).
TINY_DENSE = ModelConfig(name="tiny-dense", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16,
                         vocab_size=128, dense_ffn=128, rope_theta=10000.0, norm_eps=1e-5)


def cluster(device: str = "h100", policy: str = "xpu-only", tp: int = 1, nodes: int = 1, hbm_B: int = 0) -> Cluster:
    """A cluster of ``device``; ``hbm_B`` replaces its HBM capacity when given."""
    spec = get_device(device)
    if hbm_B:
        spec = replace(spec, memories=tuple(replace(m, capacity_B=hbm_B) if m.space is Space.HBM else m
                                            for m in spec.memories))
    return Cluster.from_nodes(device=spec, policy=policy, devices_per_node=tp, nodes=nodes)


class ScriptedTimer:
    """Stands in for StageTimer: every stage takes ``seconds(stage)`` and 1 J, and is remembered.
    Without bucketing the loop hands it the exact stages."""

    def __init__(self, model: ModelConfig, cl: Cluster, seconds=lambda stage: 1.0):
        self.model = model
        self.cluster = cl
        self.bucketing = Bucketing(0)
        self.compiled_shapes = 0
        self.seconds = seconds
        self.stages: list[Stage] = []

    def cost(self, stage: Stage) -> StageCost:
        self.stages.append(stage)
        t = self.seconds(stage)
        return StageCost(time_s=t, energy_J=1.0, busy_s_by_unit=((Unit.XPU, t / 2),),
                         time_s_by_class=((OpClass.FC, t / 4), (OpClass.MOE, 3 * t / 4)))
