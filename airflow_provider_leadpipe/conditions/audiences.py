"""When is an Orbit audience run ready? The one place that decides, for operator, sensor and trigger.

:class:`AudienceRunCondition` is plain data (strings), so the trigger can serialize it and the
operator and sensor can evaluate the very same object. It waits for one of two things:

- ``audience_run_id`` given: that run is ``completed``. A ``failed`` or ``cancelled`` run raises
  :class:`~airflow_provider_leadpipe.exceptions.LeadpipeAudienceRunError` (waiting cannot fix it).
- no run id: the audience has a ``completed`` run (any type but ``preview``) whose ``dataDate`` is on
  or after ``min_data_date`` (any completed run when that is None): the daily runs Leadpipe makes
  by itself count. Failed runs do not fail the wait here: a later run may still succeed.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_leadpipe.exceptions import LeadpipeAudienceRunError, LeadpipeConfigError
from airflow_provider_leadpipe.models import AudienceRun
from airflow_provider_leadpipe.utils import validation

#: Runs a condition without a run id looks at first: the newest 100 (one ``GET .../runs?limit=100``;
#: the API lists runs newest first). Only when they are a full window without a matching run is the
#: whole list read (page by page, or a typed error), so "none yet" is never said of a partial list.
RECENT_RUNS = 100

#: A read a condition needs: the hook method's name (its async twin is ``a`` + name), arguments.
Read = tuple[str, tuple[Any, ...], dict[str, Any]]

#: Runs that are snapshots of the audience's people (``preview`` runs are samples, not snapshots).
SNAPSHOT_RUN_TYPES = ("manual", "daily")


def run_failed(run: AudienceRun, audience_id: str | None = None) -> LeadpipeAudienceRunError:
    """The error for a failed or cancelled run, with its ``errorCode`` and ``errorMessage``."""
    audience = f" of audience {audience_id or run.audience_id}" if (audience_id or run.audience_id) else ""
    status = run.status.value
    return LeadpipeAudienceRunError(
        f"Leadpipe audience run {run.id}{audience} ended {status}: "
        f"errorCode={run.error_code or 'none'}, errorMessage={run.error_message or 'none'}",
        run_id=run.id,
        status=status,
        error_code=run.error_code,
        error_message=run.error_message,
    )


@dataclass(frozen=True)
class AudienceRunCondition:
    """What to wait for: one run's completion, or a completed run with a recent enough ``dataDate``.

    :param audience_id: the audience (a UUID).
    :param audience_run_id: the run to wait for (a UUID); None to wait for any completed run.
    :param min_data_date: without a run id, the earliest acceptable ``dataDate`` (``YYYY-MM-DD``).
    """

    audience_id: str
    audience_run_id: str | None = None
    min_data_date: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "audience_id", validation.uuid_id(self.audience_id, "audience_id"))
        run_id = validation.optional_uuid_id(self.audience_run_id, "audience_run_id")
        object.__setattr__(self, "audience_run_id", run_id)
        min_date = validation.data_date(self.min_data_date, "min_data_date")
        object.__setattr__(self, "min_data_date", min_date)
        if run_id is not None and min_date is not None:
            raise LeadpipeConfigError(
                "give audience_run_id (wait for that run) or min_data_date (wait for a completed run "
                "of that data date or later), not both"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AudienceRunCondition:
        unknown = set(data) - {"audience_id", "audience_run_id", "min_data_date"}
        if unknown:
            raise LeadpipeConfigError(f"unknown audience run condition field(s): {sorted(unknown)}")
        return cls(**data)

    def describe(self) -> str:
        if self.audience_run_id is not None:
            return f"run {self.audience_run_id} of audience {self.audience_id}"
        since = f" with dataDate >= {self.min_data_date}" if self.min_data_date else ""
        return f"a completed run of audience {self.audience_id}{since}"

    # -- evaluation: no I/O; the reads it needs are :meth:`reads` --------------------------------

    def evaluate(self, answer: AudienceRun | Sequence[AudienceRun]) -> tuple[AudienceRun | None, str]:
        """``(run, message)`` when the condition holds, ``(None, why not yet)`` otherwise.

        :param answer: the run (with a run id), or the audience's runs (newest first).
        :raises LeadpipeAudienceRunError: the run failed or was cancelled.
        """
        if isinstance(answer, AudienceRun):
            return self._evaluate_run(answer)
        candidates = [
            run
            for run in answer
            if run.status.is_success
            and (run.run_type is None or run.run_type in SNAPSHOT_RUN_TYPES)
            and (
                self.min_data_date is None
                or (run.data_date is not None and run.data_date >= self.min_data_date)
            )
        ]
        if not candidates:
            return None, f"no {self.describe()} yet"
        best = max(candidates, key=lambda run: (run.data_date or "", str(run.completed_at or "")))
        return self._evaluate_run(best)

    def _evaluate_run(self, run: AudienceRun) -> tuple[AudienceRun | None, str]:
        if run.status.is_success:
            return (
                run,
                f"audience run {run.id} completed: {run.result_count} people, dataDate {run.data_date}",
            )
        if run.status.is_terminal:
            raise run_failed(run, self.audience_id)
        return None, f"audience run {run.id} is {run.status.value}"

    def reads(self) -> Generator[Read, Any, tuple[AudienceRun | None, str]]:
        """The hook reads one check needs, as a plan: yields each :data:`Read`, is sent its answer,
        returns :meth:`evaluate`'s verdict (driven by ``triggers.base.check``/``acheck``)."""
        if self.audience_run_id is not None:
            return self.evaluate((yield ("get_audience_run", (self.audience_id, self.audience_run_id), {})))
        runs = yield ("list_audience_runs", (self.audience_id,), {"limit": RECENT_RUNS})
        found = self.evaluate(runs)
        if found[0] is None and len(runs) >= RECENT_RUNS:
            found = self.evaluate((yield ("list_audience_runs", (self.audience_id,), {})))
        return found
