"""The ops of a layer graph: what each computes, on which tensors, at what ideal cost.

Tensor names are global within a model graph (``L3.qkv``); an op that reads a name depends on the
latest earlier op that wrote it. A ``TensorSpec`` is the part of a named tensor the op touches: the
KV-cache rows a stage appends are ``(2, new tokens, kv heads, head_dim)`` of ``L3.kv_cache``; the
rows an attention op reads are ``(2, context tokens, kv heads, head_dim)`` of the same name.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from opbsim.isa.types import DType
from opbsim.workloads.estimates import Estimates

__all__ = ["Role", "OpKind", "OpClass", "TensorSpec", "Op", "dependencies"]


class Role(enum.Enum):
    """What a tensor holds; placement keeps weights, KV cache and activations in their own sections."""

    WEIGHT = "weight"
    KV_CACHE = "kv_cache"
    ACTIVATION = "activation"


class OpKind(enum.Enum):
    """What an op computes; the compiler lowers each kind to ISA instructions."""

    EMBED = "embed"  # gather the rows of the token (and learned position) embeddings
    NORM = "norm"  # optional residual add, then RMSNorm / LayerNorm over each row
    GEMM = "gemm"  # x W (+ bias): projections, router, LM head
    BATCHED_GEMM = "batched_gemm"  # one GEMM per head (MLA weight absorption)
    QK_NORM = "qk_norm"  # RMSNorm of queries and keys
    ROPE = "rope"  # rotary position embedding of queries and keys
    Q_SCALE = "q_scale"  # a per-position query temperature (Llama 4's layers without RoPE)
    KV_STORE = "kv_store"  # append the new tokens' K and V (or MLA latent) to the cache
    ATTENTION = "attention"  # softmax(q k^T / sqrt(d)) v, causal; prefill chunk or decode batch
    TOPK = "topk"  # softmax over the router logits, then the top-k experts of each token
    DISPATCH = "dispatch"  # copy token rows into per-expert buffers
    FFN = "ffn"  # a whole feed-forward block: up (and gate), activation, down
    COMBINE = "combine"  # weighted sum of each token's expert outputs (and shared-expert output)
    ALL_REDUCE = "all_reduce"  # sum partial results across tensor-parallel devices
    ALL_GATHER = "all_gather"  # concatenate shards across tensor-parallel devices
    LONG_CONV = "long_conv"  # a long convolution by Monarch FFT (workloads/longconv.py)


class OpClass(enum.Enum):
    """The latency-breakdown categories of a serving report."""

    FC = "fc"
    ATTENTION = "attention"
    MOE = "moe"
    COMM = "communication"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: DType
    role: Role = Role.ACTIVATION

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize_B


@dataclass(frozen=True, slots=True)
class Op:
    """One op of a layer graph. ``dtype`` is the storage type of its main operands; ``params``
    holds what the shapes do not say (context lengths, expert index, activation, ...)."""

    name: str
    kind: OpKind
    op_class: OpClass
    dtype: DType
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    estimates: Estimates
    params: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.params, MappingProxyType):
            object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {t.name: t.shape for t in (*self.inputs, *self.outputs)}

    @property
    def weight_B(self) -> int:
        """Bytes of weights the op reads."""
        return sum(t.nbytes for t in self.inputs if t.role is Role.WEIGHT)


def dependencies(ops: Iterable[Op]) -> dict[str, tuple[str, ...]]:
    """For each op (by name, in order), the earlier ops whose outputs it reads.

    An op that writes a tensor it also reads updates it in place and becomes its only writer; an
    op that writes a tensor without reading it fills a part of it (one expert's rows, one chunk's
    attention output), so readers depend on every such writer.
    """
    writers: dict[str, list[str]] = {}
    deps: dict[str, tuple[str, ...]] = {}
    for op in ops:
        reads = {t.name for t in op.inputs}
        deps[op.name] = tuple(dict.fromkeys(w for t in op.inputs for w in writers.get(t.name, ())))
        for name in dict.fromkeys(t.name for t in op.outputs):
            if name in reads:
                writers[name] = [op.name]
            else:
                writers.setdefault(name, []).append(op.name)
    return deps
