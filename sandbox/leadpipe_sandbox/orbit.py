"""One organisation's Orbit intent audiences, their runs and stored exports (generation 3).

Runs progress lazily: a run's status is worked out when someone looks at it, from its schedule
(a number of polls, or seconds, per phase), so nothing runs in the background. People are never
stored: :class:`~leadpipe_sandbox.people.PeopleSet` computes them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from leadpipe_sandbox.people import PeopleSet
from leadpipe_sandbox.timeutil import iso

AUDIENCE_STATUSES = ("draft", "active", "paused")
RUN_STATUSES = ("queued", "running", "completed", "failed", "cancelled")
TERMINAL = frozenset({"completed", "failed", "cancelled"})
DEFAULT_PEOPLE = 1000
EXPORT_ROW_CAP = 300_000
DOWNLOAD_URL_TTL = 3600
#: Pre-filter pool per result row (the docs' example has far more candidates than results).
CANDIDATES_PER_RESULT = 7
IDEMPOTENCY_KEY_MAX = 120
CANCELLED_BY_USER = ("CANCELLED", "The run was cancelled while it was queued.")


def stable_uuid(*parts: object) -> str:
    """A UUID (version 4 layout) derived from ``parts``: the same sandbox seed gives the same ids."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class RunSchedule:
    """How a new run progresses: each phase lasts ``*_polls`` polls, or ``*_seconds`` when given."""

    queued_polls: int = 1
    running_polls: int = 1
    queued_seconds: float | None = None
    running_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "queuedPolls": self.queued_polls,
            "runningPolls": self.running_polls,
            "queuedSeconds": self.queued_seconds,
            "runningSeconds": self.running_seconds,
        }


@dataclass(frozen=True)
class RunOutcome:
    """How a run ends: ``completed``, or ``failed``/``cancelled`` with an error code and message."""

    status: str = "completed"
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class Audience:
    id: str
    organization_id: str
    name: str
    status: str
    config: dict[str, Any]
    people: int
    created_at: datetime
    updated_at: datetime
    last_refreshed_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "organizationId": self.organization_id,
            "name": self.name,
            "status": self.status,
            "accessType": "paid",
            "dailyRefreshEnabled": self.status == "active",
            "audienceSize": self.people,
            "config": self.config,
            "lastRefreshedAt": iso(self.last_refreshed_at) if self.last_refreshed_at else None,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


@dataclass
class Run:
    """One run; :meth:`observe` moves it along its schedule."""

    id: str
    audience: Audience
    run_type: str
    data_date: date
    created_at: datetime
    schedule: RunSchedule
    outcome: RunOutcome
    people: int
    sequence: int
    config: dict[str, Any]  # the audience's config when the run was created: its snapshot
    idempotency_key: str | None = None
    status: str = "queued"
    polls: int = 0
    phase_polls: int = 0  # polls before the current phase began
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    people_set: PeopleSet | None = field(default=None, repr=False)
    stats: dict[str, Any] | None = field(default=None, repr=False)

    def observe(self, now: datetime, *, poll: bool) -> str:
        """The status now; a poll (results, stats, exports, runs list) counts towards the schedule."""
        if self.status in TERMINAL:
            return self.status
        if poll:
            self.polls += 1
        if self.status == "queued":
            seconds = self.schedule.queued_seconds
            if seconds is None:
                if self.polls <= self.schedule.queued_polls:
                    return self.status
                at = now
            else:
                at = self.created_at + timedelta(seconds=seconds)
                if now < at:
                    return self.status
            # This poll is the first one of the next phase.
            self.phase_polls = self.polls - (1 if poll else 0)
            if self.outcome.status == "cancelled":
                return self._finish(at)
            self.status, self.started_at, self.updated_at = "running", at, at
        if self.status == "running":
            assert self.started_at is not None
            seconds = self.schedule.running_seconds
            if seconds is not None:
                due = self.started_at + timedelta(seconds=seconds)
                if now >= due:
                    return self._finish(due)
            elif self.polls > self.phase_polls + self.schedule.running_polls:
                return self._finish(now)
        return self.status

    def _finish(self, at: datetime) -> str:
        self.status = self.outcome.status
        self.finished_at = self.updated_at = at
        if self.status == "completed":
            self.audience.last_refreshed_at = max(at, self.audience.last_refreshed_at or at)
        return self.status

    def force(self, status: str, now: datetime) -> None:
        """Put a new run straight into ``status`` (a terminal one ends with the run's outcome)."""
        if status not in ("queued", "cancelled"):
            self.status, self.started_at, self.updated_at, self.phase_polls = "running", now, now, self.polls
        if status in TERMINAL:
            self._finish(now)

    def cancel(self, now: datetime) -> None:
        self.outcome = RunOutcome("cancelled", *CANCELLED_BY_USER)
        self._finish(now)

    @property
    def result_count(self) -> int:
        return self.people if self.status == "completed" else 0

    def people_of(self, seed: int) -> PeopleSet:
        if self.people_set is None:
            self.people_set = PeopleSet.of_run(seed, self.id, self.people, self.config)
        return self.people_set

    def summary(self, *, completed_at: bool = False) -> dict[str, Any]:
        """The run subset the results endpoint embeds (``data.run``)."""
        data: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "runType": self.run_type,
            "candidateCount": self.result_count * CANDIDATES_PER_RESULT,
            "resultCount": self.result_count,
        }
        if completed_at:
            data["completedAt"] = self._completed_at()
        if self.status in ("failed", "cancelled"):
            data["errorCode"] = self.outcome.error_code
            data["errorMessage"] = self.outcome.error_message
        return data

    def _completed_at(self) -> str | None:
        return iso(self.finished_at) if self.finished_at and self.status == "completed" else None

    def to_json(self) -> dict[str, Any]:
        """The full ``IntentAudienceRun``."""
        done = self.status == "completed"
        return {
            "id": self.id,
            "audienceId": self.audience.id,
            "organizationId": self.audience.organization_id,
            "status": self.status,
            "runType": self.run_type,
            "configHash": config_hash(self.config),
            "dataDate": self.data_date.isoformat(),
            "resultKey": f"intent-audiences/{self.audience.id}/runs/{self.id}" if done else None,
            "candidateCount": self.result_count * CANDIDATES_PER_RESULT,
            "resultCount": self.result_count,
            "attempts": 0 if self.started_at is None else 1,
            "nextAttemptAt": None,
            "idempotencyKey": self.idempotency_key,
            "errorCode": self.outcome.error_code if self.status in ("failed", "cancelled") else None,
            "errorMessage": self.outcome.error_message if self.status in ("failed", "cancelled") else None,
            "startedAt": iso(self.started_at) if self.started_at else None,
            "completedAt": self._completed_at(),
            "cancelledAt": iso(self.finished_at) if self.finished_at and self.status == "cancelled" else None,
            "readyEmailSentAt": None,
            "readyEmailExportId": None,
            "readyEmailError": None,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at or self.created_at),
        }


@dataclass
class StoredExport:
    """A stored CSV export of a completed run; its bytes are regenerated whenever it is downloaded.

    It shows ``processing`` (no size, digest or URL yet) for its first ``processing_polls`` GETs.
    """

    id: str
    run: Run
    row_count: int
    byte_size: int
    content_sha1: str
    created_at: datetime
    requested_by: str
    processing_polls: int = 0

    @property
    def completed(self) -> bool:
        return self.processing_polls <= 0

    def poll(self) -> None:
        self.processing_polls -= 1

    @property
    def file_name(self) -> str:
        return f"intent-audiences/{self.run.audience.id}/runs/{self.run.id}/{self.id}.csv"

    def to_json(self) -> dict[str, Any]:
        audience = self.run.audience
        done = self.completed
        return {
            "id": self.id,
            "organizationId": audience.organization_id,
            "audienceId": audience.id,
            "runId": self.run.id,
            "exportType": "csv",
            "status": "completed" if done else "processing",
            "storageProvider": "b2",
            "contentType": "text/csv",
            "byteSize": self.byte_size if done else None,
            "rowCount": self.row_count if done else None,
            "bucketName": "leadpipe-exports",
            "fileId": stable_uuid("file", self.id) if done else None,
            "fileName": self.file_name,
            "contentSha1": self.content_sha1 if done else None,
            "errorCode": None,
            "errorMessage": None,
            "requestedBy": self.requested_by,
            "completedAt": iso(self.created_at) if done else None,
            "expiresAt": iso(self.created_at + timedelta(days=7)),
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.created_at),
        }


class OrbitStore:
    """Audiences, runs and exports of one API key; ids derive from the seed and the key."""

    def __init__(self, seed: int, api_key: str, *, people: int = DEFAULT_PEOPLE) -> None:
        self.seed = seed
        self._namespace = f"{seed}:{api_key}"
        self.organization_id = stable_uuid(self._namespace, "organization")
        self.default_people = people
        self.audiences: dict[str, Audience] = {}
        self.runs: dict[str, Run] = {}
        self.exports: dict[str, StoredExport] = {}
        self.idempotency: dict[tuple[str, str], str] = {}
        self.schedule = RunSchedule()
        self.next_outcomes: dict[str, RunOutcome] = {}
        self.export_row_cap = EXPORT_ROW_CAP
        self.download_url_ttl = DOWNLOAD_URL_TTL
        self.export_processing_polls = 0
        self.export_csv_short_by = 0  # a misbehaving server: export.csv ends this many rows early
        self.runs_created: dict[str, int] = {}  # by audience, POSTs only (replays not counted)
        self._counter = 0

    def _next_id(self, kind: str) -> str:
        self._counter += 1
        return stable_uuid(self._namespace, kind, self._counter)

    # -- audiences -----------------------------------------------------------------------------

    @property
    def active_count(self) -> int:
        return sum(1 for audience in self.audiences.values() if audience.status == "active")

    def create_audience(
        self, name: str, status: str, config: dict[str, Any], now: datetime, *, people: int | None = None
    ) -> Audience:
        audience = Audience(
            id=self._next_id("audience"),
            organization_id=self.organization_id,
            name=name,
            status=status,
            config=config,
            people=self.default_people if people is None else people,
            created_at=now,
            updated_at=now,
        )
        self.audiences[audience.id] = audience
        return audience

    def delete_audience(self, audience: Audience) -> None:
        del self.audiences[audience.id]
        for run_id in [run.id for run in self.runs.values() if run.audience is audience]:
            del self.runs[run_id]
        self.exports = {k: v for k, v in self.exports.items() if v.run.audience is not audience}
        self.idempotency = {k: v for k, v in self.idempotency.items() if k[0] != audience.id}
        self.next_outcomes.pop(audience.id, None)

    def match_active(self, wanted: int, now: datetime) -> None:
        """Make exactly ``wanted`` audiences active: seed new ones, or pause the newest active ones."""
        active = [a for a in self.audiences.values() if a.status == "active"]
        for audience in sorted(active, key=lambda a: a.created_at)[wanted:][::-1]:
            audience.status, audience.updated_at = "paused", now
        for n in range(len(active), wanted):
            self.create_audience(f"Seeded audience {n + 1}", "active", {"topicIds": [101, 102]}, now)

    # -- runs ----------------------------------------------------------------------------------

    def create_run(
        self,
        audience: Audience,
        now: datetime,
        *,
        run_type: str = "manual",
        data_date: date | None = None,
        idempotency_key: str | None = None,
        outcome: RunOutcome | None = None,
    ) -> Run:
        """A new run on the current schedule; without ``outcome``, a pending ``fail_next_run`` one is used."""
        outcome = outcome or self.next_outcomes.pop(audience.id, None) or RunOutcome()
        self._counter += 1
        run = Run(
            id=stable_uuid(self._namespace, "run", self._counter),
            audience=audience,
            run_type=run_type,
            data_date=data_date or (now.date() - timedelta(days=1)),
            created_at=now,
            schedule=self.schedule,
            outcome=outcome,
            people=audience.people,
            sequence=self._counter,
            config=copy.deepcopy(audience.config),
            idempotency_key=idempotency_key,
        )
        self.runs[run.id] = run
        if idempotency_key is not None:
            self.idempotency[(audience.id, idempotency_key)] = run.id
        return run

    def runs_of(self, audience: Audience) -> list[Run]:
        """The audience's runs, newest first."""
        return sorted(
            (run for run in self.runs.values() if run.audience is audience),
            key=lambda run: (run.created_at, run.sequence),
            reverse=True,
        )

    def create_export(self, run: Run, now: datetime, sha1: str, size: int, rows: int) -> StoredExport:
        export = StoredExport(
            id=self._next_id("export"),
            run=run,
            row_count=rows,
            byte_size=size,
            content_sha1=sha1,
            created_at=now,
            requested_by=stable_uuid(self._namespace, "user"),
            processing_polls=self.export_processing_polls,
        )
        self.exports[export.id] = export
        return export

    def describe(self, now: datetime) -> dict[str, Any]:
        """The control API's view: audiences with their runs (statuses as they are now, not polled)."""
        return {
            "audiences": [
                {
                    **audience.to_json(),
                    "people": audience.people,
                    "runsCreated": self.runs_created.get(audience.id, 0),
                    "runs": [run.to_json() for run in self._observed(self.runs_of(audience), now)],
                }
                for audience in self.audiences.values()
            ],
            "schedule": self.schedule.to_json(),
            "exportRowCap": self.export_row_cap,
            "downloadUrlTtlSeconds": self.download_url_ttl,
            "exportProcessingPolls": self.export_processing_polls,
            "exportCsvShortBy": self.export_csv_short_by,
            "exports": [export.to_json() for export in self.exports.values()],
        }

    @staticmethod
    def _observed(runs: list[Run], now: datetime) -> list[Run]:
        for run in runs:
            run.observe(now, poll=False)
        return runs
