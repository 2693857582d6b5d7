"""The sandbox's mutable state: one organisation per API key, plus request statistics.

Everything runs on the server's single event loop and no handler awaits while mutating state, so
no locks are needed.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from leadpipe_sandbox.asgi import Request
from leadpipe_sandbox.faults import FaultPlan, FaultRate
from leadpipe_sandbox.orbit import (
    DEFAULT_PEOPLE,
    EXPORT_ROW_CAP,
    OrbitStore,
    RunSchedule,
    StoredExport,
)
from leadpipe_sandbox.orbit_api import DOWNLOAD_BUCKET, DOWNLOAD_PREFIX, sign
from leadpipe_sandbox.pixels import PixelStore
from leadpipe_sandbox.scenarios import (
    USABLE_STATUSES,
    KeyConfig,
    builtin_configs,
    deep_merge,
)
from leadpipe_sandbox.timeutil import iso, utcnow
from leadpipe_sandbox.visitors import VisitorSet

MISSING_KEY = "<missing>"
INVALID_KEY = "<invalid>"
BILLING_CYCLE = timedelta(days=30)


@dataclass(frozen=True)
class SandboxOptions:
    """Server-wide settings (command line / :class:`LeadpipeSandbox` arguments)."""

    seed: int = 42
    visitors: int = 1000
    fault_rate: float = 0.0
    fault_seed: int = 0
    audience_people: int = DEFAULT_PEOPLE
    run_schedule: RunSchedule = field(default_factory=RunSchedule)
    export_row_cap: int = EXPORT_ROW_CAP


class KeyState:
    """One API key's organisation: configuration, credits, pixels and pending faults."""

    def __init__(self, api_key: str, config: KeyConfig, options: SandboxOptions, anchor: datetime) -> None:
        self.api_key = api_key
        self._options = options
        self._anchor = anchor
        self._visitor_set: VisitorSet | None = None
        self.config = config
        self.account_calls = 0
        self.pixels = PixelStore(f"{options.seed}:{api_key}")
        self.faults = FaultPlan()
        self.orbit = OrbitStore(options.seed, api_key, people=options.audience_people)
        self.orbit.schedule = options.run_schedule
        self.orbit.export_row_cap = options.export_row_cap
        self.apply(config, utcnow(), pixels=True, fault_rate=True, intent=True)

    # -- configuration -------------------------------------------------------------------------

    def apply(
        self, config: KeyConfig, now: datetime, *, pixels: bool, fault_rate: bool, intent: bool = False
    ) -> None:
        """Adopt a new configuration; rebuild the pixels and/or the random fault rate if asked.

        With ``intent``, the number of active audiences is made to match ``audienceSlotsUsed``
        (seeded audiences are added, or the newest active ones paused).
        """
        recovery = config.recovery
        if recovery is not None and recovery.in_seconds is not None:
            at = now + timedelta(seconds=recovery.in_seconds)
            recovery = recovery.model_copy(update={"in_seconds": None, "at": at})
            config = config.model_copy(update={"recovery": recovery})
        if recovery is not None and recovery.at is not None and config.credits.resets_at is None:
            config = config.model_copy(
                update={"credits": config.credits.model_copy(update={"resets_at": recovery.at})}
            )
        self.config = config
        self.account_calls = 0
        if pixels:
            self.pixels = PixelStore(f"{self._options.seed}:{self.api_key}")
            for seed in config.pixels:
                self.pixels.create(seed, now, status=seed.status)
        if fault_rate:
            self.faults.rate = config.fault_rate or self._default_fault_rate()
            self.faults.reseed()
        if intent:
            self.orbit.match_active(config.intent.audience_slots_used if config.intent else 0, now)

    def sync_slots(self) -> None:
        """Record the active audiences as the intent block's used slots (the account then agrees)."""
        intent = self.config.intent
        if intent is not None and intent.audience_slots_used != self.orbit.active_count:
            intent = intent.model_copy(update={"audience_slots_used": self.orbit.active_count})
            self.config = self.config.model_copy(update={"intent": intent})

    def patch(self, changes: dict[str, Any], now: datetime) -> None:
        """Lay a partial configuration (JSON) over the current one."""
        base = self.config_json()
        if "recovery" in changes:  # exactly one of three modes: a new recovery replaces the old whole
            base.pop("recovery", None)
        merged = deep_merge(base, changes)
        self.apply(
            KeyConfig.model_validate(merged),
            now,
            pixels="pixels" in changes,
            fault_rate="faultRate" in changes,
            intent="intent" in changes,
        )

    def config_json(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json", by_alias=True)

    def _default_fault_rate(self) -> FaultRate | None:
        if self._options.fault_rate <= 0:
            return None
        return FaultRate(rate=self._options.fault_rate, seed=self._options.fault_seed)

    # -- behaviour -----------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Whether the organisation may use the Data endpoints other than the account endpoint."""
        return self.config.organization.status in USABLE_STATUSES

    @property
    def visitors(self) -> VisitorSet:
        """The organisation's visitor data set (rebuilt only when its parameters change)."""
        count = self.config.visitors if self.config.visitors is not None else self._options.visitors
        seed = self.config.visitor_seed if self.config.visitor_seed is not None else self._options.seed
        current = self._visitor_set
        if current is None or (current.count, current.seed, current.domains) != (
            count,
            seed,
            tuple(self.config.domains),
        ):
            current = self._visitor_set = VisitorSet(seed, count, self._anchor, self.config.domains)
        return current

    def set_credits_used(self, used: int) -> None:
        self.config = self.config.model_copy(
            update={"credits": self.config.credits.model_copy(update={"used": max(used, 0)})}
        )

    def tick(self, now: datetime, *, account_call: bool) -> None:
        """Count an account call and recover exhausted credits when the recovery is due."""
        recovery = self.config.recovery
        if recovery is None:
            return
        if recovery.after_account_calls is not None:
            if not account_call:
                return
            if self.account_calls < recovery.after_account_calls:
                self.account_calls += 1
                return
        elif recovery.at is not None and now < recovery.at:
            return
        credits = self.config.credits
        resets_at = credits.resets_at
        if resets_at is not None and recovery.at is not None and resets_at <= now:
            resets_at = resets_at + BILLING_CYCLE
        self.config = self.config.model_copy(
            update={
                "recovery": None,
                "credits": credits.model_copy(update={"used": recovery.used, "resets_at": resets_at}),
            }
        )

    def account(self) -> dict[str, Any]:
        """The ``data`` object of ``GET /v1/data/account`` (AccountStatus)."""
        credits = self.config.credits
        limit = credits.limit
        if limit is None:
            remaining = percent = None
        else:
            remaining = max(limit - credits.used, 0)
            percent = round(credits.used / limit * 100, 2) if limit else (100.0 if credits.used else 0.0)
        intent = self.config.intent
        return {
            "healthy": self.usable and (remaining is None or remaining > 0),
            "organization": {
                "name": self.config.organization.name,
                "status": self.config.organization.status,
            },
            "credits": {
                "used": credits.used,
                "limit": limit,
                "remaining": remaining,
                "percentUsed": percent,
                "resetsAt": iso(credits.resets_at) if credits.resets_at else None,
            },
            "pixels": self.pixels.counts(),
            "intent": None
            if intent is None
            else {
                "audienceSlots": intent.audience_slots,
                "audienceSlotsUsed": intent.audience_slots_used,
                "audienceSlotsAvailable": intent.audience_slots_available
                if intent.audience_slots_available is not None
                else max(intent.audience_slots - intent.audience_slots_used, 0),
                "status": intent.status,
            },
        }

    def describe(self) -> dict[str, Any]:
        """The control API's view of this key (a due time-based recovery is applied first)."""
        self.tick(utcnow(), account_call=False)
        return {
            "apiKey": self.api_key,
            "config": self.config_json(),
            "account": self.account(),
            "pixels": [pixel.row_json() for pixel in self.pixels],
            "pendingFaults": [fault.to_json() for fault in self.faults.pending()],
            "accountCalls": self.account_calls,
        }


class SandboxState:
    """All keys and the request statistics; :meth:`reset` returns to the initial state."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.anchor = utcnow().replace(microsecond=0)
        self.keys: dict[str, KeyState] = {}
        self.stats: Counter[tuple[str, str, int]] = Counter()
        self.downloads: list[dict[str, Any]] = []
        self.url_secret = secrets.token_bytes(32)
        self.reset()

    def reset(self) -> None:
        """Built-in keys only, fresh credits, no pixels but the seeded ones, no faults, no stats."""
        now = utcnow()
        self.keys = {
            key: KeyState(key, KeyConfig.model_validate(config), self.options, self.anchor)
            for key, config in builtin_configs(now).items()
        }
        self.stats.clear()
        self.downloads.clear()

    def signed_url(self, request: Request, export: StoredExport, expires: datetime) -> str:
        """The export's download URL on the *other* loopback name than the API's (``localhost`` for
        ``127.0.0.1`` and vice versa, same port), so a test can tell the two hosts apart."""
        host = request.headers.get("host", "127.0.0.1")
        name, _, port = host.rpartition(":") if host.rsplit(":", 1)[-1].isdigit() else (host, "", "")
        other = "localhost" if name == "127.0.0.1" else "127.0.0.1"
        authority = f"{other}:{port}" if port else other
        seconds = int(expires.timestamp())
        token = sign(self.url_secret, export.id, seconds)
        path = f"/{DOWNLOAD_PREFIX}/{DOWNLOAD_BUCKET}/{export.file_name}"
        return f"http://{authority}{path}?Authorization={token}&expires={seconds}"

    def find_export(self, export_id: str) -> tuple[KeyState, StoredExport] | None:
        for key in self.keys.values():
            export = key.orbit.exports.get(export_id)
            if export is not None:
                return key, export
        return None

    def put_key(self, api_key: str, config: KeyConfig) -> KeyState:
        """Create or replace a key."""
        self.keys[api_key] = KeyState(api_key, config, self.options, self.anchor)
        return self.keys[api_key]

    def record(self, key_label: str, route: str, status: int) -> None:
        self.stats[(key_label, route, status)] += 1

    def stats_json(self) -> dict[str, Any]:
        """Request counts: overall, by status, per key and per route (``"GET /v1/data/account"``)."""
        keys: dict[str, Any] = {}
        by_status: Counter[str] = Counter()
        for (key, route, status), count in sorted(self.stats.items()):
            by_status[str(status)] += count
            key_stats = keys.setdefault(key, {"total": 0, "byStatus": Counter(), "routes": {}})
            key_stats["total"] += count
            key_stats["byStatus"][str(status)] += count
            route_stats = key_stats["routes"].setdefault(route, {"total": 0, "byStatus": Counter()})
            route_stats["total"] += count
            route_stats["byStatus"][str(status)] += count
        return {"total": sum(by_status.values()), "byStatus": dict(by_status), "keys": keys}
