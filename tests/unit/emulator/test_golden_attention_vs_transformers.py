"""The float64 golden of windowed, chunked and sink attention (emulator/golden_attention.py) equals
transformers' own code: its mask functions (masking_utils: causal_mask_function,
sliding_window_overlay, chunked_overlay) and GptOssAttention's eager_attention_forward (the sink
concatenated, the max subtracted, the softmax, the sink column dropped). Runs where transformers
and torch are installed (the GPU machine's image has both); skipped elsewhere."""

import types

import numpy as np
import pytest

from opbsim.emulator.golden_attention import attention, visible
from opbsim.layers.stage_rows import Request

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.mark.parametrize("window,chunk,sinks", [(4, 0, True), (0, 0, True), (3, 0, False), (0, 4, False)])
@pytest.mark.parametrize("past,new", [(0, 6), (7, 5), (10, 1)])
def test_the_golden_masks_and_sinks_equal_transformers_in_float64(window, chunk, sinks, past, new):
    from transformers import masking_utils as MU
    from transformers.models.gpt_oss import modeling_gpt_oss as G

    gen = torch.Generator().manual_seed(past * 31 + new)
    H, KV, d, ctx = 4, 2, 16, past + new
    q = torch.randn(1, H, new, d, dtype=torch.float64, generator=gen)
    k = torch.randn(1, KV, ctx, d, dtype=torch.float64, generator=gen)
    v = torch.randn(1, KV, ctx, d, dtype=torch.float64, generator=gen)
    fn = MU.causal_mask_function
    if window:
        fn = MU.and_masks(fn, MU.sliding_window_overlay(window))
    elif chunk:
        fn = MU.and_masks(fn, MU.chunked_overlay(chunk, torch.zeros(1, dtype=torch.long)))
    zero = torch.tensor(0)  # the mask functions take index tensors
    allowed = np.array([[bool(fn(zero, zero, torch.tensor(p), torch.tensor(j))) for j in range(ctx)]
                        for p in range(past, ctx)])
    assert np.array_equal(allowed, visible(np.arange(past, ctx), ctx, window, chunk))
    mask = torch.where(torch.from_numpy(allowed), 0.0, float("-inf")).to(torch.float64)[None, None]
    sink_logits = torch.randn(H, dtype=torch.float64, generator=gen) * 2 if sinks else \
        torch.full((H,), -1e300, dtype=torch.float64)  # a sink that takes nothing: plain softmax
    module = types.SimpleNamespace(num_key_value_groups=H // KV, training=False, sinks=sink_logits)
    hf, _ = G.eager_attention_forward(module, q, k, v, mask, scaling=d ** -0.5, dropout=0.0)
    ours = attention(q[0].permute(1, 0, 2).numpy(), [k[0].permute(1, 0, 2).numpy()],
                     [v[0].permute(1, 0, 2).numpy()], [Request(0, new, past)], window=window, chunk=chunk,
                     sinks=sink_logits.numpy() if sinks else None)
    assert np.abs(hf.reshape(new, H * d).numpy() - ours).max() < 1e-12
