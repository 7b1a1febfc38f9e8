"""A strided view of a named buffer, as a layer definition addresses its tensors.

``base_B`` is a byte offset: into the buffer's memory space for a compiled program, into the
buffer itself for an interpreter that holds each buffer apart. ``strides`` are in elements.
Views are values: ``rows`` and ``broadcast`` derive new ones and never touch data.
"""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.isa.types import Descriptor, DType, Space, row_major_strides

__all__ = ["View", "rows", "broadcast", "at"]


@dataclass(frozen=True, slots=True)
class View:
    """A strided view of a named buffer: becomes a descriptor at emission."""

    buffer: str
    space: Space
    base_B: int
    dtype: DType
    shape: tuple[int, ...]
    strides: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.strides:
            object.__setattr__(self, "strides", row_major_strides(self.shape))

    @property
    def key(self) -> tuple:
        return (self.space, self.base_B, self.dtype, self.shape, self.strides)

    def descriptor(self, name: str | None = None) -> Descriptor:
        return Descriptor(name or self.buffer, self.space, self.base_B, self.dtype, self.shape, self.strides)


def at(view: View, offset_elems: int, shape: tuple[int, ...], strides: tuple[int, ...] = (),
       dtype: DType | None = None) -> View:
    """Another view of ``view``'s buffer, ``offset_elems`` elements (of ``view``'s dtype) past its base."""
    return View(view.buffer, view.space, view.base_B + offset_elems * view.dtype.itemsize_B, dtype or view.dtype,
                shape, strides)


def rows(view: View, start: int, count: int) -> View:
    """Rows [start, start + count) of a view whose first axis is rows."""
    return View(view.buffer, view.space, view.base_B + start * view.strides[0] * view.dtype.itemsize_B,
                view.dtype, (count, *view.shape[1:]), view.strides)


def broadcast(view: View, shape: tuple[int, ...]) -> View:
    """``view`` broadcast to ``shape`` as numpy does: new leading axes and size-1 axes get stride 0."""
    lead = len(shape) - len(view.shape)
    strides = [0] * lead
    for have, want, stride in zip(view.shape, shape[lead:], view.strides):
        if have not in (want, 1):
            raise ValueError(f"cannot broadcast {view.shape} to {shape}")
        strides.append(stride if have == want else 0)
    return View(view.buffer, view.space, view.base_B, view.dtype, shape, tuple(strides))
