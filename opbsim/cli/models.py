"""``opbsim models``: the model presets, and one model's sizes and per-op Op/B at a batch and context.

Bad input (an unknown name, a bad config.json, a batch or tp that does not fit) raises
``InputError``, which the ``opbsim`` group prints as one line with exit status 1.
"""

from __future__ import annotations

import json

import click

__all__ = ["models_group", "model_summary"]


@click.group("models", invoke_without_command=True)
@click.pass_context
def models_group(ctx: click.Context) -> None:
    """List the model presets (or `models show NAME|PATH|ORG/NAME` for one model)."""
    if ctx.invoked_subcommand is None:
        click.echo(_presets_table())


@models_group.command("show")
@click.argument("model")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Decoding requests in the stage.")
@click.option("--ctx", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Context (KV-cache tokens) of each decoding request.")
@click.option("--prefill", type=click.IntRange(min=0), default=0, show_default=True,
              help="Add one prefill chunk of this many prompt tokens to the stage.")
@click.option("--tp", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tensor-parallel devices; shapes and Op/B are per device.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def show_cmd(model: str, batch: int, ctx: int, prefill: int, tp: int, as_json: bool) -> None:
    """Sizes of MODEL (a preset name, a config.json, a folder holding one, or a Hugging Face id
    org/name in the local Hugging Face cache) and the Op/B of each op of one stage: BATCH decode
    tokens at context CTX (experts get balanced token counts)."""
    from opbsim.workloads import load_model

    summary = model_summary(load_model(model), batch=batch, ctx=ctx, prefill=prefill, tp=tp)
    click.echo(json.dumps(summary, indent=2) if as_json else _show_text(summary))


def model_summary(model, *, batch: int, ctx: int, prefill: int = 0, tp: int = 1) -> dict:
    """A JSON-ready description of ``model`` and of the ops of one stage (one dense and one MoE layer
    where the model has them, then the whole model), and whether ``opbsim simulate`` can run it:
    ``runs`` (every usual device compiles it; None: not checked, ``runs_note`` says why),
    ``cannot_run`` (device -> the compiler's messages)."""
    from opbsim.emulator.support import lowering_blockers, unchecked_reason, usual_devices
    from opbsim.workloads import PrefillChunk, Stage, build_layer
    from opbsim.workloads.estimates import total
    from opbsim.workloads.graph import model_estimates

    stage = Stage(prefill=(PrefillChunk(prefill),) if prefill else (), decode_ctx_tokens=(ctx,) * batch)
    first_dense = next((i for i in range(model.num_layers) if not model.is_moe_layer(i)), None)
    first_moe = next((i for i in range(model.num_layers) if model.is_moe_layer(i)), None)
    shown = [build_layer(model, stage, i, tp=tp) for i in sorted({first_dense, first_moe} - {None})]
    per_class = model_estimates(model, stage, tp=tp)
    whole = total(per_class.values())
    unchecked = unchecked_reason(model)
    blockers = {} if unchecked else lowering_blockers(model)
    return {
        "name": model.name, "source": model.source,
        "hidden_size": model.hidden_size, "num_layers": model.num_layers, "num_heads": model.num_heads,
        "num_kv_heads": model.num_kv_heads, "head_dim": model.head_dim, "attention": model.attention,
        "group_size": model.group_size, "num_experts": model.num_experts, "top_k": model.top_k,
        "expert_ffn": model.expert_ffn, "num_shared_experts": model.num_shared_experts, "shared_ffn": model.shared_ffn,
        "dense_ffn": model.dense_ffn, "first_dense_layers": model.first_dense_layers, "moe_every": model.moe_every,
        "num_moe_layers": model.num_moe_layers,
        "ffn_act": model.ffn_act.value, "norm": model.norm.value, "vocab_size": model.vocab_size,
        "tie_word_embeddings": model.tie_word_embeddings, "sliding_window": model.sliding_window,
        "mla": None if model.mla is None else {f: getattr(model.mla, f) for f in model.mla.__slots__},
        "rope_theta": model.rope_theta,
        "rope_scaling": None if model.rope_scaling is None else {
            f: getattr(model.rope_scaling, f) for f in model.rope_scaling.__slots__},
        "norm_eps": model.norm_eps, "norm_topk_prob": model.norm_topk_prob,
        "dtype": model.dtype.name.lower(), "weight_dtype": model.weight_dtype.name.lower(),
        "kv_dtype": model.kv_dtype.name.lower(),
        "runs": None if unchecked else not blockers, "runs_note": unchecked, "runs_checked_on": list(usual_devices()),
        "cannot_run": {d: list(errors) for d, errors in blockers.items()},
        "params_total": model.params_total, "params_active": model.params_active,
        "weight_bytes": model.weight_bytes, "kv_bytes_per_token": model.kv_bytes_per_token,
        "stage": {"batch": batch, "ctx": ctx, "prefill": prefill, "tp": tp,
                  "kv_cache_bytes": batch * model.kv_bytes(ctx) + (model.kv_bytes(prefill) if prefill else 0)},
        "layers": [{"layer": layer.layer, "moe": layer.moe, "ops": _ops(layer.ops)} for layer in shown],
        "total": _est(whole) | {"per_class": {c.value: _est(e) for c, e in per_class.items()}},
    }


def _est(e) -> dict:
    return {"flops": e.flops, "bytes": e.bytes_B, "op_per_B": round(e.op_per_B, 4), "link_bytes": e.link_B}


def _ops(ops) -> list[dict]:
    """One row per op; the experts of a layer are one row (``count`` of them)."""
    rows: dict[str, dict] = {}
    for op in ops:
        base = op.name.split(".", 1)[1]
        key = "expert" if base.startswith("expert.") else base
        tokens = op.params.get("tokens")
        if key not in rows:
            rows[key] = {"op": key, "kind": op.kind.value, "class": op.op_class.value, "count": 0, "flops": 0,
                         "bytes": 0, "link_bytes": 0, "tokens": [], "op_per_B": []}
        row = rows[key]
        row["count"] += 1
        row["flops"] += op.estimates.flops
        row["bytes"] += op.estimates.bytes_B
        row["link_bytes"] += op.estimates.link_B
        row["op_per_B"].append(round(op.estimates.op_per_B, 4))
        if tokens is not None:
            row["tokens"].append(tokens)
    for row in rows.values():
        ratios = row.pop("op_per_B")
        row["op_per_B"] = round(row["flops"] / row["bytes"], 4) if row["bytes"] else None
        row["op_per_B_min"], row["op_per_B_max"] = min(ratios), max(ratios)
        if not row["tokens"]:
            del row["tokens"]
    return list(rows.values())


def _presets_table() -> str:
    from opbsim.emulator.support import usual_devices
    from opbsim.report.tables import format_table
    from opbsim.workloads import PRESETS

    devices = usual_devices()
    rows = []
    for name, m in PRESETS.items():
        experts = f"{m.num_experts} top-{m.top_k}" + (f" +{m.num_shared_experts}s" if m.num_shared_experts else "")
        rows.append((name, str(m.num_layers), str(m.hidden_size), f"{m.num_heads}/{m.num_kv_heads}", m.attention,
                     experts if m.is_moe else "-", f"{m.params_total / 1e9:.1f}B", f"{m.params_active / 1e9:.1f}B",
                     _runs_cell(m, devices), m.source))
    header = ("model", "layers", "hidden", "heads/kv", "attention", "experts", "params", "active", "runs", "source")
    return (format_table(header, rows) + f"\n\nruns: whether `opbsim simulate` compiles the model for "
            f"{', '.join(devices)} (`opbsim models show NAME` says why not; ? not checked); a model too large "
            "for one device runs on the fewest that hold it, or on the layout --tp/--ep/--pp give.")


def _runs_cell(model, devices: tuple[str, ...]) -> str:
    """``yes``, ``no``, the devices that compile the model when only some do, or ``?`` (not checked)."""
    from opbsim.emulator.support import lowering_blockers, unchecked_reason

    if unchecked_reason(model):
        return "?"
    blockers = lowering_blockers(model, devices)
    if not blockers:
        return "yes"
    ok = [d for d in devices if d not in blockers]
    return ", ".join(ok) if ok else "no"


def _runs_text(s: dict) -> str:
    """The ``runs in simulate`` row: the devices, or the compiler's messages (once when every
    device gives the same)."""
    if s["runs"] is None:
        return s["runs_note"]
    if s["runs"]:
        return f"yes (compiles for {', '.join(s['runs_checked_on'])})"
    why = {d: "; ".join(errors) for d, errors in s["cannot_run"].items()}
    if len(set(why.values())) == 1 and len(why) == len(s["runs_checked_on"]):
        return f"no: {next(iter(why.values()))}"
    return "no on " + "; ".join(f"{d}: {w}" for d, w in why.items())


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def _number(x: float) -> str:
    return str(int(x)) if x.is_integer() else f"{x:g}"


def _rope(s: dict) -> str:
    if not s["rope_theta"]:
        return "- (no RoPE)"
    scaling = s["rope_scaling"]
    if scaling is None:
        return _number(s["rope_theta"])
    factor = "" if scaling["factor"] is None else f" x{_number(scaling['factor'])}"
    return f"{_number(s['rope_theta'])}, {scaling['kind']} scaling{factor} (frequencies only: cost unchanged)"


def _show_text(s: dict) -> str:
    from opbsim.report.tables import format_table

    st = s["stage"]
    experts = "-" if not s["num_experts"] else (
        f"{s['num_experts']} x {s['expert_ffn']}, top-{s['top_k']}"
        + (" (renormalised)" if s["norm_topk_prob"] else "")
        + (f", {s['num_shared_experts']} shared x {s['shared_ffn']}" if s["num_shared_experts"] else ""))
    facts = [
        ("layers x hidden", f"{s['num_layers']} x {s['hidden_size']}"),
        ("attention", f"{s['attention']}: {s['num_heads']} heads / {s['num_kv_heads']} kv heads x {s['head_dim']}"
                      f" (group {s['group_size']})"
                      + (f", sliding window {s['sliding_window']}" if s["sliding_window"] else "")),
        ("experts", experts),
        ("dense FFN", str(s["dense_ffn"] or "-")),
        ("MoE layers", f"{s['num_moe_layers']} of {s['num_layers']} (first {s['first_dense_layers']} dense, then "
                       f"every {s['moe_every']})" if s["num_experts"] else "-"),
        ("FFN form / norm", f"{s['ffn_act']} / {s['norm']} (eps {s['norm_eps']:g})"),
        ("RoPE base", _rope(s)),
        ("vocabulary", f"{s['vocab_size']}" + (" (tied)" if s["tie_word_embeddings"] else "")),
        ("params total", f"{s['params_total'] / 1e9:.2f}e9 ({s['params_total']:,})"),
        ("params active", f"{s['params_active'] / 1e9:.2f}e9 ({s['params_active']:,})"),
        ("weights", f"{_size(s['weight_bytes'])} ({s['weight_dtype']})"),
        ("KV cache per token", f"{_size(s['kv_bytes_per_token'])} ({s['kv_bytes_per_token']:,} B, {s['kv_dtype']})"),
        (f"KV cache, batch {st['batch']} x ctx {st['ctx']}", _size(st["kv_cache_bytes"])),
        ("runs in simulate", _runs_text(s)),
    ]
    parts = [f"{s['name']}  ({s['source']})", format_table(("parameter", "value"), facts)]
    stage = f"batch {st['batch']} decode tokens at context {st['ctx']}" + (
        f" + a {st['prefill']}-token prefill chunk" if st["prefill"] else "") + f", tp {st['tp']}"
    for layer in s["layers"]:
        rows = []
        for r in layer["ops"]:
            ratio = "-" if r["op_per_B"] is None else f"{r['op_per_B']:.2f}"
            if r["count"] > 1 and r["op_per_B_min"] != r["op_per_B_max"]:
                ratio += f" ({r['op_per_B_min']:.2f}..{r['op_per_B_max']:.2f})"
            tokens = r.get("tokens")
            tok = "-" if not tokens else (str(tokens[0]) if min(tokens) == max(tokens) else
                                          f"{min(tokens)}..{max(tokens)}")
            rows.append((r["op"], r["class"], str(r["count"]), tok, f"{r['flops'] / 1e9:.3f}",
                         f"{r['bytes'] / 1e6:.2f}", ratio))
        kind = "MoE" if layer["moe"] else "dense"
        parts.append(f"layer {layer['layer']} ({kind}), {stage}:\n" + format_table(
            ("op", "class", "count", "tokens", "GFLOP", "MB", "Op/B"), rows))
    t = s["total"]
    parts.append(f"whole model: {t['flops'] / 1e12:.3f} TFLOP, {_size(t['bytes'])} moved, Op/B {t['op_per_B']:.2f}")
    return "\n\n".join(parts)
