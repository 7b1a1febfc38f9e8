"""Bad input on the command line: one short line and exit status 1 (``bad_input``), and a file-path
parameter whose problems are bad input, not usage errors (exit 2).

A missing input file or an output path that is a directory is a problem with what the user gave,
like a malformed config, so it gets the same one line and exit status 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from opbsim.errors import InputError

__all__ = ["FilePath", "bad_input", "check_output", "make_out_dir"]

_MESSAGE_CHARS = 280  # an error line stays under 300 characters with its "Error: " prefix
_ECHO_CHARS = 40


def _short(message: str) -> str:
    """One line: a long run without spaces (an echoed value; a file path keeps up to 200) cut to 40
    characters, the whole to 280."""
    def cut(word: str) -> str:
        keep = 200 if "/" in word else _ECHO_CHARS
        return word if len(word) <= keep else word[:keep - 3] + "..."

    text = " ".join(cut(w) for w in message.replace("\n", " ").split(" "))
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS - 3] + "..."


def bad_input(message: str) -> click.ClickException:
    """The exception that prints ``Error: <message>`` (clipped to one short line) and exits 1."""
    err = click.ClickException(_short(message))
    err.exit_code = 1
    return err


class FilePath(click.Path):
    """An output file (``exists=False``, ``dir_okay=False``) must be in a folder that exists: checked
    when the flag is read, before any work."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and "\x00" in value:
            self.fail("a path cannot contain a NUL byte", param, ctx)
        path = super().convert(value, param, ctx)
        if not self.exists and not self.dir_okay:
            parent = Path(os.fsdecode(path)).parent
            if not parent.is_dir():
                self.fail(f"the folder {parent} does not exist", param, ctx)
        return path

    def fail(self, message: str, param: click.Parameter | None = None, ctx: click.Context | None = None):
        name = param.get_error_hint(ctx) if param is not None and ctx is not None else "path"
        raise bad_input(f"{name}: {message}")


def check_output(path: Path) -> None:
    """Refuse, before any work, an output path whose folder does not exist or that is a folder."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file to write")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{path}: the folder {parent} does not exist")


def make_out_dir(path: Path) -> None:
    """Create the report folder ``path`` before any work, so a folder that cannot be made fails at once."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{path}: cannot make the folder ({e.strerror or e})") from None
