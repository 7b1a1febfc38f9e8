"""``opbsim coe``: Composition of Experts (Samba-CoE) on one node: switching and execution time."""

from __future__ import annotations

import json

import click

__all__ = ["coe_cmd", "coe_json"]


def coe_json(result) -> dict:
    """The ``--json`` object of a CoEResult: per batch, seconds; times are null when out of memory."""
    cfg = result.config
    return {
        "device": result.node, "experts": cfg.experts, "batch": cfg.batch, "tokens": cfg.tokens,
        "prompt_tokens": cfg.prompt_tokens, "expert_model": cfg.expert_model, "expert_bytes": result.expert_B,
        "hbm_expert_slots": result.cache_slots, "resident": result.resident, "out_of_memory": result.out_of_memory,
        "switch_s_per_expert": result.switch_s, "switches_per_batch": result.switches_per_batch,
        "switch_time_s": result.switch_time_s, "router_time_s": result.router_time_s,
        "exec_time_s": result.exec_time_s, "total_time_s": result.total_time_s,
        "nodes_needed": result.nodes_needed, "experts_per_node": result.experts_per_node,
    }


def _table(result) -> str:
    from opbsim.report.tables import format_table

    cfg = result.config
    sec = lambda v: "out of memory" if v is None else f"{v:.4f} s"  # noqa: E731
    rows = [
        ("node", result.node),
        ("experts", f"{cfg.experts} x {cfg.expert_model} ({result.expert_B / 1e9:.2f} GB each)"),
        ("batch", f"{cfg.batch} prompts of {cfg.prompt_tokens} tokens, {cfg.tokens} output tokens each"),
        ("experts in HBM at once", f"{result.cache_slots}" + (" (all resident)" if result.resident else " (LRU)")),
        ("switch, one expert", f"{result.switch_s * 1e3:.2f} ms"),
        ("switches per batch", f"{result.switches_per_batch:.2f}"),
        ("switch time per batch", sec(result.switch_time_s)),
        ("router time per batch", sec(result.router_time_s)),
        ("expert execution per batch", sec(result.exec_time_s)),
        ("total per batch", sec(result.total_time_s)),
        ("nodes needed", f"{result.nodes_needed} ({result.experts_per_node} experts per node)"),
    ]
    return format_table(("composition of experts", "value"), rows)


@click.command("coe")
@click.option("--experts", type=click.IntRange(min=1), required=True, help="Expert models (N).")
@click.option("--batch", type=click.IntRange(min=1), required=True, help="Prompts per batch (B).")
@click.option("--tokens", type=click.IntRange(min=1), required=True, help="Output tokens per prompt (T).")
@click.option("-d", "--device", required=True, help="Node: sn40l, dgx-h100 or dgx-a100.")
@click.option("--prompt", "prompt_tokens", type=click.IntRange(min=1), default=128, show_default=True,
              help="Prompt tokens (assumed; the SN40L paper does not state them).")
@click.option("--batches", type=click.IntRange(min=1), default=256, show_default=True,
              help="Batches simulated for the mean switches per batch.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the routing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def coe_cmd(experts: int, batch: int, tokens: int, device: str, prompt_tokens: int, batches: int, seed: int,
            as_json: bool) -> None:
    """Serve a batch over N experts: router, expert switches (HBM LRU cache) and execution."""
    from opbsim.emulator.coe import CoEConfig, simulate_coe
    from opbsim.hardware import get_node

    cfg = CoEConfig(experts=experts, batch=batch, tokens=tokens, prompt_tokens=prompt_tokens, batches=batches,
                    seed=seed)
    result = simulate_coe(get_node(device), cfg)
    click.echo(json.dumps(coe_json(result), indent=2) if as_json else _table(result))
