"""The error types opbsim raises for bad input.

Every error a user can provoke with a file, a flag or data is an ``InputError``; the CLI prints it
as one line and exits with status 1. Anything else escaping is a bug in opbsim.
"""

from __future__ import annotations

__all__ = ["InputError", "DoesNotFit", "AsmError", "DecodeError", "ProgramError"]


class InputError(Exception):
    """Bad user input: a file, a flag value or data that opbsim cannot accept."""


class DoesNotFit(InputError):
    """A model, stage or check that needs more memory than the device (or this machine) has; the
    message starts with "does not fit" and names the sizes."""


class AsmError(InputError):
    """An assembly source error at ``file:line:column`` (1-based line and column)."""

    def __init__(self, message: str, *, file: str = "<input>", line: int = 0, column: int = 0):
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        super().__init__(f"{file}:{line}:{column}: {message}")


class DecodeError(InputError):
    """A binary program error at byte ``offset`` of the input."""

    def __init__(self, message: str, *, offset: int):
        self.message = message
        self.offset = offset
        super().__init__(f"byte offset {offset}: {message}")


class ProgramError(InputError):
    """A structurally invalid program: a bad operand, descriptor or label."""
