"""One serving replica as a steppable loop: the continuous batching of serving.py, advanced stage
by stage by a caller that owns time (the cluster router in fleet.py).

Semantics are those of ``serving.simulate`` in open loop (docs/serving.md "The loop"): at the
start of a stage, requests sent to the replica are admitted oldest first while fewer than
``max_batch`` run; a stage holds the prompt chunks of admitted requests still in prefill and one
decode token per running request; the stage that completes a prompt samples the first token, each
later stage one more. A single replica fed a trace gives the same times as ``simulate`` on the
same open-loop scenario (tested).

Kernel launches as in serving.py: a stage that does not replay a CUDA graph runs as
``StageTimer.launched`` gives it (longer by its eager launches).

Bookkeeping is O(1) per stage plus O(1) per request event, and the record of a run is kept by
distinct stage cost, not by stage: ``costs`` maps a cost to the stages that had it and the
decode tokens they emitted, which is all the metrics need (time between tokens is a weighted
sample of stage times), so memory stays O(shapes + requests) however long the trace.

Two shortcuts, both exact (the same floating-point operations in the same order as stage by
stage; tested against ``collapse=False``):
- stage costs are looked up by a plain tuple of the bucketed shape (``shape_key``), in a memo
  shared by the replicas of one process, before building the ``Stage`` the timer memoises;
- a run of decode-only stages with the same cost is advanced in one call (``start(now, horizon)``):
  stage after stage while no request finishes, the bucketed mean context stays, and the stage
  ends before ``horizon`` (the next moment something may be sent to the replica). Each stage's
  start time and the busy time are still summed one stage at a time.
"""

from __future__ import annotations

import heapq
from collections import deque

import numpy as np

from opbsim.emulator.serving import graphed, prefill_chunks
from opbsim.emulator.stage_timer import StageCost, StageTimer
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = ["Replica", "shape_key"]


def shape_key(bround, chunks: tuple[PrefillChunk, ...], count: int, ctx_sum: int) -> tuple:
    """A tuple equal for two stages exactly when ``Bucketing.representative`` gives the same stage
    (``bround`` is ``Bucketing.round``): the rounded chunks in the representative's order and the
    rounded decode count and mean context."""
    pre = tuple(sorted((-max(bround(c.new_tokens), 1), -bround(c.past_tokens), not c.final) for c in chunks)) \
        if chunks else ()
    if not count:
        return pre, 0, 0
    return pre, bround(count), bround(max(round(ctx_sum / count), 1))


class Replica:
    """A replica serving requests identified by their index into ``input_tokens`` /
    ``output_tokens``; ``first_token_s`` and ``done_s`` (same indexing) receive each request's
    times. Occupancy (``occupancy``) counts running requests and those sent but not yet admitted;
    the caller sends (``send``) only while it is below ``max_batch``."""

    def __init__(self, timer: StageTimer, max_batch: int, chunk_tokens: int, input_tokens: list[int],
                 output_tokens: list[int], first_token_s: np.ndarray, done_s: np.ndarray, *,
                 memo: dict | None = None, collapse: bool = True, cuda_graphs: bool = True):
        self.timer = timer
        self.cuda_graphs = cuda_graphs
        self.memo = {} if memo is None else memo  # shape_key -> StageCost
        self.bround = timer.bucketing.round
        self.max_batch = max_batch
        self.chunk_tokens = chunk_tokens
        self.exact = timer.bucketing.steps_per_octave == 0
        self.collapse = collapse and not self.exact
        self.inp = input_tokens
        self.out = output_tokens
        self.first_token_s = first_token_s
        self.done_s = done_s
        self.sent: deque[int] = deque()  # sent, not yet admitted
        self.prefilling: list[list[int]] = []  # [request, prompt tokens done], in admission order
        self.decoding: dict[int, int] = {}  # request -> stage that sampled its first token
        self.finish_at: dict[int, list[int]] = {}  # stage -> requests whose last token it emits
        self.finish_stages: list[int] = []  # heap of finish_at's keys
        self.ctx_sum = 0  # keys the decode tokens of the next stage attend to, summed
        self.kv_tokens = 0  # KV-cache tokens held or reserved (prompts of sent and prefilling requests in full)
        self.stage = 0
        self.busy_s = 0.0
        self.requests = 0
        self.costs: dict[int, list] = {}  # id(cost) -> [cost, stages, decode tokens emitted]
        self._chunks: tuple[PrefillChunk, ...] = ()
        self._decode = 0
        self._end_s: float | None = None  # end of the stage in flight

    @property
    def occupancy(self) -> int:
        return len(self.sent) + len(self.prefilling) + len(self.decoding)

    @property
    def running(self) -> bool:
        """Whether a stage is in flight."""
        return self._end_s is not None

    def send(self, r: int) -> None:
        """Request ``r`` joins this replica (admitted at the start of its next stage)."""
        self.sent.append(r)
        self.requests += 1
        self.kv_tokens += self.inp[r]

    def start(self, now: float, horizon: float = float("inf")) -> float | None:
        """Admit what was sent and start a stage at ``now``; returns the end of the stage in
        flight, or None when the replica has nothing to run (it stays idle until something is
        sent). Nothing may be sent to the replica before ``horizon``: decode-only stages of the
        same cost that end before it, with no request finishing, are run here at once."""
        while self.sent and len(self.prefilling) + len(self.decoding) < self.max_batch:
            self.prefilling.append([self.sent.popleft(), 0])
        if not self.prefilling and not self.decoding:
            return None
        chunks = self._make_chunks()
        decode = len(self.decoding)
        if self.exact:
            s = self.stage
            ctx = tuple(self.inp[r] + s - s0 for r, s0 in self.decoding.items())
            cost = self.timer.cost(Stage(prefill=chunks, decode_ctx_tokens=ctx))
        else:
            key = shape_key(self.bround, chunks, decode, self.ctx_sum)
            cost = self.memo.get(key)
            if cost is None:
                cost = self.memo[key] = self.timer.cost_of(chunks, decode, self.ctx_sum)
        cost = self.timer.launched(cost, graphed(self.cuda_graphs, chunks, decode))
        c = cost.time_s
        self.busy_s += c
        stages = 1
        if self.collapse and not chunks:
            now, stages = self._run_decodes(now, c, decode, horizon)
        rec = self.costs.get(id(cost))
        if rec is None:
            self.costs[id(cost)] = [cost, stages, decode * stages]
        else:
            rec[1] += stages
            rec[2] += decode * stages
        self._chunks, self._decode = chunks, decode
        self._end_s = end = now + c
        return end

    def _run_decodes(self, now: float, c: float, decode: int, horizon: float) -> tuple[float, int]:
        """Ends decode-only stages of time ``c`` one after another while the next one would be the
        same shape; returns the start of the stage left in flight and the stages started."""
        bround = self.bround
        last = self.finish_stages[0] if self.finish_stages else 1 << 62  # the stage where a request finishes
        s, ctx, busy = self.stage, self.ctx_sum, self.busy_s
        mean = bround(max(round(ctx / decode), 1))
        n = 0
        while s < last:
            end = now + c
            if end >= horizon or bround(max(round((ctx + decode) / decode), 1)) != mean:
                break
            now, ctx, s, n = end, ctx + decode, s + 1, n + 1
            busy += c
        if n:
            self.stage, self.ctx_sum, self.busy_s = s, ctx, busy
            self.kv_tokens += n * decode
        return now, n + 1

    def finish(self) -> int:
        """End the stage in flight: record first and last tokens; returns how many requests left."""
        now = self._end_s
        assert now is not None, "finish() without a stage in flight"
        self._end_s = None
        s = self.stage
        inp, out, decoding = self.inp, self.out, self.decoding
        self.ctx_sum += self._decode
        self.kv_tokens += self._decode
        ended = self.finish_at.pop(s, [])
        if ended:
            heapq.heappop(self.finish_stages)
        for r in ended:
            held = inp[r] + s + 1 - decoding.pop(r)
            self.ctx_sum -= held
            self.kv_tokens -= held
        for entry, chunk in zip(self.prefilling, self._chunks):
            entry[1] += chunk.new_tokens
            if chunk.final:
                r = entry[0]
                self.first_token_s[r] = now
                if out[r] == 1:
                    ended.append(r)
                    self.kv_tokens -= inp[r]
                else:
                    decoding[r] = s
                    at = s + out[r] - 1
                    if at in self.finish_at:
                        self.finish_at[at].append(r)
                    else:
                        self.finish_at[at] = [r]
                        heapq.heappush(self.finish_stages, at)
                    self.ctx_sum += inp[r] + 1
                    self.kv_tokens += 1
        if self._chunks:
            self.prefilling = [e for e in self.prefilling if e[1] < inp[e[0]]]
        for r in ended:
            self.done_s[r] = now
        self.stage = s + 1
        return len(ended)

    def _make_chunks(self) -> tuple[PrefillChunk, ...]:
        return prefill_chunks(self.prefilling, self.inp, self.chunk_tokens)

    def cost_records(self) -> list[tuple[StageCost, int, int]]:
        """(cost, stages, decode tokens) for every distinct stage cost this replica ran."""
        return [(c, n, d) for c, n, d in self.costs.values()]
