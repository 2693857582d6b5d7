"""get_provider_info() is valid for Airflow, and Airflow really sees the provider."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_leadpipe import __version__, get_provider_info


def _schema(name: str) -> dict:
    import airflow

    return json.loads((Path(airflow.__file__).parent / name).read_text())


def test_valid_against_airflow_provider_info_schema():
    jsonschema.validate(get_provider_info(), _schema("provider_info.schema.json"))


def test_connection_type_valid_against_provider_yaml_schema():
    """conn-fields / ui-field-behaviour are only described in provider.yaml.schema.json."""
    connection_schema = _schema("provider.yaml.schema.json")["properties"]["connection-types"]
    jsonschema.validate(get_provider_info()["connection-types"], connection_schema)


def test_declares_required_metadata():
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-leadpipe"
    assert info["versions"] == [__version__]
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == "leadpipe" and conn["hook-name"] == "Leadpipe"
    behaviour = conn["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"login", "schema", "port"}
    assert behaviour["relabeling"] == {"password": "API key", "host": "Base URL"}
    assert {"timeout", "max_retries"} <= set(conn["conn-fields"])


def _listed_classes():
    info = get_provider_info()
    yield info["connection-types"][0]["hook-class-name"]
    yield from info.get("extra-links", [])


def _listed_modules():
    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(kind, []):
            yield from entry["python-modules"]


@pytest.mark.parametrize("module", list(_listed_modules()))
def test_every_listed_module_imports(module):
    importlib.import_module(module)


@pytest.mark.parametrize("path", list(_listed_classes()))
def test_every_listed_class_imports(path):
    module, _, name = path.rpartition(".")
    assert isinstance(getattr(importlib.import_module(module), name), type)


def test_legacy_form_matches_declarative_form():
    from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook

    declared = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    legacy = LeadpipeHook.get_ui_field_behaviour()
    assert legacy == {k.replace("-", "_"): v for k, v in declared.items()}


def test_providers_manager_knows_the_connection_type():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-leadpipe" in manager.providers
    hook_info = manager.hooks["leadpipe"]
    assert hook_info.hook_class_name.endswith("LeadpipeHook")
    assert hook_info.connection_id_attribute_name == "leadpipe_conn_id"
    assert manager.field_behaviours["leadpipe"]["relabeling"]["password"] == "API key"
    assert "extra__leadpipe__timeout" in manager.connection_form_widgets
