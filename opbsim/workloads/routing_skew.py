"""Skewed, layer-correlated expert routing: ``--routing skew[:CONCENTRATION[,CORRELATION]]``.

Two properties routers of trained MoE models show (docs/routing.md gives the sources):

- skew: within a layer some experts get several times their fair share of the tokens (the
  straggler effect of He et al. 2025, "Capacity-Aware Inference", on Mixtral-8x7B, OLMoE and
  DeepSeek-V2-Lite; a few hot experts in Huang et al. 2023, "Towards MoE Deployment"; variable
  per-layer imbalance in DeepSeek-V3, Qwen3 and Llama 4 in "Scaling Multi-Node MoE Inference
  Using Expert Activation Patterns", 2026). Model: layer l's expert popularity ``p_l`` is drawn
  once from a symmetric Dirichlet of ``concentration`` alpha; an expert's share then has mean
  1/E and coefficient of variation sqrt((E - 1) / (E alpha + 1)). alpha -> infinity is uniform.
- inter-layer affinity: a token's experts in layer l+1 depend on its experts in layer l (Yao et
  al. 2024, ExFlow). Model: a token picks its top_k experts by the largest ``log p_l + g`` over
  i.i.d. Gumbel noise g (Gumbel top-k: k draws without replacement in proportion to p_l). Each
  layer after the first has a seeded affinity permutation ``pi_l``; with probability
  ``correlation`` rho a token carries its noise over from layer l, moved along pi_l (expert pi_l(e)
  gets the noise expert e had), otherwise it draws fresh noise. Carried noise is still i.i.d.
  Gumbel, so every layer's load follows its own popularity p_l whatever rho (the two parameters
  are separate: alpha sets the imbalance, rho only the token paths). With uniform popularity a
  carried token goes exactly to pi_l of its experts; with skewed popularity, towards them.

Tokens are generated in blocks of ``BLOCK_TOKENS`` for the whole chain of layers, each block
from its own seeded stream, so token i's path through the layers is fixed by (seed, i); every
layer has its own cursor into that token stream (``route``), and a layer routed with the same
token counts as the others sees the same tokens.

The defaults (``DEFAULT_CONCENTRATION``, ``DEFAULT_CORRELATION``) are assumptions, not fits: the
sources above report skew and affinity qualitatively or as plots; docs/routing.md shows how the
stage time moves with each.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from opbsim.errors import InputError
from opbsim.workloads.routing import check_shape

__all__ = ["SkewRouting", "DEFAULT_CONCENTRATION", "DEFAULT_CORRELATION", "BLOCK_TOKENS", "share_cv",
           "parse_skew"]

DEFAULT_CONCENTRATION = 2.0  # assumed: an expert's share of a layer has a coefficient of variation ~0.7
DEFAULT_CORRELATION = 0.5  # assumed: half the tokens follow their previous layer's affinity partner
MAX_CONCENTRATION = 1e6  # past this the popularity is uniform to within 0.1% (cv ~ 1/sqrt(E alpha))
BLOCK_TOKENS = 512
_CACHE_B = 64 << 20  # blocks kept: a stage of up to this many bytes of paths is generated once
_TAG = 0x534B4557  # "SKEW": keeps these streams apart from the other routings' for the same seed


def share_cv(num_experts: int, concentration: float) -> float:
    """Coefficient of variation of one expert's share under Dirichlet(concentration) popularity."""
    return math.sqrt((num_experts - 1) / (num_experts * concentration + 1))


def parse_skew(spec: str) -> tuple[float, float]:
    """``skew``, ``skew:ALPHA`` or ``skew:ALPHA,RHO`` as (concentration, correlation)."""
    if spec == "skew":
        return DEFAULT_CONCENTRATION, DEFAULT_CORRELATION
    body = spec[len("skew:"):] if spec.startswith("skew:") else None
    parts = body.split(",") if body else []
    if not 1 <= len(parts) <= 2:
        raise InputError(f"--routing {spec[:60]}: expected skew, skew:CONCENTRATION or skew:CONCENTRATION,CORRELATION")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"--routing {spec[:60]}: the concentration and correlation must be numbers") from None
    return values[0], values[1] if len(values) == 2 else DEFAULT_CORRELATION


class SkewRouting:
    """Dirichlet-skewed popularity per layer and affinity-correlated paths across ``layers`` (the
    MoE layer indices, in order; routing any other layer is an error). Seeded and deterministic."""

    def __init__(self, num_experts: int, top_k: int, *, layers: Sequence[int],
                 concentration: float = DEFAULT_CONCENTRATION, correlation: float = DEFAULT_CORRELATION, seed: int):
        check_shape(num_experts, top_k)
        if not (isinstance(concentration, (int, float)) and not isinstance(concentration, bool)
                and 0 < concentration <= MAX_CONCENTRATION):
            raise InputError(f"concentration must be a number in (0, {MAX_CONCENTRATION:g}], got {concentration!r}")
        if not (isinstance(correlation, (int, float)) and not isinstance(correlation, bool) and 0 <= correlation <= 1):
            raise InputError(f"correlation must be a number in 0..1, got {correlation!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {seed!r}")
        layers = tuple(layers)
        if not layers or len(set(layers)) != len(layers) or any(
                isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in layers):
            raise InputError(f"layers must be distinct integers >= 0, got {layers!r}")
        self.num_experts, self.top_k = num_experts, top_k
        self.concentration, self.correlation, self.seed = float(concentration), float(correlation), seed
        self.layers = layers
        self._index = {layer: i for i, layer in enumerate(layers)}
        rng = np.random.default_rng([seed, _TAG, 0])
        # Dirichlet via normalised gammas; float64 gammas of small alpha can underflow to 0: floor them
        g = np.maximum(rng.gamma(self.concentration, size=(len(layers), num_experts)), 1e-300)
        self.popularity = g / g.sum(axis=1, keepdims=True)  # [layers, E], each row sums to 1
        self.affinity = np.stack([rng.permutation(num_experts) for _ in layers]).astype(np.int32)  # row 0 unused
        self._log_p = np.log(self.popularity)
        self._blocks: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cursor = dict.fromkeys(layers, 0)

    def _topk(self, keys: np.ndarray) -> np.ndarray:
        if self.top_k == self.num_experts:
            return np.argsort(-keys, axis=1).astype(np.int32)
        return np.argpartition(-keys, self.top_k - 1, axis=1)[:, : self.top_k].astype(np.int32)

    def _block(self, b: int) -> np.ndarray:
        """int32 [layers, BLOCK_TOKENS, top_k]: the paths of tokens b*BLOCK .. (b+1)*BLOCK - 1."""
        hit = self._blocks.get(b)
        if hit is not None:
            self._blocks.move_to_end(b)
            return hit
        rng = np.random.default_rng([self.seed, _TAG, 1, b])
        out = np.empty((len(self.layers), BLOCK_TOKENS, self.top_k), np.int32)
        noise = rng.gumbel(size=(BLOCK_TOKENS, self.num_experts))
        out[0] = self._topk(self._log_p[0] + noise)
        for i in range(1, len(self.layers)):
            carried = np.empty_like(noise)
            carried[:, self.affinity[i]] = noise  # expert pi(e) gets the noise expert e had
            fresh = rng.gumbel(size=noise.shape)
            follow = rng.random(BLOCK_TOKENS) < self.correlation
            noise = np.where(follow[:, None], carried, fresh)
            out[i] = self._topk(self._log_p[i] + noise)
        self._blocks[b] = out
        if len(self._blocks) > max(2, _CACHE_B // out.nbytes):
            self._blocks.popitem(last=False)
        return out

    def route(self, layer: int, tokens: int) -> np.ndarray:
        i = self._index.get(layer)
        if i is None:
            raise InputError(f"skew routing covers layers {self.layers[0]}..{self.layers[-1]} "
                             f"({len(self.layers)} MoE layers); layer {layer} is not one of them")
        start = self._cursor[layer]
        self._cursor[layer] = start + tokens
        out = np.empty((tokens, self.top_k), np.int32)
        t = 0
        while t < tokens:
            b, off = divmod(start + t, BLOCK_TOKENS)
            n = min(tokens - t, BLOCK_TOKENS - off)
            out[t:t + n] = self._block(b)[i, off:off + n]
            t += n
        return out
