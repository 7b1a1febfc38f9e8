"""A serving system of several devices, and how a multi-device stage is costed.

The replica's layout is a ``Parallelism`` (workloads/parallel.py): attention tp x dp, experts
ep x etp over the same devices, pp pipeline stages. Devices fill physical nodes of
``node_size`` in rank order (tp innermost), so a collective group lies in one node or spans whole
nodes; hardware/collectives.py times each call on the device's links.

- Attention: each of the dp groups serves its share of the stage's requests (``node_share``: the
  stage time is that of the busiest group), heads split over its tp devices, one all-reduce over
  tp after attention (and after a dense FFN).
- Experts, ep = 1 and dp = 1: every device holds 1/tp of every expert (expert tensor
  parallelism) and the partial sums meet in one all-reduce over tp, as before the experts were
  exchanged.
- Experts otherwise (stage_timer.py adds the collectives): with ep > 1, each device sends its
  1/tp share of its group's routed rows (top_k per token, each to the etp devices of the owning
  expert group) in one all-to-all over the tp x dp devices (dispatch) and gets the weighted partial
  outputs back in a second (combine); with tp > 1 an all-gather over tp then rebuilds the hidden
  state. With ep = 1 and dp > 1 (experts tensor-parallel over all tp x dp devices) the groups'
  hidden states are all-gathered over dp and the partial sums all-reduced over tp x dp. A device
  runs its E/ep experts at 1/etp width on the rows routed to them from the whole stage (balanced
  routing: tokens x top_k / E rows each).
- Pipeline: with pp stages, each iteration's requests flow through the stages in pp micro-batches
  that keep every stage busy (continuous batching fills the pipeline), so an iteration costs the
  sum over all layers at the micro-batch size, plus pp activation hand-overs per stage boundary.
- The energy is the busiest group's times the number of groups (an upper bound when groups are
  unevenly loaded).
- With exchanged experts and balanced routing every expert is evenly loaded; with another routing
  every MoE layer is routed and the busiest device decides it (stage_routed.py, expert_load.py).

Capacity (``capacity_batch``): weights plus the KV cache of every running request at its longest
context must fit the HBM of each device. Activations and fragmentation are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from opbsim.errors import InputError
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.types import Space
from opbsim.workloads.attention import make_shard
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.parallel import Parallelism
from opbsim.workloads.stage import PrefillChunk, Stage
from opbsim.workloads.weight_format import check_layout_blocks

__all__ = ["Cluster", "node_share", "micro_batch", "local_experts", "smallest_tp"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    """A replica laid out by ``parallel`` over copies of ``device`` in nodes of ``node_devices``
    (0: the device's own node size), running placement ``policy``."""

    device: DeviceSpec
    policy: str
    parallel: Parallelism = field(default_factory=Parallelism)
    node_devices: int = 0

    def __post_init__(self) -> None:
        n = self.node_devices
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(f"node_devices must be a non-negative integer, got {n!r}")
        if not isinstance(self.parallel, Parallelism):
            raise InputError(f"parallel must be a Parallelism, got {type(self.parallel).__name__}")

    @classmethod
    def from_nodes(cls, *, device: DeviceSpec, policy: str, devices_per_node: int = 1, nodes: int = 1) -> Cluster:
        """The layout of ``--devices-per-node N --nodes M``: tensor parallel (attention and experts)
        inside each node of N devices, data-parallel attention and expert-parallel experts across
        the M nodes (tp = etp = N, dp = ep = M)."""
        for name, value in (("devices_per_node", devices_per_node), ("nodes", nodes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        return cls(device=device, policy=policy, node_devices=devices_per_node,
                   parallel=Parallelism(tp=devices_per_node, dp=nodes, ep=nodes, etp=devices_per_node))

    @property
    def tp(self) -> int:
        return self.parallel.tp

    @property
    def dp(self) -> int:
        return self.parallel.dp

    @property
    def node_size(self) -> int:
        return self.node_devices or self.device.interconnect.node_devices

    @property
    def devices(self) -> int:
        return self.parallel.devices

    @property
    def devices_per_node(self) -> int:
        return min(self.node_size, self.devices)

    @property
    def nodes(self) -> int:
        return math.ceil(self.devices / self.devices_per_node)

    @property
    def fabric_device(self) -> DeviceSpec:
        """``device`` with its links sized to this cluster's nodes (what collectives are timed on)."""
        ic = self.device.interconnect
        if ic.node_devices == self.node_size:
            return self.device
        return replace(self.device, interconnect=replace(ic, node_devices=self.node_size))

    def group_local(self, devices: int, stride: int) -> int:
        """Devices per node of a group of ``devices`` whose ranks are ``stride`` apart."""
        return max(1, min(devices, self.node_size // stride))

    def check(self, model: ModelConfig) -> None:
        """Raise InputError when ``model`` cannot be split over this cluster."""
        self.parallel.check(model)
        make_shard(model, self.tp)
        check_layout_blocks(model, self.tp, self.parallel.etp)
        if self.devices > self.node_size and self.devices % self.node_size:
            raise InputError(f"{self.devices} devices do not fill nodes of {self.node_size} evenly")

    # -- capacity ----------------------------------------------------------------------------------

    def weight_bytes_per_device(self, model: ModelConfig) -> int:
        """Non-expert weights split over tp, experts over ep x etp, layers over pp (uneven splits
        round up)."""
        experts = model.expert_weight_bytes
        rest = model.weight_bytes - experts
        p = self.parallel
        return math.ceil((math.ceil(rest / p.tp) + math.ceil(experts / (p.ep * p.etp))) / p.pp)

    def kv_bytes_per_device(self, model: ModelConfig, context_tokens: int) -> int:
        """KV-cache bytes one request of ``context_tokens`` tokens holds on each device of its tp
        group (KV heads split over tp, replicated when there are fewer heads than devices; layers
        split over pp)."""
        full = model.kv_bytes(context_tokens)
        if model.mla is None:
            shard = make_shard(model, self.tp)
            full = full * shard.kv_heads // model.num_kv_heads
        return math.ceil(full / self.parallel.pp)

    def capacity_batch(self, model: ModelConfig, context_tokens: int) -> int:
        """The most requests of ``context_tokens`` tokens whose KV cache fits next to the weights
        (0 when the weights alone do not fit). Requests are spread evenly over the dp groups."""
        hbm_B = self.device.memory(Space.HBM).capacity_B
        free_B = hbm_B - self.weight_bytes_per_device(model)
        per_request_B = self.kv_bytes_per_device(model, context_tokens)
        if free_B <= 0:
            return 0
        return (free_B // per_request_B) * self.dp

    def kv_capacity_tokens(self, model: ModelConfig) -> int:
        """The KV-cache tokens that fit next to the weights on each device of a dp group, summed over
        the dp groups (a paged cache: any split over requests; 0 when the weights alone do not fit)."""
        free_B = self.device.memory(Space.HBM).capacity_B - self.weight_bytes_per_device(model)
        return max(0, free_B // self.kv_bytes_per_device(model, 1)) * self.dp


MAX_AUTO_NODES = 16
"""The most nodes the automatic layout (``smallest_tp``) spans."""


def smallest_tp(model: ModelConfig, device: DeviceSpec, policy: str, *, context_tokens: int, batch: int,
                node_devices: int = 0) -> Cluster | None:
    """The smallest cluster whose devices hold the weights and ``batch`` requests of
    ``context_tokens`` tokens (``capacity_batch``): first the smallest tensor-parallel degree inside
    one node (tp dividing the heads, experts tensor-parallel too); when a whole node is not enough,
    the fewest nodes (up to ``MAX_AUTO_NODES``) each running tp = etp = the node's devices, with
    attention data-parallel and the experts split over the nodes (dp = ep = nodes: tensor
    parallelism on the scale-up fabric, expert parallelism across it, as DeepSeek-V3-class models
    are served). None when none of these does."""
    size = node_devices or device.interconnect.node_devices
    layouts = [Parallelism(tp=tp, etp=tp) for tp in range(1, size + 1)]
    layouts += [Parallelism(tp=size, dp=n, ep=n, etp=size) for n in range(2, MAX_AUTO_NODES + 1)]
    for parallel in layouts:
        try:
            cluster = Cluster(device=device, policy=policy, parallel=parallel, node_devices=node_devices)
            cluster.check(model)
        except InputError:
            continue
        if cluster.capacity_batch(model, context_tokens) >= batch:
            return cluster
    return None


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


def micro_batch(stage: Stage, parts: int) -> Stage:
    """The heaviest of ``parts`` micro-batches that split ``stage`` token-wise: the longest-context
    ceil(d / parts) of its d decode requests, and of every prefill chunk the last ceil(n / parts)
    of its n new tokens (the piece with the most past context). With one part, ``stage`` itself."""
    if parts == 1:
        return stage
    d = len(stage.decode_ctx_tokens)
    ctx = tuple(sorted(stage.decode_ctx_tokens, reverse=True)[:-(-d // parts)])
    chunks = []
    for c in stage.prefill:
        piece = -(-c.new_tokens // parts)
        chunks.append(PrefillChunk(piece, c.past_tokens + c.new_tokens - piece, c.final))
    return Stage(prefill=tuple(chunks), decode_ctx_tokens=ctx)


def local_experts(model: ModelConfig, tokens: int, ep: int) -> tuple[ModelConfig, int, tuple[int, ...]]:
    """What one device's E/ep experts do when a stage of ``tokens`` tokens is routed over all E
    under balanced routing: (a model of just those experts, with top_k capped at their number; the
    token count T' of an equivalent stage; each local expert's rows). Every local expert gets
    ``tokens x top_k / E`` rows (the first ones the remainder), and T' x top_k' equals their sum."""
    local, k = model.num_experts // ep, model.top_k
    k_local = min(k, local)
    rows = -(-tokens * k // ep)
    rows = -(-rows // k_local) * k_local  # a whole number of T' tokens
    base, extra = divmod(rows, local)
    counts = tuple(base + (e < extra) for e in range(local))
    return replace(model, num_experts=local, top_k=k_local), rows // k_local, counts
