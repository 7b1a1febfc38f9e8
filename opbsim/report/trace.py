"""Chrome / Perfetto trace export of an engine timeline (open in ui.perfetto.dev or chrome://tracing)."""

from __future__ import annotations

import json

from opbsim.emulator.engine import RunStats

__all__ = ["chrome_trace"]


def chrome_trace(stats: RunStats) -> str:
    """Trace-event JSON: one track per unit, one complete event ("X") per instruction, times in us."""
    units = sorted({iv.unit for iv in stats.timeline})
    events: list[dict] = [
        {"name": "process_name", "ph": "M", "pid": 0, "args": {"name": f"opbsim {stats.device}"}},
        *({"name": "thread_name", "ph": "M", "pid": 0, "tid": int(u), "args": {"name": u.name.lower()}}
          for u in units),
    ]
    for iv in stats.timeline:
        events.append({
            "name": iv.mnemonic,
            "cat": iv.group.value,
            "ph": "X",
            "pid": 0,
            "tid": int(iv.unit),
            "ts": iv.start_s * 1e6,
            "dur": (iv.end_s - iv.start_s) * 1e6,
            "args": {"index": iv.index, "note": iv.note},
        })
    return json.dumps({"traceEvents": events, "displayTimeUnit": "ns"}, separators=(",", ":")) + "\n"
