"""Fuzz targets: hypothesis profiles chosen by OPBSIM_FUZZ_EXAMPLES (``make fuzz`` sets 10,000)."""

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("OPBSIM_FUZZ_EXAMPLES", "25"))
settings.register_profile("fuzz", max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 25,
                          suppress_health_check=list(HealthCheck))
FUZZ = settings.get_profile("fuzz")
