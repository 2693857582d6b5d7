"""The Leadpipe page in Airflow's UI (Airflow >= 3.1): plugin class, FastAPI app, data, HTML."""
