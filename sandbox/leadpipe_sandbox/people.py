"""Deterministic, lazily generated people of an Orbit audience run (results, stats and CSV exports).

Nothing is stored: row ``i`` of a run is computed from ``(seed, run id, i)`` on demand, so a run of
100,000 people costs no memory and a page of 100 costs 100 generations. Within a run, person
numbers go through an affine permutation (as the visitors do), so names and e-mail addresses are
unique and neighbouring rows look unrelated.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from leadpipe_sandbox.visitors import (
    COMPANY_SUFFIXES,
    COMPANY_WORDS,
    FIRST_NAMES,
    JOBS,
    LAST_NAMES,
)

INDUSTRIES = (
    ("Computer Software", "Software & IT Services"),
    ("Information Technology and Services", "Software & IT Services"),
    ("Marketing and Advertising", "Media & Communications"),
    ("Financial Services", "Financial Services"),
    ("Hospital & Health Care", "Healthcare"),
    ("Logistics and Supply Chain", "Transportation & Logistics"),
    ("Retail", "Consumer Goods & Retail"),
    ("Construction", "Construction & Real Estate"),
    ("Real Estate", "Construction & Real Estate"),
    ("Higher Education", "Education"),
    ("Manufacturing", "Manufacturing"),
    ("Renewables & Environment", "Energy & Utilities"),
)
PERSONAL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com")
#: Topics the sandbox knows by id (others get a generic name): (topicId, name, type, industry, category).
TOPICS = (
    (101, "Customer Data Platforms", "product", "Computer Software", "Marketing Technology"),
    (102, "Intent Data", "concept", "Marketing and Advertising", "Sales Intelligence"),
    (103, "Account-Based Marketing", "concept", "Marketing and Advertising", "Marketing Strategy"),
    (104, "CRM Software", "product", "Computer Software", "Sales Technology"),
    (105, "Data Warehousing", "product", "Information Technology and Services", "Data Infrastructure"),
    (106, "Workflow Orchestration", "product", "Computer Software", "Data Infrastructure"),
    (107, "Cloud Cost Management", "concept", "Information Technology and Services", "Cloud Computing"),
    (108, "Sales Engagement", "product", "Computer Software", "Sales Technology"),
)
_TOPIC_BY_ID = {topic[0]: topic for topic in TOPICS}
DEFAULT_TOPIC_IDS = (101, 102)
SCORE_BUCKETS = ((50, 69), (70, 89), (90, 99))
#: CSV columns of ``export.csv`` and stored exports, in order (nested fields in dotted form).
CSV_COLUMNS = (
    "hashedEmail", "firstName", "lastName", "fullName", "businessEmail", "personalEmail", "email",
    "primaryContactEmail", "phone", "linkedinUrl", "headline", "jobTitle", "seniority", "department",
    "company.name", "company.domain", "company.industry", "company.industryGroup",
    "intent.score", "intent.topicOverlap", "intent.matchedTopics",
)  # fmt: skip
#: Result fields whose fill rate the stats report (dotted form, as the API does).
FILL_RATE_FIELDS = (
    "businessEmail", "personalEmail", "phone", "linkedinUrl", "headline", "jobTitle",
    "company.name", "company.domain", "company.industry",
)  # fmt: skip
CSV_CHUNK_ROWS = 500
_DRAWS = struct.Struct(">16I")

_N_FIRST, _N_LAST = len(FIRST_NAMES), len(LAST_NAMES)
_N_COMPANIES = len(COMPANY_WORDS) * len(COMPANY_SUFFIXES)


def _company(index: int) -> dict[str, str]:
    word = COMPANY_WORDS[index % len(COMPANY_WORDS)]
    name = f"{word} {COMPANY_SUFFIXES[(index // len(COMPANY_WORDS)) % len(COMPANY_SUFFIXES)]}"
    industry, group = INDUSTRIES[index % len(INDUSTRIES)]
    return {
        "name": name,
        "domain": name.replace(" ", "").lower() + ".com",
        "industry": industry,
        "industryGroup": group,
    }


def compact(value: Any) -> str:
    """Compact JSON, as the sandbox sends it."""
    return json.dumps(value, separators=(",", ":"))


_COMPANIES = tuple(_company(i) for i in range(_N_COMPANIES))
_COMPANIES_JSON = tuple(compact(company) for company in _COMPANIES)


def topic_ids(config: dict[str, Any]) -> tuple[int, ...]:
    """The audience's topic ids (integers only; the defaults when the config has none)."""
    raw = config.get("topicIds")
    ids = (
        tuple(t for t in raw if isinstance(t, int) and not isinstance(t, bool))
        if isinstance(raw, list)
        else ()
    )
    return ids or DEFAULT_TOPIC_IDS


def _topic(topic_id: int) -> dict[str, Any]:
    known = _TOPIC_BY_ID.get(topic_id)
    if known is None:
        known = (topic_id, f"Topic {topic_id}", "concept", "Computer Software", "General")
    topic_id, name, kind, industry, category = known
    return {"topicId": topic_id, "topicName": name, "type": kind, "industry": industry, "category": category}


@dataclass(frozen=True)
class PeopleSet:
    """The ``count`` people of one run: ``row(i)`` for ``0 <= i < count``."""

    seed: int
    run_id: str
    count: int
    topics: tuple[int, ...] = DEFAULT_TOPIC_IDS
    min_score: int = 50
    max_score: int = 99
    _mult: int = field(init=False, repr=False)
    _offset: int = field(init=False, repr=False)
    _hasher: Any = field(init=False, repr=False)
    _matches: tuple[dict[str, Any], ...] = field(init=False, repr=False)
    _matches_json: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        space = max(self.count, 1)
        rng = random.Random(f"{self.seed}:{self.run_id}:people")
        mult = rng.randrange(1, 2**31) | 1
        while math.gcd(mult, space) != 1:
            mult += 2
        object.__setattr__(self, "_mult", mult)
        object.__setattr__(self, "_offset", rng.randrange(space))
        object.__setattr__(self, "_hasher", hashlib.blake2b(f"{self.seed}:{self.run_id}:".encode()))
        # Every (topicOverlap, matchedTopics) a person can have: 1..n topics from a rotating start.
        # Rows share these objects; they are only ever serialised.
        topics = [_topic(t) for t in self.topics]
        matches = tuple(
            {
                "topicOverlap": overlap,
                "matchedTopics": [topics[(start + n) % len(topics)] for n in range(overlap)],
            }
            for overlap in range(1, len(topics) + 1)
            for start in range(len(topics))
        )
        object.__setattr__(self, "_matches", matches)
        # The same without the braces, to be spliced into a row's "intent" object.
        object.__setattr__(self, "_matches_json", tuple(compact(m)[1:-1] for m in matches))

    @classmethod
    def of_run(cls, seed: int, run_id: str, count: int, config: dict[str, Any]) -> PeopleSet:
        """The people of a run of an audience with this ``config`` (topics and score bounds)."""
        low = config.get("minScore")
        high = config.get("maxScore")
        low = min(max(low, 50), 99) if isinstance(low, int) else 50  # below 50 is clamped, as the API does
        high = min(max(high, low), 99) if isinstance(high, int) else 99
        return cls(seed, run_id, count, topic_ids(config), low, high)

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        """Rows ``start`` to ``stop`` (exclusive; default: the end)."""
        stop = self.count if stop is None else min(stop, self.count)
        return (self.row(i) for i in range(max(start, 0), stop))

    def row(self, index: int) -> dict[str, Any]:
        """Person ``index`` of the run, with the documented result fields."""
        person, company, score, match = self._parts(index)
        person["company"] = _COMPANIES[company]
        person["intent"] = {"score": score, **self._matches[match]}
        return person

    def rows_json(self, start: int, stop: int) -> str:
        """Rows ``start`` to ``stop`` as a compact JSON array (what ``json.dumps`` would give)."""
        return "[" + ",".join(map(self.row_json, range(max(start, 0), min(stop, self.count)))) + "]"

    def row_json(self, index: int) -> str:
        """``json.dumps(row(index))`` (compact), faster: the shared company and topics are pre-encoded.

        JSON encoding costs more than generating a row; the company and matched topics are most of
        each row's bytes and repeat across rows, so they are encoded once per set, not per row.
        """
        person, company, score, match = self._parts(index)
        head = compact(person)[:-1]
        intent = f'{{"score":{score},{self._matches_json[match]}}}'
        return f'{head},"company":{_COMPANIES_JSON[company]},"intent":{intent}}}'

    def _parts(self, index: int) -> tuple[dict[str, Any], int, int, int]:
        """The person's own fields, and the company number, score and topic match they come with."""
        permuted = (self._mult * index + self._offset) % max(self.count, 1)
        first = FIRST_NAMES[permuted % _N_FIRST]
        last = LAST_NAMES[(permuted // _N_FIRST) % _N_LAST]
        company_index = (permuted // (_N_FIRST * _N_LAST)) % _N_COMPANIES
        company = _COMPANIES[company_index]
        suffix = permuted // (_N_FIRST * _N_LAST * _N_COMPANIES) or ""
        # Sixteen stable 32-bit draws from one digest of (seed, run, index).
        hasher = self._hasher.copy()
        hasher.update(b"%d" % index)
        draw = _DRAWS.unpack(hasher.digest())
        title, seniority, department = JOBS[draw[0] % len(JOBS)]
        shape = draw[1] % 20  # 0-1: no business address, 2-9: no personal one, 10-13: no phone
        first_lower, last_lower = first.lower(), last.lower()
        business = None if shape < 2 else f"{first_lower}.{last_lower}{suffix}@{company['domain']}"
        personal = (
            None
            if 2 <= shape < 10
            else f"{first_lower}{last_lower[0]}{10 + draw[2] % 90}{suffix}@"
            f"{PERSONAL_DOMAINS[draw[3] % len(PERSONAL_DOMAINS)]}"
        )
        email = business or personal or ""
        person = {
            "hashedEmail": hashlib.sha256(email.encode()).hexdigest(),
            "firstName": first,
            "lastName": last,
            "fullName": f"{first} {last}",
            "businessEmail": business,
            "personalEmail": personal,
            "email": email,
            "primaryContactEmail": email,
            "phone": None if 10 <= shape < 14 else f"+1{201 + draw[4] % 789}555{100 + draw[5] % 100:04d}",
            "linkedinUrl": f"https://www.linkedin.com/in/{first_lower}-{last_lower}-{draw[6] % 2**24:06x}",
            "headline": f"{title} at {company['name']}",
            "jobTitle": title,
            "seniority": seniority,
            "department": department,
        }
        score = self.min_score + draw[7] % (self.max_score - self.min_score + 1)
        return person, company_index, score, draw[8] % len(self._matches)

    # -- derived views -------------------------------------------------------------------------

    def csv_chunks(self, limit: int | None = None) -> Iterator[bytes]:
        """The CSV export (header first) of the first ``limit`` rows, a few hundred rows per chunk."""
        stop = self.count if limit is None else min(limit, self.count)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for start in range(0, stop, CSV_CHUNK_ROWS):
            writer.writerows(_csv_row(row) for row in self.rows(start, min(start + CSV_CHUNK_ROWS, stop)))
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():  # an empty run: the header alone
            yield buffer.getvalue().encode()

    def csv_digest(self, limit: int | None = None) -> tuple[str, int]:
        """SHA-1 (hex) and byte size of :meth:`csv_chunks`, computed by streaming it once."""
        digest = hashlib.sha1()
        size = 0
        for chunk in self.csv_chunks(limit):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size

    def stats(self) -> dict[str, Any]:
        """``stats`` of a completed run: total, fill rates, score histogram, averages (one pass)."""
        filled = dict.fromkeys(FILL_RATE_FIELDS, 0)
        buckets = [0] * len(SCORE_BUCKETS)
        score_sum = overlap_sum = 0
        for row in self.rows():
            for name in FILL_RATE_FIELDS:
                if _get(row, name) is not None:
                    filled[name] += 1
            score = row["intent"]["score"]
            score_sum += score
            overlap_sum += row["intent"]["topicOverlap"]
            buckets[next(i for i, (_, high) in enumerate(SCORE_BUCKETS) if score <= high)] += 1
        total = self.count
        return {
            "total": total,
            "fillRates": {name: {"count": n, "percent": _percent(n, total)} for name, n in filled.items()},
            "scoreHistogram": [
                {"bucket": f"{low}-{high}", "count": n, "percent": _percent(n, total)}
                for (low, high), n in zip(SCORE_BUCKETS, buckets, strict=True)
            ],
            "averages": {
                "score": round(score_sum / total, 2) if total else None,
                "topicOverlap": round(overlap_sum / total, 2) if total else None,
            },
        }


def _get(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _csv_row(row: dict[str, Any]) -> Sequence[Any]:
    company, intent = row["company"], row["intent"]
    return (
        row["hashedEmail"], row["firstName"], row["lastName"], row["fullName"], row["businessEmail"] or "",
        row["personalEmail"] or "", row["email"], row["primaryContactEmail"], row["phone"] or "",
        row["linkedinUrl"], row["headline"], row["jobTitle"], row["seniority"], row["department"],
        company["name"], company["domain"], company["industry"], company["industryGroup"],
        intent["score"], intent["topicOverlap"], "; ".join(t["topicName"] for t in intent["matchedTopics"]),
    )  # fmt: skip


def _percent(count: int, total: int) -> float:
    return round(count / total * 100, 2) if total else 0.0
