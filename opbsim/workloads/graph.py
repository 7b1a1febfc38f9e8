"""Layer graphs: the ops of a decoder layer, and of the whole model, for one serving stage.

A decoder layer is: attention norm (with the residual add of the previous layer fused in),
the attention sublayer (attention.py, or attention_mla.py for MLA), an all-reduce under tensor
parallelism, the FFN norm (residual add fused), the FFN sublayer (moe.py: dense or MoE), and an
all-reduce. The model adds the embedding before the first layer and, after the last, the final norm
and the LM head over the rows that sample a token (``Stage.logit_rows``), with an all-gather of the
vocabulary shards under tensor parallelism.

Shapes and estimates are per device: with ``tp`` devices every op is this device's shard and the
collectives carry what it sends. Ops are in a valid execution order; ``dependencies`` gives the DAG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opbsim.errors import InputError
from opbsim.isa.types import DType
from opbsim.workloads import primitives as P
from opbsim.workloads.attention import Shard, attention_ops, make_shard
from opbsim.workloads.attention_mla import mla_ops
from opbsim.workloads.estimates import Estimates, total
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.moe import dense_ffn_ops, moe_ops
from opbsim.workloads.ops import Op, OpClass, OpKind, TensorSpec, dependencies
from opbsim.workloads.routing import BalancedRouting, Routing, expert_counts
from opbsim.workloads.stage import Stage
from opbsim.workloads.weight_format import check_layout_blocks

__all__ = ["LayerGraph", "ModelGraph", "build_layer", "build_model", "model_estimates"]


@dataclass(frozen=True, slots=True)
class LayerGraph:
    """The ops of decoder layer ``layer`` in execution order; ``moe`` tells its FFN kind."""

    layer: int
    moe: bool
    ops: tuple[Op, ...]

    @property
    def estimates(self) -> Estimates:
        return total(op.estimates for op in self.ops)

    def op(self, name: str) -> Op:
        """The op called ``name``, with or without the ``L<layer>.`` prefix."""
        full = name if name.startswith(f"L{self.layer}.") else f"L{self.layer}.{name}"
        for op in self.ops:
            if op.name == full:
                return op
        raise KeyError(name)

    def by_class(self) -> dict[OpClass, Estimates]:
        return _by_class(self.ops)


@dataclass(frozen=True, slots=True)
class ModelGraph:
    """The whole model for one stage: ``prologue`` (embedding), ``layers``, ``epilogue`` (final
    norm, LM head, logits all-gather)."""

    model: ModelConfig
    stage: Stage
    tp: int
    prologue: tuple[Op, ...]
    layers: tuple[LayerGraph, ...]
    epilogue: tuple[Op, ...]

    @property
    def ops(self) -> tuple[Op, ...]:
        return self.prologue + tuple(op for layer in self.layers for op in layer.ops) + self.epilogue

    @property
    def layer_of(self) -> dict[str, int]:
        """The decoder layer of each op of the layers, by op name (prologue and epilogue ops are absent)."""
        return {op.name: layer.layer for layer in self.layers for op in layer.ops}

    @property
    def estimates(self) -> Estimates:
        return total(op.estimates for op in self.ops)

    def by_class(self) -> dict[OpClass, Estimates]:
        return _by_class(self.ops)

    def dependencies(self) -> dict[str, tuple[str, ...]]:
        return dependencies(self.ops)


def _by_class(ops: Sequence[Op]) -> dict[OpClass, Estimates]:
    return {c: total(op.estimates for op in ops if op.op_class is c) for c in OpClass
            if any(op.op_class is c for op in ops)}


def build_layer(model: ModelConfig, stage: Stage, layer: int, *, expert_tokens: Sequence[int] | None = None,
                tp: int = 1) -> LayerGraph:
    """Decoder layer ``layer`` for ``stage``. ``expert_tokens`` (MoE layers) gives each expert's token
    count; by default tokens are spread evenly (``BalancedRouting``)."""
    if not isinstance(layer, int) or not 0 <= layer < model.num_layers:
        raise InputError(f"layer {layer!r} is outside 0..{model.num_layers - 1}")
    shard = make_shard(model, tp)
    check_layout_blocks(model, tp, None)  # the experts' width is the cluster's to check (etp)
    if model.is_moe_layer(layer) and expert_tokens is None:
        expert_tokens = _counts(model, BalancedRouting(model.num_experts, model.top_k), layer, stage.tokens)
    stream = P.act("x0" if layer == 0 else f"L{layer - 1}.h", (stage.tokens, model.hidden_size), model.dtype)
    delta = None if layer == 0 else P.act(f"L{layer - 1}.ffn_out", stream.shape, model.dtype)
    return _layer(model, shard, stage, layer, stream, delta, expert_tokens)


def build_model(model: ModelConfig, stage: Stage, *, routing: Routing | None = None, tp: int = 1) -> ModelGraph:
    """All layers for ``stage``; each MoE layer's token counts come from ``routing.route(layer,
    stage.tokens)`` (default ``BalancedRouting``)."""
    shard = make_shard(model, tp)
    check_layout_blocks(model, tp, None)  # the experts' width is the cluster's to check (etp)
    if model.is_moe:
        routing = routing or BalancedRouting(model.num_experts, model.top_k)
        if (routing.num_experts, routing.top_k) != (model.num_experts, model.top_k):
            raise InputError(f"routing has {routing.num_experts} experts, top-{routing.top_k}; the model "
                             f"{model.num_experts}, top-{model.top_k}")
    T, h, dt = stage.tokens, model.hidden_size, model.dtype
    prologue = (_embed(model, T),)
    stream, delta = prologue[0].outputs[0], None
    layers = []
    for i in range(model.num_layers):
        counts = _counts(model, routing, i, T) if model.is_moe_layer(i) else None
        layers.append(_layer(model, shard, stage, i, stream, delta, counts))
        stream, delta = P.act(f"L{i}.h", (T, h), dt), P.act(f"L{i}.ffn_out", (T, h), dt)
    return ModelGraph(model, stage, tp, prologue, tuple(layers), _head(model, shard, stage.logit_rows, stream, delta))


def model_estimates(model: ModelConfig, stage: Stage, *, tp: int = 1) -> dict[OpClass, Estimates]:
    """``build_model(model, stage, tp=tp).by_class()`` under balanced routing, building one layer of each
    kind: layers after the first differ only in their names unless their FFN (dense or MoE) or their
    attention (``layer_attention``, RoPE or not) differ, so one of each kind stands for all of it."""
    kinds: dict[tuple, list[int]] = {}
    for i in range(1, model.num_layers):
        key = (model.is_moe_layer(i), model.layer_attention(i), model.layer_has_rope(i))
        kinds.setdefault(key, [i, 0])[1] += 1
    by_class: dict[OpClass, Estimates] = {}
    layers = [(build_layer(model, stage, i, tp=tp).ops, n) for i, n in [(0, 1), *kinds.values()]]
    last = P.act(f"L{model.num_layers - 1}.h", (stage.tokens, model.hidden_size), model.dtype)
    delta = P.act(f"L{model.num_layers - 1}.ffn_out", last.shape, model.dtype)
    edges = ((_embed(model, stage.tokens), *_head(model, make_shard(model, tp), stage.logit_rows, last, delta)), 1)
    for ops, n in [*layers, edges]:
        for c, e in _by_class(ops).items():
            by_class[c] = by_class.get(c, Estimates(0, 0, 0)) + e.scaled(n)
    return {c: by_class[c] for c in OpClass if c in by_class}


def _counts(model: ModelConfig, routing: Routing, layer: int, tokens: int) -> tuple[int, ...]:
    return tuple(int(n) for n in expert_counts(routing.route(layer, tokens), model.num_experts))


def _layer(model: ModelConfig, shard: Shard, stage: Stage, layer: int, stream: TensorSpec, delta: TensorSpec | None,
           expert_tokens: Sequence[int] | None) -> LayerGraph:
    L, T, h, dt = f"L{layer}", stage.tokens, model.hidden_size, model.dtype
    ops = [P.norm(f"{L}.attn_norm", stream, _norm_weights(model, f"{L}.attn_norm"), f"{L}.x_norm", kind=model.norm,
                  residual=delta, sum_out=f"{L}.x" if delta is not None else None)]
    x = P.act(f"{L}.x", (T, h), dt) if delta is not None else stream
    x_norm = ops[0].outputs[0]
    if model.mla is not None:
        ops += mla_ops(model, shard, stage, L, x_norm)
    else:
        ops += attention_ops(model, shard, stage, L, x_norm, layer=layer)
    attn_out = P.act(f"{L}.attn_out", (T, h), dt)
    if shard.tp > 1:
        ops.append(P.collective(f"{L}.attn_all_reduce", OpKind.ALL_REDUCE, attn_out, attn_out.name, tp=shard.tp,
                                out_shape=attn_out.shape))
    ops.append(P.norm(f"{L}.ffn_norm", x, _norm_weights(model, f"{L}.ffn_norm"), f"{L}.h_norm", kind=model.norm,
                      residual=attn_out, sum_out=f"{L}.h"))
    h_norm = ops[-1].outputs[0]
    moe = model.is_moe_layer(layer)
    ops += moe_ops(model, shard, L, h_norm, expert_tokens) if moe else dense_ffn_ops(model, shard, L, h_norm)
    if shard.tp > 1:
        out = P.act(f"{L}.ffn_out", (T, h), dt)
        ops.append(P.collective(f"{L}.ffn_all_reduce", OpKind.ALL_REDUCE, out, out.name, tp=shard.tp,
                                out_shape=out.shape))
    return LayerGraph(layer, moe, tuple(ops))


def _norm_weights(model: ModelConfig, prefix: str) -> tuple[TensorSpec, ...]:
    w = (P.weight(f"{prefix}.weight", (model.hidden_size,), model.dtype),)
    if model.norm.params_per_dim == 2:
        w += (P.weight(f"{prefix}.bias", (model.hidden_size,), model.dtype),)
    return w


def _embed(model: ModelConfig, tokens: int) -> Op:
    """Gathers ``tokens`` rows of the embedding table (and adds learned position embeddings)."""
    h, dt = model.hidden_size, model.dtype
    inputs = [P.act("token_ids", (tokens,), DType.I32), P.weight("embed_tokens", (tokens, h), dt)]
    if model.learned_positions:
        inputs.append(P.weight("embed_positions", (tokens, h), dt))
    return P.elementwise("embed", OpKind.EMBED, inputs, (P.act("x0", (tokens, h), dt),),
                         flops=tokens * h if model.learned_positions else 0)


def _head(model: ModelConfig, shard: Shard, rows: int, stream: TensorSpec, delta: TensorSpec | None) -> tuple[Op, ...]:
    h, dt = model.hidden_size, model.dtype
    if rows == 0:
        return ()
    last = lambda t: P.act(t.name, (rows, h), dt)  # noqa: E731
    ops = [P.norm("final_norm", last(stream), _norm_weights(model, "final_norm"), "final_x", kind=model.norm,
                  residual=None if delta is None else last(delta))]
    vocab = shard.width(model.vocab_size)
    table = "embed_tokens" if model.tie_word_embeddings else "lm_head"
    ops.append(P.gemm("lm_head", ops[0].outputs[0], P.weight(table, (h, vocab), dt), "logits", op_class=OpClass.FC))
    if shard.tp > 1:
        ops.append(P.collective("logits_all_gather", OpKind.ALL_GATHER, ops[-1].outputs[0], "logits", tp=shard.tp,
                                out_shape=(rows, model.vocab_size)))
    return tuple(ops)
