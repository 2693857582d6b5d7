"""Searching what the stack wrote (logs, the metadata database) for API keys and personal data.

Personal data is every identifying value of the records the sandbox served and the scenarios
wrote to the files the user asked for: e-mail addresses, phone numbers, LinkedIn profiles, full
names and hashed e-mails. A text is searched in one regex pass that picks out everything shaped
like one of those; the candidates are then intersected with the set of values really served.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from tests.distributed.cluster import DistributedAirflow, query

#: The fields of a visitor record or an audience person that identify someone.
PERSONAL_FIELDS = (
    "email",
    "businessEmail",
    "personalEmail",
    "primaryContactEmail",
    "phone",
    "linkedinUrl",
    "fullName",
    "hashedEmail",
)
#: One pass finds every candidate; group 1 is the second word of a "First Last" name.
_CANDIDATES = re.compile(
    r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # an e-mail address
    r"|\+1-?\d{3}-?\d{3}-?\d{4}"  # a phone number (+1-201-555-0123, +12015550123)
    r"|https://www\.linkedin\.com/in/[\w-]+"  # a LinkedIn profile
    r"|\b[0-9a-f]{64}\b"  # a SHA-256 (hashed e-mail)
    r"|\b[A-Z][a-z]+(?= ([A-Z][a-z]+)\b)"  # the first word of "First Last"
)


def personal_values(records: Iterable[dict[str, Any]]) -> set[str]:
    """Every identifying value of these records (visitor records or audience people)."""
    return {str(value) for record in records for name in PERSONAL_FIELDS if (value := record.get(name))}


def candidates(text: str) -> set[str]:
    """Everything in ``text`` shaped like a personal value (a superset of what it holds)."""
    return {f"{match[0]} {match[1]}" if match[1] else match[0] for match in _CANDIDATES.finditer(text)}


def read_jsonl(lines: Iterable[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.strip()]


def leaks(text: str, personal: set[str], keys: Iterable[str]) -> list[str]:
    """The API keys and personal values found in ``text``."""
    return sorted({key for key in keys if key in text} | (candidates(text) & personal))


def metadata_rows(cluster: DistributedAirflow) -> dict[str, str]:
    """Every row of every table of the metadata database as text (``row::text``), by table.

    Encrypted columns stay encrypted here: :func:`trigger_kwargs` decrypts the triggers' kwargs.
    """
    url = cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    tables = [name for (name,) in query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    return {
        table: "\n".join(row for (row,) in query(url, f'SELECT t::text FROM "{table}" t')) for table in tables
    }


def trigger_kwargs(cluster: DistributedAirflow) -> list[str]:
    """The decrypted kwargs of every trigger in the metadata database (JSON text, one per trigger)."""
    from cryptography.fernet import Fernet

    fernet = Fernet(cluster.env["AIRFLOW__CORE__FERNET_KEY"].encode())
    rows = query(cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], "SELECT kwargs FROM trigger")
    # Airflow encrypts them with the fernet key; a value starting with "{" was stored in clear.
    return [
        kwargs if kwargs.startswith("{") else fernet.decrypt(kwargs.encode()).decode() for (kwargs,) in rows
    ]
