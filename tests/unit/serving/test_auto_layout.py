"""The automatic layout: the smallest tensor-parallel degree inside a node, else the fewest nodes
(tp = etp = the node's devices, dp = ep = nodes)."""

from __future__ import annotations

from opbsim.emulator.cluster import MAX_AUTO_NODES, smallest_tp
from opbsim.hardware import get_device
from opbsim.workloads import get_preset


def test_a_model_that_fits_a_node_gets_the_smallest_tensor_parallel_degree_there():
    chosen = smallest_tp(get_preset("mixtral-8x7b"), get_device("h100"), "xpu-only", context_tokens=2048, batch=16)
    assert (chosen.parallel.tp, chosen.parallel.dp, chosen.parallel.ep) == (2, 1, 1)


def test_a_model_larger_than_a_node_spans_the_fewest_nodes_with_experts_split_across_them():
    model, device = get_preset("deepseek-v2"), get_device("l40s")  # 472 GB of bf16 weights, 8 x 48 GB per node
    chosen = smallest_tp(model, device, "xpu-only", context_tokens=1024, batch=8)
    p = chosen.parallel
    assert (p.tp, p.etp, p.dp, p.ep) == (8, 8, 2, 2)
    assert smallest_tp(model, device, "xpu-only", context_tokens=1024, batch=8, node_devices=4).parallel.dp == 4


def test_on_single_device_nodes_the_automatic_layout_is_data_and_expert_parallel_only():
    chosen = smallest_tp(get_preset("mixtral-8x22b"), get_device("l40s"), "xpu-only", context_tokens=1024, batch=8,
                         node_devices=1)
    p = chosen.parallel
    assert p.tp == p.etp == 1 and p.dp == p.ep and 1 < p.dp <= MAX_AUTO_NODES


def test_no_layout_is_chosen_when_no_automatic_cluster_holds_the_model():
    # one device per node: every device holds all of llama-3-70b's dense weights (140 GB), more than 48 GB
    assert smallest_tp(get_preset("llama-3-70b"), get_device("l40s"), "xpu-only", context_tokens=1024, batch=8,
                       node_devices=1) is None
