"""Every sensor flag behaves alike in poke, reschedule and deferrable mode.

``soft_fail`` and the fail-fast errors are covered in test_leadpipe_sensor.py; here: ``silent_fail``,
``never_fail``, ``exponential_backoff`` and the timeout kept across re-deferrals, each in all modes.
"""

from __future__ import annotations

import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException

from airflow_provider_leadpipe.exceptions import LeadpipeAuthError, LeadpipeResponseError
from tests.unit.sensors.test_leadpipe_sensor import MODES, Driver, sensor
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


@pytest.mark.parametrize("mode", MODES)
def test_without_silent_fail_the_error_fails_the_task(mode, driver):
    with respx.mock() as router:
        AccountAPI(router, account(0), MALFORMED, account(480))
        with pytest.raises(LeadpipeResponseError):
            driver.run(sensor(mode))


@pytest.mark.parametrize("mode", MODES)
def test_silent_fail_does_not_hide_what_waiting_cannot_fix(mode, driver):
    with respx.mock() as router:
        AccountAPI(router, account(0), 401)
        with pytest.raises(LeadpipeAuthError):
            driver.run(sensor(mode, silent_fail=True))


@pytest.mark.parametrize("mode", MODES)
def test_silent_fail_keeps_the_deadline_of_the_first_poke(mode, driver):
    with respx.mock() as router:
        AccountAPI(router, account(0), MALFORMED)  # the error repeats
        with pytest.raises(AirflowSensorTimeout):
            driver.run(sensor(mode, silent_fail=True, timeout=0.3))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answer", [401, MALFORMED], ids=["fail-fast", "error"])
def test_never_fail_skips_any_error(mode, answer, driver):
    with respx.mock() as router:
        AccountAPI(router, account(0), answer)
        with pytest.raises(AirflowSkipException, match="never_fail"):
            driver.run(sensor(mode, never_fail=True))


@pytest.mark.parametrize("mode", MODES)
def test_never_fail_does_not_skip_a_timeout(mode, driver):
    # A timeout is not an error of poke(): poke mode raises it despite never_fail, and so do the others.
    with respx.mock() as router:
        AccountAPI(router, account(0))
        with pytest.raises(AirflowSensorTimeout):
            driver.run(sensor(mode, never_fail=True, timeout=0.15))


@pytest.mark.parametrize("mode", MODES)
def test_exponential_backoff_slows_the_checks_down(mode, driver):
    calls = {}
    for backoff in (False, True):
        with respx.mock() as router:
            api = AccountAPI(router, account(0))
            with pytest.raises(AirflowSensorTimeout):
                driver.run(sensor(mode, exponential_backoff=backoff, timeout=2))
        calls[backoff] = api.calls
    # Every 0.02 s without backoff; with it, at least 1 s apart (Airflow's floor), as in poke mode.
    assert calls[False] >= 10, calls
    assert 2 <= calls[True] <= 4, calls
