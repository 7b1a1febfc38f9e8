"""docs/validation.md is a page of sections, each written by one command between its markers."""

from __future__ import annotations

from pathlib import Path

from opbsim.fileio import atomic_write_text

__all__ = ["markers", "write_section"]

_TITLE = "# Validation: reproduction of published results\n"


def markers(command: str) -> tuple[str, str]:
    """The begin and end comments of the section ``command`` writes."""
    return f"<!-- {command}: begin -->", f"<!-- {command}: end -->"


def write_section(path: Path, section: str, begin: str, end: str) -> None:
    """Put ``section`` (``begin``..``end``) into the page at ``path``: in place of an earlier one,
    else at the end (a new page gets the title). Other sections of the page are kept."""
    old = path.read_text(encoding="utf-8") if path.exists() else _TITLE
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + section.rstrip("\n") + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + section
    atomic_write_text(path, new)
