"""Summarise a ``make fuzz`` run: examples per target, failures, the slowest example and the peak
resident set, from the per-example log (tests/fuzz/bounds.py, OPBSIM_FUZZ_LOG) and pytest's JUnit
XML. Writes markdown to stdout.

    make fuzz    # runs the suite, then this script into benchmarks/results/fuzz.md
"""

from __future__ import annotations

import argparse
import json
import platform
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


def summarise(log_dir: Path, junit: Path, examples: int) -> str:
    rows: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(log_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            rows[entry["target"].split("::", 1)[-1]].append(entry)
    cases = ET.parse(junit).getroot().iter("testcase")
    failed = {f"{c.get('name')}" for c in cases if c.find("failure") is not None or c.find("error") is not None}
    n = sum(len(v) for v in rows.values())
    slowest = max((e for v in rows.values() for e in v), key=lambda e: e["s"])
    peak = max(e["peak_rss_B"] for v in rows.values() for e in v)
    out = [f"# Fuzz run: {examples:,} examples per target", "",
           f"`make fuzz` on {platform.python_implementation()} {platform.python_version()}, "
           f"{platform.machine()}, 2 pytest workers. Every example must exit 0, 1 or 2 (2 only for usage "
           "errors), fail with one `Error:` line under 300 characters, leave no file behind, and stay under "
           "the time and memory bounds of tests/fuzz/bounds.py (30 s, validate 120 s; 6 GiB).", "",
           f"- examples run: {n:,} over {len(rows)} targets; targets failed: {len(failed)}"
           + (f" ({', '.join(sorted(failed))})" if failed else ""),
           f"- slowest example: {slowest['s']:.2f} s, {slowest['target'].split('::', 1)[-1]}: "
           f"`{slowest['input'][:120]}`",
           f"- peak resident set of a worker: {peak / 2**20:,.0f} MiB",
           "- a target with fewer examples has fewer distinct inputs than the count (Hypothesis stops when it has "
           "tried them all: `demo` and `reproduce` take one path option and flags)", "",
           "| target | examples | mean s | max s | status |", "|---|---:|---:|---:|---|"]
    for target in sorted(rows):
        times = [e["s"] for e in rows[target]]
        status = "FAILED" if target.split("::")[-1] in failed else "ok"
        out.append(f"| {target} | {len(times):,} | {sum(times) / len(times):.3f} | {max(times):.2f} | {status} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log_dir", type=Path)
    ap.add_argument("junit", type=Path)
    ap.add_argument("--examples", type=int, required=True)
    args = ap.parse_args()
    print(summarise(args.log_dir, args.junit, args.examples), end="")


if __name__ == "__main__":
    main()
