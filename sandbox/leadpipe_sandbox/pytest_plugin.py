"""pytest plugin (entry point ``pytest11: leadpipe``): the ``leadpipe_sandbox`` fixture.

Loaded in every pytest run wherever the sandbox is installed, so this module imports nothing but
pytest and the standard library; the sandbox (httpx, pydantic, uvicorn) is imported only when a
test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from leadpipe_sandbox.sandbox import LeadpipeSandbox

CONN_ENV = "AIRFLOW_CONN_LEADPIPE_DEFAULT"


@pytest.fixture(scope="session")
def leadpipe_sandbox_options() -> dict[str, Any]:
    """Keyword arguments for the session's :class:`LeadpipeSandbox`; override it in ``conftest.py``."""
    return {"seed": 42, "visitors": 1000}


@pytest.fixture(scope="session")
def leadpipe_sandbox_server(leadpipe_sandbox_options: dict[str, Any]) -> Iterator[LeadpipeSandbox]:
    """One sandbox process for the whole session (state is *not* reset between tests)."""
    from leadpipe_sandbox.sandbox import LeadpipeSandbox, SandboxError

    try:
        sandbox = LeadpipeSandbox(**leadpipe_sandbox_options).start()
    except SandboxError as exc:
        pytest.fail(f"leadpipe_sandbox: {exc}", pytrace=False)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def leadpipe_sandbox(
    leadpipe_sandbox_server: LeadpipeSandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LeadpipeSandbox]:
    """The session's sandbox, reset to its initial state, with ``AIRFLOW_CONN_LEADPIPE_DEFAULT`` set.

    Airflow code in the test then finds a ``leadpipe_default`` connection pointing at the sandbox
    with the default key ``sk_test_sandbox``; the variable is removed again after the test.
    """
    default_key = leadpipe_sandbox_server.api_key
    leadpipe_sandbox_server.reset()
    monkeypatch.setenv(CONN_ENV, leadpipe_sandbox_server.connection_json())
    yield leadpipe_sandbox_server
    leadpipe_sandbox_server.api_key = default_key
