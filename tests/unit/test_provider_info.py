"""get_provider_info() is valid for Airflow, and Airflow really sees the provider."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from unittest.mock import ANY

import jsonschema
import pytest
from packaging.version import Version

from airflow_provider_leadpipe import __version__, get_provider_info

_AIRFLOW = Version(importlib.metadata.version("apache-airflow"))
AIRFLOW_VERSION = (_AIRFLOW.major, _AIRFLOW.minor)


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
    assert {"timeout", "max_retries", "proxy", "ca_bundle"} <= set(conn["conn-fields"])
    # Before Airflow 3.2 the extras are typed as JSON into Extra: its placeholder shows all four.
    extra = behaviour["placeholders"]["extra"]
    assert all(f'"{name}"' in extra for name in ("timeout", "max_retries", "proxy", "ca_bundle"))


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


@pytest.mark.skipif(
    (3, 0) <= AIRFLOW_VERSION < (3, 2),
    reason="Airflow 3.0-3.1 load a hook's field behaviour only when wtforms is importable; "
    "their API server reads it through HookMetaService instead (test_airflow3_connection_form)",
)
def test_providers_manager_relabels_the_form():
    """What Airflow 2's webserver form and Airflow 3.2+'s ProvidersManager read."""
    from airflow.providers_manager import ProvidersManager

    relabeling = ProvidersManager().field_behaviours["leadpipe"]["relabeling"]
    assert relabeling == {"password": "API key", "host": "Base URL"}


@pytest.mark.skipif(
    AIRFLOW_VERSION < (3, 2),
    reason="conn-fields in provider info are read from Airflow 3.2 on; before that the optional "
    "extras are typed as JSON into the connection's Extra field",
)
def test_providers_manager_has_the_extra_fields():
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets
    assert {
        "extra__leadpipe__timeout",
        "extra__leadpipe__max_retries",
        "extra__leadpipe__proxy",
        "extra__leadpipe__ca_bundle",
    } <= set(widgets)


def _wtforms_importable() -> bool:
    return importlib.util.find_spec("wtforms") is not None


@pytest.mark.skipif(AIRFLOW_VERSION < (3, 0), reason="HookMetaService (the /ui API) exists from Airflow 3.0")
@pytest.mark.skipif(
    AIRFLOW_VERSION < (3, 1) and not _wtforms_importable(),
    reason="Airflow 3.0's HookMetaService drops every hook's field behaviour when wtforms is not "
    "installed (fixed in 3.1); install the FAB provider or wtforms for a relabelled form on 3.0",
)
def test_airflow3_connection_form():
    """The metadata the Airflow 3 UI builds the Leadpipe form from (``/ui/connections/hook_meta``).

    Computed in a fresh interpreter, as in the API server: on 3.0-3.1 HookMetaService only
    mocks wtforms when ProvidersManager has not been initialised yet in the process.
    """
    script = (
        "from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService\n"
        "meta = [m for m in HookMetaService.hook_meta_data() if m.connection_type == 'leadpipe']\n"
        "print('HOOK_META=' + meta[0].model_dump_json())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("HOOK_META=")]
    meta = json.loads(line.removeprefix("HOOK_META="))
    assert meta["hook_name"] == "Leadpipe"
    fields = meta["standard_fields"]
    assert fields["password"] == {"hidden": False, "title": "API key", "placeholder": ANY}
    assert fields["host"] == {"hidden": False, "title": "Base URL", "placeholder": "https://api.aws53.cloud"}
    assert fields["login"]["hidden"] and fields["port"]["hidden"]
    if AIRFLOW_VERSION >= (3, 2):
        extras = meta["extra_fields"]
        assert {"timeout", "max_retries", "proxy", "ca_bundle"} <= set(extras)
        assert extras["proxy"]["schema"]["title"] == "Proxy URL"
        assert "HTTPS_PROXY and NO_PROXY" in extras["proxy"]["description"]
        assert extras["ca_bundle"]["schema"]["title"] == "CA bundle (PEM file path)"
        assert "TLS-inspecting proxy" in extras["ca_bundle"]["description"]

