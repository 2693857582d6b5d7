"""Every argument parser of the provider, run before anything is sent.

- Templated-or-not: :func:`has_template`.
- Scalars: :func:`boolean`, :func:`number`, :func:`finite_number`, :func:`conn_id`, :func:`path_id`,
  :func:`uuid_id`, :func:`concurrency`, :func:`if_exists_policy`.
- What Airflow renders for a list or mapping argument: :func:`value_list`, :func:`string_list`,
  :func:`path_list`, :func:`mapping`.
- The hook's settings (connection extras and per-task overrides): :func:`seconds_setting`,
  :func:`retry_count_setting`, :func:`hook_params`.
- Request bodies and queries: :func:`visitor_query`, :func:`create_pixel_body`,
  :func:`update_pixel_body`.

Each check raises :class:`~airflow_provider_leadpipe.exceptions.LeadpipeConfigError` naming the
argument, the rule and (for short values) what was given. The endpoint rules are Leadpipe's
documented constraints (see the Identification API reference): the server would reject the same
input, but later, after a network round trip, and for a POST possibly after creating something.

Empty strings count as "not given" for optional filters and settings, so a templated field that
renders to ``""`` (an unset DAG param, say) simply drops the filter.
"""

from __future__ import annotations

import ast
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from airflow_provider_leadpipe import TIMEOUT_RANGE
from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.utils.text import parse_date

#: ``timeframe`` values ``GET /v1/data`` accepts.
TIMEFRAMES: tuple[str, ...] = ("24h", "7d", "14d", "30d", "90d", "all")
DOMAIN_LENGTH = (1, 255)
NAME_LENGTH = (1, 255)


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def optional_str(value: Any, name: str) -> str | None:
    """None for None or a blank string; the string itself otherwise; an error for any other type."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise LeadpipeConfigError(f"{name} must be a string, got {type(value).__name__} {shown(value)}")
    return value if value.strip() else None


def check_length(value: str, name: str, bounds: tuple[int, int]) -> str:
    low, high = bounds
    if not low <= len(value) <= high:
        raise LeadpipeConfigError(
            f"{name} must be {low}-{high} characters long, got {len(value)}: {shown(value)}"
        )
    return value


def one_of(value: Any, name: str, allowed: tuple[str, ...]) -> str | None:
    value = optional_str(value, name)
    if value is not None and value not in allowed:
        raise LeadpipeConfigError(f"{name} must be one of {', '.join(allowed)}; got {shown(value)}")
    return value


_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_NONE = {"", "none", "null"}


def boolean(value: Any, name: str) -> bool:
    """True or False; the strings a template renders (``"True"``, ``"false"``, ``"1"``, ...) too."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise LeadpipeConfigError(f"{name} must be true or false, got {shown(value)}")


def number(value: Any, name: str, *, maximum: float | None = None, whole: bool = False) -> int | float | None:
    """None (the check is off), or a finite number >= 0 (and <= ``maximum``).

    Numeric strings (what a template renders) are accepted; ``""``, ``"None"`` and ``"null"`` are None.
    A whole value comes back as an ``int``.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
        return None
    kind = "a whole number" if whole else "a number"
    limits = f" from 0 to {maximum:g}" if maximum is not None else " >= 0"
    problem = f"{name} must be {kind}{limits} (or None), got {shown(value)}"
    if isinstance(value, bool):
        raise LeadpipeConfigError(problem)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise LeadpipeConfigError(problem) from None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise LeadpipeConfigError(problem)
    if maximum is not None and value > maximum:
        raise LeadpipeConfigError(problem)
    if float(value).is_integer():
        return int(value)
    if whole:
        raise LeadpipeConfigError(problem)
    return float(value)


def finite_number(value: Any, name: str, *, minimum: float | None = None) -> float:
    """A finite int or float (not a string: for values the provider itself serialized), >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LeadpipeConfigError(f"{name} must be a finite number, got {shown(value)}")
    if minimum is not None and value < minimum:
        raise LeadpipeConfigError(f"{name} must be >= {minimum:g}, got {shown(value)}")
    return float(value)


def value_list(value: Any, name: str) -> list[Any] | None:
    """A list argument as Airflow may render it; None when not given.

    Accepts a real list or tuple (``render_template_as_native_obj=True``), a Python or JSON list
    literal (``"['expired', 'inactive']"``, what ``"{{ params.x }}"`` renders a list to), or a
    comma-separated string (``"expired, inactive"``). ``None`` and ``""`` are None. Anything else
    (a mapping, a number, a literal that is not a list) is refused: never guessed.
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if not text or text.lower() in {"none", "null"}:
            return None
        if text[0] in "[(":
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                raise LeadpipeConfigError(
                    f"{name} looks like a list but is not a valid list literal: {shown(value)}"
                ) from None
            if not isinstance(parsed, (list, tuple)):
                raise LeadpipeConfigError(f"{name} must be a list, got {shown(value)}")
            return list(parsed)
        if text[0] in "{\"'":
            raise LeadpipeConfigError(
                f"{name} must be a list, a list literal or a comma-separated string, got {shown(value)}"
            )
        return [item.strip() for item in text.split(",") if item.strip()]
    raise LeadpipeConfigError(
        f"{name} must be a list, a list literal or a comma-separated string, "
        f"got {type(value).__name__} {shown(value)}"
    )


def string_list(value: Any, name: str, *, lower: bool = False) -> tuple[str, ...] | None:
    """:func:`value_list` of strings: stripped, blanks and repeats dropped; None when empty."""
    items = value_list(value, name)
    if items is None:
        return None
    strings: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise LeadpipeConfigError(
                f"{name}[{index}] must be a string, got {type(item).__name__} {shown(item)}"
            )
        if item.strip():
            strings.append(item.strip().lower() if lower else item.strip())
    return tuple(dict.fromkeys(strings)) or None


def mapping(value: Any, name: str) -> dict[str, Any] | None:
    """A mapping argument as Airflow may render it (a dict, or a JSON / Python dict literal); None
    when not given (``None`` or ``""``)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        text = value.strip()
        if not text or text.lower() in {"none", "null"}:
            return None
        parsed: Any = None
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                parsed = None
        if isinstance(parsed, dict):
            return parsed
    raise LeadpipeConfigError(
        f"{name} must be a mapping (a dict, or its JSON text), got {type(value).__name__} {shown(value)}"
    )


# -- the hook's settings: connection extras and per-task ``hook_params`` ------------------------

DEFAULT_TIMEOUT = 30.0
#: A connection's ``timeout`` extra: the range the Connections form states.
MIN_TIMEOUT, MAX_TIMEOUT = TIMEOUT_RANGE
DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_BACKOFF = 1.0
MAX_BACKOFF = 30.0


def seconds_setting(
    value: Any, name: str, conn_id: str, default: float, maximum: float, minimum: float | None = None
) -> float:
    """A number of seconds from ``minimum`` (else above 0) to ``maximum``; None or "" is ``default``.

    Bounded above because httpx/httpcore and tenacity fail (or sleep for ever) on huge values."""
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = float("nan")
    low_ok = number >= minimum if minimum is not None else number > 0
    if isinstance(value, bool) or not (low_ok and number <= maximum):
        low = f"from {minimum:g}" if minimum is not None else "above 0 and"
        raise LeadpipeConfigError(
            f"Leadpipe connection '{conn_id}': {name} must be a number of seconds {low} up to "
            f"{maximum:g}, got {value!r}"
        )
    return number


def retry_count_setting(value: Any, conn_id: str) -> int:
    """The ``max_retries`` setting: a whole number from 0 to 10; None or "" is the default."""
    if value is None or value == "":
        return DEFAULT_MAX_RETRIES
    try:
        count = int(str(value))
    except ValueError:
        count = -1
    if isinstance(value, bool) or not 0 <= count <= 10:
        raise LeadpipeConfigError(
            f"Leadpipe connection '{conn_id}': max_retries must be a whole number from 0 to 10, got {value!r}"
        )
    return count


#: The hook settings a task may override (``LeadpipeHook``'s keyword arguments), each checked with
#: the connection extras' own rule.
_OVERRIDES: dict[str, Callable[[Any], Any]] = {
    "timeout": lambda value: seconds_setting(value, "timeout", "", DEFAULT_TIMEOUT, MAX_TIMEOUT),
    "max_retries": lambda value: retry_count_setting(value, ""),
    "retry_backoff": lambda value: seconds_setting(
        value, "retry_backoff", "", DEFAULT_RETRY_BACKOFF, MAX_BACKOFF
    ),
}
HOOK_PARAMS: tuple[str, ...] = tuple(_OVERRIDES)


def hook_params(value: Any) -> dict[str, Any]:
    """Per-task hook settings: a JSON object whose keys are some of :data:`HOOK_PARAMS`.

    Values are checked with the connection extras' own rules (and messages, about ``hook_params``:
    ``hook_params['timeout'] must be a number of seconds above 0 and up to 600, got 0``); keys
    whose value is None are dropped, so ``{}`` and None both mean "the connection's settings".
    """
    if value is None or value == {}:
        return {}  # the common case, and every trigger checks it as it starts
    params = mapping(value, "hook_params") or {}
    unknown = sorted(str(key) for key in params if key not in HOOK_PARAMS)
    if unknown:
        raise LeadpipeConfigError(
            f"hook_params has unknown key(s) {unknown}; expected some of {list(HOOK_PARAMS)}"
        )
    checked = {key: item for key, item in params.items() if item is not None}
    for key, item in checked.items():
        if isinstance(item, bool) or not isinstance(item, (int, float, str)):
            raise LeadpipeConfigError(
                f"hook_params['{key}'] must be a number, got {type(item).__name__} {shown(item)}"
            )
    for key, item in checked.items():
        try:
            _OVERRIDES[key](item)
        except LeadpipeConfigError as exc:
            # "Leadpipe connection '': timeout must be ..." -> "hook_params['timeout'] must be ..."
            rule = str(exc).partition(f"{key} ")[2]
            raise LeadpipeConfigError(f"hook_params['{key}'] {rule}") from None
    return checked


def conn_id(value: Any) -> str:
    """A Leadpipe connection id: a non-blank string (the one check for operators, sensor and trigger)."""
    if not isinstance(value, str) or not value.strip():
        raise LeadpipeConfigError(f"leadpipe_conn_id must be a non-empty string, got {value!r}")
    return value


def has_template(*values: Any) -> bool:
    """True if any value (or any item of a list value) is still to be rendered: a string with Jinja
    markup, or an XComArg (resolved before ``execute``).

    Operators check such arguments once rendered, at the start of ``execute``; all others at
    construction, so a bad literal fails the DAG at parse time.
    """
    for value in values:
        if hasattr(value, "resolve"):
            return True
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            return True
        if isinstance(value, (list, tuple)) and has_template(*value):
            return True
    return False


def visitor_query(
    timeframe: str | None = None,
    domain: str | None = None,
    email: str | None = None,
    *,
    email_name: str = "email",
) -> dict[str, str]:
    """Query parameters for ``GET /v1/data`` (without ``page``); omitted filters are left out.

    :param email_name: what the caller calls the email filter, for the error message.
    """
    query: dict[str, str] = {}
    timeframe = one_of(timeframe, "timeframe", TIMEFRAMES)
    if timeframe is not None:
        query["timeframe"] = timeframe
    domain = optional_str(domain, "domain")
    if domain is not None:
        query["domain"] = check_length(domain, "domain", DOMAIN_LENGTH)
    email = optional_str(email, email_name)
    if email is not None:
        local, at, host = email.partition("@")
        if not (local and at and host) or any(ch.isspace() for ch in email):
            raise LeadpipeConfigError(
                f"{email_name} must be an email address like name@example.com, got {shown(email)}"
            )
        query["email"] = email
    return query


#: Upper bound for parallel page requests: enough to hide latency, too few to hammer the API.
MAX_CONCURRENCY = 16


def concurrency(value: Any) -> int:
    """Number of pages requested at once: a whole number from 1 to 16."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise LeadpipeConfigError(
            f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, got {shown(value)}"
        )
    return value


#: An id that goes into a URL path: RFC 3986 unreserved characters only, so it is sent as given
#: and stays one path segment (no "/", no "%" that a server or proxy could decode into one).
_PATH_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")


def path_id(name: str, value: Any) -> str:
    """An id that becomes one URL path segment (``/v1/data/pixels/{id}``), checked before anything
    is sent: a string of 1-128 letters, digits, ``-``, ``_``, ``.`` or ``~``, not ``.`` or ``..``
    (which would turn the path into another endpoint). Orbit's UUID ids: :func:`uuid_id`.
    Surrounding whitespace (a templated value's newline) is dropped.

    :param name: the argument's name, for the error message.
    """
    checked = optional_str(value, name)
    if checked is None:
        raise LeadpipeConfigError(f"{name} must be an id as the API returns it, got {shown(value)}")
    checked = checked.strip()
    if not _PATH_ID.fullmatch(checked) or not checked.strip("."):
        raise LeadpipeConfigError(
            f"{name} must be 1-128 letters, digits, '-', '_', '.' or '~', and not only dots: it is sent "
            f"as one URL path segment; got {shown(value)}"
        )
    return checked


def whole_number(value: Any, name: str, low: int, high: int | None = None) -> int:
    """A whole number (not a bool) from ``low`` to ``high`` (no upper bound when None)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        raise LeadpipeConfigError(f"{name} must be a whole number {bounds}, got {shown(value)}")
    return value


# -- Orbit audiences ------------------------------------------------------------------------------

RESULT_FORMATS: tuple[str, ...] = ("jsonl", "csv")
RESULT_METHODS: tuple[str, ...] = ("results", "export")
ON_TRUNCATED: tuple[str, ...] = ("fail", "warn")


def uuid_id(value: Any, name: str) -> str:
    """An Orbit id (audience, run, export): a UUID string, returned in its canonical form (hex
    digits and hyphens, so it is always one URL path segment, like a :func:`path_id`)."""
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            pass
    raise LeadpipeConfigError(f"{name} must be a UUID like 3f2c0e1a-...-9b7d, got {shown(value)}")


def optional_uuid_id(value: Any, name: str) -> str | None:
    """:func:`uuid_id`, or None for None or a blank string (e.g. an unset templated field)."""
    return None if optional_str(value, name) is None else uuid_id(value, name)


def positive_seconds(value: Any, name: str, *, zero: bool = False) -> float:
    """A positive (with ``zero``: or 0), finite number of seconds (fractions allowed); numeric strings
    from templates too."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if (
        isinstance(number, bool)
        or not isinstance(number, (int, float))
        or not math.isfinite(number)
        or number < 0
        or (number == 0 and not zero)
    ):
        kind = "a number of seconds >= 0" if zero else "a positive number of seconds"
        raise LeadpipeConfigError(f"{name} must be {kind}, got {shown(value)}")
    return float(number)


def data_date(value: Any, name: str) -> str | None:
    """A ``YYYY-MM-DD`` date (as Orbit's ``dataDate``), or None for None or a blank string."""
    text = optional_str(value, name)
    if text is None:
        return None
    text = text.strip()
    try:
        parse_date(text)
    except ValueError:
        raise LeadpipeConfigError(
            f"{name} must be a date like 2026-05-04 (YYYY-MM-DD), got {shown(value)}"
        ) from None
    return text


def choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (required)."""
    checked = one_of(value, name, allowed)
    if checked is None:
        raise LeadpipeConfigError(f"{name} must be one of {', '.join(allowed)}; got {shown(value)}")
    return checked
