"""Sweep files over the tiny model of the report tests."""

from __future__ import annotations

import json

import pytest

from tests.unit.report.conftest import TINY_CONFIG


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tiny") / "config.json"
    path.write_text(json.dumps(TINY_CONFIG))
    return str(path)


def sweep_dict(model: str) -> dict:
    """12 configurations: h100 at 2 batches x 2 lengths, duplex at 2 PIM bandwidths x the same,
    and sn40l told to run the duplex policy (2 x 2 configurations that fail: it has no xPU)."""
    return {
        "model": model, "batch": [2, 4], "lengths": [[32, 8], [48, 8]],
        "grids": [{"device": "h100"}, {"device": "duplex", "hw": {"pim_bw_multiple": [2, 4]}},
                  {"device": "sn40l", "policy": "duplex"}],
    }


@pytest.fixture
def sweep_file(tmp_path, tiny_model):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(sweep_dict(tiny_model)))
    return path
