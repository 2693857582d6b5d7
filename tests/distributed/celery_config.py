"""The Celery worker's configuration: Airflow's default, plus the provider's modules preloaded.

Airflow's worker already imports a few expensive modules before it forks its pool
(``celery_import_modules``), so task processes do not import them again. Each of the scenarios'
300 sensors would otherwise import the provider (httpx, pydantic models, tenacity) in its own
task process, ≈ 1-2 s on a loaded 2-core machine. Celery's ``imports`` setting does the same for
the provider. Selected with ``[celery] celery_config_options`` (tests/distributed/cluster.py).
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    "imports": [
        "airflow_provider_leadpipe.sensors.account",
        "airflow_provider_leadpipe.operators.audiences",
        "airflow_provider_leadpipe.operators.audience_results",
        "airflow_provider_leadpipe.operators.visitors",
    ],
}
