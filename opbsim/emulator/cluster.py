"""A serving system of several devices, and how a multi-device stage is costed.

Parallelism (DEVICES.md "Duplex scheduling"):
- Within a node of ``devices_per_node`` devices: tensor parallelism. Attention heads and dense FFN
  widths are split over the devices, and so is every expert's intermediate width (expert tensor
  parallelism, "ET": each device holds a slice of every expert of its node). The graph builder
  (``build_model(tp=...)``) gives the per-device shapes and the NVLink all-reduces.
- Across ``nodes`` nodes: the non-expert layers are data-parallel (each node holds a replica of
  them and serves its share of the stage's requests) and the experts are expert-parallel (node n
  holds experts n E/M .. (n + 1) E/M - 1). Each MoE layer then adds two all-to-alls over the
  scale-out links (dispatch of the routed token rows before the experts, combine after): each
  device sends 1/tp of its node's ``tokens x top_k`` rows, (M - 1)/M of them leaving the node.
- The stage time is that of the busiest node (most tokens); the energy is that node's times the
  number of nodes (an upper bound when nodes are unevenly loaded).
- With experts split across nodes every node's experts are assumed evenly loaded (balanced
  routing); a skewed or traced routing is supported on one node only.

Capacity (``capacity_batch``): weights plus the KV cache of every running request at its longest
context must fit the HBM of each device. Activations and fragmentation are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from opbsim.emulator.engine import RunStats, run
from opbsim.errors import InputError
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa import assemble
from opbsim.isa.types import Space
from opbsim.workloads.attention import make_shard
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["Cluster", "node_share", "node_expert_tokens", "alltoall_stats"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    """``nodes`` x ``devices_per_node`` copies of ``device``, running placement ``policy``."""

    device: DeviceSpec
    policy: str
    devices_per_node: int = 1
    nodes: int = 1

    def __post_init__(self) -> None:
        for name in ("devices_per_node", "nodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")

    @property
    def tp(self) -> int:
        return self.devices_per_node

    @property
    def devices(self) -> int:
        return self.devices_per_node * self.nodes

    def check(self, model: ModelConfig) -> None:
        """Raise InputError when ``model`` cannot be split over this cluster."""
        make_shard(model, self.tp)
        if self.nodes > 1:
            if not model.is_moe:
                raise InputError(f"{model.name} is dense: expert parallelism over {self.nodes} nodes needs a MoE "
                                 f"model (use --nodes 1)")
            if model.num_experts % self.nodes:
                raise InputError(f"nodes ({self.nodes}) must divide num_experts ({model.num_experts})")
            if model.top_k * self.nodes > model.num_experts:
                raise InputError(f"top_k x nodes ({model.top_k} x {self.nodes}) exceeds num_experts "
                                 f"({model.num_experts}): a node's experts could not take its tokens")

    # -- capacity ----------------------------------------------------------------------------------

    def weight_bytes_per_device(self, model: ModelConfig) -> int:
        """Non-expert weights split over a node's devices, experts over all devices (ET within a
        node, EP across nodes). Uneven splits round up."""
        counts = model.param_counts()
        experts = counts.experts * model.dtype.itemsize_B
        rest = model.weight_bytes - experts
        return math.ceil(rest / self.tp) + math.ceil(experts / self.devices)

    def kv_bytes_per_device(self, model: ModelConfig, context_tokens: int) -> int:
        """KV-cache bytes one request of ``context_tokens`` holds on each device of its node (KV
        heads split over the node's devices, replicated when there are fewer heads than devices)."""
        if model.mla is not None:
            return model.kv_bytes(context_tokens)
        shard = make_shard(model, self.tp)
        return model.kv_bytes(context_tokens) * shard.kv_heads // model.num_kv_heads

    def capacity_batch(self, model: ModelConfig, context_tokens: int) -> int:
        """The most requests of ``context_tokens`` tokens whose KV cache fits next to the weights
        (0 when the weights alone do not fit). Requests are spread evenly over the nodes."""
        hbm_B = self.device.memory(Space.HBM).capacity_B
        free_B = hbm_B - self.weight_bytes_per_device(model)
        per_request_B = self.kv_bytes_per_device(model, context_tokens)
        if free_B <= 0:
            return 0
        return (free_B // per_request_B) * self.nodes


def node_share(stage: Stage, nodes: int) -> Stage:
    """The busiest node's part of ``stage`` when its requests are spread over ``nodes`` nodes:
    decode requests evenly, then each prefill chunk (largest first) to the node with the fewest
    tokens so far. With one node, ``stage`` itself."""
    if nodes == 1:
        return stage
    decode = [len(stage.decode_ctx_tokens) // nodes + (n < len(stage.decode_ctx_tokens) % nodes)
              for n in range(nodes)]
    tokens = list(decode)
    chunks: list[list[PrefillChunk]] = [[] for _ in range(nodes)]
    for c in sorted(stage.prefill, key=lambda c: (-c.new_tokens, -c.past_tokens)):
        n = min(range(nodes), key=lambda i: (tokens[i], i))
        chunks[n].append(c)
        tokens[n] += c.new_tokens
    busiest = max(range(nodes), key=lambda i: (tokens[i], -i))
    ctx = sorted(stage.decode_ctx_tokens, reverse=True)[:decode[busiest]]
    return Stage(prefill=tuple(chunks[busiest]), decode_ctx_tokens=tuple(ctx))


def node_expert_tokens(model: ModelConfig, tokens: int, nodes: int) -> tuple[int, ...]:
    """Per-expert token counts on node 0 under expert parallelism: its ``tokens x top_k`` routed
    rows spread evenly over its E / nodes experts (the first ones get the remainder); the other
    nodes' experts get none on this node's devices."""
    E, k = model.num_experts, model.top_k
    local = E // nodes
    base, extra = divmod(tokens * k, local)
    return tuple((base + (e < extra)) if e < local else 0 for e in range(E))


def alltoall_stats(device: DeviceSpec, rows: int, width: int, nodes: int) -> RunStats:
    """One all-to-all over ``nodes`` nodes on the scale-out links: each device sends ``rows``
    bf16 rows of ``width`` elements, (nodes - 1)/nodes of them to other nodes. Timed by the engine on
    ``device`` with its link bandwidth replaced by ``scale_out_GBps``."""
    per_peer = max(-(-rows // nodes), 1)
    nbytes = nodes * per_peer * width * 2
    text = (f".desc src hbm 0 bf16 [{nodes}, {per_peer}, {width}]\n"
            f".desc dst hbm {nbytes + 256:#x} bf16 [{nodes}, {per_peer}, {width}]\n"
            f"alltoall.dma dst, src, devices={nodes}\n")
    return run(assemble(text, file="<alltoall>"), replace(device, link_GBps=device.scale_out_GBps))
