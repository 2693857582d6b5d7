"""Orbit intent audiences: keep an audience in shape and run it (its people: ``audience_results``).

- :class:`LeadpipeUpsertAudienceOperator`: create or update an audience found by its exact name,
  its config validated (and optionally size-gated) first.
- :class:`LeadpipeRunAudienceOperator`: queue a manual run (idempotently) and wait for it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_leadpipe.conditions.account import unavailable
from airflow_provider_leadpipe.conditions.audiences import AudienceRunCondition
from airflow_provider_leadpipe.exceptions import (
    TRANSIENT_ERRORS,
    LeadpipeAudienceRunTimeoutError,
    LeadpipeAudienceSizeError,
    LeadpipeConfigError,
    LeadpipeConflictError,
)
from airflow_provider_leadpipe.hooks.audience_answers import config_error
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import Audience, AudienceRun
from airflow_provider_leadpipe.models.audiences import audience_config, audience_name, audience_status
from airflow_provider_leadpipe.operators.base import LeadpipeBaseOperator
from airflow_provider_leadpipe.triggers.audiences import RUN, LeadpipeAudienceRunTrigger
from airflow_provider_leadpipe.triggers.events import result_of
from airflow_provider_leadpipe.utils import compat, validation
from airflow_provider_leadpipe.utils.tasks import Literal, deferral_timeout

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: XCom key under which the run operator pushes the run id before it waits.
RUN_ID_XCOM_KEY = "audience_run_id"
#: XCom key of ``{"id", "createdAt"}`` when the run operator got back an existing run (not pushed
#: for a new run: reads as None).
REUSED_XCOM_KEY = "audience_run_reused"
#: Rows per results page: the largest ``limit`` the contract's examples use.
PAGE_SIZE = 100


class _AudienceOperator(LeadpipeBaseOperator):
    """What the audience operators share: their colour in the UI."""

    ui_color = "#efe6fb"


# -- upsert ------------------------------------------------------------------------------------


class LeadpipeUpsertAudienceOperator(_AudienceOperator):
    """Make sure an Orbit audience with this exact name exists with this config (and status),
    checking the config with Orbit before anything is created or changed.

    1. Topic names in ``topic_names`` are resolved to ids (an exact, case-insensitive match) and
       added to the config's ``topicIds``; an unknown or ambiguous name fails with
       ``LeadpipeConfigError`` listing the candidates.
    2. The config is validated (``POST /v1/intent/audiences/validate``); an invalid one fails with
       ``LeadpipeConfigError`` naming each bad key or value as Orbit reports it, and nothing is
       created or changed.
    3. With ``min_audience_size`` / ``max_audience_size``, an audience that would be active after
       the upsert is previewed first; a ``totalCount`` outside the bounds fails with
       ``LeadpipeAudienceSizeError`` and nothing is created or changed. The preview's sample
       (people, masked) is never logged nor pushed.
    4. The audience is found by its exact ``name``: created when there is none; when there is one,
       its current config is validated too and, if the two ``configHash`` agree and the status is
       already the one asked, nothing is sent. Two audiences of that name fail with
       ``LeadpipeConflictError`` naming both ids; ``status="active"`` without a free audience
       slot fails at once with ``LeadpipeSlotsFullError``.

    Returns the audience with the API's key names (``id``, ``name``, ``status``, ...) plus
    ``"upsert"`` (``"created"``, ``"updated"`` or ``"unchanged"``) and the config's ``configHash``.

    :param name: the audience's name (templated).
    :param config: the Orbit config, a dict passed through as it is (templated), e.g.
        ``{"topicIds": [101, 202], "minScore": 70, "filters": {...}}``.
    :param status: ``"draft"``, ``"active"`` or ``"paused"`` (templated); None leaves it as it is
        (a new audience gets Orbit's default).
    :param topic_names: topic names to resolve and add to ``topicIds`` (templated).
    :param min_audience_size: refuse to leave the audience active when the preview counts fewer.
    :param max_audience_size: refuse to leave the audience active when the preview counts more.
    :param leadpipe_conn_id: the Leadpipe connection (templated).
    :param hook_params: per-task hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    """

    template_fields: Sequence[str] = ("name", "config", "status", "topic_names", "leadpipe_conn_id")
    literals = (
        Literal(("name",), audience_name),
        Literal(("config",), audience_config),
        Literal(("status",), audience_status),
        Literal(("topic_names",), validation.string_list, ("topic_names",)),
    )

    def __init__(
        self,
        *,
        name: str,
        config: dict[str, Any],
        status: str | None = None,
        topic_names: list[str] | None = None,
        min_audience_size: int | None = None,
        max_audience_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.config = config
        self.status = status
        self.topic_names = topic_names
        self.min_audience_size = self.checked(_size, min_audience_size, "min_audience_size")
        self.max_audience_size = self.checked(_size, max_audience_size, "max_audience_size")
        low, high = self.min_audience_size, self.max_audience_size
        if low is not None and high is not None and low > high:
            raise LeadpipeConfigError(
                f"{type(self).__name__} '{self.task_id}': min_audience_size "
                f"({self.min_audience_size}) is larger than max_audience_size ({self.max_audience_size})"
            )
        self.check_literals()

    def execute(self, context: Context) -> dict[str, Any]:
        name = self.checked(audience_name, self.name)
        config = self.checked(audience_config, self.config)
        status = self.checked(audience_status, self.status)
        names = self.checked(validation.string_list, self.topic_names, "topic_names")
        with self.hook:
            if names:
                ids = self.hook.resolve_topic_ids(names)
                known: list[Any] = config["topicIds"] if isinstance(config.get("topicIds"), list) else []
                config = {**config, "topicIds": list(dict.fromkeys([*known, *ids]))}
                self.log.info("Topics %s resolved to ids %s", list(names), ids)
            check = self.hook.validate_audience_config(config)
            if not check.valid:
                raise config_error(check, f"config of audience {name!r}")
            matches = [audience for audience in self.hook.list_audiences() if audience.name == name]
            if len(matches) > 1:
                raise LeadpipeConflictError(
                    f"{len(matches)} Leadpipe audiences are named {name!r} "
                    f"({', '.join(a.id for a in matches)}); rename or delete all but one"
                )
            current = matches[0] if matches else None
            if status == "active" or (status is None and current is not None and current.is_active):
                self._gate(name, config)
            if current is None:
                audience = self.hook.create_audience(name, config, status=status)
                outcome = "created"
            else:
                same = self._same_config(current, check.config_hash)
                changes: dict[str, Any] = {} if same else {"config": config}
                if status is not None and status != current.status:
                    changes["status"] = status
                if changes:
                    audience = self.hook.update_audience(current.id, **changes)
                    outcome = "updated"
                else:
                    audience, outcome = current, "unchanged"
        self.log.info(
            "Audience %s (%r) %s: status %s, configHash %s",
            audience.id,
            audience.name,
            outcome,
            audience.status,
            check.config_hash,
        )
        return {**audience.to_dict(), "upsert": outcome, "configHash": check.config_hash}

    def _same_config(self, current: Audience, config_hash: str | None) -> bool:
        """Whether the audience's current config has this ``configHash`` (False when unknown)."""
        config = current.config
        if config is None:  # a list row may leave the config out
            config = self.hook.get_audience(current.id).config
        if config is None or config_hash is None:
            return False
        return self.hook.validate_audience_config(config).config_hash == config_hash

    def _gate(self, name: str, config: dict[str, Any]) -> None:
        """Preview the config when a size bound is set; refuse a size outside the bounds."""
        low, high = self.min_audience_size, self.max_audience_size
        if low is None and high is None:
            return
        total = self.hook.preview_audience(config).total_count  # the sample is never looked at
        self.log.info("Preview of audience %r: %d people (data date as of the preview)", name, total)
        if (low is not None and total < low) or (high is not None and total > high):
            bounds = f"{low if low is not None else 0} to {high if high is not None else 'any'}"
            raise LeadpipeAudienceSizeError(
                f"Leadpipe audience {name!r} would match {total} people today, outside "
                f"{bounds} (min_audience_size/max_audience_size): not made active; nothing was changed",
                total_count=total,
                minimum=low,
                maximum=high,
            )


def _size(value: Any, name: str) -> int | None:
    return None if value is None else validation.whole_number(value, name, 0)


# -- run ---------------------------------------------------------------------------------------


def task_idempotency_key(context: Context, key: str | None = None, *, new_run_on_retry: bool = False) -> str:
    """The ``Idempotency-Key`` a run operator sends: ``key``, or one made from the task instance.

    The default is built from dag_id, run_id, task_id and map_index, the same for every try of a
    task instance, so a retry after a crash (the worker killed between the POST and the XCom push,
    or a response lost on the way) gets the run the first try created, never a second one. A clear
    is a request to run again: a cleared task instance adds ``:clear<n>`` (``n``, the first try
    after the clear, as Airflow counts it: ``max_tries - retries + 1``), and the DAG run's start
    (``:dr<start>``) tells a DAG run re-created under the same id from the one before. With
    ``new_run_on_retry`` the try number is added: each try starts a fresh run. The hook hashes keys
    longer than the API's 120 characters.
    """
    ti = context["ti"]
    if key is None:
        parts = ["airflow", ti.dag_id, ti.run_id, ti.task_id, str(getattr(ti, "map_index", -1))]
        started = getattr(context.get("dag_run"), "start_date", None)
        if started is not None:
            parts.append(f"dr{started.isoformat()}")
        first_try = _first_try_since_clear(ti)
        if first_try > 1:
            parts.append(f"clear{first_try}")
        key = ":".join(parts)
    if new_run_on_retry:
        key = f"{key}:try{ti.try_number}"
    return key


def _first_try_since_clear(ti: Any) -> int:
    """The first try number since the task instance was last cleared (1 if never): Airflow sets
    ``max_tries = try_number + retries`` on a clear, and retries leave it alone."""
    max_tries = getattr(ti, "max_tries", None)
    retries = getattr(getattr(ti, "task", None), "retries", None)
    if not isinstance(max_tries, int) or not isinstance(retries, int):
        return 1
    return max(max_tries - retries + 1, 1)


class LeadpipeRunAudienceOperator(_AudienceOperator):
    """Queue a manual run of an Orbit audience and (by default) wait until it completes.

    The run is queued with an ``Idempotency-Key`` (by default from dag_id, run_id, task_id and
    map_index: see :func:`task_idempotency_key`), so a retried task gets the same run instead
    of a second one; ``new_run_on_retry=True`` adds the try number so a retry after a failed run
    starts afresh; a cleared task instance, or a DAG run re-created under the same id, starts a new
    run. The run id goes to XCom key ``audience_run_id`` before any waiting; when the API returned
    a run the key had made before, the log says so (its id and creation time) and XCom key
    ``audience_run_reused`` holds ``{"id", "createdAt"}`` (not pushed for a new run: reads as None).

    Waiting checks the run once, then (``deferrable``) hands over to
    :class:`~airflow_provider_leadpipe.triggers.audiences.LeadpipeAudienceRunTrigger`, or polls
    every ``poll_interval`` seconds in the worker. A failed or cancelled run fails the task at
    once (``LeadpipeAudienceRunError``, with ``errorCode`` and ``errorMessage``); a run unfinished
    at ``timeout`` fails it with ``LeadpipeAudienceRunTimeoutError``. A run still queued when the
    task times out or is ended by a user (killed in a worker; deferred: marked failed or success,
    or cleared, on Airflow 3.3+) is cancelled (best effort).

    Returns the run with the API's key names (``id``, ``status``, ``dataDate``, ``resultCount``...).

    :param audience_id: the audience's id, a UUID (templated).
    :param wait_for_completion: wait for the run (default True); False returns the queued run.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between checks, any positive number (default 30).
    :param timeout: seconds to wait for the run, from the start of the task (default 3600).
    :param idempotency_key: your own key (templated); None for the default above.
    :param new_run_on_retry: add the try number to the key (default False).
    :param leadpipe_conn_id: the Leadpipe connection (templated).
    :param hook_params: per-task hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    """

    template_fields: Sequence[str] = ("audience_id", "idempotency_key", "leadpipe_conn_id")
    literals = (
        Literal(("audience_id",), validation.uuid_id, ("audience_id",)),
        Literal(("idempotency_key",), "_key_text", named=False),  # names the task itself
    )

    def __init__(
        self,
        *,
        audience_id: str,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 30,
        timeout: float = 3600,
        idempotency_key: str | None = None,
        new_run_on_retry: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.audience_id = audience_id
        self.wait_for_completion = self.checked(
            validation.boolean, wait_for_completion, "wait_for_completion"
        )
        self.init_deferrable(deferrable)
        self.poll_interval = self.checked(validation.positive_seconds, poll_interval, "poll_interval")
        self.run_timeout = self.checked(validation.positive_seconds, timeout, "timeout")
        self.idempotency_key = idempotency_key
        self.new_run_on_retry = self.checked(validation.boolean, new_run_on_retry, "new_run_on_retry")
        self._run: AudienceRun | None = None
        self.check_literals()

    def _key_text(self, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and value.strip()):
            return value
        raise LeadpipeConfigError(
            f"{type(self).__name__} '{self.task_id}': idempotency_key must be a non-empty string or None, "
            f"got {value!r}"
        )

    def execute(self, context: Context) -> dict[str, Any]:
        started = time.time()
        audience_id = self.checked(validation.uuid_id, self.audience_id, "audience_id")
        key = task_idempotency_key(
            context, self._key_text(self.idempotency_key), new_run_on_retry=self.new_run_on_retry
        )
        with self.hook:
            # Safe to retry on transient failures: the same key returns the same run.
            run = self.hook.create_audience_run(audience_id, idempotency_key=key)
            self._run = run
            context["ti"].xcom_push(key=RUN_ID_XCOM_KEY, value=run.id)
            if run.existing:
                # Pushed only then: Airflow 3.0's execution API refuses an XCom of None, and a key
                # never pushed reads as None anyway (a new try starts with no XCom of its own).
                reused = {"id": run.id, "createdAt": run.created_at}
                context["ti"].xcom_push(key=REUSED_XCOM_KEY, value=reused)
                self.log.warning(
                    "Audience %s: reusing run %s, created at %s, which idempotency key %s made before "
                    "(a retry of this task instance gets its run back; clear the task to start a new one)",
                    audience_id,
                    run.id,
                    run.created_at or "an unknown time",
                    key,
                )
            self.log.info(
                "Audience %s: run %s is %s (idempotency key %s)", audience_id, run.id, run.status.value, key
            )
            if not self.wait_for_completion:
                return run.to_dict()
            condition = AudienceRunCondition(audience_id, run.id)
            done, reason = condition.evaluate(run)
            if done is None:
                done, reason = self._check(condition)
            if done is None and self.deferrable:
                self._defer(condition, started)
            while done is None:
                self.log.info("waiting: %s", reason)
                remaining = started + self.run_timeout - time.time()
                if remaining <= 0:
                    raise self._timed_out(condition, reason, cancelled=self._cancel_if_queued())
                time.sleep(min(self.poll_interval, remaining))
                done, reason = self._check(condition)
        self.log.info("%s", reason)
        return done.to_dict()

    def _check(self, condition: AudienceRunCondition) -> tuple[AudienceRun | None, str]:
        """One check of the run; the last state seen is kept for :meth:`on_kill`."""
        try:
            self._run = self.hook.get_audience_run(condition.audience_id, str(condition.audience_run_id))
        except TRANSIENT_ERRORS as exc:
            return None, unavailable(str(exc))
        return condition.evaluate(self._run)

    def _timed_out(
        self, condition: AudienceRunCondition, reason: str, *, cancelled: bool
    ) -> LeadpipeAudienceRunTimeoutError:
        return LeadpipeAudienceRunTimeoutError(
            f"Leadpipe {condition.describe()} did not complete within the timeout of {self.run_timeout:g} s; "
            f"last state: {reason}" + ("; the queued run was cancelled" if cancelled else "")
        )

    def _defer(self, condition: AudienceRunCondition, started: float) -> None:
        deadline = started + self.run_timeout
        remaining = max(deadline - time.time(), 0.0)
        self.defer(
            trigger=LeadpipeAudienceRunTrigger(
                leadpipe_conn_id=self.leadpipe_conn_id,
                **condition.to_dict(),
                poll_interval=self.poll_interval,
                deadline=deadline,
                hook_params=self.hook_params,
                cancel_queued_run=True,
            ),
            method_name="execute_complete",
            timeout=deferral_timeout(remaining, self.poll_interval),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume from the trigger: the completed run dict, or the event's error raised."""
        run = result_of(event, RUN, timeout_error=LeadpipeAudienceRunTimeoutError)
        self.log.info("%s", event.get("message") if isinstance(event, dict) else "completed")
        return run

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Resume after the deferral. Airflow's own deferral timeout (no event in time: the triggerer
        was down past the grace) cancels a still-queued run, as the trigger's deadline does."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except Exception as exc:
            if compat.is_deferral_timeout(exc):
                self._cancel_pushed_run(context)
            raise

    def _cancel_pushed_run(self, context: Context) -> None:
        """Cancel the run this task instance pushed to XCom if it is still queued (best effort)."""
        ti = context["ti"]
        run_id = ti.xcom_pull(task_ids=ti.task_id, key=RUN_ID_XCOM_KEY)
        try:
            audience_id = validation.uuid_id(self.audience_id, "audience_id")
            with LeadpipeHook(leadpipe_conn_id=self.leadpipe_conn_id, **self.hook_params) as hook:
                self._run = hook.get_audience_run(audience_id, validation.uuid_id(run_id, "audience_run_id"))
        except Exception as exc:  # the task fails with the timeout either way
            self.log.warning("Could not check audience run %s to cancel it: %s", run_id, exc)
            return
        self._cancel_if_queued()

    def on_kill(self) -> None:
        """Cancel the run while it is still queued (best effort: never raises)."""
        self._cancel_if_queued()

    def _cancel_if_queued(self) -> bool:
        """Cancel the run if it was last seen queued; True if Orbit cancelled it. Never raises."""
        run = self._run
        if run is None or run.status.value != "queued":
            return False
        try:
            with LeadpipeHook(leadpipe_conn_id=self.leadpipe_conn_id, **self.hook_params) as hook:
                hook.cancel_audience_run(
                    self.checked(validation.uuid_id, self.audience_id, "audience_id"), run.id
                )
        except Exception as exc:  # best effort: the kill or the timeout goes on either way
            self.log.warning("Could not cancel audience run %s: %s", run.id, exc)
            return False
        self.log.info("Cancelled the queued audience run %s", run.id)
        return True
