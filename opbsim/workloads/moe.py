"""The feed-forward sublayer: a dense FFN, or a MoE block (router, top-k, dispatch, one FFN op per
expert that receives tokens, shared experts, combine).

Under tensor parallelism every device holds a 1/tp slice of every expert's intermediate width
(expert tensor parallelism), so all devices see the same token counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from opbsim.errors import InputError
from opbsim.isa.types import DType
from opbsim.workloads import primitives as P
from opbsim.workloads.attention import Shard
from opbsim.workloads.models import ModelConfig, Router, RouterScoring
from opbsim.workloads.ops import Op, OpClass, OpKind, TensorSpec
from opbsim.workloads.weight_format import fp8_block

__all__ = ["dense_ffn_ops", "moe_ops", "check_expert_tokens", "topk_flops"]


def dense_ffn_ops(model: ModelConfig, shard: Shard, prefix: str, x_norm: TensorSpec) -> list[Op]:
    return [P.ffn(f"{prefix}.ffn", x_norm, shard.width(model.dense_ffn), f"{prefix}.ffn_out", act_kind=model.ffn_act,
                  prefix=f"{prefix}.ffn", op_class=OpClass.FC, fp8_block=fp8_block(model))]


def check_expert_tokens(model: ModelConfig, tokens: int, expert_tokens: Sequence[int]) -> tuple[int, ...]:
    """``expert_tokens[e]`` is the number of tokens routed to expert e; each token goes to top_k
    distinct experts, so every count is in 0..tokens and they sum to tokens x top_k."""
    counts = tuple(int(n) for n in np.asarray(expert_tokens, dtype=np.int64).ravel())
    E, k = model.num_experts, model.top_k
    if len(counts) != E:
        raise InputError(f"expert_tokens has {len(counts)} entries for {E} experts")
    if any(not 0 <= n <= tokens for n in counts):
        raise InputError(f"expert_tokens must each be in 0..{tokens} (the stage's tokens)")
    if sum(counts) != tokens * k:
        raise InputError(f"expert_tokens must sum to tokens x top_k ({tokens} x {k} = {tokens * k}), "
                         f"got {sum(counts)}")
    return counts


def topk_flops(model: ModelConfig, tokens: int) -> int:
    """Operations of the top-k op for ``tokens`` rows of router logits (``Router``'s definition):
    SOFTMAX a softmax over all E logits and a k-pass selection (k E); SOFTMAX_TOPK the selection over
    the logits and a softmax over the k chosen; SIGMOID a sigmoid per logit, the correction-bias add
    (E), and with groups the two-largest pass per group (2 E), the group sums (n_group), the group
    selection (topk_group n_group) and the selection among the kept experts (k E topk_group / n_group).
    Then renormalising (a sum and a division per weight, 2 k) and the routed scaling (k)."""
    E, k, r = model.num_experts, model.top_k, model.router
    if r.scoring is RouterScoring.SOFTMAX:
        per_row = P.SOFTMAX_FLOPS * E + k * E
    elif r.scoring is RouterScoring.SOFTMAX_TOPK:
        per_row = k * E + P.SOFTMAX_FLOPS * k
    else:
        per_row = P.SIGMOID_FLOPS * E + (E if r.correction_bias else 0)
        if r.group_limited:
            per_row += 2 * E + r.n_group + r.topk_group * r.n_group + k * E * r.topk_group // r.n_group
        else:
            per_row += k * E
    per_row += (2 * k if model.norm_topk_prob else 0) + (k if r.routed_scaling_factor != 1.0 else 0)
    return tokens * per_row


def moe_ops(model: ModelConfig, shard: Shard, prefix: str, x_norm: TensorSpec,
            expert_tokens: Sequence[int]) -> list[Op]:
    """Ops from ``x_norm`` to ``<prefix>.ffn_out``; experts with no tokens get no op."""
    T, h, dt = x_norm.shape[0], model.hidden_size, model.dtype
    E, k = model.num_experts, model.top_k
    counts = check_expert_tokens(model, T, expert_tokens)
    logits = P.act(f"{prefix}.router_logits", (T, E), DType.FP32)
    weights, ids = P.act(f"{prefix}.topk_weights", (T, k), DType.FP32), P.act(f"{prefix}.topk_ids", (T, k), DType.I32)
    r = model.router
    router_bias = P.weight(f"{prefix}.b_router", (E,), dt) if r.bias else None
    topk_in = (logits, P.weight(f"{prefix}.e_score_correction_bias", (E,), DType.FP32)) if r.correction_bias else (
        logits,)
    on_input = r.weight_on_input  # the dispatch scales each routed row by its weight (Llama 4)
    ops = [
        P.gemm(f"{prefix}.router", x_norm, P.weight(f"{prefix}.w_router", (h, E), dt), logits.name,
               op_class=OpClass.MOE, out_dtype=DType.FP32, bias=router_bias),
        P.elementwise(f"{prefix}.topk", OpKind.TOPK, topk_in, (weights, ids), flops=topk_flops(model, T),
                      op_class=OpClass.MOE,
                      params={"top_k": k, **({} if r == Router() else {
                          "scoring": r.scoring.value, "n_group": r.n_group, "topk_group": r.topk_group,
                          "routed_scaling_factor": r.routed_scaling_factor})}),
        P.elementwise(f"{prefix}.dispatch", OpKind.DISPATCH, (x_norm, ids, *((weights,) if on_input else ())),
                      (P.act(f"{prefix}.dispatched", (T * k, h), dt),), flops=T * k * h if on_input else 0,
                      op_class=OpClass.MOE, params={"weight_on_input": True} if on_input else None),
    ]
    width = shard.width(model.expert_ffn)
    for e, n in enumerate(counts):
        if n:
            ops.append(P.ffn(f"{prefix}.expert.{e}", P.act(f"{prefix}.dispatched", (n, h), dt), width,
                             f"{prefix}.expert_out", act_kind=model.ffn_act, prefix=f"{prefix}.expert.{e}",
                             op_class=OpClass.MOE, bias=model.expert_bias, params={"expert": e},
                             fp8_block=fp8_block(model, routed=True)))
    combine_in = [P.act(f"{prefix}.expert_out", (T * k, h), dt), *(() if on_input else (weights,)), ids]
    if model.num_shared_experts:
        shared = P.ffn(f"{prefix}.shared_experts", x_norm, shard.width(model.num_shared_experts * model.shared_ffn),
                       f"{prefix}.shared_out", act_kind=model.ffn_act, prefix=f"{prefix}.shared",
                       op_class=OpClass.MOE, output_gate=model.shared_expert_gate,
                       params={"experts": model.num_shared_experts}, fp8_block=fp8_block(model))
        ops.append(shared)
        combine_in.append(shared.outputs[0])
    ops.append(P.elementwise(f"{prefix}.combine", OpKind.COMBINE, combine_in, (P.act(f"{prefix}.ffn_out", (T, h), dt),),
                             flops=(1 if on_input else P.COMBINE_FLOPS_PER_ROW) * T * k * h + 2 * T * h,
                             op_class=OpClass.MOE, params={"weight_on_input": True} if on_input else None))
    # the (weighted) adds of the routed rows, the fp32 accumulator's zero fill and its bf16 output (the
    # shared experts' sum or a conversion)
    return ops
