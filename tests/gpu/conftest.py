"""Fixtures: ``host_ops`` (GpuOps on the host build of the kernels: no GPU needed) and ``gpu_ops``
(GpuOps on a real GPU through PyCUDA or CuPy; the test skips, saying why, when there is none)."""

from __future__ import annotations

import pytest

from opbsim.reference.pycuda_runner import GpuOps, GpuUnavailable, open_gpu
from tests.gpu.host_device import HostDevice, build_host_library


@pytest.fixture(scope="session")
def host_library(tmp_path_factory):
    lib = build_host_library(tmp_path_factory.mktemp("host_kernels"))
    if lib is None:
        pytest.skip("no C++ compiler (g++, c++ or clang++) to build the host kernels")
    return lib


@pytest.fixture
def host_ops(host_library) -> GpuOps:
    return GpuOps(HostDevice(host_library))


@pytest.fixture(scope="session")
def gpu_ops() -> GpuOps:
    try:
        return open_gpu()
    except GpuUnavailable as e:
        pytest.skip(str(e))
