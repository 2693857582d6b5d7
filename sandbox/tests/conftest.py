"""Shared fixtures: an httpx client on the sandbox and the account contract as a JSON Schema validator.

The ``leadpipe_sandbox`` fixture itself comes from the sandbox's pytest plugin (entry point), as it
does for users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from leadpipe_sandbox import LeadpipeSandbox
from leadpipe_sandbox.contract import ACCOUNT_OPENAPI

OPENAPI_URI = "urn:leadpipe:account-openapi"

ClientFactory = Callable[..., httpx.Client]


@pytest.fixture
def client_for(leadpipe_sandbox: LeadpipeSandbox) -> Iterator[ClientFactory]:
    """``client_for(key)``: an httpx client on the sandbox sending ``X-API-Key: key`` (None: no key)."""
    clients: list[httpx.Client] = []

    def make(api_key: str | None = leadpipe_sandbox.api_key, **kwargs: Any) -> httpx.Client:
        headers = {"X-API-Key": api_key} if api_key is not None else {}
        client = httpx.Client(base_url=leadpipe_sandbox.url, headers=headers, trust_env=False, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(client_for: ClientFactory) -> httpx.Client:
    """A client with the sandbox's default key."""
    return client_for()


def _closed(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists its properties."""
    if isinstance(schema, dict):
        schema = {key: _closed(value) for key, value in schema.items()}
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
    elif isinstance(schema, list):
        schema = [_closed(item) for item in schema]
    return schema


@pytest.fixture(scope="session")
def account_validator() -> jsonschema.protocols.Validator:
    """Validates a whole ``GET /v1/data/account`` body against ``AccountStatus`` of the OpenAPI file.

    The file's component schemas are OpenAPI 3.1, i.e. JSON Schema 2020-12; ``#/components/...``
    references resolve inside the document. Objects are closed (no undeclared fields), so the
    sandbox must answer *exactly* the documented shape.
    """
    document = _closed(yaml.safe_load(ACCOUNT_OPENAPI.read_text()))
    registry = Registry().with_resource(OPENAPI_URI, Resource.from_contents(document, DRAFT202012))
    schema = {"$ref": f"{OPENAPI_URI}#/components/schemas/AccountStatus"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


@pytest.fixture
def account_of(
    client_for: ClientFactory, account_validator: jsonschema.protocols.Validator
) -> Callable[[str], Any]:
    """``account_of(key)``: GET the account with that key, check 200 and the contract, return ``data``."""

    def fetch(api_key: str) -> Any:
        response = client_for(api_key).get("/v1/data/account")
        assert response.status_code == 200, response.text
        body = response.json()
        account_validator.validate(body)
        return body["data"]

    return fetch
