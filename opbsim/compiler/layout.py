"""Memory layout: where every buffer of a compiled stage lives.

HBM is split into the device's bank-bundle sections (one section on a GPU). As in Duplex:
expert e's weights go to section e mod n; the KV cache of layer l to section l mod (n - 1); every
other weight and activation to the last section, so the xPU's dense work and Logic-PIM's
attention and experts touch different sections. Scratch (intermediates of one kernel) lives in
the unit's on-chip space (xPU: SRAM, PIM: its buffers) when it fits, else in HBM.
"""

from __future__ import annotations

import math

from opbsim.compiler.ir import View
from opbsim.errors import DoesNotFit
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.types import DType, Space, Unit

__all__ = ["Layout", "ALIGN_B", "SCRATCH"]

ALIGN_B = 256
SCRATCH = "@scratch"  # buffer name of HBM scratch views, whose base is relative until emission
_SCRATCH_SPACE = {Unit.XPU: Space.SRAM, Unit.PIM: Space.PIMBUF}


def _align(n: int) -> int:
    return -(-n // ALIGN_B) * ALIGN_B


class Layout:
    """Bump allocation per HBM section and a per-kernel scratch region per unit."""

    def __init__(self, device: DeviceSpec):
        self.device = device
        hbm = device.memory(Space.HBM)
        self.sections = hbm.sections
        self.section_B = hbm.capacity_B // hbm.sections
        self._next = [s * self.section_B for s in range(self.sections)]
        self.buffers: dict[str, View] = {}
        self._scratch_used: dict[Space, int] = {}
        self.hbm_scratch_B = 0

    def section_for(self, *, expert: int | None = None, kv_layer: int | None = None) -> int:
        """The section of a buffer of routed expert ``expert`` (its weights, rows and routing tables),
        of layer ``kv_layer``'s KV cache, or (neither) of everything else."""
        last = self.sections - 1
        if expert is not None:
            return expert % self.sections
        if kv_layer is not None and self.sections > 1:
            return kv_layer % last
        return last

    def buffer(self, name: str, dtype: DType, shape: tuple[int, ...], *, expert: int | None = None,
               kv_layer: int | None = None) -> View:
        """The HBM buffer called ``name``, allocated on first use in the section ``section_for`` gives
        (``expert``, ``kv_layer``: what the buffer belongs to); a later use may not be larger."""
        nbytes = dtype.itemsize_B * math.prod(shape)
        if name in self.buffers:
            have = self.buffers[name]
            if have.dtype is not dtype or _numel(have.shape) < _numel(shape):
                raise ValueError(f"buffer {name} reused as {dtype.name} {shape}, allocated as "
                                 f"{have.dtype.name} {have.shape}")
            return View(name, Space.HBM, have.base_B, dtype, shape)
        s = self.section_for(expert=expert, kv_layer=kv_layer)
        base = self._next[s]
        end = base + _align(nbytes)
        if end > (s + 1) * self.section_B:
            need = sum(n - i * self.section_B for i, n in enumerate(self._next)) + _align(nbytes)
            raise DoesNotFit(f"does not fit: {name} ({nbytes / 2**30:.2f} GiB) overflows HBM section {s} of "
                             f"{self.device.name} ({self.section_B / 2**30:.1f} GiB per section; "
                             f"{need / 2**30:.1f} GiB allocated in all)")
        self._next[s] = end
        view = View(name, Space.HBM, base, dtype, shape)
        self.buffers[name] = view
        return view

    def reset_scratch(self) -> None:
        """Start a new kernel: its scratch may reuse the previous kernel's."""
        self._scratch_used.clear()

    def scratch(self, unit: Unit, name: str, dtype: DType, shape: tuple[int, ...]) -> View:
        """A kernel-local intermediate, on chip when it fits."""
        nbytes = _align(_numel(shape) * dtype.itemsize_B)
        space = _SCRATCH_SPACE.get(unit)
        if space is not None and any(m.space is space for m in self.device.memories):
            used = self._scratch_used.get(space, 0)
            if used + nbytes <= self.device.memory(space).capacity_B:
                self._scratch_used[space] = used + nbytes
                return View(name, space, used, dtype, shape)
        used = self._scratch_used.get(Space.HBM, 0)
        self._scratch_used[Space.HBM] = used + nbytes
        self.hbm_scratch_B = max(self.hbm_scratch_B, used + nbytes)
        return View(SCRATCH, Space.HBM, used, dtype, shape)  # relative: ``resolve`` rebases it

    def finish(self) -> int:
        """Allocate the HBM scratch region, sized for the largest kernel; returns its base."""
        if self.hbm_scratch_B == 0:
            return 0
        return self.buffer("scratch", DType.BF16, (-(-self.hbm_scratch_B // 2),)).base_B


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)
