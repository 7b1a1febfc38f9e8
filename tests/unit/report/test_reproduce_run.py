"""The Duplex reproduction's units give the same results in parallel processes as in one."""

from opbsim.report.reproduce import DUPLEX, GPU, Setup
from opbsim.report.reproduce_run import run_units


def test_units_in_two_processes_give_the_results_of_one_process_in_unit_order():
    setup = Setup("mixtral-8x7b", 4, 1)
    units = [(setup, s, ((2, 32, 4), (4, 16, 3))) for s in (GPU, DUPLEX)]
    lines: list[str] = []
    one = run_units(units, 1, lambda _: None)
    two = run_units(units, 2, lines.append)
    assert [[r.summary() for r in rs] for rs in one] == [[r.summary() for r in rs] for rs in two]
    assert [[r.stage_time_s for r in rs] for rs in one] == [[r.stage_time_s for r in rs] for rs in two]
    assert sorted(lines) == ["mixtral-8x7b on Duplex+PE+ET: 2 configurations done",
                             "mixtral-8x7b on GPU: 2 configurations done"]
