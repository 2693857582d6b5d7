"""The Orbit intent-audience endpoints (generation 3) and the stored-export download host.

Every success answers ``{"data": ..., "meta": {"timestamp", "request_id"}}``; errors use the API's
envelope with an Orbit code (``SLOTS_FULL``, ``NOT_FOUND``, ``VALIDATION_ERROR``,
``RUN_NOT_COMPLETED``, ``RUN_NOT_CANCELLABLE``). What the contract leaves open (status codes of
creations, 409 bodies, the largest ``limit``) is decided here and written down in docs/sandbox.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from leadpipe_sandbox import orbit_config
from leadpipe_sandbox.asgi import (
    HttpError,
    Request,
    Response,
    StreamingResponse,
    json_response,
)
from leadpipe_sandbox.orbit import (
    AUDIENCE_STATUSES,
    IDEMPOTENCY_KEY_MAX,
    TERMINAL,
    Audience,
    Run,
    StoredExport,
)
from leadpipe_sandbox.orbit_config import AudienceConfig
from leadpipe_sandbox.people import compact
from leadpipe_sandbox.pixels import validation_message
from leadpipe_sandbox.timeutil import iso, utcnow

if TYPE_CHECKING:
    from leadpipe_sandbox.state import KeyState, SandboxState

PREFIX = ("v1", "intent", "audiences")
AUDIENCES = "/v1/intent/audiences"
AUDIENCE = AUDIENCES + "/{audienceId}"
RUNS = AUDIENCE + "/runs"
RUN = RUNS + "/{runId}"
RESULTS = RUN + "/results"
STATS = RUN + "/stats"
EXPORT_CSV = RUN + "/export.csv"
EXPORTS = RUN + "/exports"
EXPORT = EXPORTS + "/{exportId}"
DOWNLOAD_PREFIX = "file"
DOWNLOAD_BUCKET = "leadpipe-exports"
RESULTS_MAX_LIMIT = 1000
RUNS_MAX_LIMIT = 100
#: The documented default ``limit`` of the runs list.
RUNS_DEFAULT_LIMIT = 25
AUDIENCES_MAX_LIMIT = 100
#: Undocumented: small, so that a client which does not page sees only part of the list.
AUDIENCES_DEFAULT_LIMIT = 10
CSV = b"text/csv; charset=utf-8"

T = TypeVar("T")
AnyResponse = Response | StreamingResponse
Handler = Callable[[Request, "KeyState", list[str]], "AnyResponse | Awaitable[AnyResponse]"]


def route(segments: list[str]) -> tuple[str, list[str]] | None:
    """``(template, [audienceId, runId, exportId])`` of an Orbit path, or ``None`` for another path."""
    if tuple(segments[:3]) != PREFIX or len(segments) > 9:
        return None
    shape = [*segments[:3]]
    params: list[str] = []
    for position, part in enumerate(segments[3:], start=3):
        if position in (3, 5, 7) and not (position == 3 and part in ("validate", "preview", "filters")):
            shape.append(("{audienceId}", "{runId}", "{exportId}")[(position - 3) // 2])
            params.append(part)
        else:
            shape.append(part)
    return "/" + "/".join(shape), params


def meta() -> dict[str, str]:
    return {"timestamp": iso(utcnow()), "request_id": f"req_{uuid.uuid4().hex}"}


def answer(status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    return json_response(status, {"data": data, "meta": meta()}, headers)


class OrbitApi:
    """Handlers of the Orbit endpoints; the server routes ``(method, template)`` here."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", AUDIENCES): self._list_audiences,
            ("POST", AUDIENCES): self._create_audience,
            ("GET", AUDIENCE): self._get_audience,
            ("PATCH", AUDIENCE): self._update_audience,
            ("DELETE", AUDIENCE): self._delete_audience,
            ("GET", RUNS): self._list_runs,
            ("POST", RUNS): self._create_run,
            ("DELETE", RUN): self._cancel_run,
            ("GET", RESULTS): self._results,
            ("GET", STATS): self._stats,
            ("GET", EXPORT_CSV): self._export_csv,
            ("POST", EXPORTS): self._create_export,
            ("GET", EXPORT): self._get_export,
            ("POST", orbit_config.VALIDATE): self._validate,
            ("POST", orbit_config.PREVIEW): self._preview,
            ("GET", orbit_config.FILTERS): lambda request, key, params: answer(200, orbit_config.catalog()),
            ("GET", orbit_config.TOPICS_PATH): self._topics,
            ("GET", orbit_config.TOPIC_SEARCH): self._topics,
        }

    # -- configs before an audience: validate, preview, topics (see orbit_config) ----------------

    def _validate(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        return answer(200, orbit_config.validate_response(key, _body(request)))

    def _preview(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        return answer(200, orbit_config.preview_response(key, _body(request)))

    def _topics(self, request: Request, key: KeyState | None, params: list[str]) -> AnyResponse:
        return answer(200, orbit_config.topics(request, search=request.path == orbit_config.TOPIC_SEARCH))

    # -- audiences -----------------------------------------------------------------------------

    def _list_audiences(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        status = request.query.get("status")
        if status is not None and status not in AUDIENCE_STATUSES:
            raise _invalid(f"status must be one of {', '.join(AUDIENCE_STATUSES)}")
        rows = [a.to_json() for a in key.orbit.audiences.values() if status in (None, a.status)]
        return answer(200, _page(request, rows, AUDIENCES_DEFAULT_LIMIT, AUDIENCES_MAX_LIMIT))

    def _create_audience(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        body = _body(request)
        name = _name(body.get("name"))
        status = _status(body.get("status", "draft"))
        config = _config(body.get("config"))
        if status == "active":
            claim_slot(key)
        audience = key.orbit.create_audience(name, status, config, utcnow())
        key.sync_slots()
        return answer(201, audience.to_json())

    def _get_audience(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        return answer(200, _audience(key, params).to_json())

    def _update_audience(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        audience = _audience(key, params)
        body = _body(request)
        if not any(field in body for field in ("name", "status", "config")):
            raise _invalid("Give at least one of name, status, config")
        name = _name(body["name"]) if "name" in body else audience.name
        status = _status(body["status"]) if "status" in body else audience.status
        config = _config(body["config"]) if "config" in body else audience.config
        if status == "active" and audience.status != "active":
            claim_slot(key)
        audience.name, audience.status, audience.config = name, status, config
        audience.updated_at = utcnow()
        key.sync_slots()
        return answer(200, audience.to_json())

    def _delete_audience(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        audience = _audience(key, params)
        key.orbit.delete_audience(audience)
        key.sync_slots()
        return answer(200, {"id": audience.id, "deleted": True})

    # -- runs ----------------------------------------------------------------------------------

    def _list_runs(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        audience = _audience(key, params)
        now = utcnow()
        runs = _page(request, key.orbit.runs_of(audience), RUNS_DEFAULT_LIMIT, RUNS_MAX_LIMIT)
        for run in runs:
            run.observe(now, poll=True)
        return answer(200, [run.to_json() for run in runs])

    def _create_run(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        audience = _audience(key, params)
        body = _body(request, allow_empty=True)
        run_type = body.get("runType", "manual")
        if run_type != "manual":
            raise _invalid("runType must be manual (daily runs are queued by the scheduler)")
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
            raise _invalid(f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} characters")
        store = key.orbit
        if idempotency_key is not None:
            existing = store.idempotency.get((audience.id, idempotency_key))
            if existing is not None and existing in store.runs:
                run = store.runs[existing]
                run.observe(utcnow(), poll=False)
                return answer(200, run.to_json())
        run = store.create_run(audience, utcnow(), idempotency_key=idempotency_key)
        store.runs_created[audience.id] = store.runs_created.get(audience.id, 0) + 1
        return answer(201, run.to_json())

    def _cancel_run(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        run = _run(key, params)
        now = utcnow()
        status = run.observe(now, poll=False)
        if status != "queued":
            raise HttpError(
                409,
                f"Only queued runs can be cancelled; run {run.id} is {status}",
                code="RUN_NOT_CANCELLABLE",
                extra={"data": {"run": run.summary()}},
            )
        run.cancel(now)
        return answer(200, run.to_json())

    # -- results, stats, exports ---------------------------------------------------------------

    def _results(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        run = _run(key, params)
        limit = _int_param(request, "limit", 100, 1, RESULTS_MAX_LIMIT)
        offset = _int_param(request, "offset", 0, 0, None)
        status = run.observe(utcnow(), poll=True)
        page: dict[str, Any] = {"limit": limit, "offset": offset}
        if status in ("queued", "running"):
            return answer(202, {"run": run.summary(), "state": status, "results": [], "total": 0, **page})
        _require_completed(run)
        people = run.people_of(key.orbit.seed)
        # The people set encodes the rows (faster than json.dumps would); the envelope goes around them.
        head = compact({"run": run.summary(completed_at=True), "state": status})[:-1]
        rows = people.rows_json(offset, offset + limit)
        page_json = f'"total":{people.count},"limit":{limit},"offset":{offset}'
        body = f'{{"data":{head},"results":{rows},{page_json}}},"meta":{compact(meta())}}}'
        return Response(200, body.encode())

    async def _stats(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        run = _run(key, params)
        status = run.observe(utcnow(), poll=True)
        if status in ("queued", "running"):
            return answer(202, {"run": run.summary(), "state": status, "stats": None})
        _require_completed(run)
        if run.stats is None:
            # One pass over every person: in a thread, so that other requests are served meanwhile.
            run.stats = await asyncio.to_thread(run.people_of(key.orbit.seed).stats)
        summary = {**run.summary(completed_at=True), "audienceId": run.audience.id}
        return answer(200, {"run": summary, "stats": run.stats})

    def _export_csv(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        run = _completed_run(key, params)
        cap = key.orbit.export_row_cap
        headers = [
            (b"x-export-row-cap", str(cap).encode()),
            (b"x-clickhouse-query-id", uuid.uuid4().hex.encode()),
            (b"content-disposition", f'attachment; filename="audience-run-{run.id}.csv"'.encode()),
        ]
        rows = min(cap, max(0, run.result_count - key.orbit.export_csv_short_by))  # short_by: a fault
        return StreamingResponse(200, run.people_of(key.orbit.seed).csv_chunks(rows), CSV, headers)

    async def _create_export(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        run = _completed_run(key, params)
        store = key.orbit
        existing = next((e for e in store.exports.values() if e.run is run), None)
        if existing is not None:
            return answer(200, self._export_body(request, key, existing))
        rows = min(run.result_count, store.export_row_cap)
        # The digest streams the whole CSV once: in a thread, so that other requests are served meanwhile.
        sha1, size = await asyncio.to_thread(run.people_of(store.seed).csv_digest, rows)
        existing = next((e for e in store.exports.values() if e.run is run), None)  # a concurrent POST
        export = existing or store.create_export(run, utcnow(), sha1, size, rows)
        return answer(200 if existing else 201, self._export_body(request, key, export))

    def _get_export(self, request: Request, key: KeyState, params: list[str]) -> AnyResponse:
        run = _run(key, params)
        export = key.orbit.exports.get(params[2])
        if export is None or export.run is not run:
            raise HttpError(404, f"Export {params[2]} not found for run {run.id}", code="NOT_FOUND")
        body = self._export_body(request, key, export)
        export.poll()  # counted after it was seen: the first ``processing_polls`` GETs see processing
        return answer(200, body)

    def _export_body(self, request: Request, key: KeyState, export: StoredExport) -> dict[str, Any]:
        ttl = key.orbit.download_url_ttl
        if not export.completed:
            return {
                "export": export.to_json(),
                "downloadUrl": None,
                "downloadUrlExpiresAt": None,
                "downloadUrlTtlSeconds": None,
            }
        # Whole seconds in the URL, rounded up: the URL lives at least ``ttl`` seconds.
        expires = datetime.fromtimestamp(math.ceil(utcnow().timestamp() + ttl), timezone.utc)
        return {
            "export": export.to_json(),
            "downloadUrl": self.state.signed_url(request, export, expires),
            "downloadUrlExpiresAt": iso(expires),
            "downloadUrlTtlSeconds": ttl,
        }


# -- the download host -------------------------------------------------------------------------


def sign(secret: bytes, export_id: str, expires: int) -> str:
    return hmac.new(secret, f"{export_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def download_response(request: Request, export: StoredExport, secret: bytes, seed: int) -> AnyResponse:
    """A download of a stored export from its signed URL (B2's error bodies when the URL is bad).

    Only completed exports have a URL, so an export found here is complete.
    """
    try:
        expires = int(request.query.get("expires", ""))
    except ValueError:
        return _b2_error(401, "bad_auth_token", "The signed URL lacks its expiry")
    token = request.query.get("Authorization", "")
    if not hmac.compare_digest(token, sign(secret, export.id, expires)):
        return _b2_error(401, "bad_auth_token", "Invalid authorization token")
    if datetime.now(timezone.utc).timestamp() >= expires:
        return _b2_error(401, "expired_auth_token", "Authorization token has expired")
    headers = [
        (b"x-bz-content-sha1", export.content_sha1.encode()),
        (b"x-bz-file-name", export.file_name.encode()),
    ]
    chunks = export.run.people_of(seed).csv_chunks(export.row_count)
    return StreamingResponse(200, chunks, CSV, headers, content_length=export.byte_size)


def _b2_error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"status": status, "code": code, "message": message})


# -- helpers -----------------------------------------------------------------------------------


def _invalid(message: str) -> HttpError:
    return HttpError(400, message, code="VALIDATION_ERROR")


def _body(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    if allow_empty and not request.body.strip():
        return {}
    try:
        payload = request.json()
    except ValueError:
        raise _invalid("Request body must be JSON") from None
    if not isinstance(payload, dict):
        raise _invalid("Request body must be a JSON object")
    return payload


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise _invalid("name is required: a string of 1 to 255 characters")
    return value


def _status(value: Any) -> str:
    if value not in AUDIENCE_STATUSES:
        raise _invalid(f"status must be one of {', '.join(AUDIENCE_STATUSES)}")
    return str(value)


def _config(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid("config is required: an object with topicIds")
    try:
        AudienceConfig.model_validate(value)
    except ValidationError as exc:
        raise _invalid(f"config: {validation_message(exc)}") from None
    return value


def _int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise _invalid(f"{name} must be an integer {bounds}")
    return int(text)


def _page(request: Request, rows: list[T], default: int, high: int) -> list[T]:
    """The rows of one page of a list: ``limit`` (``default`` when absent, at most ``high``) rows
    from ``offset`` (default 0). Nothing else tells the end: a page shorter than ``limit`` is the last."""
    limit = _int_param(request, "limit", default, 1, high)
    offset = _int_param(request, "offset", 0, 0, None)
    return rows[offset : offset + limit]


def _uuid(value: str, what: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise _invalid(f"{what} must be a UUID") from None
    return value


def _audience(key: KeyState, params: list[str]) -> Audience:
    audience = key.orbit.audiences.get(_uuid(params[0], "audienceId"))
    if audience is None:
        raise HttpError(404, f"Audience {params[0]} not found", code="NOT_FOUND")
    return audience


def _run(key: KeyState, params: list[str]) -> Run:
    audience = _audience(key, params)
    run = key.orbit.runs.get(_uuid(params[1], "runId"))
    if run is None or run.audience is not audience:
        raise HttpError(404, f"Run {params[1]} not found for audience {audience.id}", code="NOT_FOUND")
    return run


def _require_completed(run: Run) -> None:
    """409 with the run (status, errorCode, errorMessage) unless the run completed."""
    if run.status == "completed":
        return
    detail = f": {run.outcome.error_code}: {run.outcome.error_message}" if run.status in TERMINAL else ""
    raise HttpError(
        409,
        f"Run {run.id} is {run.status}{detail}",
        code="RUN_NOT_COMPLETED",
        extra={"data": {"run": run.summary()}},
    )


def _completed_run(key: KeyState, params: list[str]) -> Run:
    run = _run(key, params)
    run.observe(utcnow(), poll=True)
    _require_completed(run)
    return run


def claim_slot(key: KeyState) -> None:
    """403 SLOTS_FULL unless the account shows a free audience slot."""
    intent = key.account()["intent"]
    if intent is None or intent["audienceSlotsAvailable"] <= 0:
        slots = 0 if intent is None else intent["audienceSlots"]
        used = 0 if intent is None else intent["audienceSlotsUsed"]
        raise HttpError(
            403,
            f"All audience slots are in use ({used} of {slots}); pause another audience to free a slot",
            code="SLOTS_FULL",
        )
