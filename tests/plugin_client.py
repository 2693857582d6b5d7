"""A signed-in client of the credits page's FastAPI app, as Airflow's API server would serve it.

The user is signed in the way the API server checks it: a JWT issued by Airflow's configured auth
manager (the simple auth manager in these tests), sent as a bearer token, and every permission is
decided by that auth manager's own rules. Airflow >= 3.1 only (the page needs external views).
"""

from __future__ import annotations

from typing import Any


def signed_in_client(role: str = "admin", teams: list[str] | None = None) -> Any:
    """A ``TestClient`` of the page's app signed in as a simple-auth-manager user of ``role``.

    ``teams`` (Airflow >= 3.2, whose simple auth manager knows teams) limits the user to the DAGs
    and connections of those teams. Server errors are answered (500), not raised, as a browser sees them.
    """
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from airflow_provider_leadpipe.plugins.app import create_app

    user = SimpleAuthManagerUser(username=f"{role}-user", role=role, **({"teams": teams} if teams else {}))
    token = create_auth_manager().generate_jwt(user)
    return TestClient(
        create_app(), raise_server_exceptions=False, headers={"Authorization": f"Bearer {token}"}
    )
