"""Progress on long commands: a click progress bar on stderr, drawn only when stderr is a terminal
(a pipe or a log file gets nothing) and not turned off with --no-progress."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager

import click

__all__ = ["progress_bar", "progress_option"]

progress_option = click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")


@contextmanager
def progress_bar(length: int, label: str, enabled: bool = True):
    """Yields ``on_step(label, n=1)`` that advances the bar by ``n``; a no-op when ``enabled`` is
    False or stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda what, n=1: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True, show_eta=False,
                           item_show_func=lambda what: what) as bar:
        step: Callable[..., None] = lambda what, n=1: bar.update(n, what)  # noqa: E731
        yield step
