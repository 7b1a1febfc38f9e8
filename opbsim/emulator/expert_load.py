"""Expert-parallel load of one MoE layer under a given routing: which device is busiest and how
many rows the all-to-alls move (cluster.py's layout; stage_timer.py costs the parts).

Placement: with ``ep`` expert groups, group g holds experts g E/ep .. (g+1) E/ep - 1 (contiguous,
as vLLM and SGLang place them without a load balancer), each at 1/etp width on its etp devices.
A device of group g computes every row routed to its experts, so

- its expert time follows its experts' row counts (``group_counts``); the stage waits for the
  slowest device. That device is taken as the slower (compiled and timed) of two candidates: the
  group with the most rows and the group touching the most experts (decode is bound by reading the
  weights of the touched experts, prefill by the rows) -- ``busiest_groups``;
- it receives all rows of its group in the dispatch all-to-all and sends their partial outputs
  back in the combine, while every device sends its 1/tp share of its dp group's routed rows to
  the etp devices of each destination group. An uneven all-to-all lasts as long as its busiest
  port: it is timed as an even one in which every device moves the busiest device's bytes
  (``alltoall_rows``), which is exact for the busiest port and an upper bound on the others'
  contention.
"""

from __future__ import annotations

import numpy as np

from opbsim.errors import InputError

__all__ = ["group_counts", "busiest_groups", "alltoall_rows"]


def group_counts(counts: np.ndarray, ep: int) -> np.ndarray:
    """int64 [ep, E/ep]: expert e's rows at [e // (E/ep), e % (E/ep)]."""
    counts = np.asarray(counts, dtype=np.int64)
    if ep < 1 or len(counts) % ep:
        raise InputError(f"ep ({ep}) must divide the {len(counts)} experts")
    return counts.reshape(ep, len(counts) // ep)


def busiest_groups(counts: np.ndarray, ep: int) -> tuple[int, ...]:
    """The expert groups whose device may be the slowest: the one with the most rows and the one
    touching the most experts (ties: more rows, then the lower index); one entry when they agree."""
    local = group_counts(counts, ep)
    rows, touched = local.sum(axis=1), np.count_nonzero(local, axis=1)
    most_rows = int(np.argmax(rows))
    most_touched = int(np.lexsort((np.arange(ep), -rows, -touched))[0])
    return (most_rows,) if most_rows == most_touched else (most_rows, most_touched)


def alltoall_rows(counts: np.ndarray, ep: int, etp: int, tp: int, dp_group_tokens: int, top_k: int) -> int:
    """Rows (of one hidden vector each) the busiest device sends or receives in one dispatch or
    combine all-to-all: the most of its send share, ceil(dp_group_tokens top_k / tp) x etp, and
    the rows routed to the busiest group."""
    send = -(-dp_group_tokens * top_k // tp) * etp
    return int(max(send, group_counts(counts, ep).sum(axis=1).max()))
