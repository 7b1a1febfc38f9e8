"""What every fuzzed input must satisfy: a clean exit, one short line on failure, bounded cost."""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner, Result

from opbsim.cli import cli

DEFAULT_TIME_BOUND_S = 30.0  # per input: a bad input is refused at once; a valid fuzzed run stays below this
# Commands whose valid inputs run exact numerics by design: validate runs four layers of up to
# --max-mib 64 each through the functional executor (about 0.2 s per MiB each).
TIME_BOUND_S = {("validate",): 120.0}
MEMORY_CAP_B = 6 * 2**30  # the process's peak resident set after any input
MESSAGE_CHARS = 300


LOG_DIR = os.environ.get("OPBSIM_FUZZ_LOG")  # make fuzz: one JSON line per example, summarised afterwards


@contextmanager
def bounded(what: object = None, time_bound_s: float = DEFAULT_TIME_BOUND_S):
    """Check the time and memory bounds of one example; with OPBSIM_FUZZ_LOG set, log the target,
    its seconds, the process's peak resident set and ``what`` (the input, clipped)."""
    start = time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if LOG_DIR:
        target = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
        line = json.dumps({"target": target, "s": round(elapsed, 4), "peak_rss_B": peak, "input": repr(what)[:200]})
        with open(Path(LOG_DIR) / f"{os.getpid()}.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")
    assert elapsed < time_bound_s, f"took {elapsed:.1f} s"
    assert peak < MEMORY_CAP_B, f"peak resident set {peak / 2**30:.1f} GiB"


def invoke(args: list[str], time_bound_s: float = DEFAULT_TIME_BOUND_S) -> Result:
    """Run ``opbsim ARGS`` in an empty temporary folder and check the exit contract; a command
    that fails leaves no file behind."""
    runner = CliRunner()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as folder, bounded(args, time_bound_s):
        os.chdir(folder)
        try:
            result = runner.invoke(cli, args)
        finally:
            os.chdir(here)
        left = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))
    check_exit(result, args)
    assert result.exit_code == 0 or not left, (args, "a failed command left", left[:5])
    return result


def check_exit(result: Result, args: list[str]) -> None:
    out = result.output
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, out[-500:])
    assert "Traceback" not in out, (args, out[-2000:])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError((args, repr(result.exception)))
    if result.exit_code == 1:
        lines = out.strip("\n").split("\n")
        assert len(lines) == 1 and lines[0].startswith("Error: "), (args, out[-500:])
        assert len(lines[0]) < MESSAGE_CHARS, (args, lines[0][:400])
