"""Expert routing: which experts each token of a stage is sent to.

A router's ``route(layer, tokens)`` returns an int32 array of shape (tokens, top_k): the experts of
each token, distinct within a row. Every MoE layer is its own stream: the routing a layer gets
depends only on the seed (or trace), the layer index and the calls made for that layer before, so
results are reproducible whatever order layers are routed in.

Here: balanced, uniform and Zipf routing. Skewed, layer-correlated routing is in routing_skew.py;
replay of routing trace files (docs/routing.md) in routing_trace.py.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from opbsim.errors import InputError

__all__ = ["Routing", "BalancedRouting", "UniformRouting", "ZipfRouting", "expert_counts",
           "expected_fraction_touched", "check_shape"]


class Routing(Protocol):
    num_experts: int
    top_k: int

    def route(self, layer: int, tokens: int) -> np.ndarray: ...


def expert_counts(assignment: np.ndarray, num_experts: int) -> np.ndarray:
    """Tokens sent to each expert (int64, length ``num_experts``)."""
    return np.bincount(np.asarray(assignment).ravel(), minlength=num_experts).astype(np.int64)


def expected_fraction_touched(num_experts: int, top_k: int, tokens: int) -> float:
    """Expected share of experts that get at least one of ``tokens`` tokens under uniform routing:
    each token misses a given expert with probability 1 - k/E, so 1 - (1 - k/E)^tokens."""
    return 1.0 - (1.0 - top_k / num_experts) ** tokens


def check_shape(num_experts: object, top_k: object) -> None:
    if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts < 1:
        raise InputError(f"num_experts must be a positive integer, got {num_experts!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_experts:
        raise InputError(f"top_k must be in 1..num_experts ({num_experts}), got {top_k!r}")


class BalancedRouting:
    """Deterministic round-robin: token t goes to experts (t k + j) mod E, j < k, so every expert
    gets floor(T k / E) or one more token. The default when no routing is given."""

    def __init__(self, num_experts: int, top_k: int):
        check_shape(num_experts, top_k)
        self.num_experts = num_experts
        self.top_k = top_k

    def route(self, layer: int, tokens: int) -> np.ndarray:
        slots = np.arange(tokens * self.top_k, dtype=np.int64).reshape(tokens, self.top_k)
        return (slots % self.num_experts).astype(np.int32)


MAX_SKEW = 100.0  # past a skew of about 40 every token already takes the top_k highest-ranked experts


class ZipfRouting:
    """Skewed routing: expert of rank r (0-based) is chosen with weight (r + 1)^-skew, top_k distinct
    experts per token drawn without replacement in proportion to the weights (Gumbel top-k). Each
    layer ranks its experts by its own seeded permutation. ``skew = 0`` is uniform routing."""

    def __init__(self, num_experts: int, top_k: int, *, skew: float, seed: int):
        check_shape(num_experts, top_k)
        if not (isinstance(skew, (int, float)) and not isinstance(skew, bool) and 0 <= skew <= MAX_SKEW):
            raise InputError(f"skew must be a number in 0..{MAX_SKEW:g}, got {skew!r}")
        self.num_experts = num_experts
        self.top_k = top_k
        self.skew = float(skew)
        self.seed = seed
        self._streams: dict[int, tuple[np.random.Generator, np.ndarray]] = {}

    def _stream(self, layer: int) -> tuple[np.random.Generator, np.ndarray]:
        if layer not in self._streams:
            rng = np.random.default_rng([self.seed, layer])
            log_w = -self.skew * np.log(np.arange(1, self.num_experts + 1, dtype=np.float64))
            self._streams[layer] = (rng, log_w[rng.permutation(self.num_experts)])
        return self._streams[layer]

    def route(self, layer: int, tokens: int) -> np.ndarray:
        rng, log_w = self._stream(layer)
        keys = log_w + rng.gumbel(size=(tokens, self.num_experts))
        if self.top_k == self.num_experts:
            return np.argsort(-keys, axis=1).astype(np.int32)
        return np.argpartition(-keys, self.top_k - 1, axis=1)[:, : self.top_k].astype(np.int32)


class UniformRouting(ZipfRouting):
    """Each token picks top_k distinct experts uniformly at random (seeded)."""

    def __init__(self, num_experts: int, top_k: int, *, seed: int):
        super().__init__(num_experts, top_k, skew=0.0, seed=seed)
