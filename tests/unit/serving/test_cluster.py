"""Clusters: capacity, how a stage divides over nodes, expert parallelism, all-to-all cost."""

import pytest

from opbsim.emulator.cluster import alltoall_stats, node_expert_tokens, node_share
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.workloads import PrefillChunk, Stage, get_preset

from .helpers import TINY_DENSE, TINY_MOE, cluster

GiB = 2**30
MIXTRAL = get_preset("mixtral-8x7b")


def test_tiny_dense_has_the_parameter_count_the_capacity_tests_rely_on():
    embeddings = lm_head = 128 * 64
    attention = 2 * (64 * (64 + 2 * 2 * 16) + 64 * 64)  # 2 layers: w_qkv (h x (q + 2 kv d)) and w_o
    norms = (2 * 2 + 1) * 64
    ffn = 2 * 3 * 64 * 128  # 2 layers of SwiGLU: gate, up, down
    assert TINY_DENSE.params_total == embeddings + lm_head + attention + norms + ffn == 90432
    assert TINY_DENSE.kv_bytes_per_token == 2 * (2 * 16) * 2 * 2  # K and V, 2 KV heads x 16, 2 layers, bf16


def test_mixtral_on_four_duplex_devices_holds_a_quarter_of_the_weights_and_kv_heads_per_device():
    c = cluster("duplex", "duplex", tp=4)
    assert c.weight_bytes_per_device(MIXTRAL) == MIXTRAL.weight_bytes // 4 == 23351396352
    kv = 2048 * 131072 // 4  # 2048 tokens x 128 KiB per token (32 layers x K, V x 8 heads x 128 x 2 B), 2 of 8 heads
    assert c.kv_bytes_per_device(MIXTRAL, 2048) == kv
    assert c.capacity_batch(MIXTRAL, 2048) == (80 * GiB - 23351396352) // kv == 932


def test_across_nodes_experts_split_over_every_device_and_the_rest_over_a_node():
    c = cluster("duplex", "duplex", tp=4, nodes=2)
    experts = MIXTRAL.param_counts().experts * 2
    assert c.weight_bytes_per_device(MIXTRAL) == (MIXTRAL.weight_bytes - experts) // 4 + experts // 8
    per_node = (80 * GiB - c.weight_bytes_per_device(MIXTRAL)) // c.kv_bytes_per_device(MIXTRAL, 2048)
    assert c.capacity_batch(MIXTRAL, 2048) == 2 * per_node


def test_the_busiest_node_gets_an_even_share_of_decodes_and_the_chunks_that_balance_tokens():
    stage = Stage(prefill=(PrefillChunk(50), PrefillChunk(100), PrefillChunk(30)), decode_ctx_tokens=(10,) * 5)
    # decodes 3 | 2; then 100 -> node 1 (2 tokens), 50 -> node 0 (3), 30 -> node 0 (53): 83 | 102
    assert node_share(stage, 2) == Stage(prefill=(PrefillChunk(100),), decode_ctx_tokens=(10, 10))
    assert node_share(stage, 1) is stage


def test_a_nodes_experts_share_its_routed_rows_evenly():
    assert node_expert_tokens(MIXTRAL, 10, 2) == (5, 5, 5, 5, 0, 0, 0, 0)  # 10 x top-2 rows over experts 0-3
    assert node_expert_tokens(MIXTRAL, 3, 4) == (3, 3, 0, 0, 0, 0, 0, 0)


def test_an_all_to_all_streams_the_leaving_rows_at_the_scale_out_bandwidth():
    duplex = get_device("duplex")
    stats = alltoall_stats(duplex, rows=256, width=6144, nodes=2)
    leaving_B = 256 * 6144 * 2 // 2  # half the bf16 rows go to the other node
    issue_s, step_s = 1e-6, 5e-6  # DMA launch, one collective step
    assert stats.time_s == pytest.approx(issue_s + step_s + leaving_B / (duplex.scale_out_GBps * 1e9))


def test_clusters_reject_splits_the_model_does_not_allow():
    with pytest.raises(InputError, match=r"tp \(3\) must divide num_heads \(4\)"):
        cluster(tp=3).check(TINY_MOE)
    with pytest.raises(InputError, match="tiny-dense is dense: expert parallelism over 2 nodes needs a MoE model"):
        cluster(nodes=2).check(TINY_DENSE)
    with pytest.raises(InputError, match=r"top_k x nodes \(2 x 4\) exceeds num_experts \(4\)"):
        cluster(nodes=4).check(TINY_MOE)
    with pytest.raises(InputError, match=r"nodes \(3\) must divide num_experts \(4\)"):
        cluster(nodes=3).check(TINY_MOE)
    with pytest.raises(InputError, match="nodes must be a positive integer, got 0"):
        cluster(nodes=0)
