"""A serving stage: one run of the model over a batch mixing prefill chunks and decode tokens."""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.errors import InputError

__all__ = ["PrefillChunk", "Stage"]


@dataclass(frozen=True, slots=True)
class PrefillChunk:
    """``new_tokens`` prompt tokens of one request, after ``past_tokens`` already in its KV cache
    (chunked prefill). ``final``: the chunk ends the prompt, so the stage samples the request's
    first output token (one row of logits)."""

    new_tokens: int
    past_tokens: int = 0
    final: bool = True

    def __post_init__(self) -> None:
        _check("new_tokens", self.new_tokens, 1)
        _check("past_tokens", self.past_tokens, 0)

    @property
    def context_tokens(self) -> int:
        return self.past_tokens + self.new_tokens


@dataclass(frozen=True, slots=True)
class Stage:
    """``prefill``: the prefill chunks of the stage. ``decode_ctx_tokens``: for each decoding
    request, the keys its one new token attends to (its KV-cache length after appending it, >= 1)."""

    prefill: tuple[PrefillChunk, ...] = ()
    decode_ctx_tokens: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefill", tuple(self.prefill))
        object.__setattr__(self, "decode_ctx_tokens", tuple(self.decode_ctx_tokens))
        for ctx in self.decode_ctx_tokens:
            _check("decode context", ctx, 1)
        if not self.prefill and not self.decode_ctx_tokens:
            raise InputError("a stage needs at least one prefill chunk or decode token")

    @classmethod
    def decode(cls, batch: int, context_tokens: int) -> Stage:
        """``batch`` decoding requests, each attending to ``context_tokens`` keys."""
        _check("batch", batch, 1)
        return cls(decode_ctx_tokens=(context_tokens,) * batch)

    @property
    def prefill_tokens(self) -> int:
        return sum(c.new_tokens for c in self.prefill)

    @property
    def decode_tokens(self) -> int:
        return len(self.decode_ctx_tokens)

    @property
    def tokens(self) -> int:
        """Rows every token-parallel op processes: prefill tokens plus one per decoding request."""
        return self.prefill_tokens + self.decode_tokens

    @property
    def logit_rows(self) -> int:
        """Rows that reach the LM head: each decode token and the last token of each final chunk."""
        return self.decode_tokens + sum(c.final for c in self.prefill)

    @property
    def is_decode_only(self) -> bool:
        return not self.prefill


def _check(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else "an integer >= 0"
        raise InputError(f"{name} must be {kind}, got {value!r}")
