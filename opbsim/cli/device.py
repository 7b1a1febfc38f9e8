"""The device flags shared by simulate, compile, time and compare: a device (a registered name or a
device file), its placement policy (the device's own by default) and ``--hw KEY=VALUE`` overrides
in the vocabulary of hardware/params.py."""

from __future__ import annotations

from collections.abc import Callable

import click

from opbsim.errors import InputError

__all__ = ["device_options", "device_of", "hw_option", "hw_of", "spec_of"]

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


def spec_of(device: str, hw: tuple[str, ...]):
    """The DeviceSpec of ``-d DEVICE`` with ``--hw`` applied (``params.changed_device``)."""
    from opbsim.hardware import get_device
    from opbsim.hardware.params import changed_device

    return changed_device(get_device(device), hw_of(hw))


def device_of(kw: dict):
    """Pops the flags of ``device_options`` from ``kw``; returns (DeviceSpec, policy name), the
    policy checked against the device."""
    from opbsim.compiler.policies import check_policy, default_policy

    spec = spec_of(kw.pop("device"), kw.pop("hw"))
    policy = kw.pop("policy") or default_policy(spec)
    check_policy(spec, policy)
    return spec, policy
