"""Every sensor flag behaves alike in poke, reschedule and deferrable mode.

``soft_fail`` and the fail-fast errors are covered in test_account.py; here: ``silent_fail``,
``never_fail``, ``exponential_backoff`` and the timeout kept across re-deferrals, each in all modes.
"""

from __future__ import annotations

import itertools
import statistics
import time

import httpx
import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException

from airflow_provider_leadpipe.exceptions import LeadpipeAuthError, LeadpipeResponseError
from tests.unit.sensors.test_account import MODES, Driver, sensor
from tests.unit.triggers.account_api import AccountAPI, account

#: Not the documented shape: the hook raises LeadpipeResponseError, which waiting might fix.
MALFORMED = {"healthy": True}


@pytest.fixture
def driver():
    return Driver()


@pytest.mark.parametrize("mode", MODES)
def test_silent_fail_keeps_waiting_through_an_error(mode, driver, task_log):
    with respx.mock() as router:
        api = AccountAPI(router, account(0), MALFORMED, account(480))
        assert driver.run(sensor(mode, silent_fail=True)) == account(480)
    assert api.calls == 3
    assert any("Sensor poke failed" in message for message in task_log.messages)


SKIP = AirflowSkipException


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("flags", "second_answer", "outcome"),
    [
        ({}, MALFORMED, LeadpipeResponseError),
        ({}, 401, LeadpipeAuthError),
        ({"soft_fail": True}, MALFORMED, LeadpipeResponseError),
        ({"soft_fail": True}, 401, SKIP),
        ({"never_fail": True}, MALFORMED, SKIP),
        ({"never_fail": True}, 401, SKIP),
        ({"silent_fail": True}, 401, LeadpipeAuthError),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, dict) else None,
)
def test_an_error_while_waiting_ends_the_same_way_in_every_mode(mode, flags, second_answer, outcome, driver):
    # The first answer makes the sensor wait (and defer, in deferrable mode); the second is an error.
    with respx.mock() as router:
        AccountAPI(router, account(0), second_answer)
        with pytest.raises(outcome):
            driver.run(sensor(mode, **flags))


@pytest.mark.parametrize("mode", MODES)
def test_never_fail_does_not_skip_a_timeout(mode, driver):
    # A timeout is not an error of poke(): poke mode raises it despite never_fail, and so do the others.
    with respx.mock() as router:
        AccountAPI(router, account(0))  # never enough credits: the timeout is the only way out
        with pytest.raises(AirflowSensorTimeout):
            driver.run(sensor(mode, never_fail=True, timeout=0.15))


@pytest.mark.parametrize("mode", MODES)
def test_exponential_backoff_slows_the_checks_down(mode, driver):
    gaps = {}
    for backoff in (False, True):
        checked_at = []

        def check(request, checked_at=checked_at):
            checked_at.append(time.monotonic())
            return httpx.Response(200, json={"data": account(0)})

        with respx.mock() as router:
            AccountAPI(router, check)
            with pytest.raises(AirflowSensorTimeout):
                driver.run(sensor(mode, exponential_backoff=backoff, timeout=3))
        if mode == "deferrable":  # the trigger checks at once when it takes over: not a wait
            checked_at = checked_at[1:]
        assert len(checked_at) >= 2, (backoff, checked_at)
        gaps[backoff] = [later - earlier for earlier, later in itertools.pairwise(checked_at)]
    # Every 0.02 s without backoff; with it, at least 1 s apart (Airflow's floor), as in poke mode:
    # at most 4 checks in 3 s. Gaps, not counts: a slow machine makes every gap longer, never a
    # backoff gap shorter (3 s leaves a slow machine time for two checks 1 s apart).
    assert statistics.median(gaps[False]) < 0.5, gaps
    assert min(gaps[True]) >= 0.95 and len(gaps[True]) <= 3, gaps
