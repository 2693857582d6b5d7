"""Per-key configuration (the control API's JSON, camelCase) and the built-in test keys."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, model_validator
from pydantic.alias_generators import to_camel

from leadpipe_sandbox.faults import Fault, FaultRate
from leadpipe_sandbox.pixels import PixelSeed
from leadpipe_sandbox.timeutil import iso
from leadpipe_sandbox.visitors import DEFAULT_DOMAINS

DEFAULT_API_KEY = "sk_test_sandbox"
#: Organisation statuses under which the Data endpoints answer; any other gets 403.
USABLE_STATUSES = frozenset({"trial", "active"})

Timestamp = Annotated[datetime, PlainSerializer(iso, when_used="json")]


class _Model(BaseModel):
    # camelCase only: PATCH deep-merges JSON, which needs one spelling per field.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid")


class Organization(_Model):
    name: str = Field(min_length=1)
    status: str = Field(min_length=1, description="trial and active are usable; anything else is not.")


class Credits(_Model):
    used: int = Field(default=0, ge=0)
    limit: int | None = Field(
        default=500, ge=0, description="null: unlimited plan (remaining/percentUsed null)."
    )
    resets_at: Timestamp | None = None


class Intent(_Model):
    audience_slots: int = Field(ge=0)
    audience_slots_used: int = Field(default=0, ge=0)
    audience_slots_available: int | None = Field(default=None, ge=0, description="Default: slots minus used.")
    status: str = "active"


class Recovery(_Model):
    """Exhausted credits that come back: after N more account calls, or at/after a moment."""

    after_account_calls: int | None = Field(default=None, ge=0)
    at: Timestamp | None = None
    in_seconds: float | None = Field(default=None, ge=0)
    used: int = Field(default=0, ge=0, description="credits.used once recovered.")

    @model_validator(mode="after")
    def _exactly_one_trigger(self) -> Recovery:
        given = [v for v in (self.after_account_calls, self.at, self.in_seconds) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of afterAccountCalls, at, inSeconds")
        return self


class KeyConfig(_Model):
    """Everything that defines one API key's organisation."""

    description: str = ""
    organization: Organization
    credits: Credits = Credits()
    intent: Intent | None = None
    revoked: bool = False
    visitors: int | None = Field(default=None, ge=0, le=10**9, description="null: the sandbox's --visitors.")
    visitor_seed: int | None = Field(default=None, description="null: the sandbox's --seed.")
    visitors_as_of: Annotated[AwareDatetime, PlainSerializer(iso, when_used="json")] | None = Field(
        default=None,
        description="null: timeframes end now; a time (ISO 8601 with offset): they end there, a frozen "
        "clock for tests whose pulls must see the same window however long they take.",
    )
    domains: list[str] = Field(
        default=list(DEFAULT_DOMAINS), min_length=1, description="Sites visitors are seen on."
    )
    pixels: list[PixelSeed] = Field(default_factory=list, description="Pixels that exist from the start.")
    recovery: Recovery | None = None
    fault_rate: FaultRate | None = None


def _trial(name: str, used: int, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "organization": {"name": name, "status": "trial"},
        "credits": {"used": used, "limit": 500, "resetsAt": None},
        **extra,
    }


def builtin_configs(now: datetime) -> dict[str, dict[str, Any]]:
    """The built-in keys' configurations (JSON form); relative dates are taken from ``now``."""
    next_month = (now.replace(day=1) + timedelta(days=32)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    acme_pixels = [
        {"domain": "acme.io", "name": "Acme marketing site"},
        {"domain": "shop.acme.io", "name": "Acme shop", "status": "paused", "excludedPaths": ["/checkout"]},
    ]
    return {
        DEFAULT_API_KEY: _trial(
            "Sandbox Trial Org",
            0,
            "Healthy trial organisation: 0 of 500 credits used; 3 Orbit audience slots, none used.",
            intent={"audienceSlots": 3, "audienceSlotsUsed": 0, "status": "active"},
        ),
        "sk_test_active": {
            "description": "Paid organisation with Orbit intent slots and two pixels (one paused).",
            "organization": {"name": "Acme Analytics", "status": "active"},
            "credits": {"used": 1250, "limit": 10000, "resetsAt": iso(next_month)},
            "intent": {"audienceSlots": 5, "audienceSlotsUsed": 2, "status": "active"},
            "pixels": acme_pixels,
        },
        "sk_test_unlimited": {
            "description": "Unlimited plan: credits limit, remaining, percentUsed and resetsAt are null.",
            "organization": {"name": "Unlimited Industries", "status": "active"},
            "credits": {"used": 4200, "limit": None, "resetsAt": None},
            "intent": {"audienceSlots": 10, "audienceSlotsUsed": 0, "status": "active"},
        },
        "sk_test_low_credits": _trial("Nearly Out Co", 495, "Trial with 5 credits left (still healthy)."),
        "sk_test_exhausted": _trial("Exhausted Co", 500, "Trial with no credits left: healthy is false."),
        "sk_test_recovering": _trial(
            "Recovering Co",
            500,
            "No credits left for 3 account calls, then 0 of 500 used.",
            recovery={"afterAccountCalls": 3},
        ),
        "sk_test_expired": {
            "description": "Expired organisation: account answers 200 (healthy false), the rest 403.",
            "organization": {"name": "Lapsed Trial Org", "status": "expired"},
            "credits": {"used": 0, "limit": 500, "resetsAt": None},
        },
        "sk_test_inactive": {
            "description": "Inactive organisation: like expired, with status inactive.",
            "organization": {"name": "Dormant Org", "status": "inactive"},
            "credits": {"used": 120, "limit": 500, "resetsAt": None},
        },
        "sk_test_revoked": _trial("Revoked Key Org", 0, "Revoked key: 403 on every endpoint.", revoked=True),
        "sk_test_empty": _trial("Empty Org", 0, "Healthy trial without any visitor data.", visitors=0),
        "sk_test_flaky": _trial(
            "Flaky Network Co",
            0,
            "Healthy trial; 10 % of requests answer 429 or 503 (seed 1).",
            faultRate={
                "rate": 0.1,
                "seed": 1,
                "faults": [f.to_json() for f in (Fault.rate_limit(), Fault.unavailable())],
            },
        ),
    }


def scenario_names() -> list[str]:
    """Names accepted as ``scenario`` when creating a key: built-in keys with or without ``sk_test_``."""
    return [key.removeprefix("sk_test_") for key in builtin_configs(datetime(2000, 1, 1))]


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` laid over ``base``: objects merge key by key, anything else (lists, null) replaces."""
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
