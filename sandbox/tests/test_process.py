"""Starting and stopping the sandbox: context manager, CLI, pytest plugin, and no orphans."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from leadpipe_sandbox import LeadpipeSandbox, SandboxError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # sandbox/: the leadpipe_sandbox package


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, seconds: float = 60.0) -> bool:  # a safety net: gone as soon as it is
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_context_manager_serves_and_always_stops() -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        LeadpipeSandbox(seed=7, visitors=10, api_key="sk_test_active") as sb,
    ):
        assert sb.url == f"http://127.0.0.1:{sb.port}"
        assert json.loads(sb.connection_json()) == {
            "conn_type": "leadpipe",
            "host": sb.url,
            "password": "sk_test_active",
        }
        assert sb.connection_env("my_leadpipe", api_key="sk_test_sandbox") == {
            "AIRFLOW_CONN_MY_LEADPIPE": json.dumps(
                {"conn_type": "leadpipe", "host": sb.url, "password": "sk_test_sandbox"}
            )
        }
        with httpx.Client(base_url=sb.url, headers={"X-API-Key": sb.api_key}, trust_env=False) as client:
            assert client.get("/v1/data").json()["meta"]["total"] == 10
        pid = sb._process.pid  # type: ignore[union-attr]
        url = sb.url
        raise RuntimeError("boom")
    assert not sb.running
    assert _wait_gone(pid, 1.0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_sandbox/health", trust_env=False)
    with pytest.raises(SandboxError, match="not running"):
        sb.stats()
    sb.stop()  # stopping twice is harmless


def test_server_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, signal, sys
        from leadpipe_sandbox import LeadpipeSandbox
        sandbox = LeadpipeSandbox().start()
        print(sandbox._process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up code runs
        """
    )
    parent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert parent.returncode == -signal.SIGKILL, parent.stderr
    server_pid = int(parent.stdout.split()[0])
    assert _wait_gone(server_pid), "the sandbox server outlived the process that started it"


def test_missing_uvicorn_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(SandboxError, match=r"pip install 'airflow-provider-leadpipe\[sandbox\]'"):
        LeadpipeSandbox().start()


@pytest.mark.parametrize(
    ("command", "stop_signal"),
    [
        ([sys.executable, "-m", "leadpipe_sandbox"], signal.SIGINT),
        ([str(Path(sys.executable).parent / "leadpipe-sandbox")], signal.SIGTERM),
    ],
    ids=["python-m", "console-script"],
)
def test_cli_prints_how_to_connect_and_stops_on_signal(
    command: list[str], stop_signal: signal.Signals
) -> None:
    if not Path(command[0]).exists():
        pytest.fail(f"{command[0]} is missing: install the sandbox (pip install -e ./sandbox)")
    process = subprocess.Popen(
        [*command, "--port", "0", "--seed", "3", "--visitors", "77"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = [process.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        # --port 0: the server binds a free port itself and says which one.
        listening = re.fullmatch(
            r"Leadpipe API sandbox listening on (http://127\.0\.0\.1:(\d+))", banner[0].strip()
        )
        assert listening, banner
        url = listening[1]
        assert int(listening[2]) > 0
        assert "sk_test_sandbox" in banner[1]
        conn = banner[2].split("AIRFLOW_CONN_LEADPIPE_DEFAULT=", 1)[1].strip().strip("'")
        assert json.loads(conn) == {"conn_type": "leadpipe", "host": url, "password": "sk_test_sandbox"}
        response = _get_when_up(f"{url}/v1/data", {"X-API-Key": "sk_test_sandbox"})
        assert response.json()["meta"]["total"] == 77
        process.send_signal(stop_signal)
        assert process.wait(timeout=60) in (0, -stop_signal)  # 60 s: only a safety net
        rest = process.stdout.read()  # type: ignore[union-attr]
        assert "Traceback" not in rest
    finally:
        process.kill()
        process.wait()


def _get_when_up(url: str, headers: dict[str, str]) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url, headers=headers, trust_env=False)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, leadpipe_sandbox.pytest_plugin; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'uvicorn', 'httpx', 'pydantic'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


USER_TESTS = """
import os, json, httpx

def test_one(leadpipe_sandbox):
    conn = json.loads(os.environ["AIRFLOW_CONN_LEADPIPE_DEFAULT"])
    assert conn == {"conn_type": "leadpipe", "host": leadpipe_sandbox.url, "password": "sk_test_sandbox"}
    created = httpx.post(conn["host"] + "/v1/data/pixels", json={"domain": "a.example"},
                         headers={"X-API-Key": conn["password"]}, trust_env=False)
    assert created.status_code == 201
    leadpipe_sandbox.api_key = "sk_test_active"

def test_two_sees_fresh_state(leadpipe_sandbox):
    assert leadpipe_sandbox.api_key == "sk_test_sandbox"
    assert leadpipe_sandbox.key_state()["pixels"] == []
    assert leadpipe_sandbox.request_count() == 0

def test_three_without_fixture():
    assert "AIRFLOW_CONN_LEADPIPE_DEFAULT" not in os.environ
"""
BLOCK_UVICORN = "import sys\nsys.modules['uvicorn'] = None\n"


#: Other installed plugins are switched off to save seconds; ours still loads through its entry point.
OTHER_PLUGINS_OFF = [
    f"-pno:{name}" for name in ("cacheprovider", "hypothesispytest", "anyio", "asyncio", "respx")
]


def _run_pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_CONN_LEADPIPE_DEFAULT"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *OTHER_PLUGINS_OFF, str(directory)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_fixture_in_a_users_project(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    result = _run_pytest(tmp_path)
    assert "3 passed" in result.stdout, result.stdout + result.stderr


def test_fixture_without_uvicorn_fails_with_the_install_hint(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(BLOCK_UVICORN)
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    result = _run_pytest(tmp_path)
    assert "1 passed, 2 errors" in result.stdout, result.stdout + result.stderr
    assert "pip install 'airflow-provider-leadpipe[sandbox]'" in result.stdout
