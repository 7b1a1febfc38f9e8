"""The GPU calibration report: GPU-measured times (reference/timing.py) beside a device model's
per-op predictions (the timing engine on a program of the same instructions), as calibration.md,
calibration.png and calibration.json."""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path

from opbsim.isa.types import Space

__all__ = ["model_seconds", "write_report"]

_EXPLANATION = """\
## Reading the comparison

- The model times the hardware running bf16 GEMMs on tensor cores (`matrix_TFLOPS`) and streaming
  operands at `hbm_GBps`. The *vendor* column (PyTorch's cuBLAS bf16 GEMM, if PyTorch was
  installed) is what that model should match within 10%.
- The *exact* kernels are this project's bit-exact reference (`opbsim/reference/kernels`): fp32
  CUDA-core arithmetic with a separate rounded multiply and add per term, each output's sum one
  sequential chain over k. Their compute ceiling is the FP32 non-tensor rate counted without FMA
  (half the datasheet's FP32 FMA rate), tens of times below the tensor cores, so above the
  exact kernels' ridge point they are slower than the model by design; below it (few tokens per
  expert, decode attention) they are bandwidth-bound and comparable with the model.
- Decode attention runs one softmax row per block with a sequential sum (the definition's
  order), so its time also carries a latency term of about `ctx` dependent fp32 additions.
"""


def model_seconds(timing, device) -> float:
    """The engine's time for the instructions ``timing`` measured, on ``device`` (operands in
    HBM; attention's scores and probabilities in SRAM, as the compiler places them)."""
    from opbsim.emulator.asmbuild import AsmBuilder
    from opbsim.emulator.engine import run
    from opbsim.isa.types import DType

    hbm, sram, bf16, fp32 = Space.HBM, Space.SRAM, DType.BF16, DType.FP32
    b = AsmBuilder(f"calibration: {timing.op} {dict(timing.params)}")
    if timing.op.startswith("gemm"):
        t, h, f = timing.param("tokens"), timing.param("hidden"), timing.param("ffn")
        b.tensor("x", hbm, bf16, (t, h))
        b.tensor("w", hbm, bf16, (f, h))
        b.view("wt", "w", (h, f), (1, h))
        b.tensor("y", hbm, fp32 if timing.op == "gemm" else bf16, (t, f))
        b.op("gemm.xpu y, x, wt")
    else:
        kvh, g, ctx, dh = (timing.param(k) for k in ("kv_heads", "group", "ctx", "head_dim"))
        kd, scale = kvh * dh, float(dh ** -0.5)
        for s in range(timing.param("batch")):
            b.tensor(f"q{s}", hbm, bf16, (kvh, g, 1, dh))
            b.tensor(f"kc{s}", hbm, bf16, (ctx, kd))
            b.tensor(f"vc{s}", hbm, bf16, (ctx, kd))
            b.view(f"kt{s}", f"kc{s}", (kvh, g, dh, ctx), (dh, 0, 1, kd))
            b.view(f"v{s}", f"vc{s}", (kvh, g, ctx, dh), (dh, 0, kd, 1))
            b.tensor(f"s{s}", sram, fp32, (kvh, g, 1, ctx))
            b.tensor(f"p{s}", sram, bf16, (kvh, g, 1, ctx))
            b.tensor(f"o{s}", hbm, bf16, (kvh, g, 1, dh))
            b.op(f"gemm.xpu s{s}, q{s}, kt{s}")
            b.op(f"softmax.xpu p{s}, s{s}, scale={scale:.9g}, causal=1, qpos={ctx - 1}")
            b.op(f"gemm.xpu o{s}, p{s}, v{s}")
    b.op("halt")
    return run(b.program("<calibration>"), device).time_s


def _roofline(timings) -> tuple[float, float]:
    """(peak TFLOP/s, peak GB/s) achieved over ``timings``."""
    return max(t.tflops for t in timings), max(t.gbps for t in timings)


def _us(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e6:.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def _markdown(info: dict, device, timings, preds, when: str) -> str:
    exact = [t for t in timings if t.op == "gemm"]
    vendor = {t.param("tokens"): t for t in timings if t.op == "gemm-vendor"}
    attn = [t for t in timings if t.op == "attention"]
    xpu = next(u for u in device.units if u.unit.name == "XPU")
    hbm = next(c for c in device.channels if c.name == device.path(xpu.unit, Space.HBM).channels[0])
    lines = [f"# GPU calibration: measured vs the `{device.name}` model", "",
             f"Measured by `opbsim calibrate --gpu` on {when}.", "",
             "| GPU | compute capability | SMs | driver | CUDA driver API | SM clock now / max (MHz) "
             "| memory clock now / max (MHz) | backend |", "|---|---|---|---|---|---|---|---|",
             f"| {info.get('name')} | {info.get('compute_capability')} | {info.get('sm_count')} | "
             f"{info.get('driver', '-')} | {info.get('cuda_driver_api')} | {info.get('sm_clock_MHz', '-')} / "
             f"{info.get('sm_clock_max_MHz_smi', info.get('sm_clock_max_MHz'))} | {info.get('mem_clock_MHz', '-')} / "
             f"{info.get('mem_clock_max_MHz_smi', info.get('mem_clock_max_MHz'))} | {info.get('backend')} |", "",
             f"Median of {timings[0].repeats} cold-L2 repeats per point, CUDA events, no host launch latency.", "",
             "## Roofline and the Op/B crossover", "",
             "| | peak TFLOP/s | peak GB/s | ridge Op/B (crossover) |", "|---|---|---|---|",
             f"| model `{device.name}` | {xpu.matrix_TFLOPS:.1f} | {hbm.bw_GBps:.0f} | "
             f"{xpu.matrix_TFLOPS * 1e3 / hbm.bw_GBps:.0f} |"]
    for label, group in (("measured: exact GEMM / GEMV", exact), ("measured: vendor bf16 GEMM", list(vendor.values()))):
        if group:
            c, bw = _roofline(group)
            lines.append(f"| {label} | {c:.2f} | {bw:.0f} | {c * 1e3 / bw:.1f} |")
    t0 = exact[0] if exact else None
    lines += ["", "## GEMM / GEMV across Op/B" + (f" (H={t0.param('hidden')}, F={t0.param('ffn')})" if t0 else ""),
              "", "| tokens | Op/B | exact us | exact TFLOP/s | exact GB/s | vendor us | model us | model / exact "
              "| model / vendor |", "|---|---|---|---|---|---|---|---|---|"]
    for t in exact:
        v = vendor.get(t.param("tokens"))
        m = preds[id(t)]
        lines.append(f"| {t.param('tokens')} | {t.op_per_byte:.1f} | {_us(t.seconds)} | {t.tflops:.2f} | "
                     f"{t.gbps:.0f} | {_us(v.seconds if v else None)} | {_us(m)} | {_ratio(m, t.seconds)} | "
                     f"{_ratio(preds.get(id(v)) if v else None, v.seconds if v else None)} |")
    if attn:
        a0 = attn[0]
        lines += ["", f"## Decode attention across group sizes (batch {a0.param('batch')}, KV heads "
                      f"{a0.param('kv_heads')}, ctx {a0.param('ctx')}, Dh {a0.param('head_dim')})", "",
                  "| group | heads | Op/B | exact us | exact GB/s | model us | model / exact |",
                  "|---|---|---|---|---|---|---|"]
        for t in attn:
            m = preds[id(t)]
            lines.append(f"| {t.param('group')} | {t.param('heads')} | {t.op_per_byte:.1f} | {_us(t.seconds)} | "
                         f"{t.gbps:.0f} | {_us(m)} | {_ratio(m, t.seconds)} |")
    return "\n".join(lines + ["", _EXPLANATION, "Plot: calibration.png; raw numbers: calibration.json.", ""])


def _plot(info: dict, device, timings, preds) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xpu = next(u for u in device.units if u.unit.name == "XPU")
    bw = device.channel_bw_GBps(device.path(xpu.unit, Space.HBM).channels[0])
    opb = [2.0 ** (i / 4) for i in range(-4, 44)]
    ax.plot(opb, [min(xpu.matrix_TFLOPS, o * bw / 1e3) for o in opb], color="0.3",
            label=f"model roofline ({device.name})")
    styles = {"gemm": ("C0", "o", "exact GEMM / GEMV"), "gemm-vendor": ("C1", "s", "vendor bf16 GEMM"),
              "attention": ("C2", "^", "exact decode attention")}
    for op, (color, marker, label) in styles.items():
        pts = sorted((t for t in timings if t.op == op), key=lambda t: t.op_per_byte)
        if not pts:
            continue
        x = [t.op_per_byte for t in pts]
        ax.plot(x, [t.tflops for t in pts], marker=marker, color=color, label=f"measured: {label}")
        if op != "gemm-vendor":  # the same shapes as the exact GEMM: one model line is enough
            ax.plot(x, [t.flops / preds[id(t)] / 1e12 for t in pts], marker=marker, color=color, ls=":",
                    mfc="none", label=f"{device.name} model: {label.removeprefix('exact ')}")
        c, g = _roofline(pts)
        ax.plot(opb, [min(c, o * g / 1e3) for o in opb], color=color, lw=0.8, alpha=0.5)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (Op/B = FLOPs / bytes moved)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.set_title(f"{info.get('name')}, driver {info.get('driver', info.get('cuda_driver_api'))}, "
                 f"SM clock {info.get('sm_clock_MHz', info.get('sm_clock_max_MHz'))} MHz", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def write_report(out_dir: Path, info: dict, device, timings, when: str | None = None) -> list[Path]:
    """Predict every timing on ``device`` and write calibration.md, .png and .json; returns the
    paths. ``timings`` come from reference/timing.py."""
    from opbsim.fileio import atomic_write_bytes, atomic_write_text

    when = when or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    preds = {id(t): model_seconds(t, device) for t in timings}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "calibration.md", out_dir / "calibration.png", out_dir / "calibration.json"]
    atomic_write_text(paths[0], _markdown(info, device, timings, preds, when))
    atomic_write_bytes(paths[1], _plot(info, device, timings, preds))
    rows = [{"op": t.op, **dict(t.params), "flops": t.flops, "bytes": t.bytes_moved, "op_per_byte": t.op_per_byte,
             "measured_s": t.seconds, "measured_min_s": t.seconds_min, "repeats": t.repeats,
             "model_s": preds[id(t)]} for t in timings]
    atomic_write_text(paths[2], json.dumps({"gpu": info, "device_model": device.name, "measured_at": when,
                                            "points": rows}, indent=2, default=str) + "\n")
    return paths
