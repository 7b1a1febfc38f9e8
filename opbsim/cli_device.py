"""The device flags shared by simulate, compile, time and compare: a device (a registered name or a
device file), its placement policy (the device's own by default) and ``--hw KEY=VALUE`` overrides
in the vocabulary of hardware/params.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import click

from opbsim.errors import InputError

__all__ = ["device_options", "device_of", "hw_option", "hw_of"]

DEVICE_HELP = "Device: a registered name (see `opbsim devices`) or a device file NAME.json."
POLICY_HELP = ("Placement policy [default: the device's own: the policy named after it (bank-pim, sn40l), duplex "
               "on another device with PIM, sn40l on a dataflow device, else xpu-only].")
hw_option = click.option(
    "--hw", "hw", multiple=True, metavar="KEY=VALUE",
    help="Change one hardware parameter (repeatable), e.g. --hw hbm_bw_GBps=6704; `opbsim devices show NAME` "
         "lists them. Derived ones follow: the PIM bandwidth scales with hbm_bw_GBps unless given too.")


def device_options(fn: Callable) -> Callable:
    """Adds -d/--device (required), -p/--policy and --hw."""
    for opt in reversed((click.option("-d", "--device", required=True, help=DEVICE_HELP),
                         click.option("-p", "--policy", help=POLICY_HELP), hw_option)):
        fn = opt(fn)
    return fn


def hw_of(pairs: tuple[str, ...]) -> dict[str, float]:
    """``--hw`` values as a parameter dict; a malformed pair or a repeated key is one error line."""
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--hw {pair[:40]!r}: expected KEY=VALUE, e.g. hbm_bw_GBps=6704")
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"--hw {key[:40]}: {text[:40]!r} is not a number") from None
        if key in out:
            raise InputError(f"--hw {key[:40]} given twice")
        out[key] = value
    return out


def device_of(kw: dict):
    """Pops the flags of ``device_options`` from ``kw``; returns (DeviceSpec, policy name)."""
    from opbsim.compiler.policies import default_policy
    from opbsim.hardware import get_device
    from opbsim.hardware.params import apply_hw

    spec = get_device(kw.pop("device"))
    hw = hw_of(kw.pop("hw"))
    if hw:  # named after its changes, so every table and plot says what ran
        changed = ",".join(f"{k}={v:g}" for k, v in sorted(hw.items()))
        spec = replace(apply_hw(spec, hw), name=f"{spec.name}[{changed}]", base=spec.base or spec.name)
    policy = kw.pop("policy")
    return spec, policy or default_policy(spec)
