"""Orbit audience configs before an audience exists: validate, preview, the filter catalog and
the topic look-ups (generation 3).

The contract documents the answers of validate and preview but not how an invalid config is
reported; the sandbox decides (docs/sandbox.md): ``validate`` answers 200 with ``valid: false``
and ``errors: [{field, code, message, value?}]``, one per bad key or value; ``preview`` of an
invalid config answers 400 ``VALIDATION_ERROR`` with ``data: {valid: false, errors}`` beside it.
Preview counts are those of the sandbox's generated people (a pool of the key's default audience
size) that pass the filters; its sample is masked (initials, hidden addresses, no phone).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from leadpipe_sandbox.asgi import HttpError, Request
from leadpipe_sandbox.people import INDUSTRIES, TOPICS, PeopleSet
from leadpipe_sandbox.timeutil import utcnow
from leadpipe_sandbox.visitors import JOBS

if TYPE_CHECKING:
    from leadpipe_sandbox.state import KeyState

VALIDATE = "/v1/intent/audiences/validate"
PREVIEW = "/v1/intent/audiences/preview"
FILTERS = "/v1/intent/audiences/filters"
TOPICS_PATH = "/v1/intent/topics"
TOPIC_SEARCH = "/v1/intent/topics/search"
#: Topic discovery needs no API key (documented); with a key, that key's faults apply.
PUBLIC = frozenset({TOPICS_PATH, TOPIC_SEARCH})
SAMPLE_SIZE = 5
#: Topics beyond the ones people are generated for: a second "Intent Data" makes a name ambiguous.
EXTRA_TOPICS = ((109, "Intent Data", "product", "Computer Software", "Sales Intelligence"),)
CATALOG_TOPICS = TOPICS + EXTRA_TOPICS
DECISION_MAKERS = frozenset({"c_suite", "vp", "director"})

#: The catalog's seniority values, by the generated people's own seniority field.
SENIORITY_VALUES = {
    "c_suite": "C-Level", "vp": "VP", "director": "Director", "manager": "Manager", "senior": "Senior",
    "entry": "Entry",
}  # fmt: skip
_SENIORITIES = tuple(dict.fromkeys(SENIORITY_VALUES[job[1]] for job in JOBS))
_DEPARTMENTS = tuple(dict.fromkeys(job[2] for job in JOBS))
_INDUSTRIES = tuple(industry for industry, _ in INDUSTRIES)


class AudienceConfig(BaseModel):
    """The documented config fields are checked; anything else passes through untouched."""

    model_config = ConfigDict(extra="allow")

    topicIds: list[StrictInt] = Field(min_length=1, max_length=250)
    minScore: StrictInt | None = Field(default=None, ge=0, le=99)
    maxScore: StrictInt | None = Field(default=None, ge=50, le=99)
    minTopicOverlap: StrictInt | None = Field(default=None, ge=1, le=250)
    filters: dict[str, Any] | None = None
    sourceUrl: str | None = None


def _filter(key: str, label: str, kind: str, values: tuple[str, ...] | None = None) -> dict[str, Any]:
    value_type = {"multi_select": "string[]", "boolean": "boolean", "text_terms": "string[]"}[kind]
    operators = {"multi_select": ["in"], "boolean": ["eq"], "text_terms": ["contains"]}[kind]
    spec: dict[str, Any] = {
        "key": key, "label": label, "type": kind, "valueType": value_type, "operators": operators,
        "ui": {"control": kind},
    }  # fmt: skip
    if values is not None:
        spec["values"] = [{"value": value, "label": value.replace("_", " ")} for value in values]
    return spec


GROUPS: tuple[dict[str, Any], ...] = (
    {
        "key": "company",
        "label": "Company",
        "description": "Firmographics of the person's employer",
        "filters": [_filter("company.industries", "Industries", "multi_select", _INDUSTRIES)],
    },
    {
        "key": "role",
        "label": "Role",
        "description": "Seniority and function",
        "filters": [
            _filter("role.seniority", "Seniority", "multi_select", _SENIORITIES),
            _filter("role.department", "Department", "multi_select", _DEPARTMENTS),
            _filter("role.isDecisionMaker", "Decision maker", "boolean"),
        ],
    },
    {
        "key": "jobTitle",
        "label": "Job title",
        "description": "Words in the job title",
        "filters": [_filter("jobTitle.include", "Title includes", "text_terms")],
    },
    {
        "key": "contact",
        "label": "Contact data",
        "description": "Which contact fields are known",
        "filters": [
            _filter("contact.hasBusinessEmail", "Has business email", "boolean"),
            _filter("contact.hasPhone", "Has phone", "boolean"),
        ],
    },
)
CATALOG: dict[str, dict[str, Any]] = {spec["key"]: spec for group in GROUPS for spec in group["filters"]}
_MODIFIERS = ("operator", "mode")


def catalog() -> dict[str, Any]:
    return {
        "version": {"status": "catalog", "id": "sandbox-1"},
        "summary": {"groupCount": len(GROUPS), "filterCount": len(CATALOG)},
        "groups": list(GROUPS),
    }


def _flat_filters(filters: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of both documented forms: ``{"role.seniority": ...}`` and nested
    ``{"role": {"isDecisionMaker": true}, "jobTitle": {"include": [...], "includeMode": "any"}}``."""
    groups = {group["key"] for group in GROUPS}
    for key, value in filters.items():
        if key in groups and isinstance(value, dict) and "values" not in value:
            for name, inner in value.items():
                if name.endswith("Mode") and f"{key}.{name.removesuffix('Mode')}" in CATALOG:
                    continue  # includeMode: a modifier of include
                yield f"{key}.{name}", inner
        else:
            yield key, value


def _problem(field: str, code: str, message: str, value: Any = None) -> dict[str, Any]:
    problem = {"field": field, "code": code, "message": message}
    if value is not None:
        problem["value"] = value
    return problem


def _check_filter(key: str, value: Any) -> tuple[Any, list[dict[str, Any]]]:
    """The normalized value of one filter, and its problems."""
    field = f"filters.{key}"
    spec = CATALOG.get(key)
    if spec is None:
        return None, [_problem(field, "UNKNOWN_FILTER", f"Unknown filter key '{key}'", key)]
    if spec["type"] == "boolean":
        if not isinstance(value, bool):
            return None, [_problem(field, "INVALID_VALUE", f"Filter '{key}' takes true or false")]
        return value, []
    raw = value.get("values") if isinstance(value, dict) else value
    if not isinstance(raw, list) or not raw or not all(isinstance(item, str) for item in raw):
        return None, [_problem(field, "INVALID_VALUE", f"Filter '{key}' takes a non-empty list of strings")]
    problems = []
    if spec["type"] == "multi_select":
        allowed = {item["value"] for item in spec["values"]}
        problems = [
            _problem(field, "INVALID_VALUE", f"'{item}' is not a value of filter '{key}'", item)
            for item in raw
            if item not in allowed
        ]
    return {"values": sorted(set(raw)), "operator": spec["operators"][0], "mode": "any"}, problems


def check(body: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The normalized config and every problem of ``body`` (a config)."""
    if not isinstance(body, dict):
        return {}, [_problem("config", "INVALID_TYPE", "The config must be a JSON object")]
    problems: list[dict[str, Any]] = []
    try:
        AudienceConfig.model_validate(body)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_context=False, include_input=False):
            if error["loc"][:1] == ("filters",) and len(error["loc"]) > 1:
                continue
            field = ".".join(str(part) for part in error["loc"]) or "config"
            problems.append(_problem(field, "INVALID_VALUE", f"{field}: {error['msg']}"))
    filters = body.get("filters")
    normalized_filters: dict[str, Any] = {}
    if isinstance(filters, dict):
        for key, value in _flat_filters(filters):
            normal, found = _check_filter(key, value)
            problems.extend(found)
            if not found:
                normalized_filters[key] = normal
    topic_ids = body.get("topicIds")
    ids = sorted({t for t in topic_ids if type(t) is int}) if isinstance(topic_ids, list) else []
    low = body.get("minScore")
    low = min(max(low, 50), 99) if type(low) is int else 50  # below 50 is raised to 50 (documented)
    high = body.get("maxScore")
    normalized = {
        "topicIds": ids,
        "minScore": low,
        "maxScore": high if type(high) is int else 99,
        "minTopicOverlap": body.get("minTopicOverlap") if type(body.get("minTopicOverlap")) is int else 1,
        "filters": dict(sorted(normalized_filters.items())),
    }
    if isinstance(body.get("sourceUrl"), str):
        normalized["sourceUrl"] = body["sourceUrl"]
    return normalized, problems


def config_hash(normalized: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(normalized, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def applied(normalized: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"key": key, "label": CATALOG[key]["label"], "type": CATALOG[key]["type"], "value": value}
        for key, value in normalized["filters"].items()
    ]


def _matcher(filters: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    def ok(row: dict[str, Any]) -> bool:
        for key, value in filters.items():
            values: list[str] = value["values"] if isinstance(value, dict) else []
            if key == "company.industries" and row["company"]["industry"] not in values:
                return False
            if key == "role.seniority" and SENIORITY_VALUES[row["seniority"]] not in values:
                return False
            if key == "role.department" and row["department"] not in values:
                return False
            if key == "role.isDecisionMaker" and (row["seniority"] in DECISION_MAKERS) != value:
                return False
            if key == "jobTitle.include" and not any(v.lower() in row["jobTitle"].lower() for v in values):
                return False
            if key == "contact.hasBusinessEmail" and (row["businessEmail"] is not None) != value:
                return False
            if key == "contact.hasPhone" and (row["phone"] is not None) != value:
                return False
        return True

    return ok


def _hidden(address: str | None) -> str | None:
    if not address:
        return address
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def mask(row: dict[str, Any]) -> dict[str, Any]:
    """A preview sample row: first name and last initial, addresses hidden, no phone or profile."""
    initial = f"{row['lastName'][:1]}."
    return {
        "firstName": row["firstName"],
        "lastName": initial,
        "fullName": f"{row['firstName']} {initial}",
        "businessEmail": _hidden(row["businessEmail"]),
        "personalEmail": _hidden(row["personalEmail"]),
        "email": _hidden(row["email"]),
        "phone": None,
        "linkedinUrl": None,
        "jobTitle": row["jobTitle"],
        "seniority": row["seniority"],
        "department": row["department"],
        "company": row["company"],
        "intent": row["intent"],
    }


def preview(seed: int, pool: int, normalized: dict[str, Any]) -> dict[str, Any]:
    digest = config_hash(normalized)
    people = PeopleSet.of_run(seed, f"preview:{digest}", pool, normalized)
    ok = _matcher(normalized["filters"])
    overlap = normalized["minTopicOverlap"]
    industries: Counter[str] = Counter()
    seniorities: Counter[str] = Counter()
    sample: list[dict[str, Any]] = []
    for row in people.rows():
        if row["intent"]["topicOverlap"] < overlap or not ok(row):
            continue
        industries[row["company"]["industry"]] += 1
        seniorities[SENIORITY_VALUES[row["seniority"]]] += 1
        if len(sample) < SAMPLE_SIZE:
            sample.append(mask(row))
    return {
        "configHash": digest,
        "dataDate": (utcnow().date() - timedelta(days=1)).isoformat(),
        "strategy": "serving_table_in",
        "totalCount": sum(industries.values()),
        "breakdowns": {
            "industries": [{"value": k, "count": n} for k, n in industries.most_common()],
            "seniorities": [{"value": k, "count": n} for k, n in seniorities.most_common()],
        },
        "sample": sample,
        "appliedFilters": applied(normalized),
    }


def _topic(row: tuple[int, str, str, str, str]) -> dict[str, Any]:
    topic_id, name, kind, industry, category = row
    return {"topicId": topic_id, "topicName": name, "type": kind, "industry": industry, "category": category}


def _text(request: Request, name: str, *, required: bool = False) -> str | None:
    value = request.query.get(name)
    if value is None and not required:
        return None
    if value is None or not 1 <= len(value) <= 100:
        raise HttpError(400, f"{name} must be 1 to 100 characters", code="VALIDATION_ERROR")
    return value


def topics(request: Request, *, search: bool) -> list[dict[str, Any]]:
    """``GET /v1/intent/topics`` (``q``, ``type``, ``industry``, ``category``, and ``ids``, a
    comma-separated list: the sandbox's own) or ``/search`` (``q`` required, ``limit`` 1-50)."""
    q = _text(request, "q", required=search)
    wanted = {"type": _text(request, "type"), "industry": _text(request, "industry")}
    if not search:
        wanted["category"] = _text(request, "category")
    rows = [_topic(row) for row in CATALOG_TOPICS]
    rows = [r for r in rows if all(v is None or r[k] == v for k, v in wanted.items())]
    if q is not None:
        rows = [r for r in rows if q.lower() in r["topicName"].lower()]
    ids = request.query.get("ids")
    if ids is not None and not search:
        try:
            chosen = {int(part) for part in ids.split(",")}
        except ValueError:
            raise HttpError(400, "ids must be comma-separated integers", code="VALIDATION_ERROR") from None
        rows = [r for r in rows if r["topicId"] in chosen]
    if search:
        text = request.query.get("limit", "10")
        if not text.isdigit() or not 1 <= int(text) <= 50:
            raise HttpError(400, "limit must be an integer between 1 and 50", code="VALIDATION_ERROR")
        rows = rows[: int(text)]
    return rows


def validate_response(key: KeyState, body: Any) -> dict[str, Any]:
    normalized, problems = check(body)
    if problems:
        return {"valid": False, "configHash": None, "errors": problems}
    return {
        "valid": True,
        "configHash": config_hash(normalized),
        "normalizedConfig": normalized,
        "appliedFilters": applied(normalized),
        "strategy": "serving_table_in",
        "errors": [],
    }


def preview_response(key: KeyState, body: Any) -> dict[str, Any]:
    normalized, problems = check(body)
    if problems:
        raise HttpError(
            400,
            f"The audience config is invalid ({len(problems)} problem(s))",
            code="VALIDATION_ERROR",
            extra={"data": {"valid": False, "errors": problems}},
        )
    return preview(key.orbit.seed, key.orbit.default_people, normalized)
