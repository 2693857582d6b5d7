"""The fixture's env-var connection as Airflow itself resolves it (Airflow imported only here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from leadpipe_sandbox import LeadpipeSandbox


def test_leadpipe_default_connection_points_at_the_sandbox(
    leadpipe_sandbox: LeadpipeSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if "airflow" not in sys.modules:  # keep a first Airflow import from writing to ~/airflow
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
        monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.providers.common.compat.sdk import BaseHook

    conn = BaseHook.get_connection("leadpipe_default")
    assert (conn.conn_type, conn.host, conn.password) == ("leadpipe", leadpipe_sandbox.url, "sk_test_sandbox")

    import httpx

    response = httpx.get(
        f"{conn.host}/v1/data/account", headers={"X-API-Key": conn.password}, trust_env=False
    )
    assert response.json()["data"]["organization"]["name"] == "Sandbox Trial Org"
