"""Composition of Experts (Samba-CoE) on one node: a router model and N expert models.

Model (SN40L paper, arXiv 2405.07518, Composition of Experts; docs/sn40l.md):
- The router and the KV caches live in HBM; HBM left over holds ``cache_slots`` whole experts
  (each sharded tensor-parallel over the node's devices).
- If all N experts fit those slots they stay resident and never switch. Otherwise every expert
  lives in the node's store (SN40L: DDR; DGX: host memory) and the slots are an LRU cache; a miss
  copies the expert to HBM in expert bytes / the node's copy bandwidth. N experts beyond the
  store is out of memory.
- Per batch of B prompts: the router runs once over the batch (a prefill of B prompts); each
  prompt picks an expert (uniformly, from a seeded generator); the (prompt, expert) pairs run in
  turn, each a switch on a miss, then a prefill of the prompt and ``tokens - 1`` decode steps.
- Router and expert times are the discrete-event engine's, for programs the compiler builds for
  the node's device at tensor parallelism = its devices. A decode step is timed once at the mean
  context of the generation (prompt + tokens / 2), not at every context.
- ``nodes_needed``: nodes that serve N experts at tensor-parallel latency: a node whose store is
  DDR keeps its experts there (switching at the copy bandwidth); a node whose store is host memory
  keeps them in HBM (host memory is where they spill, not where they are served from).
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from opbsim.compiler import compile_graph
from opbsim.compiler.policies import default_policy
from opbsim.emulator.engine import run
from opbsim.errors import InputError
from opbsim.hardware.nodes import NodeSpec
from opbsim.isa.types import Space
from opbsim.workloads import PrefillChunk, Stage, build_model, get_preset

__all__ = ["CoEConfig", "CoEResult", "ExpertCache", "ExpertTimes", "expert_times", "simulate_coe", "policy_for"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CoEConfig:
    """``batch`` prompts of ``prompt_tokens`` tokens, ``tokens`` output tokens each, over
    ``experts`` experts; ``batches`` batches are simulated after the cache is warm."""

    experts: int
    batch: int
    tokens: int
    prompt_tokens: int = 128  # assumed: [S] does not state the prompt length of its CoE runs
    expert_model: str = "llama-2-7b"  # [S] Samba-CoE experts are Llama-2-7B
    router_model: str = "llama-2-7b"  # assumed: a 7B router, as SambaNova's published Samba-CoE routers
    batches: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("experts", "batch", "tokens", "prompt_tokens", "batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class ExpertTimes:
    """Engine times on one node: ``prefill_s`` one prompt through one expert, ``decode_s`` one
    output token, ``router_s`` the router over a batch."""

    prefill_s: float
    decode_s: float
    router_s: float


@dataclass(frozen=True, slots=True)
class CoEResult:
    """Per batch (means over the simulated batches). Times are None when ``out_of_memory``.
    ``experts_per_node``: experts one node serves at tensor-parallel latency; ``store_experts``:
    the most experts one node holds at all (beyond them: out of memory)."""

    node: str
    config: CoEConfig
    expert_B: int
    cache_slots: int
    resident: bool
    out_of_memory: bool
    switch_s: float
    switches_per_batch: float
    switch_time_s: float | None
    router_time_s: float | None
    exec_time_s: float | None
    total_time_s: float | None
    nodes_needed: int
    experts_per_node: int
    store_experts: int


class ExpertCache:
    """HBM slots holding whole experts, least recently used evicted first."""

    def __init__(self, slots: int, warm: range = range(0)):
        if slots < 1:
            raise InputError(f"an expert cache needs at least one slot, got {slots}")
        self.slots = slots
        self._lru: OrderedDict[int, None] = OrderedDict((e, None) for e in list(warm)[:slots])

    def use(self, expert: int) -> bool:
        """Run ``expert``: True on a hit; on a miss it is loaded, evicting the least recently used."""
        if expert in self._lru:
            self._lru.move_to_end(expert)
            return True
        if len(self._lru) >= self.slots:
            self._lru.popitem(last=False)
        self._lru[expert] = None
        return False

    @property
    def resident(self) -> tuple[int, ...]:
        """Experts in HBM, least recently used first."""
        return tuple(self._lru)


def policy_for(node: NodeSpec) -> str:
    """The compiler policy a node's device runs: its default (its device model's: dataflow kernels on
    SN40L, the GPU baseline on a DGX)."""
    return default_policy(node.device)


@functools.lru_cache(maxsize=256)
def _stage_s(node: NodeSpec, model: str, stage: Stage) -> float:
    cfg = get_preset(model)
    compiled = compile_graph(build_model(cfg, stage, tp=node.devices), node.device, policy_for(node))
    return run(compiled.program, node.device).time_s


def expert_times(node: NodeSpec, cfg: CoEConfig) -> ExpertTimes:
    """The engine's times of the expert and router programs on ``node`` (memoised)."""
    P, T, B = cfg.prompt_tokens, cfg.tokens, cfg.batch
    return ExpertTimes(
        prefill_s=_stage_s(node, cfg.expert_model, Stage(prefill=(PrefillChunk(P),))),
        decode_s=_stage_s(node, cfg.expert_model, Stage.decode(1, P + max(T // 2, 1))),
        router_s=_stage_s(node, cfg.router_model, Stage(prefill=(PrefillChunk(P),) * B)),
    )


def _hbm_slots(node: NodeSpec, cfg: CoEConfig, expert_B: int) -> int:
    expert, router = get_preset(cfg.expert_model), get_preset(cfg.router_model)
    kv_B = expert.kv_bytes(cfg.prompt_tokens + cfg.tokens) + cfg.batch * router.kv_bytes(cfg.prompt_tokens)
    free = node.hbm_B - router.weight_bytes - kv_B
    slots = free // expert_B
    if slots < 1:
        raise InputError(f"node {node.name}: {free / 1e9:.1f} GB of HBM left after the router and the KV caches "
                         f"cannot hold one {cfg.expert_model} expert ({expert_B / 1e9:.1f} GB)")
    return int(slots)


def _misses(cfg: CoEConfig, slots: int) -> int:
    """Misses over ``cfg.batches`` batches after a warm start (the cache full of experts)."""
    rng = np.random.default_rng(cfg.seed)
    cache = ExpertCache(slots, warm=range(cfg.experts))
    picks = rng.integers(0, cfg.experts, size=cfg.batches * cfg.batch)
    return sum(not cache.use(int(e)) for e in picks)


def simulate_coe(node: NodeSpec, cfg: CoEConfig) -> CoEResult:
    """One batch of Composition-of-Experts serving on ``node``, averaged as the module states."""
    expert_B = get_preset(cfg.expert_model).weight_bytes
    slots = _hbm_slots(node, cfg, expert_B)
    in_store = node.store_B // expert_B
    per_node = in_store if node.store_space is Space.DDR else slots
    nodes_needed = max(1, math.ceil(cfg.experts / per_node))
    resident = cfg.experts <= slots
    oom = not resident and cfg.experts > in_store
    switch_s = expert_B / (node.copy_GBps * 1e9)
    common = dict(node=node.name, config=cfg, expert_B=expert_B, cache_slots=slots, resident=resident,
                  out_of_memory=oom, switch_s=switch_s, nodes_needed=nodes_needed, experts_per_node=per_node,
                  store_experts=max(in_store, slots))
    if oom:
        return CoEResult(**common, switches_per_batch=0.0, switch_time_s=None, router_time_s=None,
                         exec_time_s=None, total_time_s=None)
    switches = 0.0 if resident else _misses(cfg, slots) / cfg.batches
    t = expert_times(node, cfg)
    exec_s = cfg.batch * (t.prefill_s + (cfg.tokens - 1) * t.decode_s)
    switch_time = switches * switch_s
    return CoEResult(**common, switches_per_batch=switches, switch_time_s=switch_time, router_time_s=t.router_s,
                     exec_time_s=exec_s, total_time_s=t.router_s + switch_time + exec_s)
