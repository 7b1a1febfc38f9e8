"""The Monarch-FFT long convolution: its definition is a convolution, the compiled program gives
its bits fused and unfused, and its Op/B is what its FLOPs and bytes say."""

import numpy as np
import pytest

from opbsim.compiler import compile_graph
from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.functional import execute
from opbsim.emulator.work import work_of
from opbsim.hardware import get_device
from opbsim.isa import numerics as N
from opbsim.isa.types import DType, Space
from opbsim.workloads.longconv import LongConv, build_long_conv, long_conv_flops, reference

SN40L = get_device("sn40l")
SMALL = LongConv(batch=2, channels=3, n1=4, n2=8)


def r16(x):
    return N.widen(N.store(np.asarray(x, np.float32), DType.BF16), DType.BF16)


def spectrum_layout(h, cfg):
    """fft(h) / N in the [channels, n1, 2 n2] layout: index k1 + n1 k2 at [k1, k2] (re) and [k1, n2 + k2] (im)."""
    spec = np.fft.fft(h) / cfg.n
    out = np.empty((cfg.channels, cfg.n1, 2 * cfg.n2))
    for k1 in range(cfg.n1):
        for k2 in range(cfg.n2):
            out[:, k1, k2], out[:, k1, cfg.n2 + k2] = spec[:, k1 + cfg.n1 * k2].real, spec[:, k1 + cfg.n1 * k2].imag
    return out


def inputs(cfg, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((cfg.channels, cfg.n))
    return r16(rng.standard_normal((cfg.batch, cfg.channels, cfg.n))), h, r16(spectrum_layout(h, cfg))


def test_the_definition_is_a_circular_convolution_to_bf16_accuracy():
    x, h, h_f = inputs(SMALL)
    exact = np.real(np.fft.ifft(np.fft.fft(x) * np.fft.fft(h)[None]))
    y = reference(SMALL, x, h_f)
    assert np.abs(y - exact).max() <= 0.02 * np.abs(exact).max()  # ~10 bf16 roundings deep


@pytest.mark.parametrize("policy", ["sn40l", "sn40l-unfused"])
def test_the_compiled_convolution_gives_the_definitions_bits(policy):
    x, _, h_f = inputs(SMALL)
    c = compile_graph(build_long_conv(SMALL), SN40L, policy)
    memory = DataMemory({m.space: m.capacity_B for m in SN40L.memories})
    memory.write_raw(c.buffers["conv.x"].descriptor(), N.store(x, DType.BF16))
    memory.write_raw(c.buffers["conv.h_f"].descriptor(), N.store(h_f, DType.BF16))
    for name, data in c.constants.items():
        memory.write_raw(c.buffers[name].descriptor(), data)
    execute(c.program, memory)
    y = N.widen(memory.raw(c.buffers["conv.y"].descriptor()), DType.BF16).reshape(x.shape)
    assert np.array_equal(N.store(y, DType.BF16), N.store(reference(SMALL, x, h_f), DType.BF16))


def _traffic(cfg, policy):
    c = compile_graph(build_long_conv(cfg), SN40L, policy)
    works = [work_of(c.program, i) for i in c.program.instructions if i.mnemonic not in ("launch", "halt")]
    flops = sum(w.matrix_flops + w.vector_flops for w in works)
    off_chip = sum(n for w in works for space, n in w.bytes_by_space if space in (Space.HBM, Space.DDR))
    return flops, off_chip, c


def test_the_op_per_byte_fused_and_unfused_is_its_flops_over_the_bytes_each_form_moves():
    cfg = LongConv(batch=1, channels=16, n1=16, n2=16)
    m, n, n1, n2, d = cfg.sequences, cfg.n, cfg.n1, cfg.n2, cfg.channels
    flops = (2 * m * 2 * n1 * n2 * n1  # A = G X
             + 2 * 2 * m * n1 * 2 * n2 * 2 * n2  # B = A' R and C = Y Rc
             + 2 * m * n1 * n2 * 2 * n1  # y = Gc C'
             + 3 * 6 * m * n)  # three complex products, six operations per element
    assert long_conv_flops(cfg) == flops
    real, cplx = 2 * m * n, 4 * m * n  # bytes of a bf16 [m, n] array, and of a complex one
    tables = {"G": 2 * 2 * n1 * n1, "T": 2 * n, "R": 2 * 4 * n2 * n2}  # bf16 factor matrices (Gc as G, Rc as R)
    h_part = 2 * d * n  # the real or imaginary half of the filter spectrum
    fused = real + real + 2 * tables["G"] + 2 * tables["R"] + 8 * tables["T"] + 4 * h_part  # x, y, the factors
    # unfused, every intermediate crosses HBM too: the complex arrays A, A', B, Y, C, C' are each written by
    # one instruction and read by the next GEMM or product (A' and C' written as two halves: real each), and
    # each complex product's four partial products are written and read once and its halves read twice
    per_product = 4 * (real + real) + 2 * (2 * real + real)  # 4 x (read a half, write a product), 2 x (read 2, write 1)
    unfused = fused + 6 * cplx + 3 * per_product
    f_flops, f_bytes, c_fused = _traffic(cfg, "sn40l")
    u_flops, u_bytes, _ = _traffic(cfg, "sn40l-unfused")
    assert f_flops == u_flops == flops
    assert f_bytes == fused
    assert u_bytes == unfused
    assert u_bytes / f_bytes > 5  # the intermediates dominate the unfused form's traffic
    assert {c_fused.buffers[n].space for n in c_fused.buffers if n.startswith("L0.long_conv.")} == {Space.SRAM}
