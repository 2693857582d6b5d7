"""Distributed suite, scenario 1: 300 deferrable account sensors on 10 connections.

Mapped over the connection ids (30 sensors each on ``lp_dist_0`` ... ``lp_dist_9``), so one small
DAG file is parsed per task start. The poke interval comes from the environment the suite sets.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag

from airflow_provider_leadpipe.sensors.account import LeadpipeAccountSensor

CONNECTIONS = 10
SENSORS = 300
POKE_INTERVAL = float(os.environ.get("LEADPIPE_DIST_POKE_INTERVAL", "2"))


@dag(
    dag_id="leadpipe_dist_account_sensors",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks=SENSORS,
    tags=["leadpipe", "test"],
)
def leadpipe_dist_account_sensors():
    LeadpipeAccountSensor.partial(
        task_id="gate",
        min_credits=1,
        poke_interval=POKE_INTERVAL,
        timeout=3600,  # a safety net: the suite waits for events, not for this
        deferrable=True,
        max_active_tis_per_dag=SENSORS,
    ).expand(leadpipe_conn_id=[f"lp_dist_{i % CONNECTIONS}" for i in range(SENSORS)])


leadpipe_dist_account_sensors()
