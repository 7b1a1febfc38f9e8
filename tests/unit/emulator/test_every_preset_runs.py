"""Every preset of ``opbsim models`` goes through ``opbsim run`` (one decoder layer at small widths,
bit-exact against the numerics definition) and ``opbsim simulate``'s compile check (the full-size
model, every layer kind and the head, on a GPU and on Duplex), or is refused in one line naming the
features the compiler cannot lower. The test iterates over the preset table."""

from __future__ import annotations

import pytest

from opbsim.emulator.layer_check import check_layer
from opbsim.emulator.support import lowering_blockers
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.workloads.features import unlowered_features
from opbsim.workloads.presets import PRESETS
from opbsim.workloads.stage import Stage

from ..compiler.test_every_preset_lowers import reduced


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_passes_run_at_small_widths_and_simulates_full_size_or_is_refused_by_name(name):
    model = reduced(PRESETS[name])
    missing = unlowered_features(model)
    layer = next((i for i in range(model.num_layers) if model.is_moe_layer(i)), model.num_layers - 1)
    if missing:
        with pytest.raises(InputError) as refusal:
            check_layer(model, layer, Stage.decode(3, 9), get_device("duplex"), "duplex")
        assert all(feature in str(refusal.value) for feature in missing)
    else:
        check = check_layer(model, layer, Stage.decode(3, 9), get_device("duplex"), "duplex")
        assert check.bit_exact and {f"L{layer}.h", f"L{layer}.ffn_out"} <= set(check.outputs_checked)
    full = PRESETS[name]
    blockers = lowering_blockers(full, ("h100", "duplex"))
    if unlowered_features(full):
        assert set(blockers) == {"h100", "duplex"}
    else:
        assert blockers == {}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deepseek-v2-lite", "qwen3-30b-a3b", "llama4-scout", "gpt-oss-20b"])
def test_a_full_size_layer_of_each_2026_family_runs_bit_exact(name):
    """One full-size MoE layer of MLA, q/k-norm, chunked/NoPE and sliding/sink families at a small
    decode batch (gpt-oss with its mxfp4 experts stored as bf16, as ``--dtype bf16`` runs it)."""
    import dataclasses

    from opbsim.isa.types import DType

    model = PRESETS[name]
    if model.weight_quant is not None:
        model = dataclasses.replace(model, weight_quant=None, weight_dtype=DType.BF16)
    layer = next(i for i in range(model.num_layers) if model.is_moe_layer(i))
    check = check_layer(model, layer, Stage.decode(4, 64), get_device("duplex"), "duplex")
    assert check.bit_exact and f"L{layer}.ffn_out" in check.outputs_checked
