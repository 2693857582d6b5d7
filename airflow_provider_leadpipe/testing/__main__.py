"""``python -m airflow_provider_leadpipe.testing``: same as the ``leadpipe-sandbox`` command."""

from airflow_provider_leadpipe.testing.cli import main

main()
