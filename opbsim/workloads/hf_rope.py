"""The RoPE keys of a config.json: the base and any rescaling of the frequencies.

``rope_theta`` (or ``rope_parameters.rope_theta``, the form of ``transformers`` v5, which takes it
first; both present must agree) is the base. A ``rope_scaling`` object (or the scaling keys of
``rope_parameters``) of a kind ``transformers`` implements (``linear``, ``dynamic``, ``yarn``,
``longrope``, ``llama3``) is read into a ``RopeScaling`` with every parameter of its kind: it changes
the angles RoPE rotates by, and YaRN also scales cos/sin by a constant, but no shape, op or byte (the
rope op reads a precomputed table of the same size). Its keys are those ``transformers``'
modeling_rope_utils checks for that kind: a required key missing, an unknown key or an unknown kind
(Qwen2-VL's multimodal ``mrope``) is one line naming the key. YaRN without
``original_max_position_embeddings`` takes ``max_position_embeddings``, as transformers v4 does; its
``factor`` is the file's (transformers v4.5x replaces it by max_position_embeddings /
original_max_position_embeddings when both are given: the published files have the two equal).
Partial RoPE (``partial_rotary_factor`` other than 1) changes the rope op's width and stays rejected.
"""

from __future__ import annotations

from opbsim.workloads.hf_reader import Reader, quoted, shown
from opbsim.workloads.models import ROPE_SCALING_KINDS, RopeScaling

__all__ = ["read_rope"]

# kind -> (required keys, optional keys), as transformers' _validate_<kind>_parameters (v4.45..v4.57).
_SCALING_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "linear": (frozenset({"factor"}), frozenset()),
    "dynamic": (frozenset({"factor"}), frozenset({"original_max_position_embeddings"})),
    "yarn": (frozenset({"factor"}), frozenset({"original_max_position_embeddings", "attention_factor", "beta_fast",
                                                "beta_slow", "mscale", "mscale_all_dim", "truncate"})),
    "longrope": (frozenset({"short_factor", "long_factor"}),
                 frozenset({"factor", "original_max_position_embeddings", "attention_factor"})),
    "llama3": (frozenset({"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}),
               frozenset()),
}

_KIND_KEYS = ("rope_type", "type")  # transformers writes both; older files only "type"
_V5_KEYS = frozenset({"rope_theta", "partial_rotary_factor"})  # rope_parameters' keys besides the scaling's


def read_rope(r: Reader, family: str, default_theta: float) -> tuple[float, RopeScaling | None]:
    """The RoPE base (``default_theta`` when the file gives none) and the recorded scaling."""
    scaling = None
    longest = r.data.get("max_position_embeddings")
    longest = longest if isinstance(longest, int) and not isinstance(longest, bool) and longest > 0 else None
    if r.data.get("rope_scaling") is not None:
        scaling = _scaling(r.section("rope_scaling"), family, extra=frozenset(), longest=longest)
    r.ignore(("rope_scaling",))
    _check_full_rotary(r)
    theta = r.number("rope_theta", None, positive=True)
    if r.data.get("rope_parameters") is None:
        r.ignore(("rope_parameters",))
        return (default_theta if theta is None else theta), scaling
    params = r.section("rope_parameters")
    v5_scaling = _scaling(params, family, extra=_V5_KEYS, longest=longest)
    _check_full_rotary(params)
    nested = params.number("rope_theta", None, positive=True)
    params.check_unknown(family)
    if theta is not None and nested is not None and theta != nested:
        raise r.error("rope_theta", f"{theta} contradicts rope_parameters.rope_theta ({nested})")
    if scaling is not None and v5_scaling is not None and scaling != v5_scaling:
        raise r.error("rope_scaling", f"{scaling} contradicts rope_parameters ({v5_scaling})")
    base = nested if nested is not None else default_theta if theta is None else theta
    return base, scaling or v5_scaling


def _scaling(s: Reader, family: str, *, extra: frozenset[str], longest: int | None) -> RopeScaling | None:
    """The scaling an object describes (None for the ``default`` kind); ``extra``: other keys the
    object may hold (read by the caller); ``longest``: the file's max_position_embeddings, if any."""
    kind = _kind(s)
    if kind == "default":
        if not extra:  # rope_parameters' other keys are checked by the caller once it has read them
            s.check_unknown(family)
        return None
    if kind not in _SCALING_KEYS:
        key = next(k for k in _KIND_KEYS if s.data.get(k) is not None)
        raise s.error(key, f"{quoted(kind)} is not a supported RoPE scaling ({', '.join(ROPE_SCALING_KINDS)} "
                      "or default)")
    required, optional = _SCALING_KEYS[kind]
    for key in sorted(required):
        if s.data.get(key) is None:
            raise s.error(key, f"missing (RoPE scaling {kind!r} needs {', '.join(sorted(required))})")
    for key in sorted(required | optional):
        _check_value(s, key)
    for key in s.data:
        if key not in required | optional | extra and key not in _KIND_KEYS:
            raise s.error(key, f"unknown key for RoPE scaling {kind!r}")
    s.ignore(extra)
    original = s.data.get("original_max_position_embeddings")
    if kind == "yarn" and original is None:
        if longest is None:
            raise s.error("original_max_position_embeddings", "missing (RoPE scaling 'yarn' needs it or "
                          "max_position_embeddings)")
        original = longest
    numbers = {key: s.number(key, None) for key in ("low_freq_factor", "high_freq_factor", "attention_factor",
                                                    "mscale", "mscale_all_dim", "beta_fast", "beta_slow")}
    betas = {key: numbers.pop(key) or default for key, default in (("beta_fast", 32.0), ("beta_slow", 1.0))}
    low, high = numbers["low_freq_factor"], numbers["high_freq_factor"]
    if kind == "llama3" and not low < high:
        raise s.error("high_freq_factor", f"{high:g} must be above low_freq_factor ({low:g})")
    return RopeScaling(kind=kind, factor=s.number("factor", None, positive=True),
                       original_max_position_embeddings=original, truncate=s.flag("truncate", True),
                       **numbers, **betas)


def _kind(s: Reader) -> str:
    """``rope_type`` or ``type`` (both present must agree); ``default`` when neither is."""
    names = [k for k in _KIND_KEYS if s.data.get(k) is not None]
    values = [s.text(k) for k in names]
    if len(values) == 2 and values[0] != values[1]:
        raise s.error("type", f"{quoted(values[1])} contradicts rope_type {quoted(values[0])}")
    s.ignore(_KIND_KEYS)
    return values[0] if values else "default"


def _check_value(s: Reader, key: str) -> None:
    if s.data.get(key) is None:
        s.ignore((key,))
    elif key == "factor":
        s.number(key, positive=True)
    elif key == "original_max_position_embeddings":
        s.count(key)
    elif key == "truncate":
        s.flag(key, True)
    elif key in ("short_factor", "long_factor"):
        value = s.get(key)
        if not isinstance(value, list) or not value or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value):
            raise s.error(key, f"expected a list of numbers > 0, got {shown(value)}")
    else:
        s.number(key)


def _check_full_rotary(r: Reader) -> None:
    factor = r.number("partial_rotary_factor", 1.0, positive=True)
    if factor != 1.0:
        raise r.error("partial_rotary_factor", f"{factor} is not supported (RoPE over only part of each head)")
