"""Several uvicorn workers on one port, each listening on its own socket (SO_REUSEPORT).

uvicorn's own workers share one listening socket: when clients open their connections
together, the first worker to wake accepts all of them and the others stay idle (seen in
bench_serve: eight keep-alive connections on one of two workers). With a socket per worker
the kernel spreads new connections over the workers as they arrive, as nginx's `reuseport`.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time

log = logging.getLogger(__name__)
STARTUP_FAILURE = 3  # uvicorn's exit code when the app could not start


def listen(host: str, port: int) -> socket.socket:
    """A listening socket that other workers may bind to the same address too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    return sock


def _worker(host: str, port: int, access_log: bool) -> None:
    import uvicorn

    config = uvicorn.Config(
        "scoring.app:create_app", factory=True, log_level="info", access_log=access_log
    )
    uvicorn.Server(config).run(sockets=[listen(host, port)])


def run_workers(host: str, port: int, workers: int, *, access_log: bool) -> int:
    """Run `workers` processes until SIGINT or SIGTERM; a worker that dies is replaced,
    one that cannot start stops them all. Returns the exit code."""
    listen(host, port).close()  # fail here, once, when the port is taken
    context = multiprocessing.get_context("spawn")  # LightGBM and fork do not mix
    stopping = False

    def start() -> multiprocessing.Process:
        process = context.Process(target=_worker, args=(host, port, access_log))
        process.start()
        return process

    def stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processes = [start() for _ in range(workers)]
    code = 0
    while not stopping:
        time.sleep(0.2)
        for i, process in enumerate(processes):
            if process.is_alive() or stopping:
                continue
            if process.exitcode == STARTUP_FAILURE:
                log.error("a worker could not start (see above); stopping")
                stopping, code = True, STARTUP_FAILURE
                break
            log.warning("worker %s exited with %s; starting another", process.pid, process.exitcode)
            processes[i] = start()
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(30)
    return code
