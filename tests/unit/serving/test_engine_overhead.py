"""A serving engine's host time per step: every stage is longer by it, the devices idle meanwhile."""

import pytest

from opbsim.emulator.serving import ServingConfig, simulate
from opbsim.emulator.serving_engines import SERVING_ENGINES, get_serving_engine
from opbsim.errors import InputError
from opbsim.workloads import FixedLengths, closed_loop

from .helpers import TINY_DENSE, ScriptedTimer, cluster


def run(overhead_s):
    cl = cluster()
    timer = ScriptedTimer(TINY_DENSE, cl, lambda stage: 1.0)
    config = ServingConfig(batch=2, step_overhead_s=overhead_s)
    return simulate(TINY_DENSE, cl, closed_loop(2, FixedLengths(4, 3), num_requests=2, seed=0), config, timer=timer)


def test_each_stage_is_longer_by_the_engines_step_overhead():
    # 2 requests of 4 prompt / 3 output tokens at once: 3 stages of 1 s on the devices, 0.25 s of host each.
    base, slow = run(0.0), run(0.25)
    assert base.duration_s == 3.0
    assert slow.duration_s == 3 * (1.0 + 0.25)
    assert slow.ttft_p50_ms == 1250.0  # the first token comes out after the first step's host part
    assert slow.tbt_p50_ms == 1250.0
    assert slow.stage_time_s == (1.25, 1.25, 1.25)


def test_the_host_time_is_counted_as_device_idle_time_and_as_its_own_class():
    base, slow = run(0.0), run(0.25)
    idle_before_s = dict(base.time_share_by_bound).get("idle", 0.0) * 3.0
    assert dict(slow.time_share_by_bound)["idle"] == pytest.approx((idle_before_s + 3 * 0.25) / 3.75)
    assert dict(slow.time_share_by_class)["host"] == pytest.approx(0.75 / 3.75)
    assert slow.energy_J > base.energy_J  # static power during the host time


def test_the_vllm_engine_before_multi_step_scheduling_idles_4_ms_per_step_and_an_ideal_engine_none():
    assert get_serving_engine("vllm-pre-0.6").step_overhead_s == pytest.approx(0.004)  # RFC #6854: ~4 ms per step
    assert get_serving_engine("ideal").step_overhead_s == 0.0
    assert all(e.source for e in SERVING_ENGINES.values())


def test_an_unknown_engine_or_a_negative_overhead_is_one_line():
    with pytest.raises(InputError, match=r"^unknown serving engine 'sglang' \(known: ideal, vllm-pre-0.6, "):
        get_serving_engine("sglang")
    with pytest.raises(InputError, match=r"^step_overhead_s must be a finite number >= 0, got -1$"):
        ServingConfig(batch=1, step_overhead_s=-1)
