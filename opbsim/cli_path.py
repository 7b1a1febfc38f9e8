"""A file-path parameter whose problems are bad input (exit 1), not usage errors (exit 2).

A missing input file or an output path that is a directory is a problem with what the user gave,
like a malformed config, so it gets the same one line and exit status 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from opbsim.errors import InputError

__all__ = ["FilePath", "check_output", "make_out_dir"]


class FilePath(click.Path):
    def convert(self, value, param, ctx):
        if isinstance(value, str) and "\x00" in value:
            self.fail("a path cannot contain a NUL byte", param, ctx)
        return super().convert(value, param, ctx)

    def fail(self, message: str, param: click.Parameter | None = None, ctx: click.Context | None = None):
        name = param.get_error_hint(ctx) if param is not None and ctx is not None else "path"
        err = click.ClickException(f"{name}: {message}")
        err.exit_code = 1
        raise err


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
