"""Apache Airflow provider for Leadpipe's Identification API."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_INTEGRATION = "Leadpipe"
_PACKAGE = "airflow_provider_leadpipe"


def _modules(*names: str) -> list[dict[str, Any]]:
    return [{"integration-name": _INTEGRATION, "python-modules": [f"{_PACKAGE}.{name}" for name in names]}]


# Shared by get_provider_info() (read by Airflow >= 3.2 without importing the hook) and by
# LeadpipeHook.get_ui_field_behaviour() (read by Airflow < 3.2), so the two cannot drift apart.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["login", "schema", "port"],
    "relabeling": {"password": "API key", "host": "Base URL"},
    "placeholders": {
        "password": "sk_... (Settings > API Keys in the Leadpipe dashboard)",
        "host": "https://api.aws53.cloud",
        "extra": '{"timeout": 30, "max_retries": 3, "proxy": "http://proxy.example.com:3128", '
        '"ca_bundle": "/etc/ssl/certs/corporate-ca.pem"}',
    },
}

#: Seconds a connection's ``timeout`` extra may be: the form states it, the hook enforces it.
TIMEOUT_RANGE = (1, 600)

CONN_FIELDS: dict[str, Any] = {
    "timeout": {
        "label": "Request timeout (seconds)",
        "description": "Per-request timeout for calls to the Leadpipe API, "
        f"{TIMEOUT_RANGE[0]}-{TIMEOUT_RANGE[1]} seconds. Default 30.",
        "schema": {"type": ["number", "null"], "minimum": TIMEOUT_RANGE[0], "maximum": TIMEOUT_RANGE[1]},
    },
    "max_retries": {
        "label": "Retries on transient errors",
        "description": "Retries on connection errors, timeouts, HTTP 429 and 5xx. Default 3.",
        "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": 10},
    },
    "proxy": {
        "label": "Proxy URL",
        "description": "HTTP(S) proxy for this connection, e.g. http://proxy.example.com:3128 "
        "(http:// or https://, optionally user:password@). Empty: the HTTPS_PROXY and NO_PROXY "
        "environment variables apply. The API key crosses the proxy only inside the TLS tunnel.",
        "schema": {"type": ["string", "null"]},
    },
    "ca_bundle": {
        "label": "CA bundle (PEM file path)",
        "description": "Absolute path, on every worker and triggerer, of a PEM file of CA "
        "certificates to trust instead of the default ones, e.g. your TLS-inspecting proxy's CA "
        "appended to certifi's bundle. Empty: the default trust store.",
        "schema": {"type": ["string", "null"]},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (no I/O, no Airflow imports)."""
    return {
        "package-name": "airflow-provider-leadpipe",
        "name": "Leadpipe",
        "description": "Leadpipe Identification API: account health and credit gating, visitor data "
        "pulls and pixel management.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.leadpipe.com/api-reference/introduction",
                "tags": ["service"],
            }
        ],
        "hooks": _modules("hooks.leadpipe"),
        "sensors": _modules("sensors.account", "sensors.audiences"),
        "triggers": _modules(
            "triggers.account", "triggers.audiences", "triggers.watchers", "triggers.credits"
        ),
        "operators": _modules(
            "operators.account",
            "operators.credit_report",
            "operators.visitors",
            "operators.pixels",
            "operators.audiences",
            "operators.audience_results",
        ),
        # The leadpipe:// asset URI scheme (see airflow_provider_leadpipe.utils.lineage): "asset-uris" is
        # read by Airflow 3, "dataset-uris" by Airflow 2.x.
        **{
            key: [
                {
                    "schemes": ["leadpipe"],
                    "handler": f"{_PACKAGE}.utils.lineage.sanitize_uri",
                    "to_openlineage_converter": f"{_PACKAGE}.utils.lineage.convert_asset_to_openlineage",
                }
            ]
            for key in ("asset-uris", "dataset-uris")
        },
        "plugins": [
            {"name": "leadpipe", "plugin-class": f"{_PACKAGE}.plugins.leadpipe.LeadpipePlugin"},
        ],
        # "Leadpipe connection" on every Leadpipe task (Airflow 3.1+): the credits page of its connection.
        "extra-links": [f"{_PACKAGE}.utils.links.LeadpipeCreditsLink"],
        "connection-types": [
            {
                "connection-type": "leadpipe",
                "hook-class-name": f"{_PACKAGE}.hooks.leadpipe.LeadpipeHook",
                "hook-name": "Leadpipe",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
    }
