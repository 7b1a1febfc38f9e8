"""The continuous-batching loop: admission, replacement, arrivals, chunked prefill, metrics, capacity."""

import pytest

from opbsim.emulator.serving import ServingConfig, simulate
from opbsim.errors import InputError
from opbsim.workloads import FixedLengths, PrefillChunk, Request, Scenario, Stage, closed_loop, open_loop
from opbsim.workloads.scenarios import Loop

from .helpers import TINY_DENSE, ScriptedTimer, cluster


def run(scenario, batch, seconds=lambda stage: 1.0, chunk=0, model=TINY_DENSE, cl=None, preemption="none"):
    cl = cl or cluster()
    timer = ScriptedTimer(model, cl, seconds)
    config = ServingConfig(batch=batch, prefill_chunk_tokens=chunk, preemption=preemption)
    return simulate(model, cl, scenario, config, timer=timer), timer


def test_a_closed_loop_replaces_a_finished_request_in_the_next_stage():
    # 3 requests of 4 prompt and 3 output tokens, 2 in flight, every stage 1 s.
    result, timer = run(closed_loop(2, FixedLengths(4, 3), num_requests=3, seed=0), batch=2)
    assert timer.stages == [
        Stage(prefill=(PrefillChunk(4), PrefillChunk(4))),  # t 0-1: both prompts, first tokens
        Stage(decode_ctx_tokens=(5, 5)),  # t 1-2: second tokens (4 prompt + 1 generated keys)
        Stage(decode_ctx_tokens=(6, 6)),  # t 2-3: third tokens; both finish at t = 3
        Stage(prefill=(PrefillChunk(4),)),  # t 3-4: the successor arrived at 3 and prefills at once
        Stage(decode_ctx_tokens=(5,)),
        Stage(decode_ctx_tokens=(6,)),  # finishes at t = 6
    ]
    assert result.duration_s == 6.0
    assert result.tokens_per_s == 9 / 6  # 3 requests x 3 tokens in 6 s
    assert result.ttft_p50_ms == 1000.0  # every first token one stage after arrival
    assert result.e2e_p50_s == result.e2e_p99_s == 3.0
    assert result.tbt_p50_ms == result.tbt_p99_ms == 1000.0
    assert (result.stages, result.decode_only_stages) == (6, 4)
    assert result.decode_only_stage_share == pytest.approx(4 / 6)
    assert result.energy_per_token_mJ == pytest.approx(6 * 1.0 / 9 * 1e3)  # 1 J per stage, 9 tokens


def test_time_between_tokens_is_the_duration_of_each_stage_weighted_by_its_decode_tokens():
    # Stage time = 1 s + 1 s per prompt token / 4: the prefill stage takes 3 s, decode stages 1 s.
    result, _ = run(closed_loop(2, FixedLengths(4, 3), num_requests=2, seed=0), batch=2,
                    seconds=lambda st: 1.0 + st.prefill_tokens / 4)
    assert result.ttft_p50_ms == 3000.0
    assert result.tbt_p50_ms == result.tbt_p99_ms == 1000.0  # 4 decode tokens, each in a 1 s stage
    assert result.duration_s == 5.0


def test_an_open_loop_admits_a_request_at_the_first_stage_after_its_arrival():
    requests = (Request(0, 2, 3, 0.0), Request(1, 2, 2, 0.5))
    result, timer = run(Scenario(Loop.OPEN, requests, seed=0, qps=1.0), batch=4)
    assert timer.stages == [
        Stage(prefill=(PrefillChunk(2),)),  # t 0-1: request 0; request 1 arrives at 0.5 and waits
        Stage(prefill=(PrefillChunk(2),), decode_ctx_tokens=(3,)),  # t 1-2
        Stage(decode_ctx_tokens=(4, 3)),  # t 2-3: both finish
    ]
    assert result.ttft_p90_ms == pytest.approx(1000 + 0.9 * 500)  # TTFTs 1 s and 1.5 s: (2 - 1) x 0.9 past the first
    assert result.e2e_p50_s == pytest.approx((3.0 + 2.5) / 2)


def test_an_idle_open_loop_waits_for_the_next_arrival():
    scenario = open_loop(0.5, FixedLengths(2, 2), num_requests=3, seed=7)
    arrivals = [r.arrival_s for r in scenario.requests]
    result, timer = run(scenario, batch=4, seconds=lambda st: 0.001)
    assert min(b - a for a, b in zip(arrivals, arrivals[1:])) > 0.002  # each request is served alone
    assert len(timer.stages) == 6  # a prefill and a decode stage per request
    assert result.ttft_p50_ms == pytest.approx(1.0)  # admitted on arrival: one 1 ms stage
    assert result.duration_s == pytest.approx(arrivals[-1] + 0.002)


def test_chunked_prefill_splits_a_prompt_over_stages_and_samples_only_after_the_last_chunk():
    result, timer = run(closed_loop(1, FixedLengths(10, 2), num_requests=1, seed=0), batch=1, chunk=4)
    assert timer.stages == [
        Stage(prefill=(PrefillChunk(4, 0, final=False),)),
        Stage(prefill=(PrefillChunk(4, 4, final=False),)),
        Stage(prefill=(PrefillChunk(2, 8, final=True),)),
        Stage(decode_ctx_tokens=(11,)),
    ]
    assert result.ttft_p50_ms == 3000.0


def test_the_same_seed_gives_the_same_result_and_another_seed_another():
    from opbsim.workloads import GaussianLengths

    def once(seed):
        return run(closed_loop(3, GaussianLengths(20, 5, 6, 2), num_requests=12, seed=seed), batch=3,
                   seconds=lambda st: 0.01 + st.tokens * 1e-3)[0]

    assert once(5) == once(5)
    assert once(5) != once(6)


def test_a_batch_whose_kv_cache_does_not_fit_is_capped_and_the_cap_is_reported():
    weights_B = 180864  # TINY_DENSE: 90432 parameters (test_cluster.py), bf16
    kv_B = 128 * 256  # a request at its longest context, 100 + 28 tokens, 256 B per token
    cl = cluster(hbm_B=weights_B + 3 * kv_B + 100)
    result, timer = run(closed_loop(8, FixedLengths(100, 28), num_requests=8, seed=0), batch=8, cl=cl)
    assert (result.requested_batch, result.capacity_batch, result.max_batch) == (8, 3, 3)
    assert result.batch_capped and result.summary()["batch_capped"] is True
    assert max(st.prefill_tokens // 100 + st.decode_tokens for st in timer.stages) == 3


def test_recompute_preemption_drops_the_last_decoding_requests_kv_when_the_cache_is_full_and_recomputes_it():
    weights_B = 180864  # TINY_DENSE: 90432 parameters, bf16
    cl = cluster(hbm_B=weights_B + 20 * 256 + 100)  # a paged KV cache of 20 tokens, 256 B each
    assert cl.kv_capacity_tokens(TINY_DENSE) == 20
    result, timer = run(closed_loop(2, FixedLengths(8, 5), num_requests=2, seed=0), batch=2, cl=cl,
                        preemption="recompute")
    assert timer.stages == [
        Stage(prefill=(PrefillChunk(8), PrefillChunk(8))),  # 16 of 20 tokens held; first tokens
        Stage(decode_ctx_tokens=(9, 9)),  # 18 keys
        Stage(decode_ctx_tokens=(10, 10)),  # 20 keys: full
        Stage(decode_ctx_tokens=(11,)),  # 22 > 20: request 1 (3 tokens generated) is preempted
        Stage(decode_ctx_tokens=(12,)),  # request 0's fifth token; 12 + 11 > 20: request 1 waits
        Stage(prefill=(PrefillChunk(11),)),  # request 1 recomputed: 8 prompt + 3 generated, samples its 4th
        Stage(decode_ctx_tokens=(12,)),  # its 5th and last
    ]
    assert result.preemptions == 1
    assert result.output_tokens == 10 and result.ttft_p50_ms == 1000.0  # the first token is not resampled
    assert result.duration_s == 7.0
    reserved, _ = run(closed_loop(2, FixedLengths(8, 5), num_requests=2, seed=0), batch=2, cl=cl)
    assert (reserved.max_batch, reserved.preemptions) == (1, 0)  # "none": 13 tokens reserved per request


def test_a_model_whose_weights_do_not_fit_is_an_input_error():
    with pytest.raises(InputError, match=r"^does not fit: tiny-dense needs 0\.0 GiB of weights"):
        run(closed_loop(1, FixedLengths(4, 4), num_requests=1, seed=0), batch=1, cl=cluster(hbm_B=1000))


def test_serving_config_rejects_a_bad_batch_or_chunk():
    with pytest.raises(InputError, match="batch must be a positive integer, got 0"):
        ServingConfig(batch=0)
    with pytest.raises(InputError, match="prefill_chunk_tokens must be an integer >= 0, got -1"):
        ServingConfig(batch=1, prefill_chunk_tokens=-1)
    with pytest.raises(InputError, match=r"^preemption must be one of none, recompute, got 'swap'$"):
        ServingConfig(batch=1, preemption="swap")


def test_a_request_longer_than_the_models_learned_positions_is_an_input_error():
    from dataclasses import replace

    opt_like = replace(TINY_DENSE, learned_positions=8, rope_theta=0.0)
    run(closed_loop(1, FixedLengths(4, 5), num_requests=1, seed=0), batch=1, model=opt_like)  # 4 + 5 - 1 = 8 fits
    with pytest.raises(InputError, match="^a request reaches 9 tokens, past the 8 learned positions of tiny-dense$"):
        run(closed_loop(1, FixedLengths(4, 6), num_requests=1, seed=0), batch=1, model=opt_like)


def test_a_batch_far_past_the_kv_capacity_preempts_repeatedly_and_still_serves_every_token():
    cl = cluster(hbm_B=180864 + 40 * 256 + 100)  # 40 tokens of KV
    result, _ = run(closed_loop(6, FixedLengths(6, 12), num_requests=9, seed=0), batch=6, cl=cl, chunk=5,
                    preemption="recompute")
    assert result.preemptions > 1
    assert result.output_tokens == 9 * 12 and result.requests == 9
