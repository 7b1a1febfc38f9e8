"""The ``opbsim`` command line: thin click commands over the report, emulator and compiler layers.

``main`` is the console entry point; ``cli`` the click group (tests drive it with CliRunner).
"""

from opbsim.cli.main import cli, main

__all__ = ["cli", "main"]
