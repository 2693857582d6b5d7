"""Workarounds for Airflow versions, each with the condition under which it can be deleted:
:func:`is_deferral_timeout`, :func:`resume_without_sensor_flags`,
:func:`aget_connection_in_inline_trigger_runner`.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseHook, BaseSensorOperator

try:  # not in common-compat's map; the task SDK has them from Airflow 3.1
    from airflow.sdk.exceptions import TaskDeferralError, TaskDeferralTimeout
except ImportError:  # Airflow 3.0 (both in airflow.exceptions) and 2.x (no TaskDeferralTimeout)
    from airflow.exceptions import TaskDeferralError  # type: ignore[no-redef]

    try:
        from airflow.exceptions import TaskDeferralTimeout  # type: ignore[no-redef]
    except ImportError:
        TaskDeferralTimeout = None  # type: ignore[assignment,misc]


def is_deferral_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is the framework's deferral timeout (the backstop after the trigger's own).

    Airflow 2.x has no ``TaskDeferralTimeout``: it raises ``TaskDeferralError("Trigger/execution
    timeout")``; 3.0 keeps both in ``airflow.exceptions``. Delete the fallbacks when the provider
    requires Airflow >= 3.1.
    """
    if TaskDeferralTimeout is not None:
        return isinstance(exc, TaskDeferralTimeout)
    return isinstance(exc, TaskDeferralError) and "timeout" in str(exc).lower()


def resume_without_sensor_flags(
    sensor: BaseSensorOperator, next_method: str, next_kwargs: dict[str, Any] | None, context: Any
) -> Any:
    """Resume a deferred sensor with ``BaseOperator.resume_execution``, skipping the sensor base's
    handling of ``soft_fail`` / ``never_fail``, so the sensor applies its flags itself, exactly as
    poke mode does.

    The sensor base disagrees with its own poke mode after a deferral (read in 2.11.2, 3.0.6 and
    3.3.2): ``soft_fail`` skips *any* ``AirflowException``, a malformed event or a broken
    connection included (apache/airflow#71255); 2.11 and 3.0 ignore ``never_fail``; no version
    honours ``silent_fail``. Delete this (and call ``super().resume_execution``) when the oldest
    supported Airflow applies the poke-mode rules after a deferral.
    """
    return super(BaseSensorOperator, sensor).resume_execution(next_method, next_kwargs, context)


async def aget_connection_in_inline_trigger_runner(hook: BaseHook, conn_id: str) -> Any:
    """The connection ``conn_id`` looked up synchronously in a worker thread, for when the async
    lookup found none.

    Airflow 3.3.2's inline trigger runner (``dag.test`` / ``airflow dags test``) cannot reach the
    metadata DB from async code (apache/airflow#57145). A connection that really does not exist
    raises ``AirflowNotFoundException`` again here. Delete this (and let the async lookup's error
    stand) when the oldest supported Airflow has the fix of apache/airflow#57145.
    """
    from asgiref.sync import sync_to_async

    return await sync_to_async(hook.get_connection)(conn_id)
