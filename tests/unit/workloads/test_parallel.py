"""Parallel layouts: degrees validated at once with exact messages, and the --parallel string."""

import pytest

from opbsim.errors import InputError
from opbsim.workloads import get_preset
from opbsim.workloads.parallel import Parallelism, parse_parallel

MIXTRAL = get_preset("mixtral-8x7b")


def test_expert_tensor_parallelism_defaults_to_the_devices_left_after_expert_parallelism():
    assert Parallelism.of(tp=4, ep=4).etp == 1
    assert Parallelism.of(tp=4, dp=2).etp == 8
    assert Parallelism.of(tp=4, dp=2, ep=2).etp == 4
    assert Parallelism.of(tp=2, pp=2).devices == 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(tp=4, dp=2, ep=2, etp=2), r"^ep x etp \(2 x 2 = 4\) must equal tp x dp \(4 x 2 = 8\), the devices that "
                                    r"hold the experts$"),
    (dict(tp=0), r"^tp must be an integer in 1\.\.4096, got 0$"),
    (dict(tp=True), r"^tp must be an integer in 1\.\.4096, got True$"),
])
def test_a_layout_that_does_not_add_up_is_refused_on_construction(kwargs, message):
    with pytest.raises(InputError, match=message):
        Parallelism(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(tp=3), r"^tp \(3\) must divide num_heads \(32\)$"),
    (dict(tp=8, ep=3, etp=None), r"^ep \(3\) must divide tp x dp \(8 x 1 = 8\)$"),
    (dict(tp=2, dp=3, ep=3), r"^ep \(3\) must divide num_experts \(8\)$"),
    (dict(tp=1, pp=33), r"^pp \(33\) exceeds the 32 layers of mixtral-8x7b$"),
])
def test_a_layout_the_model_cannot_take_names_the_degree(kwargs, message):
    with pytest.raises(InputError, match=message):
        Parallelism.of(**kwargs).check(MIXTRAL)


def test_kv_heads_are_replicated_when_tp_exceeds_them_as_vllm_does():
    Parallelism.of(tp=16).check(get_preset("llama-3-70b"))  # 8 KV heads, 64 query heads: 2 devices per KV head


def test_a_dense_model_takes_no_expert_parallelism():
    with pytest.raises(InputError, match=r"^llama-3-70b is dense: ep must be 1, got 2$"):
        Parallelism.of(tp=2, ep=2).check(get_preset("llama-3-70b"))


def test_the_parallel_string_names_each_degree_once():
    assert parse_parallel("tp=4,ep=4") == {"tp": 4, "ep": 4}
    with pytest.raises(InputError, match=r"^--parallel: tp given twice$"):
        parse_parallel("tp=4,tp=2")
    with pytest.raises(InputError, match=r"^--parallel: ep='x' is not an integer in 1\.\.4096$"):
        parse_parallel("ep=x")
