"""The "Measured serving" section of docs/validation.md: per point measured / ours / error, MAPE
per metric and per GPU, the worst points with their causes."""

from __future__ import annotations

from opbsim.report.measured_data import METRICS, MeasuredData
from opbsim.report.reproduce_measured import PointResult, mape
from opbsim.report.tables import format_table, markdown_table
from opbsim.report.validation_page import markers
from opbsim.report.validation_page import write_section as _write_section

__all__ = ["rows_table", "section_markdown", "write_section", "summary_lines", "BEGIN", "END"]

BEGIN, END = markers("opbsim reproduce measured")
_HEADER = ("point", "GPU", "tp", "model", "in/out", "conc.", "MoE kernels", "metric", "measured", "ours", "error")
_WORST = 6


def _model(name: str) -> str:
    return name.rsplit("/", 1)[-1].removesuffix(".config.json")


def _rows(results: tuple[PointResult, ...]) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        p = r.point
        head = (p.id, p.gpu, str(p.tp), _model(p.model), f"{p.input_tokens}/{p.output_tokens}", str(p.concurrency),
                p.moe_kernel_config)
        if r.ours is None:
            rows.append((*head, "-", "-", "not run", r.error[:60]))
            continue
        for name, measured, ours, err in r.metrics():
            rows.append((*head, name, f"{measured:.4g}", f"{ours:.4g}", f"{err:+.1%}"))
    return rows


def rows_table(results: tuple[PointResult, ...]) -> str:
    return format_table(_HEADER, _rows(results)) + "\n\n" + "\n".join(summary_lines(results))


def _metrics(results: tuple[PointResult, ...]) -> list[str]:
    return [m for m in METRICS if any(n == m for r in results for n, *_ in r.metrics())]


def summary_lines(results: tuple[PointResult, ...]) -> list[str]:
    """MAPE per metric (all points, and the tuned-kernel points) and per GPU."""
    lines = []
    for m in _metrics(results):
        all_, n = mape(results, m)
        tuned, nt = mape(results, m, kernel_config="tuned")
        lines.append(f"MAPE {m}: {all_:.1f}% over {n} points; {tuned:.1f}% over the {nt} with the engine's tuned "
                     "MoE kernels (and dense models)")
        for gpu in sorted({r.point.gpu for r in results}):
            g, ng = mape(results, m, gpu=gpu)
            if ng:
                lines.append(f"  {gpu}: {g:.1f}% over {ng} points")
    return lines


def _worst(results: tuple[PointResult, ...]) -> list[tuple[str, str, float]]:
    errs = [(r.point.id, n, e) for r in results for n, _, _, e in r.metrics()]
    return sorted(errs, key=lambda t: -abs(t[2]))[:_WORST]


_CAUSES = (
    "Likely causes of the misses (explanations to test, not findings, except where a source is named). "
    "(1) Modelled since the first pass: vLLM before 0.6 idled the GPU about 4 ms per scheduler step for its host "
    "work (vLLM RFC #6854; serving engine preset vllm-pre-0.6, opbsim/emulator/serving_engines.py); it brought "
    "the latency MAPE from 29.1% to the figure above; ours is still too fast on 36 of the 42 vLLM latency points. "
    "The RFC gives 5-13 ms as the range and the sampler's share grows with batch, so 4 ms is a lower end. "
    "(2) Tensor-parallel all-reduce latency: two per layer (56 layers of Mixtral-8x22B, 40 of DBRX); a small "
    "one now costs the measured one-shot custom all-reduce, 5.8 us at tp 8 with its launch (sglang PR #2904, "
    "H100; hardware/links.py), which took the TPOT MAPE from 39.5% to the figure above; vLLM's custom "
    "all-reduce of 2024 (a copy kernel, then the reduce: 8.5-10.1 us eager in the same PR) and NCCL's may cost "
    "more; tp 8 misses more than tp 4. (3) The fused-MoE kernel: its expert GEMMs now "
    "run at the grouped-GEMM fraction measured by vLLM's benchmark_moe.py (0.49 of the H100 peak, 0.52 of the "
    "A100's; hardware/gpu_efficiency.py), which slowed the prompts (Mixtral 1000-token batches, the H200 TTFT) "
    "and took the latency MAPE from 18.4% to the figure above; the same benchmark streams the expert weights at "
    "0.85-0.97 of the HBM bandwidth at 8-128 tokens, so the decode-side miss of DBRX and Mixtral-8x22B at "
    "batch 32-64 (measured latency rising with batch, ours flat) is not that kernel's bandwidth in today's "
    "vLLM; the 2024 Triton kernel and its configs of the time were not benchmarked per shape in any source "
    "found. (4) The 'default' rows ran the same engine with untuned MoE kernel "
    "configurations, 5-30% slower than 'tuned': the spread one engine shows on one GPU, kept as measured. "
    "(5) TTFT of a 128-token prompt at batch 1 (TensorRT-LLM 0.5, A100): measured 16 ms (7B) and 47 ms (70B, "
    "tp 4), ours about half: ours is the weight stream of one forward pass; the measurement (a run with one "
    "output token) also holds the engine's per-request start, sampling and, at tp 4, the all-reduces of every "
    "layer, none of which is modelled for TensorRT-LLM (its preset has no host time). At 2048 tokens, "
    "compute-bound, ours is within 10%. (6) Throughput with long outputs (TensorRT-LLM 0.6.1, 128 in / 2048 "
    "out; ML.ENERGY Llama-3-70B, vLLM 0.11.1) is too high: decode attention over long contexts runs at the "
    "HBM fraction of streaming kernels here, and the V1 engine's host time is not modelled (no per-step figure "
    "of its own found). (7) TPOT at concurrency 1 on 8 x H200 (vLLM 0.19 / 0.20): ours 24-51% too fast. At tp "
    "8 a decode step of Mixtral-8x7B streams under 1 ms of weights per GPU; the rest of the measured 2.66 ms "
    "is per-layer latency that is not modelled: kernel launches at 1 us each (an assumed CUDA-graph figure), "
    "no per-kernel floor of small kernels, decode GEMMs of one row at 0.90 of the HBM bandwidth, the sampler. "
    "The tensor parallelism (8) and BF16 are assumptions: "
    "the issue's reproduction commands were cut off in the stored text. 0.19 to 0.20 the same engine "
    "measured 21% slower on Mixtral: the spread between versions.")


def section_markdown(results: tuple[PointResult, ...], data: MeasuredData, command: str) -> str:
    """The section of docs/validation.md (BEGIN..END)."""
    sources = [f"- `{s.key}`: {s.engine} {s.engine_version}; {s.url}. {s.detail}." for s in data.sources.values()]
    worst = [f"- {pid} ({metric}): {err:+.1%}" for pid, metric, err in _worst(results)]
    gpus = sorted({r.point.gpu for r in results})
    models = sorted({_model(r.point.model) for r in results})
    return "\n".join([
        BEGIN,
        "## Measured serving: the GPU baseline against published vLLM and TensorRT-LLM measurements",
        "",
        f"Written by `{command}`; do not edit by hand. Data: docs/data/measured_serving.json ({len(results)} points, "
        f"GPUs {', '.join(gpus)}, models {', '.join(models)}). Ours: each point's model on tp devices of the GPU's "
        "preset, policy xpu-only, the point's fixed request shape and concurrency, the engine's per-step token "
        "budget as the chunked-prefill size, the host time per step of the source's serving engine "
        "(opbsim/emulator/serving_engines.py). Nothing is fitted to these points: the GPU kernel efficiencies come "
        "from kernel-level benchmarks (opbsim/hardware/gpu_efficiency.py), the engines' host time from the "
        "engines' own profiles. Goal of issue 20: TPOT MAPE <= 10%, TTFT MAPE <= 20%; these sources publish batch "
        "latency (`latency_s`, vLLM benchmark_latency: one prefill and output-1 decode steps, so at 32 in / 128 "
        "out a decode-step measurement), throughput, batch-1 TTFT (TensorRT-LLM) and, on H200 at concurrency 1, "
        "TPOT and TTFT (vLLM 0.19 / 0.20, issue #41306); the goal is judged on those and is missed (below).",
        "",
        "Sources:",
        "",
        *sources,
        "",
        markdown_table(_HEADER, _rows(results)),
        "",
        *[f"- {line.strip()}" for line in summary_lines(results)],
        "",
        "Worst points:",
        "",
        *worst,
        "",
        _CAUSES,
        END,
        "",
    ])


def write_section(path, section: str) -> None:
    _write_section(path, section, BEGIN, END)
