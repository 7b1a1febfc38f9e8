"""docs/tutorial.md runs as written.

What runs: every command of the tutorial's ```sh and ```console blocks (``sh``: each line that is
not a comment; ``console``: each line after ``$ ``; a trailing ``# ...`` is a comment) and its
```python block. Each ``opbsim`` command runs in-process through click's CliRunner, in a temporary
folder that links ``docs`` to this clone's docs/ (the tutorial runs from the root of a clone), and
must exit 0; where a ```console block shows output, its lines that hold no measured number must be
in the command's output (spaces normalised). The ```python block runs as a script in a fresh
process there (it registers a device, which must not leak into other tests).

What is changed, and only here, in plain sight:
- ``SMALLER``: commands that take too long for a unit test run with smaller sizes: options
  appended to the doc's command (click takes the last value of an option) or a file argument
  swapped for a smaller copy with the same number of configurations. Each says why.
- ``SETUP``: a command that needs something outside the clone gets it in the temporary folder.
- ``NOT_RUN``: commands that install software, start servers or need a cluster, by program (or,
  for opbsim, by the whole command), each with the reason.
A command the test does not know how to treat fails the test, so the tutorial and this file move
together.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from opbsim.cli import cli

REPO = Path(__file__).parents[3]
TUTORIAL = REPO / "docs" / "tutorial.md"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    shown_output: tuple[str, ...]  # what a ```console block prints after the command

    @property
    def text(self) -> str:
        return shlex.join(self.argv)


def blocks(language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(TUTORIAL.read_text()) if lang == language]


def commands() -> list[Command]:
    found = []
    for body in blocks("sh"):
        found += [Command(tuple(shlex.split(line, comments=True)), ()) for line in body.splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    for body in blocks("console"):
        argv, output = None, []
        for line in body.splitlines() + ["$ "]:
            if line.startswith("$ "):
                if argv:
                    found.append(Command(argv, tuple(output)))
                argv, output = tuple(shlex.split(line[2:], comments=True)), []
            else:
                output.append(line)
    return found


@dataclass(frozen=True)
class Smaller:
    """The doc's command with ``extra`` appended and each (doc, smaller) argument of ``swap`` swapped."""

    why: str
    extra: tuple[str, ...] = ()
    swap: tuple[tuple[str, str], ...] = ()

    def apply(self, argv: tuple[str, ...]) -> list[str]:
        swap = dict(self.swap)
        return [swap.get(a, a) for a in argv] + list(self.extra)


_SMALL_RUN = ("--batch", "8", "--batches", "4,8", "--lin", "64", "--lout", "16")
SMALLER = {
    "opbsim compare llama-3-70b --devices h100,duplex,bank-pim,sn40l --devices-per-node 4 -o llama-report":
        Smaller("about 19 s as written: 4 devices x 5 batches of 1024 + 1024 tokens", _SMALL_RUN),
    "opbsim compare mixtral-8x7b --devices h100,duplex -p duplex=duplex-no-pe --devices-per-node 4 "
    "--batches 16,32,64,128,256":
        Smaller("about 10 s as written: 2 devices x 5 batches of 1024 + 1024 tokens", _SMALL_RUN),
    "opbsim compare docs/examples/Llama-3.1-8B --devices h100,duplex":
        Smaller("about 8 s as written: 2 devices x 5 batches of 1024 + 1024 tokens", _SMALL_RUN),
    "opbsim sweep docs/examples/sweep_pim_bandwidth.json -o pim.csv":
        Smaller("about 30 s as written: 30 runs of up to 128 requests of 1024 + 1024 tokens; the copy keeps the "
                "grid (30 configurations) at batches 2, 4, 8 and lengths 32 + 8, 64 + 8",
                swap=(("docs/examples/sweep_pim_bandwidth.json", "small_sweep.json"),)),
}


def small_sweep(folder: Path, monkeypatch) -> None:
    spec = json.loads((REPO / "docs" / "examples" / "sweep_pim_bandwidth.json").read_text())
    spec |= {"batch": [2, 4, 8], "lengths": [[32, 8], [64, 8]]}
    (folder / "small_sweep.json").write_text(json.dumps(spec))


def hf_cache(folder: Path, monkeypatch) -> None:
    """The tutorial's Llama 3.1 8B config.json cached as huggingface_hub would cache it."""
    snapshot = folder / "hub" / "models--meta-llama--Llama-3.1-8B" / "snapshots" / "0e9e39f"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text((REPO / "docs" / "examples" / "Llama-3.1-8B" / "config.json").read_text())
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0e9e39f")
    monkeypatch.setenv("HF_HUB_CACHE", str(folder / "hub"))


SETUP = {
    "opbsim sweep docs/examples/sweep_pim_bandwidth.json -o pim.csv": small_sweep,
    "opbsim models show meta-llama/Llama-3.1-8B": hf_cache,
}

NOT_RUN = {
    "make": "installs a virtual environment; `make demo` runs `opbsim demo`, which runs here",
    "pip": "installs software",
    "dask": "starts a Dask scheduler or workers (servers)",
    "python": "starts a Dask LocalCluster that waits an hour for a sweep",
    "opbsim sweep docs/examples/sweep_pim_bandwidth.json -o pim.csv --scheduler tcp://SCHEDULER:8786":
        "needs a running Dask scheduler; SCHEDULER stands for its address",
}

COMMANDS = commands()


def _is_opbsim(c: Command) -> bool:
    return c.argv[0] == "opbsim" and c.text not in NOT_RUN


def test_the_tutorial_has_commands_and_every_one_is_run_or_skipped_for_a_stated_reason():
    assert len([c for c in COMMANDS if _is_opbsim(c)]) >= 10
    for c in COMMANDS:
        assert _is_opbsim(c) or c.argv[0] in NOT_RUN or c.text in NOT_RUN, f"neither run nor skipped: {c.text}"
    texts = {c.text for c in COMMANDS}
    assert set(SMALLER) | set(SETUP) | {k for k in NOT_RUN if " " in k} <= texts  # no stale entry


def _stable(line: str) -> bool:
    """A shown output line the run must reproduce: no measured number, no progress bar, no rule."""
    return bool(line.strip()) and not re.search(r"\d\.\d", line) and not line.startswith("demo  [") \
        and set(line) - {"-", " "} != set()


@pytest.mark.parametrize("command", [c for c in COMMANDS if _is_opbsim(c)], ids=lambda c: c.text[:90])
def test_the_tutorials_opbsim_command_exits_0(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    (tmp_path / "docs").symlink_to(REPO / "docs")
    SETUP.get(command.text, lambda folder, monkeypatch: None)(tmp_path, monkeypatch)
    argv = SMALLER[command.text].apply(command.argv) if command.text in SMALLER else list(command.argv)
    result = CliRunner().invoke(cli, argv[1:])
    assert result.exit_code == 0, f"{shlex.join(argv)}\n{result.output}"
    printed = {" ".join(line.split()) for line in result.output.splitlines()}
    for line in filter(_stable, command.shown_output):
        assert " ".join(line.split()) in printed, f"{command.text}: the tutorial shows {line!r}"


def test_the_tutorials_python_example_runs_as_a_script(tmp_path):
    (code,) = blocks("python")
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "h100 cannot run: does not fit" in result.stdout  # as its comment says
    assert (tmp_path / "my-h200-report" / "throughput_vs_batch.png").is_file()


def test_the_tutorials_sweep_listing_is_the_example_file():
    (listing,) = blocks("json")
    assert json.loads(listing) == json.loads((REPO / "docs" / "examples" / "sweep_pim_bandwidth.json").read_text())
