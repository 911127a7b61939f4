"""Where work runs: in this process (the default) or on a Dask cluster named by its
scheduler's address (`--scheduler` or AGRICREDIT_DASK_SCHEDULER)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

SCHEDULER_ENV = "AGRICREDIT_DASK_SCHEDULER"

scheduler_option = click.option(
    "--scheduler",
    default=None,
    envvar=SCHEDULER_ENV,
    help=f"Dask scheduler address (e.g. tcp://10.0.0.5:8786; also {SCHEDULER_ENV}); "
    "default: run in this process.",
)


@contextmanager
def dask_client(address: str | None) -> Iterator[object | None]:
    """A client of the cluster at `address`, or None to run in process (the commands'
    `scheduler_option` already reads SCHEDULER_ENV)."""
    if not address:
        yield None
        return
    from distributed import Client

    with Client(address) as client:
        yield client
