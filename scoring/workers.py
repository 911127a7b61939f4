"""Several uvicorn workers on one port: the supervisor accepts every connection and hands
each to the next worker in turn, so keep-alive connections are spread evenly.

uvicorn's own workers share one listening socket: when clients open their connections
together, the first worker to wake accepts all of them and the others stay idle. A socket
per worker (SO_REUSEPORT) lets the kernel hash each connection to a worker instead: with
eight keep-alive connections and two workers, bench_serve saw splits of 6/2 and 7/1 as
often as 4/4, and throughput followed the busier worker (2,602 decisions/s at 7/1 against
3,085 at 4/4). Handing connections round costs the supervisor one accept and one
`sendmsg` per connection, not per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import selectors
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

import uvicorn
from prometheus_client import multiprocess

from scoring.http_protocol import ProblemHttpProtocol
from scoring.metrics import MULTIPROCESS_DIR
from scoring.runtime import STARTUP_FAILURE, pin_to_cpu, worker_cpus

log = logging.getLogger(__name__)
HAND_OVER_TIMEOUT_S = 5.0  # a worker that takes no connection for this long is skipped
CHECK_EVERY_S = 0.2  # how often the supervisor looks for workers that exited
READY = b"ready"  # a worker's one message to the supervisor, once it can serve
# what every serving process runs; named, not imported: a worker pins itself to its CPU
# before it imports the app (threads started by imports would keep every CPU)
SERVED_APP = "scoring.served:served_app"
LIVE_DIR = "AGRICREDIT_LIVE_DIR"  # Settings.live_dir, as the workers read it


def listen(host: str, port: int) -> socket.socket:
    """The listening socket of the service."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    return sock


class HandedServer(uvicorn.Server):
    """A uvicorn server with no listening socket of its own: it serves the connections
    that arrive, already accepted, over `channel` (one file descriptor per message)."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:  # noqa: ARG002
        # uvicorn passes its sockets here; this server listens on none
        await super().startup(sockets=[])
        protocol = functools.partial(
            self.config.http_protocol_class,  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        loop = asyncio.get_running_loop()
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._take, loop, protocol)
        self.channel.send(READY)  # connections may come here now

    def _take(
        self, loop: asyncio.AbstractEventLoop, protocol: Callable[[], asyncio.Protocol]
    ) -> None:
        while True:
            try:
                message, fds, _flags, _address = socket.recv_fds(self.channel, 1, 1)
            except BlockingIOError:
                return
            except OSError:  # the channel broke: as if the supervisor were gone
                message, fds = b"", []
            if not message and not fds:  # the supervisor is gone: finish and stop
                loop.remove_reader(self.channel.fileno())
                self.should_exit = True
                return
            for fd in fds:
                connection = socket.socket(fileno=fd)
                loop.create_task(loop.connect_accepted_socket(protocol, connection))


def _worker_config(access_log: bool) -> uvicorn.Config:
    # one worker's server: the served app, made in the worker, on the problem-answering parser
    return uvicorn.Config(
        SERVED_APP, factory=True, log_level="info", access_log=access_log, http=ProblemHttpProtocol
    )


def _host_follower() -> None:
    # imported here: the supervisor itself loads none of the data stack
    from scoring.config import get_settings
    from scoring.decide.follower import follow_and_publish

    follow_and_publish(get_settings())


def _worker(channel: socket.socket, access_log: bool, cpu: int | None) -> None:
    pin_to_cpu(cpu)  # before any thread starts
    config = _worker_config(access_log)
    HandedServer(config, channel).run()


@dataclass
class _Worker:
    process: BaseProcess
    channel: socket.socket  # the supervisor's end
    cpu: int | None  # the CPU it is pinned to, if any
    # serving; one still starting is dealt a connection only when none is ready (the
    # connection then waits in its channel)
    ready: bool = False


class _Supervisor:
    """Starts the host's follower and the workers, replaces one that dies, and deals out
    connections in turn."""

    def __init__(
        self,
        cpus: list[int | None],
        access_log: bool,
        selector: selectors.BaseSelector,
        *,
        follows: bool,
    ) -> None:
        self.context = multiprocessing.get_context("spawn")  # LightGBM and fork do not mix
        self.access_log = access_log
        self.selector = selector
        # one process builds the snapshot rows every worker decides from
        # (scoring/decide/shared_snapshot.py); unpinned, it takes whichever CPU is idle
        self.follower = self._start_follower() if follows else None
        self.workers = [self._start(cpu) for cpu in cpus]
        self.turn = 0

    def _start_follower(self) -> BaseProcess:
        process = self.context.Process(target=_host_follower, name="host-follower")
        process.start()
        return process

    def _start(self, cpu: int | None) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = self.context.Process(target=_worker, args=(theirs, self.access_log, cpu))
        process.start()
        theirs.close()
        ours.settimeout(HAND_OVER_TIMEOUT_S)
        worker = _Worker(process, ours, cpu)
        self.selector.register(ours, selectors.EVENT_READ, worker)
        return worker

    def heard(self, worker: _Worker) -> None:
        """The worker said it is ready, or its end closed (it exited)."""
        try:
            worker.ready = worker.channel.recv(len(READY)) == READY
        except OSError:
            worker.ready = False
        if not worker.ready:
            self._forget(worker)

    def _forget(self, worker: _Worker) -> None:
        with contextlib.suppress(KeyError):  # already forgotten when its end closed
            self.selector.unregister(worker.channel)

    def hand_over(self, connection: socket.socket) -> None:
        """Give the connection to the next ready worker that takes it; close it if none
        does."""
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ready = [w for w in self.workers if w.ready] or self.workers
        try:
            for _ in range(len(ready)):
                self.turn = (self.turn + 1) % len(ready)
                worker = ready[self.turn]
                try:
                    socket.send_fds(worker.channel, [b"c"], [connection.fileno()])
                    return
                except OSError as exc:  # exited, or too busy to take it within the timeout
                    log.warning("worker %s did not take a connection: %s", worker.process.pid, exc)
            log.error("no worker took a connection; closing it")
        finally:
            connection.close()  # the worker holds its own copy

    def replace_exited(self) -> int | None:
        """Start a worker for each that exited, and the follower if it did;
        STARTUP_FAILURE if one could not start."""
        if self.follower is not None and not self.follower.is_alive():
            if self.follower.exitcode == STARTUP_FAILURE:
                log.error("the host's follower could not load the data (see above); stopping")
                return STARTUP_FAILURE
            log.warning("the host's follower exited with %s; starting another",
                        self.follower.exitcode)  # fmt: skip
            self.follower = self._start_follower()
        for i, worker in enumerate(self.workers):
            if worker.process.is_alive():
                continue
            # its per-process gauges (the model it served) leave /metrics with it
            multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                worker.process.pid, os.environ[MULTIPROCESS_DIR]
            )
            if worker.process.exitcode == STARTUP_FAILURE:
                log.error("a worker could not start (see above); stopping")
                return STARTUP_FAILURE
            log.warning("worker %s exited with %s; starting another", worker.process.pid,
                        worker.process.exitcode)  # fmt: skip
            self._forget(worker)
            worker.channel.close()
            self.workers[i] = self._start(worker.cpu)
        return None

    def stop(self) -> None:
        for worker in self.workers:
            worker.channel.close()  # a worker whose channel closes finishes and exits
            if worker.process.is_alive():
                worker.process.terminate()
        if self.follower is not None and self.follower.is_alive():
            self.follower.terminate()
        for worker in self.workers:
            worker.process.join(30)
        if self.follower is not None:
            self.follower.join(30)


def _reuse_port_worker(host: str, port: int, access_log: bool, cpu: int | None) -> None:
    pin_to_cpu(cpu)  # before any thread starts
    sock = reuse_port_listener(host, port)
    config = _worker_config(access_log)
    uvicorn.Server(config).run(sockets=[sock])


def reuse_port_listener(host: str, port: int) -> socket.socket:
    """A listening socket of this worker's own on a port other workers listen on too
    (SO_REUSEPORT: the kernel hashes each new connection to one of them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


@contextlib.contextmanager
def _workers_metrics_and_signals() -> Iterator[Callable[[], bool]]:
    """Every worker's metrics in one directory, so /metrics reports all of them (a
    directory the operator names is theirs to empty between runs); yields whether SIGINT
    or SIGTERM has asked to stop."""
    own_metrics_dir = None
    if MULTIPROCESS_DIR not in os.environ:
        own_metrics_dir = os.environ[MULTIPROCESS_DIR] = tempfile.mkdtemp(prefix="agricredit-")
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        yield lambda: stopping
    finally:
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


def run_reuse_port_workers(
    host: str, port: int, workers: int, *, access_log: bool, pin_cpus: bool = True
) -> int:
    """Run `workers` processes that each listen on the port themselves (SO_REUSEPORT), the
    kernel spreading connections, until SIGINT or SIGTERM: the plain alternative to the
    supervisor, kept to measure against it (benchmarks/bench_serve.py). A worker that
    exits stops them all. Returns the exit code."""
    listen(host, port).close()  # fails here, once, when the port is taken
    context = multiprocessing.get_context("spawn")  # LightGBM and fork do not mix
    cpus = worker_cpus(workers) if pin_cpus else [None] * workers
    with _workers_metrics_and_signals() as stopping:
        processes = [
            context.Process(target=_reuse_port_worker, args=(host, port, access_log, cpu))
            for cpu in cpus
        ]
        for process in processes:
            process.start()
        try:
            while not stopping() and all(p.is_alive() for p in processes):
                time.sleep(CHECK_EVERY_S)
        finally:
            for process in processes:
                if process.is_alive():
                    process.terminate()
            for process in processes:
                process.join(30)
    return 0 if all(p.exitcode in (0, -signal.SIGTERM) for p in processes) else 1


def run_workers(
    host: str, port: int, workers: int, *, access_log: bool, pin_cpus: bool = True
) -> int:
    """Run `workers` processes until SIGINT or SIGTERM, each on a CPU of its own when
    `pin_cpus` (see `worker_cpus`); a worker that dies is replaced, one that cannot start
    stops them all. Returns the exit code."""
    listener = listen(host, port)  # fails here, once, when the port is taken
    listener.setblocking(False)
    with _workers_metrics_and_signals() as stopping, _live_dir() as follows:
        return _deal(listener, workers, access_log=access_log, pin_cpus=pin_cpus,
                     stopping=stopping, follows=follows)  # fmt: skip


@contextlib.contextmanager
def _live_dir() -> Iterator[bool]:
    """A directory for the host's follower to publish the workers' snapshot in (its
    children read AGRICREDIT_LIVE_DIR); yields whether the workers follow the data at all."""
    from scoring.config import Settings

    settings = Settings()
    if settings.follow_log_seconds <= 0 or not settings.host_follower:
        yield False
        return
    own = None
    if LIVE_DIR not in os.environ:
        own = os.environ[LIVE_DIR] = tempfile.mkdtemp(prefix="agricredit-live-")
    try:
        yield True
    finally:
        if own is not None:
            os.environ.pop(LIVE_DIR, None)
            shutil.rmtree(own, ignore_errors=True)


def _deal(
    listener: socket.socket,
    workers: int,
    *,
    access_log: bool,
    pin_cpus: bool,
    stopping: Callable[[], bool],
    follows: bool,
) -> int:
    selector = selectors.DefaultSelector()
    cpus: list[int | None] = worker_cpus(workers) if pin_cpus else [None] * workers
    supervisor = _Supervisor(cpus, access_log, selector, follows=follows)
    # Connections wait in the backlog until every worker has started: the first to be ready
    # would otherwise be dealt every connection opened meanwhile, and keep-alive ones stay
    # where they were dealt (a client pool opened at start-up would use one worker only).
    listening = False
    code, checked = 0, time.monotonic()
    try:
        while not stopping():
            for ready, _events in selector.select(CHECK_EVERY_S):
                if ready.data is not None:
                    supervisor.heard(ready.data)
                    if not listening and all(w.ready for w in supervisor.workers):
                        selector.register(listener, selectors.EVENT_READ)
                        listening = True
                    continue
                while True:
                    try:
                        connection, _address = listener.accept()
                    except (BlockingIOError, ConnectionAbortedError):
                        break
                    supervisor.hand_over(connection)
            if time.monotonic() - checked >= CHECK_EVERY_S:
                checked = time.monotonic()
                failed = supervisor.replace_exited()
                if failed is not None:
                    code = failed
                    break
    finally:
        selector.close()
        listener.close()
        supervisor.stop()
    return code
