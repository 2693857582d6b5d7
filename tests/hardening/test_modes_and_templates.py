"""Two classes of disagreement, each closed for every member:

- A sensor that ends differently in poke, reschedule and deferrable mode: every flag
  (``soft_fail``, ``never_fail``, ``silent_fail``) against every kind of answer sequence (ready,
  waiting, transient, malformed, fail-fast, never ready) must end alike in all three modes.
- A templated list argument that Airflow renders into a form the provider does not read: every
  template field of every provider operator and sensor is classified, and every list field reads
  each rendered form as the same list, or refuses it with a ``LeadpipeConfigError``.
"""

from __future__ import annotations

import importlib
import inspect
import json

import pytest
import respx
from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_leadpipe import get_provider_info
from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.models.audiences import audience_config
from airflow_provider_leadpipe.models.pixels import path_list
from airflow_provider_leadpipe.utils import validation
from tests.hardening.figures import record
from tests.unit.conftest import API_KEY
from tests.unit.sensors.test_account import MODES, Driver, sensor
from tests.unit.triggers.account_api import AccountAPI, account

FLAGS = {
    "no flag": {},
    "soft_fail": {"soft_fail": True},
    "never_fail": {"never_fail": True},
    "silent_fail": {"silent_fail": True},
}
SCRIPTS = {
    "ready at once": [account(480)],
    "ready after a wait": [account(0), account(480)],
    "transient, then ready": [account(0), 503, account(480)],
    "malformed while waiting": [account(0), {"healthy": True}],
    "401 while waiting": [account(0), 401],
    "expired while waiting": [account(0), account(500, healthy=False, org_status="expired")],
    "never ready": [account(0)],
}


#: Only a sequence whose last answer keeps the sensor waiting may time out, and it times out
#: whatever the machine's speed: that answer repeats for ever. Every other sequence ends on its own
#: and gets a timeout no busy machine reaches (a wrong guess here hangs and fails, it cannot pass).
ENDS_ON_ITS_OWN_TIMEOUT = 600.0
KEEPS_WAITING_TIMEOUT = 0.3


def keeps_waiting(flags: dict, name: str) -> bool:
    """``never ready`` waits under every flag; ``silent_fail`` also waits through malformed answers."""
    return name == "never ready" or (flags.get("silent_fail", False) and name == "malformed while waiting")


def outcome(mode: str, flags: dict, name: str) -> str:
    script = SCRIPTS[name]
    timeout = KEEPS_WAITING_TIMEOUT if keeps_waiting(flags, name) else ENDS_ON_ITS_OWN_TIMEOUT
    with respx.mock() as router:
        AccountAPI(router, *script)
        try:
            result = Driver().run(sensor(mode, timeout=timeout, **flags))
        except Exception as exc:
            return type(exc).__name__
    return f"xcom {json.dumps(result, sort_keys=True)}"


@pytest.fixture
def no_hook_retries(monkeypatch):
    conn = {"conn_type": "leadpipe", "password": API_KEY, "extra": json.dumps({"max_retries": 0})}
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", json.dumps(conn))


@pytest.mark.parametrize("flag", FLAGS)
def test_every_flag_ends_alike_in_every_mode(flag, no_hook_retries):
    ends = {}
    for name in SCRIPTS:
        ends[name] = {mode: outcome(mode, FLAGS[flag], name) for mode in MODES}
    differing = {name: by_mode for name, by_mode in ends.items() if len(set(by_mode.values())) > 1}
    assert not differing, differing
    record(
        "modes",
        f"sensor with {flag}: {len(SCRIPTS)} answer sequences end alike in poke, reschedule, deferrable",
    )


# -- templated list arguments ----------------------------------------------------------------------

#: Template fields that hold one value (a string, a number, a boolean).
SCALARS = {
    "leadpipe_conn_id",
    "require_healthy",
    "min_credits",
    "max_percent_used",
    "min_audience_slots",
    "domain",
    "name",
    "pixel_id",
    "status",
    "path",
    "timeframe",
    "visitor_email",
    "storage_conn_id",
    "audience_id",
    "audience_run_id",
    "idempotency_key",
    "min_data_date",
    "exhaustion_margin_hours",
    "state_path",
}
#: Template fields that hold a list: read with validation.value_list (through the parser named here).
LISTS = {
    "fail_on_statuses": lambda value: validation.string_list(value, "fail_on_statuses"),
    "included_paths": lambda value: path_list(value, "included_paths"),
    "excluded_paths": lambda value: path_list(value, "excluded_paths"),
    "topic_names": lambda value: validation.string_list(value, "topic_names"),
}
#: Template fields that hold a mapping: read through validation.mapping (by the parser named here).
MAPPINGS = {"config": audience_config}
RENDERED = {  # what "{{ params.x }}" can become for x = ["/a", "/b"]
    "native list": ["/a", "/b"],
    "str() of the list": "['/a', '/b']",
    "JSON text": '["/a", "/b"]',
    "comma-separated": "/a, /b",
}
REFUSED = ["{'/a': 1}", "['/a', '/b'", 5, {"/a": 1}]


def provider_tasks() -> list[type]:
    """Every operator and sensor class in the modules the provider declares."""
    info = get_provider_info()
    modules = [
        m for kind in ("operators", "sensors") for entry in info[kind] for m in entry["python-modules"]
    ]
    classes = {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module_name and issubclass(cls, BaseOperator) and not name.startswith("_"):
                classes[name] = cls
    return list(classes.values())


def test_every_template_field_is_classified():
    tasks = provider_tasks()
    unknown = {
        cls.__name__: sorted(set(cls.template_fields) - SCALARS - set(LISTS) - set(MAPPINGS)) for cls in tasks
    }
    unknown = {name: fields for name, fields in unknown.items() if fields}
    assert not unknown, (
        f"classify these template fields (a list must be read by validation.value_list): {unknown}"
    )
    fields = sum(len(cls.template_fields) for cls in tasks)
    record(
        "templates", f"{fields} template fields of {len(tasks)} operators/sensors classified (scalar or list)"
    )


@pytest.mark.parametrize("field", MAPPINGS)
def test_every_mapping_field_reads_each_rendered_form_or_refuses_it(field):
    parse = MAPPINGS[field]
    forms = {
        "native dict": {"topicIds": [1], "minScore": 70},
        "str() of the dict": "{'topicIds': [1], 'minScore': 70}",
        "JSON text": '{"topicIds": [1], "minScore": 70}',
    }
    assert {form: parse(value) for form, value in forms.items()} == {
        form: {"topicIds": [1], "minScore": 70} for form in forms
    }
    for value in ("[1]", "{'topicIds': [1]", 5, ["topicIds"], None, ""):
        with pytest.raises(LeadpipeConfigError, match=field):
            parse(value)


@pytest.mark.parametrize("field", LISTS)
def test_every_list_field_reads_each_rendered_form_or_refuses_it(field):
    parse = LISTS[field]
    read = {form: parse(value) for form, value in RENDERED.items()}
    assert {form: list(value or ()) for form, value in read.items()} == {
        form: ["/a", "/b"] for form in RENDERED
    }
    for value in REFUSED:
        with pytest.raises(LeadpipeConfigError, match=field):
            parse(value)
    record("templates", f"{field}: {len(RENDERED)} rendered forms read alike, {len(REFUSED)} refused")
