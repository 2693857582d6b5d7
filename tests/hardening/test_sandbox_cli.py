"""The ``leadpipe-sandbox`` command refuses what it should, in one line: run as a real process.

A non-loopback ``--host`` would expose the unauthenticated control API (it lists every sandbox
key) to the network, so it needs an explicit flag; every bad option, a busy port or an interface
that is not there ends in one line on stderr and a non-zero exit status, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.hardening.figures import tally

CASE = "sandbox CLI refusals: one line on stderr, exit != 0, no traceback"
COMMAND = [sys.executable, "-m", "leadpipe_sandbox"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert result.stdout == ""  # nothing served, nothing announced
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("leadpipe-sandbox: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.10", "example.com", "localhost.example.com", "10.0.0.1"]
)
def test_a_non_loopback_host_is_refused_without_the_explicit_flag(host):
    result = run("--host", host, "--port", "0")
    assert_one_line_error(result, f"--host {host} is not a loopback address", "lists every API key")
    assert "--expose-control-api-to-network" in result.stderr
    tally("bad input", CASE, "non-loopback --host")


def test_the_flag_says_what_it_exposes():
    help_text = run("--help").stdout
    flag = help_text[help_text.index("--expose-control-api-to-network") :]
    assert "control API" in flag and "lists every" in " ".join(flag.split())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "x"], "argument --port: 'x' is not a whole number"),
        (["--port", "-1"], "argument --port: '-1' is not from 0 to 65535"),
        (["--port", "70000"], "argument --port: '70000' is not from 0 to 65535"),
        (["--seed", "abc"], "argument --seed"),
        (["--visitors", "-5"], "argument --visitors: '-5' is not >= 0"),
        (["--fault-rate", "1.5"], "argument --fault-rate: '1.5' is not from 0 to 1"),
        (["--fault-rate", "nan"], "argument --fault-rate: 'nan' is not from 0 to 1"),
        (["--fault-seed", "1.5"], "argument --fault-seed"),
        (["--log-level", "loud"], "argument --log-level: invalid choice"),
        (["--audience-people", "-1"], "argument --audience-people: '-1' is not >= 0"),
        (["--run-queued", "soon"], "argument --run-queued: 'soon': give a number of polls"),
        (["--run-running", "-2s"], "argument --run-running"),
        (["--export-row-cap", "0"], "argument --export-row-cap: '0' is not >= 1"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--port"], "argument --port: expected one argument"),
        (["--fd", "987654"], "cannot listen on descriptor 987654"),
        # An address of no interface here (TEST-NET-1): refused by bind, no DNS lookup.
        (["--host", "192.0.2.1", "--expose-control-api-to-network"], "cannot listen on 192.0.2.1:8765"),
    ],
)
def test_bad_options_end_in_one_line_on_stderr(args, needle):
    assert_one_line_error(run(*args), needle)
    tally("bad input", CASE, "bad option or interface")


def test_a_busy_port_ends_in_one_line_naming_it():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run("--port", str(port))
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}", "in use")
    tally("bad input", CASE, "busy port")
