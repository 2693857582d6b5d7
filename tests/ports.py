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
    between (a rare race: the kernel hands out ephemeral ports in turn, not at random). A server
    that then fails with "Address already in use" is the symptom; PostgreSQL and Redis in
    tests/distributed start again once on a new port when that happens. Airflow's api-server is
    not retried: its port is baked into the stack's whole environment before it starts.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
