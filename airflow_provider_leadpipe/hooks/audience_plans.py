"""Orbit plans: each audience endpoint written once, as a plan (see :mod:`.plans`) that both
drivers of the hook run. Ids are checked (UUIDs) before anything is sent."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError, LeadpipeError
from airflow_provider_leadpipe.hooks import audience_answers as answers
from airflow_provider_leadpipe.hooks import paging
from airflow_provider_leadpipe.hooks.plans import Call, Plan
from airflow_provider_leadpipe.hooks.retry import IDEMPOTENCY_KEY_HEADER
from airflow_provider_leadpipe.hooks.settings import ApiSettings
from airflow_provider_leadpipe.models import (
    Audience,
    AudienceExport,
    AudienceResultsPage,
    AudienceRun,
    AudienceRunStats,
)
from airflow_provider_leadpipe.models.audience_configs import (
    AudienceConfigCheck,
    AudiencePreview,
    FilterCatalog,
    Topic,
)
from airflow_provider_leadpipe.models.audiences import audience_config, audience_name, audience_status
from airflow_provider_leadpipe.utils import validation

AUDIENCES_PATH = "/v1/intent/audiences"
TOPICS_PATH = "/v1/intent/topics"
#: Largest ``limit`` of ``GET /v1/intent/topics/search`` (documented: 1-50).
MAX_TOPIC_SEARCH_LIMIT = 50
#: Largest ``limit`` of ``GET .../runs`` (documented: 1-100).
MAX_RUNS_LIMIT = 100
#: Audiences asked for per page of ``GET /v1/intent/audiences``: the contract documents ``limit``
#: but not its largest value; its example asks for 50.
AUDIENCES_PAGE_SIZE = 50
#: Largest ``page_size`` of the audience list (undocumented; the value the runs list allows).
MAX_AUDIENCES_LIMIT = 100
#: Largest results page asked for. Undocumented; the previous API generation allowed 1-100, and a
#: server serving fewer is followed (see paging.AudienceResultsPager).
MAX_RESULTS_LIMIT = 100
#: Longest ``Idempotency-Key`` the API accepts (documented).
MAX_IDEMPOTENCY_KEY = 120

R = TypeVar("R", Audience, AudienceRun)
T = TypeVar("T")


def path_id(value: Any, name: str) -> str:
    """A UUID path id, as the API's ``format: uuid`` path parameters require."""
    return validation.uuid_id(value, name)


def idempotency_key(raw: str) -> str:
    """The ``Idempotency-Key`` to send for ``raw``: ``raw`` itself when it fits (at most 120
    printable ASCII characters), else a deterministic key of at most 120: a readable prefix of
    ``raw`` and the SHA-256 of all of it (so distinct inputs give distinct keys).

    :raises LeadpipeConfigError: for an empty or non-string key.
    """
    if not isinstance(raw, str) or not raw:
        raise LeadpipeConfigError(f"idempotency_key must be a non-empty string, got {raw!r}")
    if len(raw) <= MAX_IDEMPOTENCY_KEY and all(33 <= ord(char) <= 126 for char in raw):
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()  # 64 characters
    prefix = "".join(char for char in raw[:48] if 33 <= ord(char) <= 126)
    return f"{prefix}-sha256-{digest}"  # at most 48 + 8 + 64 = 120


def _audience_path(audience_id: Any) -> str:
    return f"{AUDIENCES_PATH}/{quote(path_id(audience_id, 'audience_id'), safe='')}"


def _run_path(audience_id: Any, run_id: Any) -> str:
    return f"{_audience_path(audience_id)}/runs/{quote(path_id(run_id, 'run_id'), safe='')}"


def _run_what(audience_id: str, run_id: str) -> str:
    return f"audience run {path_id(run_id, 'run_id')} of audience {path_id(audience_id, 'audience_id')}"


def _read_list(
    path: str, parse: Callable[[Any], tuple[list[R], Any]], what: str, page_size: int, params: dict[str, Any]
) -> Plan[list[R]]:
    """Every row of an offset-paged list, page after page (rules: :class:`paging.ListPager`)."""
    pager = paging.ListPager(page_size, what=what)
    rows: list[R] = []
    while not pager.done:
        page, meta = yield Call("GET", path, answers.parsing(parse, what), {**params, **pager.params()})
        pager.feed([row.id for row in page], meta)
        rows.extend(page)
    return rows


def list_audiences(status: str | None, page_size: int) -> Plan[list[Audience]]:
    status = audience_status(status)
    size = validation.whole_number(page_size, "page_size", 1, MAX_AUDIENCES_LIMIT)
    params = {"status": status} if status else {}
    return (
        yield from _read_list(AUDIENCES_PATH, Audience.list_page_from_response, "audience list", size, params)
    )


def get_audience(audience_id: str) -> Plan[Audience]:
    path = _audience_path(audience_id)
    return (yield Call("GET", path, answers.parsing(Audience.from_response, f"audience {audience_id}")))


def create_audience(name: str, config: Mapping[str, Any], status: str | None) -> Plan[Audience]:
    body: dict[str, Any] = {
        "name": audience_name(name),
        "config": audience_config(config),
    }
    status = audience_status(status)
    if status is not None:
        body["status"] = status
    return (
        yield Call("POST", AUDIENCES_PATH, answers.parsing(Audience.from_response, "audience"), json=body)
    )


def update_audience(
    audience_id: str, name: str | None, status: str | None, config: Mapping[str, Any] | None
) -> Plan[Audience]:
    path = _audience_path(audience_id)
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = audience_name(name)
    if audience_status(status) is not None:
        body["status"] = status
    if config is not None:
        body["config"] = audience_config(config)
    if not body:
        raise LeadpipeConfigError("update_audience needs at least one of name, status, config")
    what = f"audience {audience_id}"
    return (yield Call("PATCH", path, answers.parsing(Audience.from_response, what), json=body))


def delete_audience(audience_id: str) -> Plan[dict[str, Any]]:
    return (yield Call("DELETE", _audience_path(audience_id), answers.opaque(f"audience {audience_id}")))


def create_run(audience_id: str, key: str | None) -> Plan[AudienceRun]:
    path = f"{_audience_path(audience_id)}/runs"
    # The key makes this POST replay-safe, so the core's retry policy retries it (retry.replay_safe).
    headers = {IDEMPOTENCY_KEY_HEADER: idempotency_key(key) if key is not None else str(uuid.uuid4())}
    parse = answers.parsing(AudienceRun.from_response, f"audience {audience_id}")

    def handler(response: httpx.Response, settings: ApiSettings) -> AudienceRun:
        run: AudienceRun = parse(response, settings)
        # 201 Created: a new run; 200: the run this key made before ("reusing the same key
        # returns the same run"; the contract shows no status codes, this is the HTTP meaning).
        run._existing = response.status_code == 200
        return run

    return (yield Call("POST", path, handler, json={"runType": "manual"}, headers=headers))


def list_runs(
    audience_id: str, limit: int | None, page_size: int = MAX_RUNS_LIMIT
) -> Plan[list[AudienceRun]]:
    path = f"{_audience_path(audience_id)}/runs"
    if limit is None:
        size = validation.whole_number(page_size, "page_size", 1, MAX_RUNS_LIMIT)
        parse = AudienceRun.list_page_from_response
        return (yield from _read_list(path, parse, f"run list of audience {audience_id}", size, {}))
    params = {"limit": validation.whole_number(limit, "limit", 1, MAX_RUNS_LIMIT)}
    return (
        yield Call(
            "GET", path, answers.parsing(AudienceRun.list_from_response, f"audience {audience_id}"), params
        )
    )


def _find_run(audience_id: str, run_id: str) -> Plan[AudienceRun | None]:
    runs = yield from list_runs(audience_id, MAX_RUNS_LIMIT)
    return next((run for run in runs if run.id == run_id), None)


def results_page(audience_id: str, run_id: str, limit: int, offset: int) -> Plan[AudienceResultsPage]:
    page = yield from _results_answer(audience_id, run_id, limit, offset)
    if isinstance(page, answers.Refused):
        raise answers.run_error((yield from _explained(page, audience_id, run_id)), audience_id, run_id)
    return page


def _results_answer(
    audience_id: str, run_id: str, limit: int, offset: int
) -> Plan[AudienceResultsPage | answers.Refused]:
    path = f"{_run_path(audience_id, run_id)}/results"
    limit = validation.whole_number(limit, "limit", 1, MAX_RESULTS_LIMIT)
    offset = validation.whole_number(offset, "offset", 0)
    handler = answers.results(_run_what(audience_id, run_id), limit=limit, offset=offset)
    return (yield Call("GET", path, handler, {"limit": limit, "offset": offset}))


def _explained(refused: answers.Refused, audience_id: str, run_id: str) -> Plan[answers.Refused]:
    """A 409 whose body did not carry the run's state: the runs list has it (if still listed)."""
    if refused.run is not None and refused.status:
        return refused
    try:
        run = yield from _find_run(audience_id, run_id)
    except LeadpipeError:
        return refused  # the 409 is the news; a failed lookup must not replace it
    if run is None:
        return refused
    return answers.Refused(
        run, run.status.value, run.error_code or refused.code, run.error_message or refused.message
    )


def get_run(audience_id: str, run_id: str) -> Plan[AudienceRun]:
    audience_id, run_id = path_id(audience_id, "audience_id"), path_id(run_id, "run_id")
    answer = yield from _results_answer(audience_id, run_id, 1, 0)
    seen = answer.run if isinstance(answer, (AudienceResultsPage, answers.Refused)) else None
    if isinstance(answer, AudienceResultsPage) and not answer.ready:
        return _with_audience(answer.run, audience_id)
    full = yield from _find_run(audience_id, run_id)
    if full is not None:
        return full
    if seen is not None:
        return _with_audience(seen, audience_id)
    assert isinstance(answer, answers.Refused)
    raise answers.run_error(answer, audience_id, run_id)


def _with_audience(run: AudienceRun, audience_id: str) -> AudienceRun:
    # The run inside a results answer omits audienceId; the caller knows it.
    return run if run.audience_id else run.model_copy(update={"audience_id": audience_id})


def cancel_run(audience_id: str, run_id: str) -> Plan[dict[str, Any]]:
    return (
        yield Call("DELETE", _run_path(audience_id, run_id), answers.opaque(_run_what(audience_id, run_id)))
    )


def stats(audience_id: str, run_id: str) -> Plan[AudienceRunStats]:
    return (yield from _of_completed_run("GET", "stats", AudienceRunStats.from_response, audience_id, run_id))


def export_csv(audience_id: str, run_id: str) -> Call:
    path = f"{_run_path(audience_id, run_id)}/export.csv"
    return Call(
        "GET",
        path,
        answers.csv_stream(_run_what(audience_id, run_id)),
        headers={"Accept": "text/csv"},
        stream=True,
    )


def create_export(audience_id: str, run_id: str) -> Plan[AudienceExport]:
    return (
        yield from _of_completed_run("POST", "exports", AudienceExport.from_response, audience_id, run_id)
    )


def _of_completed_run(
    method: str, suffix: str, parse: Callable[[Any], T], audience_id: str, run_id: str
) -> Plan[T]:
    """A read (or export) that only a completed run serves: 202 is not ready yet, 409 its error."""
    handler = answers.completed_only(parse, _run_what(audience_id, run_id))
    answer = yield Call(method, f"{_run_path(audience_id, run_id)}/{suffix}", handler)
    if isinstance(answer, answers.Refused):
        raise answers.run_error((yield from _explained(answer, audience_id, run_id)), audience_id, run_id)
    return answer  # type: ignore[no-any-return]


def get_export(audience_id: str, run_id: str, export_id: str) -> Plan[AudienceExport]:
    path = f"{_run_path(audience_id, run_id)}/exports/{quote(path_id(export_id, 'export_id'), safe='')}"
    what = f"export {export_id} of {_run_what(audience_id, run_id)}"
    return (yield Call("GET", path, answers.parsing(AudienceExport.from_response, what)))


# -- configs before an audience is saved: validate, preview, filters, topics ----------------------


def validate_config(config: Mapping[str, Any]) -> Plan[AudienceConfigCheck]:
    body = audience_config(config)
    return (yield Call("POST", f"{AUDIENCES_PATH}/validate", answers.config_check, json=body))


def preview_config(config: Mapping[str, Any]) -> Plan[AudiencePreview]:
    body = audience_config(config)
    return (yield Call("POST", f"{AUDIENCES_PATH}/preview", answers.preview, json=body))


def filter_catalog() -> Plan[FilterCatalog]:
    what = "audience filter catalog"
    return (
        yield Call("GET", f"{AUDIENCES_PATH}/filters", answers.parsing(FilterCatalog.from_response, what))
    )


def _topic_text(value: Any, name: str) -> str | None:
    text = validation.optional_str(value, name)
    return None if text is None else validation.check_length(text, name, (1, 100))


def search_topics(
    query: str, limit: int, topic_type: str | None = None, industry: str | None = None
) -> Plan[list[Topic]]:
    q = _topic_text(query, "query")
    if q is None:
        raise LeadpipeConfigError(f"query must be a non-empty string, got {validation.shown(query)}")
    params: dict[str, Any] = {
        "q": q,
        "limit": validation.whole_number(limit, "limit", 1, MAX_TOPIC_SEARCH_LIMIT),
    }
    for key, value in (("type", topic_type), ("industry", industry)):
        if _topic_text(value, key) is not None:
            params[key] = value
    parse = answers.parsing(Topic.list_from_response, "topic search")
    return (yield Call("GET", f"{TOPICS_PATH}/search", parse, params))


def get_topics(topic_ids: Any) -> Plan[list[Topic]]:
    """The topics of these ids, in the order asked; an id the API does not list is left out.
    (``ids`` is not a documented parameter: the answer is filtered here too.)"""
    ids = [
        validation.whole_number(value, "topic id", 1)
        for value in validation.value_list(topic_ids, "topic_ids") or []
    ]
    if not ids:
        raise LeadpipeConfigError("topic_ids must list at least one topic id")
    parse = answers.parsing(Topic.list_from_response, "topic list")
    rows = yield Call("GET", TOPICS_PATH, parse, {"ids": ",".join(map(str, ids))})
    by_id = {topic.topic_id: topic for topic in rows}
    return [by_id[topic_id] for topic_id in ids if topic_id in by_id]


def resolve_topic_names(names: Any) -> Plan[list[int]]:
    """The id of each topic name (an exact, case-insensitive match of ``topicName``), in order.

    :raises LeadpipeConfigError: naming every name that matched no topic or more than one, with
        the candidates the search found.
    """
    wanted = validation.string_list(names, "topic_names") or ()
    ids: list[int] = []
    problems: list[str] = []
    for name in wanted:
        found = yield from search_topics(name, MAX_TOPIC_SEARCH_LIMIT)
        exact = [topic for topic in found if topic.topic_name.casefold() == name.strip().casefold()]
        if len(exact) == 1:
            ids.append(exact[0].topic_id)
            continue
        candidates = exact or found
        listed = "; ".join(topic.describe() for topic in candidates[:10]) or "none"
        kind = f"is ambiguous ({len(exact)} topics have this name)" if exact else "matches no topic by name"
        problems.append(f"{name!r} {kind}; candidates: {listed}")
    if problems:
        raise LeadpipeConfigError(
            "Topic names could not be resolved to ids:\n" + "\n".join(f"- {p}" for p in problems)
        )
    return ids
