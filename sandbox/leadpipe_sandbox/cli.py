"""``leadpipe-sandbox`` / ``python -m leadpipe_sandbox``: serve the sandbox until stopped."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from leadpipe_sandbox.orbit import DEFAULT_PEOPLE, EXPORT_ROW_CAP, RunSchedule
from leadpipe_sandbox.scenarios import DEFAULT_API_KEY
from leadpipe_sandbox.state import SandboxOptions

if TYPE_CHECKING:
    import uvicorn

UVICORN_MISSING = "The Leadpipe API sandbox needs uvicorn: pip install 'airflow-provider-leadpipe[sandbox]'"
BACKLOG = 4096  # the triggerer benchmark opens thousands of connections at once


def connection_json(url: str, api_key: str = DEFAULT_API_KEY) -> str:
    """The ``AIRFLOW_CONN_<ID>`` value (JSON form) for a sandbox at ``url``."""
    return json.dumps({"conn_type": "leadpipe", "host": url, "password": api_key})


EXPOSE_FLAG = "--expose-control-api-to-network"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line on stderr and exit status 2 (argparse would print the whole usage first)."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind: type[int] | type[float], low: float, high: float | None = None) -> Callable[[str], Any]:
    """An argparse ``type`` accepting a ``kind`` from ``low`` to ``high``."""
    noun = "a whole number" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not (low <= value and (high is None or value <= high)):  # also refuses nan
            bound = f"from {low:g} to {high:g}" if high is not None else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"{text!r} is not {bound}")
        return value

    return parse


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1): reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="leadpipe-sandbox",
        description="Offline Leadpipe Data and Orbit API sandbox on 127.0.0.1 (see docs/sandbox.md).",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help=f"interface to listen on (default 127.0.0.1); any other than loopback needs {EXPOSE_FLAG}",
    )
    parser.add_argument(
        EXPOSE_FLAG,
        action="store_true",
        help="allow a non-loopback --host, and with it anyone who can reach that address to use the "
        "unauthenticated control API (/_sandbox/...), which lists every sandbox API key and changes "
        "faults, credits and pixels",
    )
    port = _number(int, 0, 65535)
    parser.add_argument("--port", type=port, default=8765, help="port; 0 picks a free one (default 8765)")
    parser.add_argument(
        "--seed", type=int, default=42, help="seed of the generated visitor data (default 42)"
    )
    parser.add_argument(
        "--visitors", type=_number(int, 0), default=1000, help="visitor records per key (default 1000)"
    )
    parser.add_argument(
        "--fault-rate", type=_number(float, 0, 1), default=0.0, help="share of requests answering 429/503"
    )
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the random faults (default 0)")
    parser.add_argument(
        "--audience-people",
        type=_number(int, 0),
        default=DEFAULT_PEOPLE,
        help="people per Orbit audience run (default 1000)",
    )
    parser.add_argument(
        "--run-queued",
        type=_phase,
        default=(1, None),
        metavar="N|Ss",
        help="how long a new Orbit run stays queued: N polls or S seconds, e.g. 2 or 1.5s (default 1)",
    )
    parser.add_argument(
        "--run-running", type=_phase, default=(1, None), metavar="N|Ss", help="same for running (default 1)"
    )
    parser.add_argument(
        "--export-row-cap",
        type=_number(int, 1),
        default=EXPORT_ROW_CAP,
        help="X-Export-Row-Cap (default 300000)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn log level (default warning)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    # Used by LeadpipeSandbox: serve an already-listening socket, and stop when the parent goes away.
    parser.add_argument("--fd", type=_number(int, 0), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    return parser


def _phase(text: str) -> tuple[int, float | None]:
    """``"3"`` -> 3 polls; ``"2.5s"`` -> 2.5 seconds."""
    try:
        if text.endswith("s"):
            seconds = float(text[:-1])
            if seconds >= 0:
                return 0, seconds
        elif int(text) >= 0:
            return int(text), None
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r}: give a number of polls (2) or seconds (1.5s)")


def options_from(args: argparse.Namespace) -> SandboxOptions:
    """The server-wide settings of parsed command-line arguments."""
    (queued_polls, queued_seconds), (running_polls, running_seconds) = args.run_queued, args.run_running
    schedule = RunSchedule(queued_polls, running_polls, queued_seconds, running_seconds)
    return SandboxOptions(
        args.seed,
        args.visitors,
        args.fault_rate,
        args.fault_seed,
        audience_people=args.audience_people,
        run_schedule=schedule,
        export_row_cap=args.export_row_cap,
    )


def _raise_open_files_limit() -> None:
    """Thousands of concurrent clients need thousands of descriptors; lift the soft limit to the hard one."""
    try:
        import resource
    except ImportError:  # Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def serve(args: argparse.Namespace) -> None:
    """Build the app and run uvicorn on the requested (or inherited) socket until a signal arrives."""
    try:
        import uvicorn
    except ImportError:
        sys.exit(UVICORN_MISSING)
    from leadpipe_sandbox.server import QuietDeliberateDisconnects, create_app

    try:
        if args.fd is not None:
            sock = socket.socket(fileno=args.fd)
        else:
            sock = socket.create_server((args.host, args.port), backlog=BACKLOG)
    except OSError as exc:  # port in use, no such interface or name, a bad descriptor
        where = f"descriptor {args.fd}" if args.fd is not None else f"{args.host}:{args.port}"
        sys.exit(f"leadpipe-sandbox: error: cannot listen on {where}: {exc.strerror or exc}")
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    options = options_from(args)
    _raise_open_files_limit()
    config = uvicorn.Config(
        create_app(options),
        log_level=args.log_level,
        access_log=args.access_log,
        lifespan="off",
        timeout_graceful_shutdown=2,
        backlog=BACKLOG,
        # uvicorn picks uvloop and httptools when installed ("auto"); they are the fast path.
    )
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(QuietDeliberateDisconnects())
    if args.exit_on_stdin_eof:
        threading.Thread(target=_exit_on_eof, args=(server,), daemon=True, name="stdin-watch").start()
    print(f"Leadpipe API sandbox listening on {url}", flush=True)
    print(f"  default API key: {DEFAULT_API_KEY}", flush=True)
    print(f"  AIRFLOW_CONN_LEADPIPE_DEFAULT='{connection_json(url)}'", flush=True)
    print(f"  built-in keys and control API: {url}/_sandbox/scenarios   (stop with Ctrl+C)", flush=True)
    server.run(sockets=[sock])


def _exit_on_eof(server: uvicorn.Server) -> None:
    """Stop the server once stdin closes, i.e. when the process that started it has exited."""
    while sys.stdin.buffer.read(65536):
        pass
    server.should_exit = True


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not is_loopback(args.host) and not args.expose_control_api_to_network:
        parser.error(
            f"--host {args.host} is not a loopback address: the sandbox's control API (/_sandbox/...) "
            f"has no authentication and lists every API key; pass {EXPOSE_FLAG} to listen there anyway"
        )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises SIGINT after shutting down
        serve(args)


if __name__ == "__main__":
    main()
