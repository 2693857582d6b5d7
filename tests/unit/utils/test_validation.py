"""The argument parsers: what Airflow may render for an argument is read, or refused with its name."""

from __future__ import annotations

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.models.pixels import path_list
from airflow_provider_leadpipe.utils import validation


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        (["expired", "inactive"], ["expired", "inactive"]),  # render_template_as_native_obj
        (("expired",), ["expired"]),
        ("['expired', 'inactive']", ["expired", "inactive"]),  # str() of a list: the default rendering
        ('["expired", "inactive"]', ["expired", "inactive"]),  # JSON
        ("('expired', 'inactive')", ["expired", "inactive"]),
        ("expired, inactive", ["expired", "inactive"]),  # comma-separated
        ("expired", ["expired"]),
        ("[]", []),
        ([], []),
        ("", None),
        ("None", None),
        (None, None),
    ],
)
def test_value_list_reads_every_rendered_form(rendered, expected):
    assert validation.value_list(rendered, "fail_on_statuses") == expected


@pytest.mark.parametrize(
    ("rendered", "message"),
    [
        ("['expired', 'inactive'", "fail_on_statuses looks like a list but is not a valid list literal"),
        ("[expired, inactive]", "not a valid list literal"),
        ("{'expired': 1}", "fail_on_statuses must be a list"),
        ('"expired"', "fail_on_statuses must be a list"),
        ({"expired": 1}, "fail_on_statuses must be a list, a list literal or a comma-separated string"),
        (5, "fail_on_statuses must be a list"),
        ("[1] + [2]", "not a valid list literal"),
    ],
)
def test_value_list_refuses_what_it_cannot_read(rendered, message):
    with pytest.raises(LeadpipeConfigError, match=message):
        validation.value_list(rendered, "fail_on_statuses")


def test_string_list_normalizes_and_names_a_bad_item():
    assert validation.string_list("['Expired', ' expired ', 'Inactive']", "s", lower=True) == (
        "expired",
        "inactive",
    )
    assert validation.string_list("[]", "s") is None
    with pytest.raises(LeadpipeConfigError, match=r"s\[1\] must be a string, got int 3"):
        validation.string_list("['expired', 3]", "s")


def test_path_list_reads_rendered_lists_and_keeps_an_empty_one():
    assert path_list("['/blog', '/pricing']", "included_paths") == ["/blog", "/pricing"]
    assert path_list("/blog, /pricing", "included_paths") == ["/blog", "/pricing"]
    assert path_list("[]", "included_paths") == []
    assert path_list("", "included_paths") is None
    with pytest.raises(LeadpipeConfigError, match=r"included_paths\[0\] must start with '/'"):
        path_list("['blog']", "included_paths")


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ({"a": 1}, {"a": 1}),
        ('{"a": 1}', {"a": 1}),
        ("{'a': 1}", {"a": 1}),
        ("", None),
        (None, None),
    ],
)
def test_mapping_reads_every_rendered_form(rendered, expected):
    assert validation.mapping(rendered, "config") == expected


@pytest.mark.parametrize("rendered", ["[1, 2]", "a=1", 5, ["a"], "{'a': 1"])
def test_mapping_refuses_what_is_no_mapping(rendered):
    with pytest.raises(LeadpipeConfigError, match="config must be a mapping"):
        validation.mapping(rendered, "config")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), ("True", True), ("1", True), ("false", False), (" off ", False), (False, False)],
)
def test_boolean(value, expected):
    assert validation.boolean(value, "require_healthy") is expected


@pytest.mark.parametrize("value", ["maybe", None, 1, ""])
def test_boolean_refuses(value):
    with pytest.raises(LeadpipeConfigError, match="require_healthy must be true or false"):
        validation.boolean(value, "require_healthy")


def test_hook_params_accepts_a_json_object_and_drops_nulls():
    assert validation.hook_params(None) == {}
    assert validation.hook_params({"timeout": 5, "max_retries": None}) == {"timeout": 5}
    assert validation.hook_params('{"retry_backoff": 0.5}') == {"retry_backoff": 0.5}
