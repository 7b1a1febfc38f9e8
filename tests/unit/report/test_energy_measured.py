"""The measured energy points the GPU energy is held against, and the check's arithmetic."""

import pytest

from opbsim.report.reproduce_energy_measured import MEASURED


@pytest.mark.parametrize("m", MEASURED, ids=lambda m: f"batch {m.batch}")
def test_each_measured_point_is_its_own_power_over_its_throughput(m):
    # three figures of the source read independently: energy per token = power / token throughput
    assert m.power_W / m.tokens_per_s == pytest.approx(m.J_per_token, rel=0.01)

