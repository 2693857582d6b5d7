"""What every Leadpipe task shares: :class:`LeadpipeTaskMixin` (connection id, ``hook_params``, the
cached hook, errors named after the task) and :class:`LeadpipeBaseOperator`, the operators' base."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any, TypeVar

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.utils import validation

T = TypeVar("T")


class LeadpipeTaskMixin:
    """The connection id, ``hook_params`` and hook of a Leadpipe operator or sensor.

    Call :meth:`init_leadpipe` from ``__init__`` (after ``super().__init__``). Open the hook with
    ``with self.hook as hook:`` (``async with`` for async work) in ``execute``/``poke``, so the
    client it opened is closed there.
    """

    task_id: str
    leadpipe_conn_id: str
    hook_params: dict[str, Any]

    def init_leadpipe(self, leadpipe_conn_id: Any, hook_params: Mapping[str, Any] | None) -> None:
        # A string (maybe a template), or an XComArg that Airflow resolves before execute().
        if not validation.has_template(leadpipe_conn_id):
            self.checked(validation.conn_id, leadpipe_conn_id)
        self.leadpipe_conn_id = leadpipe_conn_id
        self.hook_params = self.checked(validation.hook_params, hook_params)

    def checked(self, parse: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``parse(*args, **kwargs)``, with this task named in a :class:`LeadpipeConfigError`."""
        try:
            return parse(*args, **kwargs)
        except LeadpipeConfigError as exc:
            raise LeadpipeConfigError(f"{type(self).__name__} '{self.task_id}': {exc}") from None

    @cached_property
    def hook(self) -> LeadpipeHook:
        """The hook for ``leadpipe_conn_id`` with ``hook_params`` (built on first use, after templating)."""
        return LeadpipeHook(leadpipe_conn_id=self.leadpipe_conn_id, **self.hook_params)


class LeadpipeBaseOperator(LeadpipeTaskMixin, BaseOperator):
    """Base of the Leadpipe operators: a templated, validated connection id and a cached hook.

    :param leadpipe_conn_id: the ``leadpipe`` connection (templated; an XComArg works too).
        Default ``leadpipe_default``.
    :param hook_params: per-task hook settings, a JSON object with some of ``timeout``,
        ``max_retries``, ``retry_backoff`` (override the connection's extras).
    """

    template_fields: Sequence[str] = ("leadpipe_conn_id",)

    def __init__(
        self,
        *,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_leadpipe(leadpipe_conn_id, hook_params)
