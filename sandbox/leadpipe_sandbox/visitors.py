"""Deterministic, lazily generated visitor records for ``GET /v1/data``.

Nothing is stored: record ``i`` is computed from ``(seed, i)`` on demand, so a data set of any size
costs no memory and a page costs 50 generations. The layout is chosen so that every filter is
answered by arithmetic instead of a scan:

* records are ordered newest first and ``visitedAt`` falls strictly as ``i`` grows, so a timeframe
  is a prefix of any index sequence (found by bisection);
* record ``i`` is on site ``domains[i % D]``, so a domain filter is the progression ``k, k+D, ...``;
* record ``i`` belongs to person ``i % P`` (about three visits each, spread over the horizon), and a
  person's e-mail address encodes the person number, so an e-mail filter decodes the address and
  visits ``p, p+P, ...`` (a visitor's journey).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
import random
import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from leadpipe_sandbox.timeutil import iso

PAGE_SIZE = 50
HORIZON = timedelta(days=180)
TIMEFRAMES: dict[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "14d": timedelta(days=14),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}
DEFAULT_DOMAINS = ("acme.io", "shop.acme.io", "docs.acme.io")
VISITS_PER_PERSON = 3

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Oliver", "Sophia", "Elijah", "Isabella", "James",
    "Mia", "William", "Amelia", "Benjamin", "Harper", "Lucas", "Evelyn", "Henry", "Abigail", "Theodore",
    "Emily", "Jack", "Ella", "Levi", "Elizabeth", "Alexander", "Camila", "Mateo", "Luna", "Daniel",
    "Sofia", "Michael", "Avery", "Mason", "Mila", "Sebastian", "Aria", "Ethan", "Scarlett", "Logan",
    "Penelope", "Owen", "Layla", "Samuel", "Chloe", "Jacob", "Victoria", "Asher", "Madison", "Aiden",
    "Eleanor", "John", "Grace", "Joseph", "Nora", "Wyatt", "Riley", "David", "Zoey", "Leo",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes",
)  # fmt: skip
COMPANY_WORDS = (
    "Northwind", "Bluebird", "Summit", "Granite", "Harbor", "Lumen", "Cobalt", "Evergreen", "Redwood",
    "Silverline", "Brightpath", "Ironclad", "Meridian", "Keystone", "Tidewater", "Pinnacle", "Copperleaf",
    "Foxglove", "Stonebridge", "Clearwater", "Skyward", "Oakridge", "Bellweather", "Driftwood",
)  # fmt: skip
COMPANY_SUFFIXES = (
    "Analytics", "Systems", "Labs", "Logistics", "Health", "Capital", "Software", "Media", "Robotics",
    "Foods", "Energy", "Partners",
)  # fmt: skip
INDUSTRIES = (
    "Computer Software", "Information Technology and Services", "Marketing and Advertising",
    "Financial Services", "Hospital & Health Care", "Logistics and Supply Chain", "Retail",
    "Construction", "Real Estate", "Higher Education", "Manufacturing", "Renewables & Environment",
)  # fmt: skip
EMPLOYEE_RANGES = ("1-10", "11-50", "51-200", "201-500", "501-1000", "1001-5000", "5001-10000")
REVENUE_RANGES = ("<$1M", "$1M-$10M", "$10M-$50M", "$50M-$100M", "$100M-$500M", "$500M+")
JOBS = (
    ("Chief Executive Officer", "c_suite", "executive"),
    ("Chief Marketing Officer", "c_suite", "marketing"),
    ("VP of Sales", "vp", "sales"),
    ("VP of Engineering", "vp", "engineering"),
    ("Director of Marketing", "director", "marketing"),
    ("Director of Operations", "director", "operations"),
    ("Head of Growth", "director", "marketing"),
    ("Engineering Manager", "manager", "engineering"),
    ("Sales Manager", "manager", "sales"),
    ("Account Executive", "senior", "sales"),
    ("Senior Software Engineer", "senior", "engineering"),
    ("Product Manager", "manager", "product"),
    ("Data Analyst", "entry", "finance"),
    ("Marketing Specialist", "entry", "marketing"),
    ("Customer Success Manager", "manager", "customer_success"),
)  # fmt: skip
LOCATIONS = (
    ("Austin", "TX"), ("New York", "NY"), ("San Francisco", "CA"), ("Seattle", "WA"), ("Denver", "CO"),
    ("Chicago", "IL"), ("Boston", "MA"), ("Atlanta", "GA"), ("Miami", "FL"), ("Portland", "OR"),
    ("Nashville", "TN"), ("Phoenix", "AZ"), ("Raleigh", "NC"), ("Minneapolis", "MN"), ("San Diego", "CA"),
)  # fmt: skip
PAGES = (
    "/", "/pricing", "/features", "/integrations", "/blog/visitor-identification-101",
    "/blog/b2b-intent-data", "/case-studies", "/docs/getting-started", "/contact", "/demo",
)  # fmt: skip
REFERRERS = (
    None, "https://www.google.com/", "https://www.linkedin.com/", "https://www.bing.com/",
    "https://news.ycombinator.com/", "https://duckduckgo.com/",
)  # fmt: skip
_EMAIL = re.compile(r"^([a-z]+)\.([a-z]+)(\d*)@(.+)$")


class _Draw:
    """Up to 16 stable pseudo-random draws for one entity, taken from a BLAKE2b digest of its identity.

    ``random.Random(f"{seed}:{kind}:{index}")`` would do the same job, but seeding a Mersenne
    Twister costs ~6 us and a record needs three of them; one digest costs ~0.5 us, which makes a
    50-record page about three times cheaper.
    """

    __slots__ = ("_digest", "_position")

    def __init__(self, seed: int, kind: str, index: int) -> None:
        self._digest = hashlib.blake2b(f"{seed}:{kind}:{index}".encode()).digest()  # 64 bytes
        self._position = 0

    def below(self, bound: int) -> int:
        """A number in ``range(bound)`` (modulo bias < 1e-6 for the small bounds used here)."""
        chunk = self._digest[self._position : self._position + 4]
        self._position += 4
        return int.from_bytes(chunk, "big") % bound

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.below(len(options))]

    def between(self, low: int, high: int) -> int:
        """A number in ``[low, high]``."""
        return low + self.below(high - low + 1)


def _unit(seed: int, index: int) -> float:
    """A stable number in [0, 1) for record ``index`` (cheap: used inside bisection)."""
    digest = hashlib.blake2b(f"{seed}:age:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _company_name(index: int) -> str:
    word = COMPANY_WORDS[index % len(COMPANY_WORDS)]
    return f"{word} {COMPANY_SUFFIXES[(index // len(COMPANY_WORDS)) % len(COMPANY_SUFFIXES)]}"


def _company_domain(index: int) -> str:
    return _company_name(index).replace(" ", "").lower() + ".com"


@functools.lru_cache(maxsize=4096)
def _company(seed: int, index: int) -> dict[str, Any]:
    """Company ``index`` (cached and shared between records: treat as read-only)."""
    rng = _Draw(seed, "company", index)
    city, state = rng.choice(LOCATIONS)
    domain = _company_domain(index)
    return {
        "name": _company_name(index),
        "domain": domain,
        "industry": rng.choice(INDUSTRIES),
        "employeeRange": rng.choice(EMPLOYEE_RANGES),
        "revenueRange": rng.choice(REVENUE_RANGES),
        "linkedinUrl": f"https://www.linkedin.com/company/{domain.removesuffix('.com')}",
        "location": {"city": city, "state": state, "country": "US"},
    }


_N_FIRST, _N_LAST = len(FIRST_NAMES), len(LAST_NAMES)
_N_COMPANIES = len(COMPANY_WORDS) * len(COMPANY_SUFFIXES)
_FIRST_INDEX = {name.lower(): i for i, name in enumerate(FIRST_NAMES)}
_LAST_INDEX = {name.lower(): i for i, name in enumerate(LAST_NAMES)}
_COMPANY_INDEX = {_company_domain(i): i for i in range(_N_COMPANIES)}


class VisitorSet:
    """``count`` visitor records of one organisation, the newest visited at ``anchor``."""

    def __init__(
        self, seed: int, count: int, anchor: datetime, domains: Sequence[str] = DEFAULT_DOMAINS
    ) -> None:
        self.seed = seed
        self.count = count
        self.anchor = anchor
        self.domains = tuple(domains)
        self.people = max(1, math.ceil(count / VISITS_PER_PERSON))
        # Persons are numbered through an affine permutation q = (a*p + b) mod P, so neighbouring
        # records get unrelated names; a must be coprime to P for the mapping to be invertible.
        rng = random.Random(f"{seed}:people:{self.people}")
        self._mult = rng.randrange(1, 2**31) | 1
        while math.gcd(self._mult, self.people) != 1:
            self._mult += 2
        self._mult_inverse = pow(self._mult, -1, self.people)
        self._offset = rng.randrange(self.people)

    # -- queries -------------------------------------------------------------------------------

    def query(
        self,
        *,
        page: int = 1,
        timeframe: str = "all",
        domain: str | None = None,
        email: str | None = None,
        now: datetime,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of matching records (newest first) and the number of matches."""
        indices: Sequence[int] = range(self.count)
        if email is not None:
            person = self.person_of_email(email)
            if person is None:
                return [], 0
            indices = range(person, self.count, self.people)
        if domain is not None:
            site = self._domain_index(domain)
            if site is None:
                return [], 0
            if email is None:
                indices = range(site, self.count, len(self.domains))
            else:
                indices = [i for i in indices if i % len(self.domains) == site]
        window = TIMEFRAMES[timeframe]
        if window is not None:
            max_age = (window - (now - self.anchor)).total_seconds()
            indices = indices[: bisect.bisect_right(indices, max_age, key=self._age_seconds)]
        start = (page - 1) * PAGE_SIZE
        return [self.record(i) for i in indices[start : start + PAGE_SIZE]], len(indices)

    def person_of_email(self, email: str) -> int | None:
        """The person number behind a generated address, or ``None`` for any other address."""
        match = _EMAIL.match(email.strip().lower())
        if not match:
            return None
        first, last, suffix, host = match.groups()
        if first not in _FIRST_INDEX or last not in _LAST_INDEX or host not in _COMPANY_INDEX:
            return None
        if suffix.startswith("0"):  # never generated: suffixes are 1, 2, ... without leading zeros
            return None
        permuted = _FIRST_INDEX[first] + _N_FIRST * (
            _LAST_INDEX[last] + _N_LAST * (_COMPANY_INDEX[host] + _N_COMPANIES * int(suffix or 0))
        )
        if permuted >= self.people:
            return None
        return (self._mult_inverse * (permuted - self._offset)) % self.people

    # -- generation ----------------------------------------------------------------------------

    def record(self, index: int) -> dict[str, Any]:
        """Record ``index`` (0 = most recent visit)."""
        person = self.person(index % self.people)
        rng = _Draw(self.seed, "visit", index)
        site = self.domains[index % len(self.domains)]
        first_page = rng.below(len(PAGES))
        pages_viewed = rng.between(1, 12)
        step = rng.between(1, (len(PAGES) - 1) // 2)  # three distinct pages
        pages = [PAGES[(first_page + n * step) % len(PAGES)] for n in range(min(pages_viewed, 3))]
        id_bytes = hashlib.blake2b(f"{self.seed}:id:{index}".encode(), digest_size=16).digest()
        return {
            "id": str(uuid.UUID(bytes=id_bytes, version=4)),
            **person,
            "visit": {
                "domain": site,
                "pageUrl": f"https://{site}{pages[0]}",
                "referrer": rng.choice(REFERRERS),
                "visitedAt": iso(self.anchor - timedelta(seconds=self._age_seconds(index))),
                "durationSeconds": rng.between(5, 900),
                "pagesViewed": pages_viewed,
                "pages": [f"https://{site}{page}" for page in pages],
            },
        }

    def person(self, person: int) -> dict[str, Any]:
        """The person-level fields shared by all visits of person ``person``."""
        permuted = (self._mult * person + self._offset) % self.people
        first = FIRST_NAMES[permuted % _N_FIRST]
        last = LAST_NAMES[(permuted // _N_FIRST) % _N_LAST]
        company_index = (permuted // (_N_FIRST * _N_LAST)) % _N_COMPANIES
        suffix = permuted // (_N_FIRST * _N_LAST * _N_COMPANIES)
        company = _company(self.seed, company_index)
        rng = _Draw(self.seed, "person", person)
        title, seniority, department = rng.choice(JOBS)
        city, state = rng.choice(LOCATIONS)
        handle = f"{first}-{last}".lower()
        return {
            "email": f"{first}.{last}{suffix or ''}@{company['domain']}".lower(),
            "firstName": first,
            "lastName": last,
            "fullName": f"{first} {last}",
            "jobTitle": title,
            "seniority": seniority,
            "department": department,
            "linkedinUrl": f"https://www.linkedin.com/in/{handle}-{rng.below(2**24):06x}",
            "phone": f"+1-{rng.between(201, 989)}-555-{rng.between(100, 199):04d}",
            "location": {"city": city, "state": state, "country": "US"},
            "company": company,
        }

    def _age_seconds(self, index: int) -> float:
        """Seconds between ``anchor`` and the visit; strictly increasing in ``index``."""
        step = HORIZON.total_seconds() / max(self.count, 1)
        return (index + _unit(self.seed, index)) * step

    def _domain_index(self, domain: str) -> int | None:
        wanted = domain.strip().lower()
        return next((i for i, d in enumerate(self.domains) if d.lower() == wanted), None)
