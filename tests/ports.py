"""Loopback port numbers for servers the tests start but cannot hand a listening socket to.

Prefer a server that binds port 0 itself and reports the port it got (``LeadpipeSandbox``, and
``leadpipe-sandbox --port 0``, which prints its URL): then there is no window at all. Use
:func:`free_port` only for servers that must be told a number (Airflow's api-server and log
servers, PostgreSQL, Redis), and for an address where nobody should be listening.
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
