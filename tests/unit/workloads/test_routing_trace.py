"""Routing trace files: the documented format, replay order, and one-line errors naming the file,
line and field."""

import json
from pathlib import Path

import numpy as np
import pytest

from opbsim.errors import InputError
from opbsim.workloads import TraceRouting, get_preset, write_trace
from opbsim.workloads.routing_trace import TRACE_FORMAT

EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "routing_trace.jsonl"


def test_the_example_trace_loads_and_fits_mixtral_8x7b_with_weights_on_every_layer():
    trace = TraceRouting.from_file(EXAMPLE)
    model = get_preset("mixtral-8x7b")
    trace.check_model(model)  # no error: 8 experts, top-2, num_layers 32, every MoE layer present
    assert (trace.num_experts, trace.top_k, trace.num_layers) == (8, 2, 32)
    assert trace.layers == tuple(range(32))
    assert {trace.tokens(layer) for layer in trace.layers} == {16}
    w = trace.weights[5]
    assert w.shape == (16, 2) and np.isfinite(w).all() and (w >= 0).all()


def test_a_written_trace_replays_per_layer_in_file_order_and_wraps_around(tmp_path):
    path = tmp_path / "routing.jsonl"
    write_trace(path, 8, 2, [(0, [[0, 1], [2, 3]]), (1, [[7, 6], [5, 4]]), (0, [[4, 5]]), (1, [[3, 2]])])
    routing = TraceRouting.from_file(path)
    assert (routing.num_experts, routing.top_k, routing.layers) == (8, 2, (0, 1))
    assert routing.route(0, 2).tolist() == [[0, 1], [2, 3]]
    assert routing.route(0, 2).tolist() == [[4, 5], [0, 1]]  # layer 0 holds 3 tokens; replay wraps
    assert routing.route(1, 4).tolist() == [[7, 6], [5, 4], [3, 2], [7, 6]]


def test_token_i_of_every_layer_is_the_same_token_so_equal_calls_keep_layers_aligned(tmp_path):
    path = tmp_path / "routing.jsonl"
    rows = {0: [[0, 1], [2, 3], [4, 5]], 1: [[1, 0], [3, 2], [5, 4]]}
    write_trace(path, 8, 2, list(rows.items()))
    routing = TraceRouting.from_file(path)
    for _ in range(3):
        a, b = routing.route(0, 2), routing.route(1, 2)
        assert (a[:, ::-1] == b).all()  # layer 1 lists each token's layer-0 experts reversed


def test_weights_round_trip_and_the_header_carries_num_layers(tmp_path):
    path = tmp_path / "t.jsonl"
    write_trace(path, 4, 2, [(0, [[0, 1]]), (1, [[2, 3]])], num_layers=2, weights=[[[0.75, 0.25]], [[0.5, 0.5]]])
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {"format": TRACE_FORMAT, "version": 1, "num_experts": 4, "top_k": 2, "num_layers": 2}
    trace = TraceRouting.from_file(path)
    assert trace.weights[0].tolist() == [[0.75, 0.25]] and trace.num_layers == 2


HEAD = '{"format": "opbsim-routing-trace", "version": 1, "num_experts": 4, "top_k": 2}'
HEAD_L = HEAD[:-1] + ', "num_layers": 2}'


@pytest.mark.parametrize("text, message", [
    ("", "empty routing trace (expected a header line)"),
    ('{"format": "other"}', '1: expected a header with "format": "opbsim-routing-trace" and "version": 1'),
    (HEAD.replace('"top_k": 2', '"top_k": 5'), "1: top_k must be in 1..num_experts (4), got 5"),
    (HEAD[:-1] + ', "extra": 1}', "1: header keys must be format, version, num_experts, top_k (and optionally "
     "num_layers)"),
    (HEAD[:-1] + ', "num_layers": 0}', "1: num_layers must be a positive integer, got 0"),
    (HEAD, "no routing records after the header"),
    (HEAD + "\n[1, 2]", "2: expected a JSON object"),
    (HEAD + "\n{oops", "2:1:2: not valid JSON: Expecting property name enclosed in double quotes"),
    (HEAD + '\n{"layer": 0}', "2: a record has the keys layer and experts (and optionally weights)"),
    (HEAD + '\n{"layer": -1, "experts": [[0, 1]]}', "2: layer must be an integer >= 0, got -1"),
    (HEAD + '\n{"layer": 0, "experts": [[0, "1"]]}', "2: experts must be a non-empty list of rows of 2 integers"),
    (HEAD + '\n{"layer": 0, "experts": [[0, 1], [0]]}', "2: experts row 1 has 1 ids; top_k is 2"),
    (HEAD + '\n{"layer": 0, "experts": [[0, 1], [2, 4]]}', "2: experts row 1: expert id 4 is outside 0..3"),
    (HEAD + '\n\n{"layer": 0, "experts": [[0, 2], [1, 1]]}', "3: experts row 1 lists the same expert twice"),
    (HEAD + '\n{"layer": 0, "experts": [[0, 1]], "weights": [[0.5, NaN]]}', "2: NaN is not a JSON number"),
    (HEAD + '\n{"layer": 0, "experts": [[0, 1]], "weights": [[0.5, -0.1]]}',
     "2: weights row 0: -0.1 is not a finite number >= 0"),
    (HEAD + '\n{"layer": 0, "experts": [[0, 1]], "weights": [[0.5]]}',
     "2: weights must be 1 rows of 2 numbers, like experts"),
    (HEAD + '\n{"layer": 0, "experts": [[0, 1]], "weights": [[1, 0]]}\n{"layer": 0, "experts": [[0, 1]]}',
     "3: layer 0 gives weights in some records and not in others"),
    (HEAD_L + '\n{"layer": 2, "experts": [[0, 1]]}', "2: layer 2 is outside 0..1 (num_layers 2)"),
    (HEAD + '\n{"layer": 0, "experts": [[0, 1], [2, 3]]}\n{"layer": 1, "experts": [[0, 1]]}',
     "layer 1 has 1 tokens, layer 0 2: every layer routes the same tokens"),
])
def test_a_bad_trace_is_one_line_naming_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "t.jsonl"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        TraceRouting.from_file(path)
    sep = ":" if message[0].isdigit() else ": "
    assert str(err.value) == f"{path}{sep}{message}"
    assert "\n" not in str(err.value)


def test_replaying_a_layer_the_trace_lacks_is_an_error(tmp_path):
    path = tmp_path / "t.jsonl"
    write_trace(path, 4, 2, [(0, [[0, 1]])])
    with pytest.raises(InputError) as err:
        TraceRouting.from_file(path).route(5, 1)
    assert str(err.value) == f"{path}: no routing records for layer 5"


def _trace(tmp_path, layers, experts=8, top_k=2, num_layers=None) -> TraceRouting:
    path = tmp_path / "t.jsonl"
    write_trace(path, experts, top_k, [(layer, [list(range(top_k))]) for layer in layers], num_layers=num_layers)
    return TraceRouting.from_file(path)


@pytest.mark.parametrize("layers, experts, top_k, num_layers, message", [
    (range(32), 4, 2, None, "the trace has 4 experts, top-2; mixtral-8x7b has 8, top-2"),
    (range(32), 8, 1, None, "the trace has 8 experts, top-1; mixtral-8x7b has 8, top-2"),
    (range(30), 8, 2, 30, "num_layers is 30; mixtral-8x7b has 32 layers"),
    (range(30), 8, 2, None, "no records for MoE layer 30 of mixtral-8x7b (the trace has layers 0..29; "
     "32 MoE layers expected)"),
    ([*range(10), *range(12, 32)], 8, 2, None, "no records for MoE layer 10 of mixtral-8x7b (the trace has layers "
     "0..9, 12..31; 32 MoE layers expected)"),
    ([*range(32), 40], 8, 2, None, "layer 40 is not a MoE layer of mixtral-8x7b (MoE layers: 0..31)"),
])
def test_a_trace_that_does_not_fit_the_model_is_refused_naming_the_mismatch(tmp_path, layers, experts, top_k,
                                                                             num_layers, message):
    trace = _trace(tmp_path, layers, experts, top_k, num_layers)
    with pytest.raises(InputError) as err:
        trace.check_model(get_preset("mixtral-8x7b"))
    assert str(err.value) == f"{tmp_path / 't.jsonl'}: {message}"
