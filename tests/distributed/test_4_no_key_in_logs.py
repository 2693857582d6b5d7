"""After the three scenarios (a triggerer and a worker killed, triggerers restarted): no API key of
any connection appears in any component's log or any task or trigger log the stack wrote."""

from __future__ import annotations

from airflow_provider_leadpipe.testing import DEFAULT_API_KEY
from tests.distributed.conftest import ORBIT_KEY, SENSOR_KEYS, VISITORS_KEY


def test_no_api_key_in_any_log(cluster):
    logs = sorted({*cluster.logs.rglob("*.log"), *cluster.home.rglob("*.log")})
    task_logs = [path for path in logs if "dag_id=" in str(path)]
    # Component logs and the task logs of every scenario: a search over nothing proves nothing.
    assert len(task_logs) >= 300, f"only {len(task_logs)} task logs under {cluster.home}"
    assert {path.name for path in logs} >= {"scheduler.log", "worker.log"}
    keys = [*SENSOR_KEYS, ORBIT_KEY, VISITORS_KEY, DEFAULT_API_KEY]
    leaks = [f"{path}: {key}" for path in logs for key in keys if key in path.read_text(errors="replace")]
    assert not leaks, leaks[:10]
