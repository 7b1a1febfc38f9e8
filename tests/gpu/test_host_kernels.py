"""The kernels' own scalar code (numerics.cuh), built for the CPU, equals numerics.py bit for
bit; and GpuOps drives it correctly: argument types, strides, offsets and launch geometry are
checked against the kernel sources on every launch (host_device.py). No GPU needed."""

from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest

from opbsim.isa import elementary as E
from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.reference.checks import CHECKS, corner_f32, run_checks
from opbsim.reference.interface import BF16, FP32
from opbsim.reference.sources import KERNEL_DIR, KERNELS
from tests.gpu.host_device import HostDevice, kernel_signatures


def test_every_kernel_has_a_parsed_signature_and_a_host_twin_with_the_same_parameters():
    sigs = kernel_signatures()
    assert set(sigs) == set(KERNELS)
    host = (KERNEL_DIR.parents[2] / "tests" / "gpu" / "host_kernels.cpp").read_text()
    for name, (_, kinds) in sigs.items():
        params = re.search(rf"void {name}\(GEOM, ([^)]*)\)", host).group(1)
        twin = tuple("pointer" if "*" in p else " ".join(p.split()[:-1]) for p in params.split(","))
        assert twin == kinds, name


@pytest.mark.parametrize("check", list(CHECKS))
def test_the_host_build_of_the_kernels_passes_every_kernel_check(host_ops, check):
    bad = [line for c in run_checks(host_ops, 0, (check,)) if not c.bit_exact for line in c.lines()]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("op", ["exp", "rsqrt", "silu", "gelu", "relu", "exp_scaled"])
def test_the_elementary_functions_match_numerics_on_two_million_inputs(host_ops, op):
    rng = np.random.default_rng(8)
    x = np.concatenate([corner_f32(rng, 1_000_000), rng.uniform(-180, 100, 1_000_000).astype(np.float32)])
    fn = {"exp": N.exp, "rsqrt": N.rsqrt, "silu": N.silu, "gelu": N.gelu, "relu": N.relu,
          "exp_scaled": lambda v: E.exp_scaled(v, 64)}[op]
    got = host_ops.download(host_ops.unary(op, host_ops.upload(x), FP32, 64 if op == "exp_scaled" else 0))
    want = N.store(fn(x), DType.FP32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_sincos_matches_elementary_for_every_finite_angle_class(host_library):
    rng = np.random.default_rng(3)
    a = np.concatenate([corner_f32(rng, 500_000), rng.uniform(-2.0**21, 2.0**21, 500_000).astype(np.float32),
                        rng.uniform(-4, 4, 200_000).astype(np.float32)])
    s, c = np.empty_like(a), np.empty_like(a)
    lib = ctypes.CDLL(str(host_library))
    ptr = ctypes.c_void_p
    lib.host_sincos(a.ctypes.data_as(ptr), s.ctypes.data_as(ptr), c.ctypes.data_as(ptr), ctypes.c_longlong(a.size))
    with np.errstate(all="ignore"):
        ws, wc = E.sincos(a)
    for got, want in ((s, ws), (c, wc)):
        got, want = N.store(got, DType.FP32), N.store(want, DType.FP32)  # NaN payloads aside
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_a_launch_whose_arguments_disagree_with_the_kernel_source_is_refused(host_library):
    dev = HostDevice(host_library)
    buf = dev.alloc(16)
    p = np.uint64(dev.ptr(buf))
    with pytest.raises(AssertionError, match=r"opb_cvt parameter 2: long long passed as int32"):
        dev.launch("opb_cvt", (1, 1, 1), (32, 1, 1), (p, p, np.int32(4), np.int32(1), np.int32(0)))
    with pytest.raises(AssertionError, match=r"pointer 0x10 outside every allocation"):
        dev.launch("opb_cvt", (1, 1, 1), (32, 1, 1), (np.uint64(16), p, np.int64(4), np.int32(1), np.int32(0)))
    with pytest.raises(AssertionError, match=r"opb_gemv: launch grid \(1, 1, 1\) block \(256, 1, 1\) \(at most 128"):
        args = (p, p, p, *[np.int64(0)] * 12, *[np.int32(1)] * 6)
        dev.launch("opb_gemv", (1, 1, 1), (256, 1, 1), args)


def test_indices_out_of_range_are_refused_before_any_launch(host_ops):
    src = host_ops.upload(np.zeros((4, 3), np.uint16))
    with pytest.raises(ValueError, match=r"index 4 is outside 0..3"):
        host_ops.gather(src, host_ops.upload(np.array([0, 4], np.int32)))
    assert host_ops.download(host_ops.cvt(src, BF16)).shape == (4, 3)
