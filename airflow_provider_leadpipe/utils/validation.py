"""Every argument parser of the provider, run before anything is sent.

- Templated-or-not: :func:`has_template`.
- Scalars: :func:`boolean`, :func:`number`, :func:`finite_number`, :func:`conn_id`, :func:`path_id`,
  :func:`uuid_id`, :func:`concurrency`, :func:`if_exists_policy`.
- What Airflow renders for a list or mapping argument: :func:`value_list`, :func:`string_list`,
  :func:`path_list`, :func:`mapping`.
- Per-task hook settings: :func:`hook_params`.
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
import datetime
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError

#: ``timeframe`` values ``GET /v1/data`` accepts.
TIMEFRAMES: tuple[str, ...] = ("24h", "7d", "14d", "30d", "90d", "all")
PIXEL_STATUSES: tuple[str, ...] = ("active", "paused")
IF_EXISTS: tuple[str, ...] = ("error", "return")
MAX_PATHS = 50
PATH_LENGTH = (2, 500)
DOMAIN_LENGTH = (1, 255)
NAME_LENGTH = (1, 255)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _optional_str(value: Any, name: str) -> str | None:
    """None for None or a blank string; the string itself otherwise; an error for any other type."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise LeadpipeConfigError(f"{name} must be a string, got {type(value).__name__} {_shown(value)}")
    return value if value.strip() else None


def _check_length(value: str, name: str, bounds: tuple[int, int]) -> str:
    low, high = bounds
    if not low <= len(value) <= high:
        raise LeadpipeConfigError(
            f"{name} must be {low}-{high} characters long, got {len(value)}: {_shown(value)}"
        )
    return value


def _one_of(value: Any, name: str, allowed: tuple[str, ...]) -> str | None:
    value = _optional_str(value, name)
    if value is not None and value not in allowed:
        raise LeadpipeConfigError(f"{name} must be one of {', '.join(allowed)}; got {_shown(value)}")
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
    raise LeadpipeConfigError(f"{name} must be true or false, got {_shown(value)}")


def number(value: Any, name: str, *, maximum: float | None = None, whole: bool = False) -> int | float | None:
    """None (the check is off), or a finite number >= 0 (and <= ``maximum``).

    Numeric strings (what a template renders) are accepted; ``""``, ``"None"`` and ``"null"`` are None.
    A whole value comes back as an ``int``.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
        return None
    kind = "a whole number" if whole else "a number"
    limits = f" from 0 to {maximum:g}" if maximum is not None else " >= 0"
    problem = f"{name} must be {kind}{limits} (or None), got {_shown(value)}"
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
        raise LeadpipeConfigError(f"{name} must be a finite number, got {_shown(value)}")
    if minimum is not None and value < minimum:
        raise LeadpipeConfigError(f"{name} must be >= {minimum:g}, got {_shown(value)}")
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
                    f"{name} looks like a list but is not a valid list literal: {_shown(value)}"
                ) from None
            if not isinstance(parsed, (list, tuple)):
                raise LeadpipeConfigError(f"{name} must be a list, got {_shown(value)}")
            return list(parsed)
        if text[0] in "{\"'":
            raise LeadpipeConfigError(
                f"{name} must be a list, a list literal or a comma-separated string, got {_shown(value)}"
            )
        return [item.strip() for item in text.split(",") if item.strip()]
    raise LeadpipeConfigError(
        f"{name} must be a list, a list literal or a comma-separated string, "
        f"got {type(value).__name__} {_shown(value)}"
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
                f"{name}[{index}] must be a string, got {type(item).__name__} {_shown(item)}"
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
        f"{name} must be a mapping (a dict, or its JSON text), got {type(value).__name__} {_shown(value)}"
    )


#: The hook settings a task may override (``LeadpipeHook``'s keyword arguments).
HOOK_PARAMS: tuple[str, ...] = ("timeout", "max_retries", "retry_backoff")


def hook_params(value: Any) -> dict[str, Any]:
    """Per-task hook settings: a JSON object whose keys are some of :data:`HOOK_PARAMS`.

    Values are checked with the connection extras' own rules (and messages); keys whose value is
    None are dropped, so ``{}`` and None both mean "the connection's settings".
    """
    if value is None or value == {}:
        return {}  # the common case, and every trigger checks it as it starts
    # The hook's settings module owns the rules for these settings; imported here to keep them one.
    from airflow_provider_leadpipe.hooks import settings

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
                f"hook_params['{key}'] must be a number, got {type(item).__name__} {_shown(item)}"
            )
    settings.check_overrides(checked)
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
    timeframe = _one_of(timeframe, "timeframe", TIMEFRAMES)
    if timeframe is not None:
        query["timeframe"] = timeframe
    domain = _optional_str(domain, "domain")
    if domain is not None:
        query["domain"] = _check_length(domain, "domain", DOMAIN_LENGTH)
    email = _optional_str(email, email_name)
    if email is not None:
        local, at, host = email.partition("@")
        if not (local and at and host) or any(ch.isspace() for ch in email):
            raise LeadpipeConfigError(
                f"{email_name} must be an email address like name@example.com, got {_shown(email)}"
            )
        query["email"] = email
    return query


def if_exists_policy(value: Any) -> str:
    """``"error"`` or ``"return"``: what to do when a pixel already exists for the domain."""
    return choice(value, "if_exists", IF_EXISTS)


def path_list(value: Any, name: str) -> list[str] | None:
    """A path-prefix list: at most 50 entries, each starting with "/" and 2-500 characters long.

    Rendered forms are read by :func:`value_list`. None (or ``""``) means "not given"; an empty
    list (``[]`` or ``"[]"``) is returned as ``[]`` (the caller decides what it means).
    """
    if isinstance(value, bytes) or not (value is None or isinstance(value, (str, Sequence))):
        raise LeadpipeConfigError(
            f"{name} must be a list of path prefixes like ['/blog', '/pricing'], "
            f"got {type(value).__name__} {_shown(value)}"
        )
    paths = value_list(value, name)
    if paths is None:
        return None
    if len(paths) > MAX_PATHS:
        raise LeadpipeConfigError(f"{name} has {len(paths)} entries; Leadpipe allows at most {MAX_PATHS}")
    for index, path in enumerate(paths):
        where = f"{name}[{index}]"
        if not isinstance(path, str):
            raise LeadpipeConfigError(f"{where} must be a string, got {type(path).__name__} {_shown(path)}")
        if not path.startswith("/"):
            raise LeadpipeConfigError(f"{where} must start with '/', got {_shown(path)}")
        _check_length(path, where, PATH_LENGTH)
    return paths


def _exclusive(included: list[str] | None, excluded: list[str] | None) -> None:
    if included and excluded:
        raise LeadpipeConfigError(
            "included_paths and excluded_paths are mutually exclusive: a pixel tracks either only the "
            "listed prefixes (included_paths) or everything except them (excluded_paths)"
        )


def create_pixel_body(
    domain: Any, name: Any = None, included_paths: Any = None, excluded_paths: Any = None
) -> dict[str, Any]:
    """JSON body for ``POST /v1/data/pixels``; empty path lists are left out."""
    checked_domain = _optional_str(domain, "domain")
    if checked_domain is None:
        raise LeadpipeConfigError(f"domain is required to create a pixel, got {_shown(domain)}")
    body: dict[str, Any] = {"domain": _check_length(checked_domain, "domain", DOMAIN_LENGTH)}
    checked_name = _optional_str(name, "name")
    if checked_name is not None:
        body["name"] = _check_length(checked_name, "name", NAME_LENGTH)
    included = path_list(included_paths, "included_paths")
    excluded = path_list(excluded_paths, "excluded_paths")
    _exclusive(included, excluded)
    if included:
        body["includedPaths"] = included
    if excluded:
        body["excludedPaths"] = excluded
    return body


def update_pixel_body(
    status: Any = None, included_paths: Any = None, excluded_paths: Any = None
) -> dict[str, Any]:
    """JSON body for ``PATCH /v1/data/pixels/{id}``.

    For each path list: ``None`` leaves it unchanged (the key is not sent); ``[]`` clears it (sent
    as JSON ``null``, which is how Leadpipe clears a list); a non-empty list replaces it. Setting
    one list while clearing the other is allowed (that is how a pixel switches from a denylist to
    an allowlist); setting both is not.
    """
    body: dict[str, Any] = {}
    checked_status = _one_of(status, "status", PIXEL_STATUSES)
    if checked_status is not None:
        body["status"] = checked_status
    included = path_list(included_paths, "included_paths")
    excluded = path_list(excluded_paths, "excluded_paths")
    _exclusive(included, excluded)
    for key, paths in (("includedPaths", included), ("excludedPaths", excluded)):
        if paths is not None:
            body[key] = paths or None
    if not body:
        raise LeadpipeConfigError(
            "nothing to update: give status ('active' or 'paused'), included_paths or excluded_paths "
            "(a list of prefixes, or [] to clear the list)"
        )
    return body


#: Upper bound for parallel page requests: enough to hide latency, too few to hammer the API.
MAX_CONCURRENCY = 16


def concurrency(value: Any) -> int:
    """Number of pages requested at once: a whole number from 1 to 16."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise LeadpipeConfigError(
            f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, got {_shown(value)}"
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
    checked = _optional_str(value, name)
    if checked is None:
        raise LeadpipeConfigError(f"{name} must be an id as the API returns it, got {_shown(value)}")
    checked = checked.strip()
    if not _PATH_ID.fullmatch(checked) or not checked.strip("."):
        raise LeadpipeConfigError(
            f"{name} must be 1-128 letters, digits, '-', '_', '.' or '~', and not only dots: it is sent "
            f"as one URL path segment; got {_shown(value)}"
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
        raise LeadpipeConfigError(f"{name} must be a whole number {bounds}, got {_shown(value)}")
    return value


# -- Orbit audiences ------------------------------------------------------------------------------

AUDIENCE_STATUSES: tuple[str, ...] = ("draft", "active", "paused")
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
    raise LeadpipeConfigError(f"{name} must be a UUID like 3f2c0e1a-...-9b7d, got {_shown(value)}")


def optional_uuid_id(value: Any, name: str) -> str | None:
    """:func:`uuid_id`, or None for None or a blank string (e.g. an unset templated field)."""
    return None if _optional_str(value, name) is None else uuid_id(value, name)


def positive_seconds(value: Any, name: str) -> float:
    """A positive, finite number of seconds (fractions allowed); numeric strings from templates too."""
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
        or number <= 0
    ):
        raise LeadpipeConfigError(f"{name} must be a positive number of seconds, got {_shown(value)}")
    return float(number)


def data_date(value: Any, name: str) -> str | None:
    """A ``YYYY-MM-DD`` date (as Orbit's ``dataDate``), or None for None or a blank string."""
    text = _optional_str(value, name)
    if text is None:
        return None
    text = text.strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        datetime.date.fromisoformat(text)
    except ValueError:
        raise LeadpipeConfigError(
            f"{name} must be a date like 2026-05-04 (YYYY-MM-DD), got {_shown(value)}"
        ) from None
    return text


def choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (required)."""
    checked = _one_of(value, name, allowed)
    if checked is None:
        raise LeadpipeConfigError(f"{name} must be one of {', '.join(allowed)}; got {_shown(value)}")
    return checked


def audience_name(value: Any) -> str:
    """An audience name: a non-blank string of at most 255 characters."""
    name = _optional_str(value, "name")
    if name is None:
        raise LeadpipeConfigError(
            f"name must be the audience's name (a non-empty string), got {_shown(value)}"
        )
    return _check_length(name, "name", NAME_LENGTH)


def audience_config(value: Any) -> dict[str, Any]:
    """An audience ``config`` (required): a dict, or its JSON / Python literal as a template renders
    it (:func:`mapping`); passed to Orbit as it is."""
    config = mapping(value, "config") if isinstance(value, str) else value
    if isinstance(config, Mapping):
        return dict(config)
    raise LeadpipeConfigError(
        f"config must be a dict (the audience's Orbit config, e.g. {{'topicIds': [101]}}), "
        f"got {type(value).__name__} {_shown(value)}"
    )


def audience_status(value: Any) -> str | None:
    """``draft``, ``active``, ``paused``, or None (leave the status as it is)."""
    return _one_of(value, "status", AUDIENCE_STATUSES)
