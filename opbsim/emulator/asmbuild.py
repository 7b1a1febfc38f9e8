"""A small builder of assembly text: allocates tensors in address spaces, declares strided views,
appends instructions, and assembles the result. Programs it builds can be printed (``text``) and
re-assembled by anyone: the text, not Python objects, is the program."""

from __future__ import annotations

from opbsim.isa import assemble
from opbsim.isa.program import Program
from opbsim.isa.types import DType, Space, row_major_strides

__all__ = ["AsmBuilder"]

_ALIGN_B = 64


class AsmBuilder:
    """Accumulates ``.desc`` lines and instructions; ``program()`` assembles them.

    Tensors are placed one after another in their space, each at a 64-byte boundary.
    """

    def __init__(self, title: str):
        self._lines = [f"; {line}" for line in title.splitlines()]
        self._next: dict[Space, int] = {}
        self._desc: dict[str, tuple[Space, int, DType]] = {}
        self._decls: list[str] = []

    def fork(self, title: str) -> AsmBuilder:
        """A builder for a next program over the same memory: it declares every descriptor
        declared so far (same names, same addresses) and allocates after them."""
        other = AsmBuilder(title)
        other._next = dict(self._next)
        other._desc = dict(self._desc)
        other._decls = list(self._decls)
        other._lines.extend(self._decls)
        return other

    def tensor(self, name: str, space: Space, dtype: DType, shape: tuple[int, ...], note: str = "") -> str:
        """A new contiguous tensor in ``space``; returns its name."""
        base = self._next.get(space, 0)
        nbytes = dtype.itemsize_B
        for d in shape:
            nbytes *= d
        self._next[space] = base + (nbytes + _ALIGN_B - 1) // _ALIGN_B * _ALIGN_B
        self._declare(name, space, base, dtype, shape, row_major_strides(shape), note)
        return name

    def view(self, name: str, of: str, shape: tuple[int, ...], strides: tuple[int, ...],
             offset: int = 0, note: str = "") -> str:
        """Another view of tensor ``of``, starting ``offset`` elements after its base."""
        space, base, dtype = self._desc[of]
        self._declare(name, space, base + offset * dtype.itemsize_B, dtype, shape, strides, note)
        return name

    def _declare(self, name, space, base, dtype, shape, strides, note) -> None:
        self._desc[name] = (space, base, dtype)
        text = (f".desc {name:<12} {space.name.lower():<6} {base:#010x}  {dtype.name.lower():<4} "
                f"[{', '.join(map(str, shape))}]")
        if tuple(strides) != row_major_strides(tuple(shape)):
            text += f"  strides=[{', '.join(map(str, strides))}]"
        line = f"{text:<72} ; {note}" if note else text
        self._lines.append(line)
        self._decls.append(line)

    def op(self, text: str, note: str = "") -> None:
        line = f"    {text}"
        self._lines.append(f"{line:<60} ; {note}" if note else line)

    def comment(self, text: str) -> None:
        self._lines.append(f"; {text}")

    @property
    def text(self) -> str:
        return "\n".join(self._lines) + "\n"

    def capacities_B(self) -> dict[Space, int]:
        """Bytes used in each space (a memory of these capacities holds the program's data)."""
        return {space: max(used, _ALIGN_B) for space, used in self._next.items()}

    def program(self, file: str = "<builder>") -> Program:
        return assemble(self.text, file=file)
