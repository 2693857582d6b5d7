"""The control API under ``/_sandbox/``: configure keys, queue faults, read statistics, reset.

All bodies are JSON (camelCase), all answers ``{"data": ...}`` or the API's error envelope. See
``docs/sandbox.md`` for the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from leadpipe_sandbox.asgi import HttpError, Request, Response, json_response
from leadpipe_sandbox.faults import Fault
from leadpipe_sandbox.orbit import RunOutcome, RunSchedule
from leadpipe_sandbox.orbit_api import claim_slot
from leadpipe_sandbox.pixels import validation_message
from leadpipe_sandbox.scenarios import KeyConfig, builtin_configs, deep_merge
from leadpipe_sandbox.state import KeyState, SandboxState
from leadpipe_sandbox.timeutil import utcnow

CONTROL_PREFIX = "_sandbox"
_FAULTS = TypeAdapter(list[Fault])


class _Amount(BaseModel):
    amount: int = Field(default=1, ge=0)


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _NewAudience(_Body):
    name: str = Field(default="Sandbox audience", min_length=1, max_length=255)
    status: Literal["draft", "active", "paused"] = "active"
    config: dict[str, Any] = Field(default_factory=lambda: {"topicIds": [101, 102], "minScore": 70})
    people: int | None = Field(default=None, ge=0, le=10**8)


class _AudienceChange(_Body):
    people: int = Field(ge=0, le=10**8)


class _Schedule(_Body):
    queued_polls: int = Field(default=1, ge=0)
    running_polls: int = Field(default=1, ge=0)
    queued_seconds: float | None = Field(default=None, ge=0)
    running_seconds: float | None = Field(default=None, ge=0)


class _DailyRun(_Body):
    data_date: date | None = None
    status: Literal["queued", "running", "completed", "failed", "cancelled"] = "completed"
    error_code: str = "MATERIALIZATION_FAILED"
    error_message: str = "Materialization failed in the sandbox"


class _Failure(_Body):
    status: Literal["failed", "cancelled"] = "failed"
    error_code: str = "MATERIALIZATION_FAILED"
    error_message: str = "Materialization failed in the sandbox"


class _ExportSettings(_Body):
    row_cap: int | None = Field(default=None, ge=0)
    download_url_ttl_seconds: int | None = Field(default=None, ge=1)
    processing_polls: int | None = Field(default=None, ge=0)
    csv_short_by: int | None = Field(default=None, ge=0)


class ControlApi:
    """Handlers of the control API; every one is synchronous (state changes are atomic)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._routes: dict[tuple[str, str], Callable[[Request, list[str]], Any]] = {
            ("GET", "health"): lambda request, rest: {"ok": True, "keys": len(self.state.keys)},
            ("GET", "scenarios"): self._scenarios,
            ("GET", "stats"): lambda request, rest: self.state.stats_json(),
            ("POST", "reset"): self._reset,
            ("GET", "keys"): self._keys,
            ("GET", "keys/*"): lambda request, rest: self._key(rest[0]).describe(),
            ("PUT", "keys/*"): self._put_key,
            ("PATCH", "keys/*"): self._patch_key,
            ("DELETE", "keys/*"): self._delete_key,
            ("POST", "keys/*/faults"): self._queue_faults,
            ("DELETE", "keys/*/faults"): self._clear_faults,
            ("POST", "keys/*/credits/consume"): self._consume_credits,
            ("POST", "keys/*/credits/reset"): self._reset_credits,
            ("GET", "downloads"): lambda request, rest: self.state.downloads,
            ("GET", "keys/*/orbit"): lambda request, rest: self._key(rest[0]).orbit.describe(utcnow()),
            ("POST", "keys/*/audiences"): self._create_audience,
            ("PATCH", "keys/*/audiences/*"): self._change_audience,
            ("POST", "keys/*/audiences/*/daily-runs"): self._add_daily_run,
            ("POST", "keys/*/audiences/*/fail-next-run"): self._fail_next_run,
            ("PUT", "keys/*/orbit/schedule"): self._set_schedule,
            ("PUT", "keys/*/orbit/export"): self._set_export,
        }

    def handle(self, request: Request) -> Response:
        """Answer one control request (``request.segments[0]`` is the prefix)."""
        segments = request.segments[1:]
        # "keys/<key>/audiences/<id>/..." -> pattern "keys/*/audiences/*/...", key and id passed on.
        wild = {1} if segments[:1] == ["keys"] else set()
        if segments[:1] == ["keys"] and segments[2:3] == ["audiences"]:
            wild.add(3)
        pattern = "/".join("*" if i in wild else s for i, s in enumerate(segments))
        handler = self._routes.get((request.method, pattern))
        if handler is None:
            known = any(path == pattern for _, path in self._routes)
            return HttpError(405 if known else 404, "Method not allowed" if known else "Not found").response()
        try:
            payload = handler(request, segments[1:])
        except HttpError as exc:
            return exc.response()
        except ValidationError as exc:
            return HttpError(400, validation_message(exc)).response()
        return json_response(200, {"data": payload})

    def _key(self, api_key: str) -> KeyState:
        key = self.state.keys.get(api_key)
        if key is None:
            raise HttpError(404, f"Unknown sandbox key {api_key!r}")
        return key

    def _scenarios(self, request: Request, rest: list[str]) -> list[dict[str, Any]]:
        return [
            {"apiKey": key, "scenario": key.removeprefix("sk_test_"), "description": config["description"]}
            for key, config in builtin_configs(utcnow()).items()
        ]

    def _reset(self, request: Request, rest: list[str]) -> dict[str, Any]:
        self.state.reset()
        return {"reset": True, "keys": sorted(self.state.keys)}

    def _keys(self, request: Request, rest: list[str]) -> list[dict[str, Any]]:
        return [key.describe() for key in self.state.keys.values()]

    def _put_key(self, request: Request, rest: list[str]) -> dict[str, Any]:
        body = _object(request)
        scenario = str(body.pop("scenario", "sandbox"))
        configs = builtin_configs(utcnow())
        base = configs.get(scenario) or configs.get(f"sk_test_{scenario}")
        if base is None:
            names = ", ".join(key.removeprefix("sk_test_") for key in configs)
            raise HttpError(400, f"Unknown scenario {scenario!r}; choose one of {names}")
        return self.state.put_key(rest[0], KeyConfig.model_validate(deep_merge(base, body))).describe()

    def _patch_key(self, request: Request, rest: list[str]) -> dict[str, Any]:
        key = self._key(rest[0])
        key.patch(_object(request), utcnow())
        return key.describe()

    def _delete_key(self, request: Request, rest: list[str]) -> dict[str, Any]:
        self._key(rest[0])
        del self.state.keys[rest[0]]
        return {"deleted": rest[0]}

    def _queue_faults(self, request: Request, rest: list[str]) -> dict[str, Any]:
        key = self._key(rest[0])
        body = _json(request)
        if isinstance(body, dict):  # {"faults": [...]} or a single fault
            body = body.get("faults", [body])
        key.faults.queue(_FAULTS.validate_python(body))
        return {"pendingFaults": [fault.to_json() for fault in key.faults.pending()]}

    def _clear_faults(self, request: Request, rest: list[str]) -> dict[str, Any]:
        key = self._key(rest[0])
        key.faults.clear()
        return {"pendingFaults": []}

    def _consume_credits(self, request: Request, rest: list[str]) -> dict[str, Any]:
        key = self._key(rest[0])
        amount = _Amount.model_validate(_json(request) or {}).amount
        key.set_credits_used(key.config.credits.used + amount)
        return key.describe()

    def _reset_credits(self, request: Request, rest: list[str]) -> dict[str, Any]:
        key = self._key(rest[0])
        key.set_credits_used(0)
        return key.describe()

    # -- Orbit ---------------------------------------------------------------------------------

    def _audience(self, rest: list[str]) -> tuple[KeyState, Any]:
        key = self._key(rest[0])
        audience = key.orbit.audiences.get(rest[2])
        if audience is None:
            raise HttpError(404, f"Unknown audience {rest[2]!r}")
        return key, audience

    def _create_audience(self, request: Request, rest: list[str]) -> dict[str, Any]:
        key = self._key(rest[0])
        body = _NewAudience.model_validate(_object(request))
        if body.status == "active":
            claim_slot(key)
        audience = key.orbit.create_audience(
            body.name, body.status, body.config, utcnow(), people=body.people
        )
        key.sync_slots()
        return audience.to_json()

    def _change_audience(self, request: Request, rest: list[str]) -> dict[str, Any]:
        _, audience = self._audience(rest)
        audience.people = _AudienceChange.model_validate(_object(request)).people
        return audience.to_json()

    def _add_daily_run(self, request: Request, rest: list[str]) -> dict[str, Any]:
        key, audience = self._audience(rest)
        body = _DailyRun.model_validate(_object(request))
        failing = body.status in ("failed", "cancelled")
        outcome = RunOutcome(body.status, body.error_code, body.error_message) if failing else None
        now = utcnow()
        run = key.orbit.create_run(audience, now, run_type="daily", data_date=body.data_date, outcome=outcome)
        run.force(body.status, now)
        return run.to_json()

    def _fail_next_run(self, request: Request, rest: list[str]) -> dict[str, Any]:
        key, audience = self._audience(rest)
        body = _Failure.model_validate(_object(request))
        key.orbit.next_outcomes[audience.id] = RunOutcome(body.status, body.error_code, body.error_message)
        return {"audienceId": audience.id, "nextRun": body.model_dump(mode="json", by_alias=True)}

    def _set_schedule(self, request: Request, rest: list[str]) -> dict[str, Any]:
        key = self._key(rest[0])
        body = _Schedule.model_validate(_object(request))
        key.orbit.schedule = RunSchedule(**body.model_dump())
        return key.orbit.schedule.to_json()

    def _set_export(self, request: Request, rest: list[str]) -> dict[str, Any]:
        key = self._key(rest[0])
        body = _ExportSettings.model_validate(_object(request))
        if body.row_cap is not None:
            key.orbit.export_row_cap = body.row_cap
        if body.download_url_ttl_seconds is not None:
            key.orbit.download_url_ttl = body.download_url_ttl_seconds
        if body.processing_polls is not None:
            key.orbit.export_processing_polls = body.processing_polls
        if body.csv_short_by is not None:
            key.orbit.export_csv_short_by = body.csv_short_by
        return {
            "rowCap": key.orbit.export_row_cap,
            "downloadUrlTtlSeconds": key.orbit.download_url_ttl,
            "processingPolls": key.orbit.export_processing_polls,
            "csvShortBy": key.orbit.export_csv_short_by,
        }


def _json(request: Request) -> Any:
    try:
        return request.json()
    except ValueError:
        raise HttpError(400, "Request body must be JSON") from None


def _object(request: Request) -> dict[str, Any]:
    body = _json(request)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise HttpError(400, "Request body must be a JSON object")
    return body
