"""Where work runs: in this process (the default) or on a Dask cluster named by its
scheduler's address (`--scheduler` or AGRICREDIT_DASK_SCHEDULER).

Only the command lines make a runner (`runner_for`); the feature build, training and
pre-approval take one as an argument and never start or look for a cluster themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click

SCHEDULER_ENV = "AGRICREDIT_DASK_SCHEDULER"

scheduler_option = click.option(
    "--scheduler",
    default=None,
    envvar=SCHEDULER_ENV,
    help=f"Dask scheduler address (e.g. tcp://10.0.0.5:8786; also {SCHEDULER_ENV}); "
    "default: run in this process.",
)


@dataclass(frozen=True)
class LocalRunner:
    """Work in this process: the in-process code paths, unchanged."""


@dataclass(frozen=True)
class DaskRunner:
    """Work on a Dask cluster through `client` (a `distributed.Client`), whose workers see
    the same data directory and model registry as the caller."""

    client: Any  # distributed.Client: its package is imported only when a cluster is asked for

    @property
    def workers(self) -> int:
        """The cluster's workers now (at least one)."""
        return max(len(self.client.scheduler_info()["workers"]), 1)


Runner = LocalRunner | DaskRunner
IN_PROCESS = LocalRunner()


@contextmanager
def runner_for(address: str | None) -> Iterator[Runner]:
    """A runner for the cluster at `address`, or the in-process one when there is none (the
    commands' `scheduler_option` already reads SCHEDULER_ENV)."""
    if not address:
        yield IN_PROCESS
        return
    from distributed import Client

    with Client(address) as client:
        yield DaskRunner(client)
