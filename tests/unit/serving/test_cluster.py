"""Clusters: capacity, how a stage divides over nodes, expert parallelism, all-to-all cost."""

import pytest

from opbsim.emulator.cluster import Cluster, local_experts, node_share
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.workloads import PrefillChunk, Stage, get_preset
from opbsim.workloads.parallel import Parallelism

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


def test_a_devices_experts_get_tokens_x_top_k_over_e_rows_each_of_the_whole_stage():
    local, tokens, counts = local_experts(MIXTRAL, 10, 2)  # 10 tokens x top-2 = 20 rows, 10 to each half
    assert (local.num_experts, local.top_k, tokens, counts) == (4, 2, 5, (3, 3, 2, 2))
    local, tokens, counts = local_experts(MIXTRAL, 16, 8)  # one expert per device: top-2 capped at 1
    assert (local.num_experts, local.top_k, tokens, counts) == (1, 1, 4, (4,))  # 16 x 2 / 8 rows


def test_expert_weights_split_over_ep_x_etp_and_the_rest_over_tp_and_pp_splits_both():
    experts = MIXTRAL.param_counts().experts * 2
    rest = MIXTRAL.weight_bytes - experts
    ep = Cluster(device=get_device("duplex"), policy="duplex", parallel=Parallelism.of(tp=4, ep=4))
    assert ep.weight_bytes_per_device(MIXTRAL) == rest // 4 + experts // 4
    dp = Cluster(device=get_device("h100"), policy="xpu-only", parallel=Parallelism.of(tp=4, dp=2))
    assert dp.weight_bytes_per_device(MIXTRAL) == rest // 4 + experts // 8
    assert dp.capacity_batch(MIXTRAL, 2048) == 2 * ((80 * GiB - dp.weight_bytes_per_device(MIXTRAL))
                                                    // dp.kv_bytes_per_device(MIXTRAL, 2048))
    pp = Cluster(device=get_device("h100"), policy="xpu-only", parallel=Parallelism.of(tp=2, pp=2))
    assert pp.weight_bytes_per_device(MIXTRAL) == MIXTRAL.weight_bytes // 4
    assert pp.kv_bytes_per_device(MIXTRAL, 2048) == 2048 * 131072 // 2 // 2  # half the heads, half the layers


def test_devices_fill_nodes_in_rank_order_and_the_fabric_is_sized_to_the_node():
    c = Cluster(device=get_device("h100"), policy="xpu-only", parallel=Parallelism.of(tp=4, dp=4), node_devices=8)
    assert (c.devices, c.devices_per_node, c.nodes) == (16, 8, 2)
    assert c.group_local(4, 1) == 4  # a tp group lies in one node
    assert c.group_local(4, 4) == 2  # dp peers are 4 ranks apart: 2 per node of 8
    assert c.fabric_device.interconnect.node_devices == 8
    assert Cluster.from_nodes(device=get_device("h100"), policy="xpu-only", devices_per_node=4,
                              nodes=2).fabric_device.interconnect.node_devices == 4


def test_clusters_reject_splits_the_model_does_not_allow():
    with pytest.raises(InputError, match=r"tp \(3\) must divide num_heads \(4\)"):
        cluster(tp=3).check(TINY_MOE)
    with pytest.raises(InputError, match=r"^tiny-dense is dense: ep must be 1, got 2$"):
        cluster(nodes=2).check(TINY_DENSE)
    with pytest.raises(InputError, match=r"^ep \(3\) must divide num_experts \(4\)$"):
        cluster(nodes=3).check(TINY_MOE)
    with pytest.raises(InputError, match="nodes must be a positive integer, got 0"):
        cluster(nodes=0)
