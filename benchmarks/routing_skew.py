"""Sensitivity of expert-parallel stage time to the skew model's two parameters (docs/routing.md).

Mixtral-8x7B on H100s (policy xpu-only), two expert-parallel layouts:
- one node: tp 8, ep 8 (one expert per device);
- two nodes of 8: tp 4, dp 4, ep 8, etp 2 (one expert per pair of devices; all-to-alls cross nodes).
Two stages: prefill (four 1024-token chunks, one per dp group where dp = 4) and decode (256
requests at 2048 tokens of context). Each stage is costed with balanced routing (the reference),
uniform routing and the skew model over a sweep of the concentration (correlation 0.5) and of the
correlation (concentration 2), five seeds each; the tables give the mean ratio to balanced and the
range over the seeds, and the mean over layers and seeds of the busiest expert's share of the
rows relative to an even share. Writes docs/img/routing_skew.png.

    PYTHONPATH=. .venv/bin/python benchmarks/routing_skew.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from opbsim.emulator.cluster import Cluster
from opbsim.emulator.stage_timer import StageTimer
from opbsim.hardware import get_device
from opbsim.workloads import PrefillChunk, SkewRouting, Stage, UniformRouting, expert_counts, get_preset
from opbsim.workloads.parallel import Parallelism

MODEL = get_preset("mixtral-8x7b")
MOE = [i for i in range(MODEL.num_layers) if MODEL.is_moe_layer(i)]
LAYOUTS = {"1 node, tp8 ep8": Parallelism.of(tp=8, ep=8), "2 nodes, tp4 dp4 ep8 etp2": Parallelism.of(tp=4, dp=4, ep=8)}
STAGES = {"prefill 4 x 1024": Stage(prefill=tuple(PrefillChunk(1024) for _ in range(4)), decode_ctx_tokens=()),
          "decode 256 @ 2048": Stage.decode(256, 2048)}
SEEDS = range(5)
ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0, 16.0, 64.0)
RHOS = (0.0, 0.5, 0.9, 1.0)


def _cost(parallel: Parallelism, stage: Stage, routing) -> float:
    cluster = Cluster(device=get_device("h100"), policy="xpu-only", parallel=parallel, node_devices=8)
    return StageTimer(MODEL, cluster, routing=routing).cost(stage).time_s


def _busiest(alpha: float, rho: float, seed: int, tokens: int) -> float:
    r = SkewRouting(8, 2, layers=MOE, concentration=alpha, correlation=rho, seed=seed)
    even = tokens * 2 / 8
    return float(np.mean([expert_counts(r.route(layer, tokens), 8).max() / even for layer in MOE]))


def main() -> None:
    t0 = time.time()
    rows: list[tuple[str, str, str, float, float, float, float]] = []
    for lname, par in LAYOUTS.items():
        for sname, stage in STAGES.items():
            base = _cost(par, stage, None)
            uni = [_cost(par, stage, UniformRouting(8, 2, seed=s)) / base for s in SEEDS]
            rows.append((lname, sname, "uniform", np.inf, np.nan, np.mean(uni), np.ptp(uni)))
            for alpha, rho in [(a, 0.5) for a in ALPHAS] + [(2.0, r) for r in RHOS if r != 0.5]:
                ratios = [_cost(par, stage, SkewRouting(8, 2, layers=MOE, concentration=alpha, correlation=rho,
                                                        seed=s)) / base for s in SEEDS]
                rows.append((lname, sname, "skew", alpha, rho, float(np.mean(ratios)), float(np.ptp(ratios))))
    print("| layout | stage | routing | concentration | correlation | stage time / balanced (mean of 5 seeds) "
          "| range over seeds |")
    print("|---|---|---|---|---|---|---|")
    for lname, sname, kind, alpha, rho, mean, spread in rows:
        a = "-" if kind == "uniform" else f"{alpha:g}"
        r = "-" if kind == "uniform" else f"{rho:g}"
        print(f"| {lname} | {sname} | {kind} | {a} | {r} | {mean:.3f} | {spread:.3f} |")
    print()
    print("| concentration | correlation | busiest expert's rows / even share (4096 tokens, mean over layers, seeds) |")
    print("|---|---|---|")
    for alpha, rho in [(a, 0.5) for a in ALPHAS] + [(2.0, r) for r in RHOS if r != 0.5]:
        print(f"| {alpha:g} | {rho:g} | {np.mean([_busiest(alpha, rho, s, 4096) for s in SEEDS]):.2f} |")
    _figure(rows)
    print(f"\nwall {time.time() - t0:.0f} s")


def _figure(rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, sname in zip(axes, STAGES, strict=True):
        for lname, marker in zip(LAYOUTS, "os", strict=True):
            pts = [(a, m, s) for ln, sn, k, a, r, m, s in rows
                   if (ln, sn, k) == (lname, sname, "skew") and r == 0.5]
            uni = next(m for ln, sn, k, *_, m, _s in rows if ln == lname and sn == sname and k == "uniform")
            xs, ms, ss = zip(*pts, strict=True)
            line = ax.errorbar(xs, ms, yerr=np.array(ss) / 2, marker=marker, capsize=3, label=f"skew, {lname}")
            ax.axhline(uni, ls="--", color=line[0].get_color(), lw=0.8, label=f"uniform, {lname}")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("concentration alpha (correlation 0.5); larger = more even")
        ax.set_title(f"mixtral-8x7b on 8/16 x H100: {sname}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("stage time / balanced routing")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    out = Path(__file__).parents[1] / "docs" / "img" / "routing_skew.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
