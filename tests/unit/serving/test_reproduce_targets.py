"""Every published value a row shows is declared once, in report/targets.py, and rows read it from there."""

from dataclasses import fields, replace

import pytest

from opbsim.report import targets
from opbsim.report.reproduce import _rows

from .test_reproduce_rows import config


def _duplex_targets():
    return [getattr(targets.DUPLEX, f.name) for f in fields(targets.DUPLEX)]


def test_each_duplex_target_is_one_row_with_its_claim():
    rows = _rows([config("glam-143b", 100, 267, 150), config("llama-3-70b", 100, 147, 140),
                  config("opt-66b", 100, 207, 230)], {})
    assert sorted(r.claim for r in rows) == sorted(t.claim for t in _duplex_targets())


def test_a_row_judges_by_its_declared_tolerance(monkeypatch):
    rows = {r.claim: r for r in _rows([config("glam-143b", 100, 220, 150)], {})}
    claim = targets.DUPLEX.throughput_max.claim
    assert rows[claim].status.startswith("MISS")  # 2.20 / 2.67 = 0.82, outside +-15%, inside +-20%
    wider = replace(targets.DUPLEX.throughput_max, tolerance=0.2)
    monkeypatch.setattr("opbsim.report.reproduce.T", replace(targets.DUPLEX, throughput_max=wider))
    row = {r.claim: r for r in _rows([config("glam-143b", 100, 220, 150)], {})}[claim]
    assert row.status.startswith("within tolerance") and row.tolerance == "+-20%"


@pytest.mark.parametrize("target", [getattr(targets.SN40L, f.name) for f in fields(targets.SN40L)]
                         + _duplex_targets(), ids=lambda t: t.claim[:40])
def test_every_target_names_its_source_paper(target):
    assert target.source.startswith(("[D] ", "[S] "))


def test_the_shape_target_needs_both_the_jump_and_the_memory_limit():
    shape = targets.SN40L.dgx_shape
    assert shape.within(50, 150) and shape.within(41, 170)
    assert not shape.within(None, 150) and not shape.within(65, 150) and not shape.within(50, 100)
