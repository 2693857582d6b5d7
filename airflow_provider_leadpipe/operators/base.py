"""LeadpipeBaseOperator, the operators' base: a templated, validated connection id and a cached hook
(the task mixin it shares with the sensors is :mod:`airflow_provider_leadpipe.utils.tasks`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.utils.tasks import LeadpipeTaskMixin


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

    @cached_property
    def hook(self) -> LeadpipeHook:
        """The hook for ``leadpipe_conn_id`` with ``hook_params`` (built on first use, after
        templating); open it with ``with self.hook as hook:`` so its client is closed there."""
        return LeadpipeHook(leadpipe_conn_id=self.leadpipe_conn_id, **self.hook_params)
