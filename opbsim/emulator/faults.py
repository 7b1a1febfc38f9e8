"""The errors the functional executor raises: all are InputErrors (bad program or data)."""

from __future__ import annotations

from opbsim.errors import InputError

__all__ = ["MemoryFault", "OperandError", "ExecutionError"]


class MemoryFault(InputError):
    """A descriptor that cannot be read or written: outside its space, misaligned, overlapping
    itself as a destination, or reading bytes nothing has written."""


class OperandError(InputError):
    """Operands an instruction cannot accept: a shape or dtype mismatch, a bad index or immediate."""


class ExecutionError(InputError):
    """A fault while executing one instruction, named by its index and its assembly text.

    ``str(e)`` is ``instruction INDEX (TEXT): REASON``.
    """

    def __init__(self, index: int, text: str, reason: str):
        self.index = index
        self.text = text
        self.reason = reason
        super().__init__(f"instruction {index} ({text}): {reason}")
