"""LeadpipeVisitorsToStorageOperator writing to file:// storage, API mocked with respx."""

from __future__ import annotations

import gzip
import json
import logging

import httpx
import pytest
import respx

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAuthError,
    LeadpipeConfigError,
    LeadpipeIncompleteError,
)
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.operators import visitors as visitors_module
from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator
from tests.stores import listing, put
from tests.unit.conftest import API_KEY
from tests.unit.hooks.test_visitors import VISITORS_URL, FakeVisitorsApi, visitors


def read_jsonl(path) -> list[dict]:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return [json.loads(line) for line in raw.decode().splitlines()]


def make(target, **kwargs) -> LeadpipeVisitorsToStorageOperator:
    op = LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(target), **kwargs)
    op.hook = LeadpipeHook(leadpipe_conn_id=op.leadpipe_conn_id, retry_backoff=0.001)  # fast retries
    return op


@pytest.fixture
def api(leadpipe_conn):
    fake = FakeVisitorsApi(visitors(437))
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=fake)
        yield fake


def output(caplog, capsys) -> str:
    """Everything logged: stdlib logging and Airflow 3's structlog output on stdout/stderr."""
    captured = capsys.readouterr()
    return "\n".join([caplog.text, captured.out, captured.err])


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("name", ["visitors.jsonl", "visitors.jsonl.gz"])
def test_writes_every_record_in_order_and_returns_a_summary(api, tmp_path, name):
    target = tmp_path / "out" / "2026" / name  # parent folders do not exist yet
    result = make(target, timeframe="30d", concurrency=4).execute({})
    assert result == {"path": f"{target}", "records": 437, "pages": 9, "expected_records": 437}
    json.dumps(result)  # XCom-safe
    assert read_jsonl(target) == api.records
    assert leftovers(target.parent) == [name], "no temporary file is left beside the output"
    assert all(query == {"timeframe": "30d"} for query in api.queries)


def test_file_url_and_explicit_compression(api, tmp_path):
    target = tmp_path / "plain.jsonl"
    make(f"file://{target}", compression="gzip").execute({})
    assert gzip.decompress(target.read_bytes()).decode().count("\n") == 437
    other = tmp_path / "raw.jsonl.gz"
    make(other, compression=None).execute({})
    assert other.read_bytes().startswith(b'{"email"'), "compression=None never gzips"


def test_gzip_output_is_reproducible(api, tmp_path):
    make(tmp_path / "a.jsonl.gz").execute({})
    make(tmp_path / "b.jsonl.gz").execute({})
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()


def test_records_are_written_exactly_as_received(leadpipe_conn, tmp_path):
    records = [{"z": 1, "a": "Zoë — 東京", "nested": {"list": [1, None, True]}}, {"line": "a\nb"}]
    with respx.mock() as mock:
        mock.get(VISITORS_URL).respond(200, json={"data": records, "meta": {"total": 2}})
        make(tmp_path / "x.jsonl").execute({})
    lines = (tmp_path / "x.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines[0] == '{"z":1,"a":"Zoë — 東京","nested":{"list":[1,null,true]}}', "key order and text kept"
    assert [json.loads(line) for line in lines] == records


def test_empty_result_writes_an_empty_file(leadpipe_conn, tmp_path):
    with respx.mock() as mock:
        mock.get(VISITORS_URL).respond(200, json={"data": [], "meta": {"total": 0}})
        result = make(tmp_path / "none.jsonl.gz").execute({})
    assert result["records"] == 0 and result["pages"] == 0
    assert gzip.decompress((tmp_path / "none.jsonl.gz").read_bytes()) == b""


def test_503_mid_pull_is_retried_and_the_file_is_complete(leadpipe_conn, tmp_path):
    fake = FakeVisitorsApi(visitors(437), fail={5: [httpx.Response(503), httpx.Response(503)]})
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=fake)
        result = make(tmp_path / "v.jsonl").execute({})
    assert result["records"] == 437
    assert read_jsonl(tmp_path / "v.jsonl") == fake.records
    assert fake.pages.count(5) == 3


def test_auth_failure_mid_pull_leaves_no_file_and_keeps_the_previous_one(
    leadpipe_conn, tmp_path, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    target = tmp_path / "v.jsonl"
    target.write_text("previous complete run\n")
    denied = httpx.Response(401, json={"error": {"code": "HTTP_ERROR", "message": "Invalid API key"}})
    fake = FakeVisitorsApi(visitors(437), fail={6: [denied]})
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=fake)
        with pytest.raises(LeadpipeAuthError, match="Invalid API key") as info:
            make(target).execute({})
    assert target.read_text() == "previous complete run\n", "a failed pull never touches the target"
    assert leftovers(tmp_path) == ["v.jsonl"], "the temporary file is removed"
    logged = output(caplog, capsys)
    assert "Pulling Leadpipe visitors" in logged, "the operator's log is captured"
    assert API_KEY not in logged and API_KEY not in str(info.value)


def test_failure_before_any_page_leaves_nothing(leadpipe_conn, tmp_path):
    with respx.mock() as mock:
        mock.get(VISITORS_URL).respond(403, json={"error": {"message": "Organization is expired"}})
        with pytest.raises(LeadpipeAuthError):
            make(tmp_path / "v.jsonl").execute({})
    assert leftovers(tmp_path) == []


def test_rerun_replaces_the_file(api, tmp_path):
    target = tmp_path / "v.jsonl"
    target.write_text("old\n" * 1000)
    make(target).execute({})
    assert read_jsonl(target) == api.records


def test_memory_holds_at_most_concurrency_pages(leadpipe_conn, tmp_path, monkeypatch):
    """When page n is requested, pages up to n - concurrency - 1 have already been written."""
    events: list[tuple[str, int]] = []
    fake = FakeVisitorsApi(visitors(50 * 40))

    def api(request):
        events.append(("request", int(request.url.params["page"])))
        return fake(request)

    real_jsonl = visitors_module.jsonl

    def spy(records, **where):
        events.append(("write", records[0]["n"] // 50 + 1))
        return real_jsonl(records, **where)

    monkeypatch.setattr(visitors_module, "jsonl", spy)
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=api)
        result = make(tmp_path / "v.jsonl", concurrency=3).execute({})
    assert result["pages"] == 40
    written = 0
    for kind, number in events:
        if kind == "write":
            assert number == written + 1, "pages are written in order"
            written = number
        else:
            assert number - written <= 3 + 1, f"page {number} requested with only {written} written"


def test_on_kill_mid_pull_removes_the_temporary_file(leadpipe_conn, tmp_path):
    fake = FakeVisitorsApi(visitors(300))
    op = make(tmp_path / "v.jsonl", concurrency=1)

    def api(request):
        if request.url.params["page"] == "4":
            op.on_kill()  # what Airflow calls on SIGTERM, from inside the running pull
        return fake(request)

    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=api)
        with pytest.raises(FileNotFoundError):
            op.execute({})
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeframe": "1w"}, "timeframe must be one of"),
        ({"visitor_email": "not-an-email"}, "visitor_email must be an email address"),
        ({"path": ""}, "path must be a file path or URL"),
        ({"path": "file:///tmp/folder/"}, "path must name a file"),
    ],
)
def test_bad_arguments_fail_before_any_request_or_file(leadpipe_conn, tmp_path, kwargs, match):
    kwargs.setdefault("path", str(tmp_path / "v.jsonl"))
    # A bad literal fails when the DAG is parsed ...
    with pytest.raises(LeadpipeConfigError, match=match):
        LeadpipeVisitorsToStorageOperator(task_id="pull", **kwargs)
    # ... a templated value that renders to it, at execute, before any request or file.
    templated = {name: f"{{{{ params.{name} }}}}" for name in kwargs}
    op = LeadpipeVisitorsToStorageOperator(task_id="pull", **templated)
    for name, value in kwargs.items():
        setattr(op, name, value)  # as rendered
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(VISITORS_URL)
        with pytest.raises(LeadpipeConfigError, match=match):
            op.execute({})
    assert not route.called
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"compression": "zip"}, "compression must be"),
        ({"concurrency": 0}, "concurrency must be"),
        ({"on_incomplete": "ignore"}, "on_incomplete must be 'warn', 'fail' or None"),
        ({"on_incomplete": True}, "on_incomplete must be"),
    ],
)
def test_bad_settings_fail_when_the_dag_is_parsed(kwargs, match):
    with pytest.raises(LeadpipeConfigError, match=match):
        LeadpipeVisitorsToStorageOperator(task_id="pull", path="/tmp/x.jsonl", **kwargs)


def test_templated_fields():
    fields = set(LeadpipeVisitorsToStorageOperator.template_fields)
    assert fields >= {"path", "timeframe", "domain", "visitor_email"}


def test_an_existing_folder_is_not_a_target(leadpipe_conn, tmp_path):
    with pytest.raises(LeadpipeConfigError, match="path must name a file") as info:
        LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(tmp_path)).execute({})
    assert str(tmp_path) in str(info.value), "the error names the path"


def test_the_email_filter_is_sent_but_not_logged(api, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    # Held in a variable: a stack trace that quotes this line (Airflow 2.x-3.0 log one when
    # execute() runs outside a task, and logging prints one on a closed stream) must not count.
    email = "jane.doe@" + "example.com"
    op = make(tmp_path / "v.jsonl", visitor_email=email)
    op.execute({})
    assert not op.email, "BaseOperator's failure-alert address must not become the visitor filter"
    assert api.queries[0] == {"email": email}
    logged = output(caplog, capsys)
    assert "email=<set>" in logged
    assert email not in logged


# -- object stores, unwritable text, short pulls -----------------------------------------------


def test_an_object_store_prefix_holding_objects_is_refused_before_any_request(leadpipe_conn, memory_store):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    put(ObjectStoragePath("memory://bucket/visitors/2026-01-01.jsonl"), b"{}\n")
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(VISITORS_URL)
        with pytest.raises(LeadpipeConfigError, match="memory://bucket/visitors' is a folder") as info:
            make("memory://bucket/visitors").execute({})
    assert not route.called
    assert "prefix holding objects" in str(info.value)
    assert listing(ObjectStoragePath("memory://bucket")) == ["visitors/2026-01-01.jsonl"]


def test_pulls_to_an_object_store(api, memory_store):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    result = make("memory://bucket/out/v.jsonl.gz").execute({})
    assert result["records"] == 437
    target = ObjectStoragePath("memory://bucket/out/v.jsonl.gz")
    assert [json.loads(x) for x in gzip.decompress(target.read_bytes()).splitlines()] == api.records
    assert listing(ObjectStoragePath("memory://bucket")) == ["out/v.jsonl.gz"]


def test_a_record_with_a_lone_surrogate_is_written_not_fatal(leadpipe_conn, tmp_path):
    # As a JavaScript API sends a name cut mid-emoji: valid JSON, no UTF-8 form.
    wire = '{"data":[{"n":0,"name":"Zo\\u00eb \\ud83d"},{"n":1,"note":"\\ude00 ok"}],"meta":{"total":2}}'
    with respx.mock() as mock:
        mock.get(VISITORS_URL).respond(
            200, content=wire.encode(), headers={"content-type": "application/json"}
        )
        result = make(tmp_path / "v.jsonl").execute({})
    assert result["records"] == 2
    lines = (tmp_path / "v.jsonl").read_bytes().decode("utf-8").splitlines()  # strict UTF-8
    assert [json.loads(line) for line in lines] == json.loads(wire)["data"]
    assert lines[0] == '{"n":0,"name":"Zoë \\ud83d"}'


def short_api(count: int = 437, stop_at_page: int = 5) -> FakeVisitorsApi:
    """Announces ``count`` records but answers page ``stop_at_page`` with an empty page."""
    empty = httpx.Response(200, json={"data": [], "meta": {"total": count}})
    return FakeVisitorsApi(visitors(count), fail={stop_at_page: [empty]})


def test_a_short_pull_warns_with_both_numbers_and_reports_expected_records(
    leadpipe_conn, tmp_path, caplog, capsys
):
    caplog.set_level(logging.INFO)
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=short_api())
        result = make(tmp_path / "v.jsonl", concurrency=1).execute({})
    assert result == {"path": str(tmp_path / "v.jsonl"), "records": 200, "pages": 4, "expected_records": 437}
    assert len(read_jsonl(tmp_path / "v.jsonl")) == 200, "what arrived is written"
    assert "announced 437 visitor records but the pull returned 200 (237 missing)" in output(caplog, capsys)


def test_a_short_pull_with_on_incomplete_fail_writes_nothing(leadpipe_conn, tmp_path):
    target = tmp_path / "v.jsonl"
    target.write_text("previous complete run\n")
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=short_api())
        with pytest.raises(
            LeadpipeIncompleteError, match="announced 437 visitor records but the pull returned 200"
        ):
            make(target, concurrency=1, on_incomplete="fail").execute({})
    assert target.read_text() == "previous complete run\n"
    assert leftovers(tmp_path) == ["v.jsonl"]


def test_on_incomplete_none_turns_the_comparison_off(leadpipe_conn, tmp_path, caplog, capsys):
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=short_api())
        result = make(tmp_path / "v.jsonl", concurrency=1, on_incomplete=None).execute({})
    assert (result["records"], result["expected_records"]) == (200, 437)
    assert "announced" not in output(caplog, capsys)
