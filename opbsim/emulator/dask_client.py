"""The one way opbsim reaches a Dask cluster (``--scheduler tcp://HOST:PORT``): sweeps and fleets."""

from __future__ import annotations

from opbsim.errors import InputError

__all__ = ["open_client"]


def open_client(scheduler: str):
    """A ``dask.distributed.Client`` connected to ``scheduler``; InputError, one line, when Dask is not
    installed or the scheduler cannot be reached within 10 s."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise InputError("--scheduler needs Dask distributed: pip install 'opbsim[cluster]'") from None
    try:
        return Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise InputError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({e})") from None
