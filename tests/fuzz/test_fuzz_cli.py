"""Every command of the click tree, fuzzed with hostile option values: a new command is fuzzed
without a test change."""

from __future__ import annotations

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opbsim.cli import cli
from opbsim.workloads import PRESETS
from tests.fuzz.bounds import DEFAULT_TIME_BOUND_S, TIME_BOUND_S, invoke
from tests.fuzz.conftest import EXAMPLES, FUZZ


def _leaves(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            out += _leaves(cmd, (*path, name))
        else:
            out.append(((*path, name), cmd))
    return out


COMMANDS = _leaves(cli)
BAD_VALUES = st.one_of(
    st.sampled_from(["-1", "0", "nan", "inf", "1e400", "", "x" * 300, str(2**70), "/no/such/file", "tp=0",
                     "zipf:inf", "h100=nopolicy", "\x00", "-", "--", "9" * 5000]),
    st.text(max_size=12), st.integers(-(2**40), 2**40).map(str),
)
# a path option gets only paths that cannot be written (no folder, a name too long, a NUL), never a
# usable one: a valid output path would turn the example into a real run (the demo takes seconds)
BAD_PATHS = st.sampled_from(["x" * 300, "\x00", "/proc/no/such/out"])  # too long, NUL, unwritable


# Hypothesis also draws string constants from the code under test, so it finds the preset names; a
# positional argument that names a preset would make `run` execute a full-size layer exactly (a
# minute or more, by design), so positional arguments never name one.
_PRESETS = {name.lower() for name in PRESETS}
POSITIONAL = BAD_VALUES.filter(lambda v: v.strip().lower() not in _PRESETS)
# Appended after the drawn arguments (click keeps the last), each an opt-in to long work by design:
# a new lane count builds another Verilated model (about 30 s), so the fuzz keeps to the one built;
# validate's --max-mib raises the layer sizes it accepts (0.2 s per MiB), so the fuzz keeps 64.
PINNED = {("rtl", "cosim"): ["--lanes", "8"], ("validate",): ["--max-mib", "64"]}


def _args(draw, cmd: click.Command, path: tuple[str, ...]) -> list[str]:
    """Hostile values for the command's arguments and for at least one of its valued options (so
    that no example is a valid long run, such as the demo), plus any of its flags."""
    options = [p for p in cmd.params if isinstance(p, click.Option) and p.opts[0] not in ("--help", "--version")]
    valued = [p for p in options if not p.is_flag]
    flags = [p for p in options if p.is_flag]
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    args = [draw(POSITIONAL) for _ in arguments]
    for opt in draw(st.lists(st.sampled_from(valued), min_size=1, max_size=3)) if valued else []:
        args += [opt.opts[0], draw(BAD_PATHS if isinstance(opt.type, click.Path) else BAD_VALUES)]
    for opt in draw(st.lists(st.sampled_from(flags), max_size=2)) if flags else []:
        args.append(opt.opts[0])
    return args + PINNED.get(path, [])


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_exits_cleanly_on_hostile_arguments(path, cmd):
    @settings(FUZZ, max_examples=EXAMPLES if EXAMPLES > 25 else 6)  # make test: 6 per command; make fuzz: all
    @given(st.data())
    def run(data):
        invoke([*path, *_args(data.draw, cmd, path)], time_bound_s=TIME_BOUND_S.get(path, DEFAULT_TIME_BOUND_S))

    run()
