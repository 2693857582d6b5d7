"""Injected faults: what they are (shared by the server and the Python client) and how they are picked.

A :class:`Fault` is JSON on the control API (camelCase) and a pydantic model in Python::

    Fault.rate_limit(count=3, retry_after=2)                       # three 429s, Retry-After: 2
    Fault.rate_limit(retry_after=2, retry_after_format="http-date")
    Fault.unavailable(count=5)                                     # a burst of five 503s
    Fault.slow(1.5, path="/v1/data")                               # answer normally, 1.5 s late
    Fault.lost_response(method="POST", path="/v1/intent/audiences/*/runs")  # act, then hang up
"""

from __future__ import annotations

import random
from collections import deque
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

FaultKind = Literal[
    "rate_limit",
    "unavailable",
    "error",
    "slow",
    "malformed_json",
    "html",
    "truncated",
    "wrong_shape",
    "lost_response",
]
RetryAfterFormat = Literal["seconds", "http-date"]

DEFAULT_STATUS: dict[str, int] = {"rate_limit": 429, "unavailable": 503, "error": 500, "html": 502}


class Where(TypedDict, total=False):
    """Which requests a fault applies to: a glob on the path, an HTTP method."""

    path: str | None
    method: str | None


class RetryOptions(Where, total=False):
    retry_after_format: RetryAfterFormat


class Fault(BaseModel):
    """One scripted misbehaviour, answered ``count`` times to requests matching ``path``/``method``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    kind: FaultKind
    count: int = Field(default=1, ge=1, description="How many matching requests get this fault.")
    path: str | None = Field(default=None, description="Glob on the request path, e.g. /v1/data/pixels*.")
    method: str | None = Field(default=None, description="Only requests with this HTTP method.")
    status: int | None = Field(
        default=None, ge=100, le=599, description="Status for rate_limit/unavailable/error/html."
    )
    retry_after: int | None = Field(
        default=None, ge=0, description="Retry-After in whole seconds (none: no header)."
    )
    retry_after_format: RetryAfterFormat = "seconds"
    seconds: float = Field(default=0.0, ge=0, le=600, description="Delay of a slow response.")
    message: str | None = Field(default=None, description="Error message in the error envelope.")
    body: Any = Field(default=None, description="JSON body of a wrong_shape response.")

    @model_validator(mode="after")
    def _slow_needs_seconds(self) -> Fault:
        if self.kind == "slow" and self.seconds <= 0:
            raise ValueError("a slow fault needs seconds > 0")
        return self

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request."""
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path is None or fnmatchcase(path, self.path)

    def to_json(self) -> dict[str, Any]:
        """The control-API form (camelCase, defaults left out)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude={"body"})
        if self.body is not None:  # as given: pydantic's JSON mode refuses lone UTF-16 surrogates
            data["body"] = self.body
        return data

    # -- constructors (every one also takes path= and method=) ---------------------------------

    @classmethod
    def rate_limit(
        cls, count: int = 1, *, retry_after: int | None = 1, **options: Unpack[RetryOptions]
    ) -> Fault:
        """429 Too Many Requests, with ``Retry-After`` as delta-seconds or an HTTP-date."""
        return cls(kind="rate_limit", count=count, retry_after=retry_after, **options)

    @classmethod
    def unavailable(
        cls, count: int = 1, *, retry_after: int | None = None, **options: Unpack[RetryOptions]
    ) -> Fault:
        """503 Service Unavailable (a burst when ``count`` > 1)."""
        return cls(kind="unavailable", count=count, retry_after=retry_after, **options)

    @classmethod
    def error(
        cls, status: int = 500, count: int = 1, *, message: str | None = None, **where: Unpack[Where]
    ) -> Fault:
        """Any status with the API's error envelope."""
        return cls(kind="error", status=status, count=count, message=message, **where)

    @classmethod
    def slow(cls, seconds: float, count: int = 1, **where: Unpack[Where]) -> Fault:
        """The normal response, sent ``seconds`` late."""
        return cls(kind="slow", seconds=seconds, count=count, **where)

    @classmethod
    def malformed_json(cls, count: int = 1, **where: Unpack[Where]) -> Fault:
        """200 with ``Content-Type: application/json`` and a body that is not JSON."""
        return cls(kind="malformed_json", count=count, **where)

    @classmethod
    def html(cls, status: int = 502, count: int = 1, **where: Unpack[Where]) -> Fault:
        """An HTML error page, as a proxy or load balancer sends."""
        return cls(kind="html", status=status, count=count, **where)

    @classmethod
    def truncated(cls, count: int = 1, **where: Unpack[Where]) -> Fault:
        """The normal headers, half the body, then the connection is dropped."""
        return cls(kind="truncated", count=count, **where)

    @classmethod
    def lost_response(cls, count: int = 1, **where: Unpack[Where]) -> Fault:
        """The request is carried out (a run is created...), then the connection drops without an answer."""
        return cls(kind="lost_response", count=count, **where)

    @classmethod
    def wrong_shape(cls, body: Any = None, count: int = 1, **where: Unpack[Where]) -> Fault:
        """200 with valid JSON of the wrong shape (default ``{"data": {"status": "ok"}}``)."""
        return cls(kind="wrong_shape", body=body, count=count, **where)


DEFAULT_RANDOM_FAULTS: tuple[Fault, ...] = (Fault.rate_limit(retry_after=1), Fault.unavailable())


class FaultRate(BaseModel):
    """Random faults for load tests: each matching request fails with probability ``rate``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    rate: float = Field(ge=0, le=1)
    seed: int = 0
    faults: tuple[Fault, ...] = Field(default=DEFAULT_RANDOM_FAULTS, min_length=1)
    path: str | None = None


class FaultPlan:
    """The faults of one API key: a FIFO script, then an optional seeded random rate."""

    def __init__(self, rate: FaultRate | None = None) -> None:
        self._script: deque[list[Any]] = deque()  # [fault, remaining count]
        self.rate = rate
        self._rng = random.Random()
        self.reseed()

    def reseed(self) -> None:
        """Restart the random sequence from the rate's seed (same seed, same faults)."""
        self._rng.seed(self.rate.seed if self.rate else 0)

    def queue(self, faults: list[Fault]) -> None:
        """Append faults to the script."""
        self._script.extend([fault, fault.count] for fault in faults)

    def clear(self) -> None:
        """Drop every scripted fault that has not fired yet."""
        self._script.clear()

    def pending(self) -> list[Fault]:
        """The scripted faults still to fire, with their remaining counts."""
        return [fault.model_copy(update={"count": left}) for fault, left in self._script]

    def next(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if any (consumes one use of a scripted fault)."""
        for entry in self._script:
            fault, left = entry
            if fault.matches(method, path):
                if left <= 1:
                    self._script.remove(entry)
                else:
                    entry[1] = left - 1
                return fault
        rate = self.rate
        if rate is None or rate.rate <= 0 or (rate.path is not None and not fnmatchcase(path, rate.path)):
            return None
        return self._rng.choice(rate.faults) if self._rng.random() < rate.rate else None
