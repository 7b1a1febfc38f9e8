"""The energy side of ``reproduce duplex``: where Duplex's savings come from, and how much the
energy rows hang on the assumed static powers.

Causes: per model, the mean over its configurations of GPU minus Duplex+PE+ET energy per token,
by component (emulator/energy.py), as a share of the saving.

Sensitivity, an analytic rescale (nothing is rerun): static energy is a separable term, a
device's ``static_W`` times the simulated time, and no timing depends on power; so scaling one
static figure by f moves a run's energy per token by (f - 1) x its static energy x that figure's
share of the device's ``static_W``. The figures: the xPU's static power, the HBM background and
refresh, and the PIM units' leakage (hardware/presets.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from opbsim.emulator.serving import ServingResult
from opbsim.hardware.registry import get_device
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.types import Space, Unit

__all__ = ["STATIC_FIGURES", "energy_causes", "static_sensitivity", "reductions", "dynamic_only_note"]

STATIC_FIGURES: tuple[tuple[str, Callable[[DeviceSpec], float]], ...] = (
    ("xPU static power (H100 board idle less its HBM)",
     lambda d: next((u.static_W for u in d.units if u.unit is Unit.XPU), 0.0)),
    ("HBM background and refresh (assumed 2 W per stack)",
     lambda d: next((m.background_W for m in d.memories if m.space is Space.HBM), 0.0)),
    ("PIM leakage (assumed: the H100's static W per mm^2)",
     lambda d: next((u.static_W for u in d.units if u.unit is Unit.PIM), 0.0)),
)


def _share(device: str, figure: Callable[[DeviceSpec], float]) -> float:
    spec = get_device(device)
    return figure(spec) / spec.static_W if spec.static_W else 0.0


def _mJ(result: ServingResult, device: str, scale: dict[int, float]) -> float:
    """``result``'s energy per token with static figure i scaled by ``scale[i]``."""
    static = dict(result.energy_breakdown_mJ_per_token).get("static", 0.0)
    return result.energy_per_token_mJ + sum((f - 1) * static * _share(device, STATIC_FIGURES[i][1])
                                            for i, f in scale.items())


def reductions(pairs: Sequence[tuple[str, ServingResult, str, ServingResult, str]],
               scale: dict[int, float] | None = None) -> list[tuple[str, float]]:
    """(model, Duplex vs GPU energy per token in %) for each configuration of ``pairs`` (model, GPU
    run, GPU device, Duplex run, Duplex device), static figure i scaled by ``scale[i]``."""
    scale = scale or {}
    out = []
    for model, gpu, gpu_dev, duplex, duplex_dev in pairs:
        out.append((model, 100 * (_mJ(duplex, duplex_dev, scale) / _mJ(gpu, gpu_dev, scale) - 1)))
    return out


def static_sensitivity(pairs) -> list[tuple[str, str, str, str, str]]:
    """Rows (figure, average reduction at x0.5 and x1.5, GLaM's largest at x0.5 and x1.5)."""
    rows = []
    for i, (name, _) in enumerate(STATIC_FIGURES):
        cells = [name]
        for how in ("mean", "glam"):
            for f in (0.5, 1.5):
                red = reductions(pairs, {i: f})
                if how == "mean":
                    cells.append(f"{sum(r for _, r in red) / len(red):.2f}%" if red else "-")
                else:
                    glam = [r for m, r in red if m == "glam-143b"]
                    cells.append(f"{min(glam):.2f}%" if glam else "-")
        rows.append((cells[0], cells[1], cells[2], cells[3], cells[4]))
    return rows


def energy_causes(pairs) -> list[str]:
    """One sentence per model: where Duplex+PE+ET's energy saving over GPU comes from."""
    by_model: dict[str, list[tuple[ServingResult, ServingResult]]] = {}
    for model, gpu, _, duplex, _ in pairs:
        by_model.setdefault(model, []).append((gpu, duplex))
    out = []
    for model, runs in by_model.items():
        n = len(runs)
        gpu_total = sum(g.energy_per_token_mJ for g, _ in runs) / n
        saving = sum(g.energy_per_token_mJ - d.energy_per_token_mJ for g, d in runs) / n
        diff: dict[str, float] = {}
        for g, d in runs:
            gb, db = dict(g.energy_breakdown_mJ_per_token), dict(d.energy_breakdown_mJ_per_token)
            for k in gb.keys() | db.keys():
                diff[k] = diff.get(k, 0.0) + (gb.get(k, 0.0) - db.get(k, 0.0)) / n
        parts = ", ".join(f"{k} {v:+.1f} mJ" for k, v in sorted(diff.items(), key=lambda kv: -abs(kv[1]))
                          if abs(v) >= 0.05)
        static_share = dict(runs[0][0].energy_breakdown_mJ_per_token).get("static", 0.0) / \
            runs[0][0].energy_per_token_mJ
        verb = f"saves {saving:.1f} of" if saving >= 0 else f"spends {-saving:.1f} mJ more than"
        out.append(f"{model}: Duplex+PE+ET {verb} the GPU's {gpu_total:.1f} mJ per token "
                   f"({-saving / gpu_total:+.0%}, mean over {n} configuration{'s' if n != 1 else ''}); by component, "
                   f"GPU minus Duplex: {parts}. Static power is {static_share:.0%} of the GPU's energy in the first "
                   "configuration.")
    return out


def dynamic_only_note(pairs) -> str:
    """What the energy rows would be with no static power at all (every static figure x 0), the
    accounting of the paper's own simulator, which charges no background or leakage power."""
    red = reductions(pairs, {i: 0.0 for i in range(len(STATIC_FIGURES))})
    if not red:
        return ""
    glam = [r for m, r in red if m == "glam-143b"]
    glam_text = f", GLaM's largest {min(glam):.2f}%" if glam else ""
    return (f"The Duplex paper's simulator [LS] charges no static power (its background power is 0 W) and an "
            f"activation on every 32-byte access; counting dynamic energy alone, ours would be an average reduction "
            f"of {sum(r for _, r in red) / len(red):.2f}%{glam_text} (the paper: -28.19%, GLaM -42.03%). The rest of "
            f"each reduction is static energy: Duplex finishes sooner, so every device draws its static power for "
            f"less time.")
