"""Parameter counts of the 2026 MoE presets against the published totals (within 0.5%), with the
derivation of each count and, where a published figure is counted differently, the exact cause."""

import pytest

from opbsim.workloads import PRESETS


def within(count: int, published: float, rel: float = 0.005) -> bool:
    return abs(count - published) <= rel * published


def test_deepseek_v3_counts_671b_total_and_the_36_6b_active_of_its_weight_notes():
    c = PRESETS["deepseek-v3"].param_counts()
    h = 7168
    attention = (h * 1536 + 1536 + 1536 * 128 * 192  # q: down, its norm, up to 128 heads x (128 nope + 64 rope)
                 + h * 576 + 512 + 512 * 128 * 256  # kv: latent 512 + rope key 64, its norm, up to K_nope and V
                 + 128 * 128 * h)  # o
    expert = 3 * h * 2048
    router = 256 * h + 256  # the projection and the e_score_correction_bias
    assert c.total == (61 * (attention + 2 * h) + 3 * 3 * h * 18432 + 58 * (256 * expert + expert + router)
                       + 2 * 129280 * h + h) == 671_026_419_200
    assert within(c.total, 671e9)  # the published 671B excludes the MTP module (README_WEIGHTS: 11.5B more)
    assert c.active == c.total - 58 * 248 * expert == 37_552_297_472
    # The published 37B rounds the 36.6B active of DeepSeek's README_WEIGHTS.md, which counts the output
    # head (0.9B) but not the input embedding (a row gather, no arithmetic): 37.55B - 0.93B = 36.63B.
    assert within(c.active - c.embeddings, 36.6e9)
    assert round((c.active - c.embeddings) / 1e9) == 37


def test_qwen3_30b_a3b_counts_30_5b_total_and_3_3b_active_as_truncated_on_its_model_card():
    c = PRESETS["qwen3-30b-a3b"].param_counts()
    h, expert = 2048, 3 * 2048 * 768
    attention = h * (4096 + 2 * 512) + 4096 * h + 2 * 128  # q/k/v, o, the per-head q and k norm weights
    assert c.total == 48 * (attention + 128 * expert + 128 * h + 2 * h) + 2 * 151936 * h + h == 30_532_122_624
    assert within(c.total, 30.5e9)
    assert c.active == c.total - 48 * 120 * expert == 3_353_032_704
    # 3.353B is 1.6% over 3.3B: the card truncates to one decimal (as it does 30.53B to 30.5B).
    assert int(c.active / 1e8) == 33


def test_qwen3_235b_a22b_counts_235b_total_and_22b_active_rounded_to_whole_billions():
    c = PRESETS["qwen3-235b-a22b"].param_counts()
    h, expert = 4096, 3 * 4096 * 1536
    attention = h * (8192 + 2 * 512) + 8192 * h + 2 * 128
    assert c.total == 94 * (attention + 128 * expert + 128 * h + 2 * h) + 2 * 151936 * h + h == 235_093_634_560
    assert within(c.total, 235e9)
    assert c.active == c.total - 94 * 120 * expert == 22_190_763_520
    assert round(c.active / 1e9) == 22  # 22.19B: the card gives whole billions (0.9% off 22B)


# Llama 4's vision encoder and projector (not modelled: opbsim runs the language model), summed from the
# parameter table printed with the Scout config (tests/fixtures/SOURCES.md): class and positional
# embeddings, patch embedding, pre/post LayerNorms, 34 ViT layers of width 1408 (q/k/v/o and fc1/fc2 with
# biases, two LayerNorms), the vision adapter's fc1/fc2 and the projector to 5120.
_VIT_LAYER = 4 * (1408 * 1408 + 1408) + (1408 * 5632 + 5632) + (5632 * 1408 + 1408) + 4 * 1408
LLAMA4_VISION = 1408 + 812416 + 827904 + 4 * 1408 + 34 * _VIT_LAYER + 23068672 + 16777216 + 20971520


def test_llama4_scout_text_plus_its_vision_encoder_is_the_published_109b():
    c = PRESETS["llama4-scout"].param_counts()
    h, expert = 5120, 3 * 5120 * 8192
    attention = h * (5120 + 2 * 1024) + 5120 * h  # no q/k norm weights (Llama4TextL2Norm has none)
    layer = attention + 16 * expert + expert + 16 * h + 2 * h  # routed, shared, router, norms
    assert c.total == 48 * layer + 2 * 202048 * h + h == 107_769_861_120
    # The published 109B counts the whole multimodal checkpoint: 107.77B + 0.87B = 108.64B. (The printed
    # table's own total, 109,676,279,296, exceeds that by exactly one more 202048 x 5120 table, which none
    # of its rows shows; it is not used.)
    assert LLAMA4_VISION == 871_932_416
    assert not within(c.total, 109e9)
    assert within(c.total + LLAMA4_VISION, 109e9)
    assert c.active == c.total - 48 * 15 * expert == 17_172_894_720
    assert round(c.active / 1e9) == 17  # 17.17B: "17B active" is given in whole billions


def test_llama4_maverick_counts_400b_total_and_17b_active():
    c = PRESETS["llama4-maverick"].param_counts()
    h, expert = 5120, 3 * 5120 * 8192
    attention = h * (5120 + 2 * 1024) + 5120 * h
    moe = attention + 128 * expert + expert + 128 * h + 2 * h
    dense = attention + 3 * h * 16384 + 2 * h
    assert c.total == 24 * moe + 24 * dense + 2 * 202048 * h + h == 400_711_848_960
    assert within(c.total, 400e9)
    assert within(c.total + LLAMA4_VISION, 400e9)  # with the vision encoder (the same as Scout's)
    assert c.active == c.total - 24 * 127 * expert == 17_184_691_200
    assert round(c.active / 1e9) == 17


@pytest.mark.parametrize("name,layers,experts,total,active", [
    ("gpt-oss-120b", 36, 128, 116_829_156_672, 5_711_982_912),
    ("gpt-oss-20b", 24, 32, 20_914_757_184, 4_187_440_704),
])
def test_gpt_oss_counts_its_biases_and_sinks_and_matches_the_model_card(name, layers, experts, total, active):
    c = PRESETS[name].param_counts()
    h, d = 2880, 64
    attention = h * (64 * d + 2 * 8 * d) + 64 * d * h + (64 * d + 2 * 8 * d) + h + 64  # + q/k/v/o biases, sinks
    expert = 3 * h * 2880 + 2 * 2880 + h  # gate/up/down and their biases
    router = experts * h + experts  # with its bias
    assert c.total == layers * (attention + experts * expert + router + 2 * h) + 2 * 201088 * h + h == total
    assert c.active == total - layers * (experts - 4) * expert == active
    published_total, card_active, published_active = {"gpt-oss-120b": (117e9, 5.13e9, 5.1),
                                                      "gpt-oss-20b": (21e9, 3.61e9, 3.6)}[name]
    assert within(c.total, published_total)
    # The model card's active count (its table: 5.13B / 3.61B, rounded to 5.1B / 3.6B in the release
    # notes) leaves out the input embedding (a row gather, no arithmetic).
    assert within(c.active - c.embeddings, card_active)
    assert round((c.active - c.embeddings) / 1e9, 1) == published_active
