from __future__ import annotations

import json

import pytest

#: A distinctive key: any occurrence of it in output is a leak.
API_KEY = "sk_live_UNITKEY_9f8e7d6c5b4a"
BASE_URL = "https://api.aws53.cloud"


def account_data(**overrides):
    """A documented account `data` object; keyword overrides replace whole top-level blocks."""
    data = {
        "healthy": True,
        "organization": {"name": "Acme", "status": "trial"},
        "credits": {
            "used": 20,
            "limit": 500,
            "remaining": 480,
            "percentUsed": 4.0,
            "resetsAt": "2026-12-01T00:00:00Z",
        },
        "pixels": {"total": 2, "active": 1, "paused": 1},
        "intent": {
            "audienceSlots": 3,
            "audienceSlotsUsed": 1,
            "audienceSlotsAvailable": 2,
            "status": "active",
        },
    }
    data.update(overrides)
    return data


@pytest.fixture
def leadpipe_conn(monkeypatch):
    """`leadpipe_default` as an env-var connection to the (respx-mocked) production URL."""

    def make(conn_id="leadpipe_default", **fields):
        conn = {"conn_type": "leadpipe", "password": API_KEY, **fields}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    make()
    return make
