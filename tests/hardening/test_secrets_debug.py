"""What Airflow itself prints about the key at DEBUG, under ``airflow dags test``, and that the
provider adds no copy of its own.

Airflow 3's in-process supervisor logs every secret registration it is sent as
``Sending request msg=MaskSecret(value='<the secret>', ...)``, in clear: the value is inside a
message object that the secrets masker does not look into. Airflow registers the connection's
password as stored on every read of the connection; the provider registers only what the masker
does not already hide whole (the stripped key when the password is padded, once per process).
These tests run the real CLI at DEBUG and count each line that quotes the key; docs/security.md
states the same per version.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
from airflow.providers.common.compat.version_compat import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_1_PLUS,
    AIRFLOW_V_3_3_PLUS,
)

from airflow_provider_leadpipe.hooks import leadpipe as hook_module
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from tests.hardening.figures import record

DAG_ID = "leadpipe_credit_gated_pull"
MASK_LINE = re.compile(r"msg=MaskSecret\(value=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")


def _dags_test(tmp_path: Path, password: str, key: str, sandbox) -> str:
    """``airflow dags test`` of the gated pull at DEBUG (its sensor deferring once, so the trigger
    reads the connection too); everything it printed."""
    conn = {**json.loads(sandbox.connection_json(key)), "password": password}
    # A copy of the migrated metadata DB of its own: the CLI writing to the SQLite file this
    # process holds open left it "malformed" for the tests after it (seen with test_secrets.py first).
    db = tmp_path / "airflow.db"
    with sqlite3.connect(_session_db()) as source, sqlite3.connect(db) as copy:
        source.backup(copy)
    env = {
        **os.environ,  # the tests' AIRFLOW_HOME and DAG folder
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        "AIRFLOW_CONN_LEADPIPE_DEFAULT": json.dumps(conn),
        "LEADPIPE_EXAMPLE_POKE_INTERVAL": "0.2",
        "LEADPIPE_EXAMPLE_POLL_INTERVAL": "0.2",
    }
    run_conf = {"output_dir": str(tmp_path / "out"), "timeframe": "24h", "min_credits": 1}
    airflow = Path(sys.executable).with_name("airflow")
    proc = subprocess.run(
        [str(airflow), "dags", "test", DAG_ID, "-c", json.dumps(run_conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def _session_db() -> str:
    """The file of the tests' SQLite metadata DB (tests/conftest.py)."""
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.startswith("sqlite:///"), url
    return url.removeprefix("sqlite:///")


def _lines_quoting(output: str, key: str) -> tuple[Counter[str], list[str]]:
    """The values of the ``MaskSecret`` lines that quote ``key``, and any other line quoting it."""
    registered: Counter[str] = Counter()
    others = []
    for line in output.splitlines():
        if key not in line:
            continue
        match = MASK_LINE.search(line)
        if match:
            registered[ast.literal_eval(match.group(1))] += 1
        else:
            others.append(line)
    return registered, others


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.parametrize("padded", [False, True], ids=["password as sent", "padded password"])
def test_airflow_dags_test_at_debug_prints_each_registration_of_the_key_once(
    airflow_db, leadpipe_sandbox, tmp_path, padded
):
    key = f"sk_live_DEBUG_{uuid.uuid4().hex}"
    leadpipe_sandbox.configure_key(key, scenario="recovering")  # exhausted for 3 account calls
    stored = f" {key}\t" if padded else key
    output = _dags_test(tmp_path, stored, key, leadpipe_sandbox)
    assert "[DAG TEST] running trigger in line" in output  # the async path ran too

    registered, others = _lines_quoting(output, key)
    assert others == [], others  # nothing but Airflow's registration lines quotes the key
    # The tasks' reads of the connection (a "Connection Retrieved" line each, 3.x), not counting
    # the inline trigger's.
    in_tasks = re.sub(r"running trigger in line.*?Trigger completed", "", output, flags=re.S)
    sync_reads = in_tasks.count("Connection Retrieved 'leadpipe_default'")
    if not AIRFLOW_V_3_0_PLUS:  # Airflow 2: masking is process-local, nothing is sent or printed
        assert registered == Counter(), registered
    else:
        assert sync_reads == 3, sync_reads  # the sensor's poke, the pull, the account check
        # Airflow's own lines, as each version prints them (the password as stored: padding kept).
        if AIRFLOW_V_3_3_PLUS:  # one per task read; the inline trigger's async read sends none
            airflow = Counter({stored: sync_reads})
        elif AIRFLOW_V_3_1_PLUS:  # one per read, the inline trigger's included
            airflow = Counter({stored: sync_reads + 1})
        else:  # 3.0: three per task read, one of them URL-quoted
            airflow = Counter({stored: 2 * sync_reads}) + Counter({quote(stored): sync_reads})
        # The provider adds only a distinct stripped form, once.
        assert registered == airflow + Counter({key: 1} if padded else {}), (sync_reads, registered)
    record(
        "secrets",
        "airflow dags test at DEBUG (deferring sensor, pull): only Airflow's own MaskSecret lines "
        "quote the key (count per version in docs/security.md); the provider adds one only for a "
        "padded password's stripped key",
        events=sum(registered.values()),
        hits=len(others),
    )


def test_the_hook_registers_only_what_the_masker_does_not_hide(leadpipe_sandbox, monkeypatch):
    """Sync and async: a key stored as sent is not registered again (Airflow registered it when it
    read the connection); a padded one is registered stripped, once, however many hooks read it."""
    sent: list[str] = []
    real = hook_module.mask_secret

    def recording(secret: str, *args: object, **kwargs: object) -> None:
        sent.append(secret)
        real(secret, *args, **kwargs)

    async def arecording(secret: str) -> None:
        recording(secret)

    monkeypatch.setattr(hook_module, "mask_secret", recording)
    monkeypatch.setattr(hook_module, "_amask_secret", arecording)
    for path in ("sync", "async"):
        for padded in (False, True):
            key = f"sk_live_ONCE_{path}_{uuid.uuid4().hex}"  # fresh: the masker is process-wide
            leadpipe_sandbox.configure_key(key, scenario="sandbox")
            conn = {**json.loads(leadpipe_sandbox.connection_json(key))}
            conn["password"] = f"  {key}\n" if padded else key
            monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_ONCE", json.dumps(conn))
            sent.clear()
            for _ in range(3):
                hook = LeadpipeHook("leadpipe_once")
                settings = hook.settings if path == "sync" else asyncio.run(hook.aget_settings())
                assert settings.api_key == key
            assert sent == ([key] if padded else []), (path, padded, sent)
