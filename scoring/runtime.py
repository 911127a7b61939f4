"""Interpreter-wide settings of a serving process, owned by `serve` (and the bulk
`preapprove` command), never by the app factory: a test that builds an app changes nothing
of its interpreter."""

from __future__ import annotations

import gc
import os
import sys

# the ledger writer waits for the GIL while the event loop decides; Python's default 5 ms
# turn would add up to 5 ms to every commit's answer under load
SWITCH_INTERVAL_S = 0.0005
# a serving process that could not start exits with this (uvicorn's code when the app could
# not start): the supervisor then stops them all instead of starting it again
STARTUP_FAILURE = 3


def settle_after_loading() -> None:
    """Once the data and model are loaded: keep the collector off them and shorten the GIL's
    turn."""
    # the loaded data are millions of long-lived objects: keep the collector from walking
    # them on every full collection (pauses of tens of ms per request, seconds per batch)
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def worker_cpus(workers: int) -> list[int | None]:
    """The CPU each worker is pinned to: one each while there are enough (the worker's event
    loop and its ledger writer thread then share that CPU's caches and hand the GIL to each
    other there), none when there are more workers than CPUs."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if workers > len(cpus):
        return [None] * workers
    return list[int | None](cpus[:workers])


def pin_to_cpu(cpu: int | None) -> None:
    """Keep this process on one CPU; call before any thread starts (threads take their
    creator's CPUs)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
