"""A key rotated while the sensor waits is picked up in poke, reschedule and deferrable mode alike.

Against the API sandbox over loopback HTTP: the old key's account has no credits; while the sensor
waits, the connection is switched to a new key (with credits) and the old key is revoked, as an
operator rotating a key would do (update the connection first, then revoke the old key).
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.unit.sensors.test_account import MODES, Driver, sensor

pytestmark = pytest.mark.integration

ACCOUNT = "/v1/data/account"
CONN_ID = "leadpipe_rotating"
NEW_KEY = "sk_test_rotated_key"


def _rotate(sandbox, old_key: str, done: threading.Event) -> None:
    deadline = time.monotonic() + 20
    while sandbox.request_count(ACCOUNT, api_key=old_key) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    sandbox.configure_key(NEW_KEY)
    os.environ.update(sandbox.connection_env(CONN_ID, api_key=NEW_KEY))
    # A poking sensor reads the connection at its next poke; a deferred one keeps using the old key
    # until it is refused. Revoke it once the new key is in use, or after a second.
    until = time.monotonic() + 1
    while sandbox.request_count(ACCOUNT, api_key=NEW_KEY) == 0 and time.monotonic() < until:
        time.sleep(0.02)
    sandbox.delete_key(old_key)
    done.set()


@pytest.mark.parametrize("mode", MODES)
def test_a_rotated_key_is_picked_up(mode, leadpipe_sandbox, monkeypatch):
    old_key = leadpipe_sandbox.api_key
    leadpipe_sandbox.exhaust_credits()  # the old key's account waits for credits that never come
    monkeypatch.setenv(*leadpipe_sandbox.connection_env(CONN_ID).popitem())
    done = threading.Event()
    rotation = threading.Thread(target=_rotate, args=(leadpipe_sandbox, old_key, done), daemon=True)
    rotation.start()

    task = sensor(mode, leadpipe_conn_id=CONN_ID, min_credits=1, poke_interval=0.1, timeout=30)
    account = Driver().run(task)

    rotation.join(60)  # only a safety net: the rotation ends once the new key is in use
    assert done.is_set()
    assert account["credits"]["remaining"] > 0
    assert leadpipe_sandbox.request_count(ACCOUNT, api_key=NEW_KEY, status=200) >= 1
