"""Loopback ports for tests: numbers for servers that cannot be handed a socket, and refused ports.

Prefer a server that binds port 0 itself and reports the port it got (``LeadpipeSandbox``, and
``leadpipe-sandbox --port 0``, which prints its URL): then there is no window at all. Use
:func:`free_port` only for servers that must be told a number (Airflow's api-server and log
servers, PostgreSQL, Redis). For an address where nobody may listen, hold a :class:`RefusedPort`.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now.

    The port is released before the caller's server binds it, so another process can take it in
    between (rare: the kernel hands out ephemeral ports in turn, not at random). PostgreSQL and
    Redis in tests/distributed then start once more on a new port (``Service._start_listening``).
    Airflow's api-server and log servers are not retried: their ports are in the stack's whole
    environment before it starts. That residual race ends in a failed start ("Address already in
    use" in the stack's log, shown with the error), or, if the thief is itself an Airflow
    api-server, in tests talking to that one and failing on what they do not find there.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RefusedPort:
    """A loopback port that refuses connections for as long as the ``with`` block lasts.

    The port stays bound but never listens: Linux answers a SYN to a bound, non-listening TCP
    socket with RST (``ECONNREFUSED``), and no other socket or process can bind or be handed the
    port meanwhile. (Binding and releasing a port would let another process take it before the
    test connects.)
    """

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]

    def __enter__(self) -> RefusedPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
