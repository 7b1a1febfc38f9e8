"""Every command and option says what it does, and points only inside the repository."""

import click
import pytest

from opbsim.cli import cli


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


COMMANDS = list(_commands(cli))


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_has_help_text(path, cmd):
    assert cmd.help, path
    for param in cmd.params:
        if isinstance(param, click.Option) and param.name not in ("help", "version"):
            assert param.help, (path, param.opts)


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_no_help_text_names_a_file_outside_the_repository(path, cmd):
    texts = [cmd.help or ""] + [getattr(p, "help", "") or "" for p in cmd.params]
    assert not any("TARGETS.md" in t or "shared/design" in t for t in texts), path
