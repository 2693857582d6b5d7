"""The credits-low watcher: an asset event when an account's credits fall below a threshold.

The other edge of :class:`~airflow_provider_leadpipe.triggers.watchers.LeadpipeAccountEventTrigger`
(credits are back), on the same run loop (:class:`~airflow_provider_leadpipe.triggers.watchers.
AccountWatcherBase`): the shared account poll, the watermark in the asset state store, the errors
that never end a watcher. See :mod:`airflow_provider_leadpipe.triggers.watchers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_leadpipe.conditions.credit_alerts import THRESHOLDS, CreditThresholds
from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import AccountStatus
from airflow_provider_leadpipe.triggers.watchers import AccountWatcherBase, _now
from airflow_provider_leadpipe.utils.text import iso as _iso
from airflow_provider_leadpipe.utils.text import number_text as _fmt

__all__ = ["LeadpipeCreditsLowEventTrigger"]


class LeadpipeCreditsLowEventTrigger(AccountWatcherBase):
    """Yield one event each time the account's credits cross a threshold downwards.

    The thresholds are the credit report's alerts' (same names, same meaning, each off with
    ``None``; at least one is required): ``min_credits`` is crossed when ``credits.remaining`` is
    below it, ``max_percent_used`` when ``credits.percentUsed`` is above it. A plan without a
    credit cap crosses neither. ``exhaustion_margin_hours`` is not offered (anything but ``None``
    is refused): it needs a burn rate, that is a history of reports, which a watcher does not keep
    (use the credit report's alerts).

    Edge-triggered: the first observation without a watermark is the baseline (an account already
    low yields nothing); afterwards an event is yielded when a threshold becomes crossed, one event
    per poll that crosses one or more; a threshold that stays crossed yields nothing more, and one
    that clears (credits came back, e.g. the monthly reset) re-arms. Payload: ``account`` (the
    status dict), ``crossed`` (the thresholds crossed now), ``fired`` (those newly crossed),
    ``changed_at`` (ISO 8601, UTC) and ``message`` (organization, connection, credits left of the
    limit, reset date; never the key). Watermark, polling and errors as for the account watcher.

    :param leadpipe_conn_id: the ``leadpipe`` connection id (never the key itself).
    :param min_credits: fire when fewer credits than this are left.
    :param max_percent_used: fire when more than this percentage of the credits is used (0-100).
    :param poll_interval: seconds between account checks (any positive number; default 300).
    :param hook_params: hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    :param exhaustion_margin_hours: only ``None`` (the report's threshold, named here to refuse it
        with a clear error).
    :raises LeadpipeConfigError: a bad threshold, or none at all.
    """

    def __init__(
        self,
        *,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        min_credits: float | None = None,
        max_percent_used: float | None = None,
        poll_interval: float = 300,
        hook_params: Mapping[str, Any] | None = None,
        exhaustion_margin_hours: None = None,
    ) -> None:
        super().__init__()
        if exhaustion_margin_hours is not None:
            raise LeadpipeConfigError(
                f"{type(self).__name__} does not take exhaustion_margin_hours (got "
                f"{exhaustion_margin_hours!r}): it needs a burn rate, which only the credit report "
                "knows; use LeadpipeCreditReportOperator(exhaustion_margin_hours=..., notifiers=[...])"
            )
        self.init_trigger(leadpipe_conn_id, poll_interval, hook_params)
        self.thresholds = CreditThresholds(min_credits=min_credits, max_percent_used=max_percent_used)
        if not self.thresholds.to_dict():
            raise LeadpipeConfigError(
                f"{type(self).__name__} needs a threshold: min_credits or max_percent_used (both are None)"
            )

    def kwargs(self) -> dict[str, Any]:
        return {
            **super().kwargs(),
            "min_credits": self.thresholds.min_credits,
            "max_percent_used": self.thresholds.max_percent_used,
        }

    def described(self) -> str:
        return ", ".join(f"{name}={value!r}" for name, value in self.thresholds.to_dict().items())

    def identity(self) -> dict[str, Any]:
        return {"watch": "credits-low", "conn": self.leadpipe_conn_id, **self.thresholds.to_dict()}

    def observe(self, status: AccountStatus) -> tuple[list[str], str]:
        judged = self.thresholds.balance_crossed(status.credits)
        crossed = [name for name in THRESHOLDS if judged.get(name)]
        reasons = [self.thresholds.balance_reason(name, status.credits) for name in crossed]
        return crossed, "; ".join(reasons) or f"{_balance(status)}: no threshold crossed"

    def describe(self, state: list[str]) -> str:
        return f"crossed: {', '.join(state)}" if state else "no threshold crossed"

    def edge(
        self, last: list[str], now: list[str], status: AccountStatus, reason: str
    ) -> dict[str, Any] | None:
        fired = [name for name in now if name not in last]
        if not fired:
            return None
        reasons = "; ".join(self.thresholds.balance_reason(name, status.credits) for name in fired)
        resets_at = _iso(status.credits.resets_at, seconds=True)
        message = (
            f"Leadpipe credits low ({', '.join(fired)}): {reasons}.\n"
            f"Organization: {status.organization.name} (connection {self.leadpipe_conn_id})\n"
            f"Credits: {_balance(status)}; {f'resets {resets_at}' if resets_at else 'no reset date'}"
        )
        self.log.warning("%s", message.replace("\n", " / "))
        return {
            "account": status.to_dict(),
            "crossed": now,
            "fired": fired,
            "changed_at": _now(),
            "message": message,
        }

    def restore(self, saved: Any) -> list[str] | None:
        crossed = saved.get("crossed") if isinstance(saved, dict) else None
        if not isinstance(crossed, list):
            return None
        return [name for name in THRESHOLDS if name in crossed]

    def watermark(self, now: list[str]) -> dict[str, Any]:
        return {"crossed": now, "since": _now()}


def _balance(status: AccountStatus) -> str:
    credits = status.credits
    if credits.unlimited:
        return f"{_fmt(credits.used)} used, no credit cap"
    return f"{_fmt(credits.remaining)} of {_fmt(credits.limit)} left"
