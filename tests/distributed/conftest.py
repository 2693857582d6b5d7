"""Fixtures for the distributed suite: PostgreSQL, Redis, the sandbox and one Airflow cluster.

Package-scoped: the three scenarios share one stack (≈ 1 min to start on a loaded 2-core machine),
stopped when the last distributed test is done, also on failure or interruption. Servers and
packages are Debian's; scripts/install_services.sh installs them when missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.distributed.cluster import DistributedAirflow
from tests.distributed.services import Postgres, Redis, postgres_bindir, redis_server
from tests.e2e.standalone import always_stopped

#: Component logs land here (gitignored; named in docs/distributed.md).
ARTIFACTS = REPO / ".artifacts" / "distributed"
HERE = Path(__file__).parent
#: Scenario 1: the sensors' connections (one API key each) and the audience runs' connection.
SENSOR_KEYS = [f"sk_dist_{number}" for number in range(10)]
ORBIT_KEY = "sk_dist_orbit"
VISITORS_KEY = "sk_dist_visitors"
#: Scenario 2: records in the pulled data set.
VISITORS = 20_000
#: Seconds between checks of every deferred sensor and audience run.
POKE_INTERVAL = 2.0
#: Celery worker slots and `[core] parallelism` (docs/distributed.md says why).
WORKER_CONCURRENCY = 8
PARALLELISM = 32


#: What each scenario measured, by scenario (written to .artifacts/distributed/figures.json).
FIGURES: dict[str, dict[str, object]] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.distributed)


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("distributed suite: figures")
        for scenario, figures in FIGURES.items():
            terminalreporter.line(f"{scenario}: {json.dumps(figures)}")


@pytest.fixture
def figures(request) -> Iterator[dict[str, object]]:
    """A dict for the test's figures, kept (also on failure: what was seen so far) in FIGURES by module."""
    seen: dict[str, object] = {}
    yield seen
    FIGURES.setdefault(request.node.module.__name__.rsplit(".", 1)[-1], {}).update(seen)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "figures.json").write_text(json.dumps(FIGURES, indent=2))


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("LEADPIPE_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def servers() -> Iterator[tuple[Postgres, Redis]]:
    """PostgreSQL and Redis on free loopback ports, installed from Debian's packages when missing."""
    _require(
        importlib.util.find_spec("airflow.providers.celery") is not None
        and importlib.util.find_spec("psycopg2") is not None,
        "the Celery provider / psycopg2 are missing: pip install -e '.[test,distributed]'",
    )
    if postgres_bindir() is None or redis_server() is None:
        subprocess.run(["bash", str(REPO / "scripts" / "install_services.sh")], check=False)
    bindir, redis_binary = postgres_bindir(), redis_server()
    _require(
        bindir is not None and redis_binary is not None,
        "PostgreSQL or redis-server missing and not installable here (scripts/install_services.sh)",
    )
    assert bindir is not None and redis_binary is not None
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    postgres = Postgres(ARTIFACTS / "postgres.log", bindir)
    redis = Redis(ARTIFACTS / "redis.log", redis_binary)
    try:
        postgres.start()
        redis.start()
        yield postgres, redis
    finally:
        leftovers = postgres.stop() + redis.stop()
        if leftovers:
            warnings.warn(f"servers needed force to stop: {leftovers}", stacklevel=1)


@pytest.fixture(scope="package")
def sandbox() -> Iterator[object]:
    """The Leadpipe API sandbox, with one key per connection of the scenarios."""
    from leadpipe_sandbox import LeadpipeSandbox

    with LeadpipeSandbox() as running:
        for key in SENSOR_KEYS:
            running.configure_key(key, {"credits": {"used": 0, "limit": 500}})
        running.configure_key(ORBIT_KEY, {"intent": {"audienceSlots": 3, "audienceSlotsUsed": 0}})
        running.configure_key(VISITORS_KEY, {"visitors": VISITORS})
        yield running


@pytest.fixture(scope="package")
def watched_audience(sandbox) -> dict:
    """Scenario 3's audience, made before the stack starts: the watcher's DAG reads its id when parsed."""
    audience = sandbox.create_audience("Watched by two triggerers", people=4)
    sandbox.add_daily_run(audience["id"], data_date="2026-11-01")  # before the watcher: its baseline
    return audience


@pytest.fixture(scope="package")
def cluster(tmp_path_factory, servers, sandbox, watched_audience) -> Iterator[DistributedAirflow]:
    """Airflow 3 with the CeleryExecutor: api-server, scheduler, dag-processor, worker, two triggerers."""
    postgres, redis = servers
    root = tmp_path_factory.mktemp("distributed")
    dags = root / "dags"
    dags.mkdir()
    for dag_file in HERE.joinpath("dags").glob("*.py"):
        shutil.copy(dag_file, dags / dag_file.name)
    shutil.copy(REPO / "example_dags" / "leadpipe_audience_on_new_run.py", dags)
    connections = {
        f"AIRFLOW_CONN_LP_DIST_{number}": sandbox.connection_json(key)
        for number, key in enumerate(SENSOR_KEYS)
    }
    stack = DistributedAirflow(
        home=root / "home",
        dags_folder=dags,
        logs=ARTIFACTS,
        database_url=postgres.url,
        broker_url=redis.url,
        worker_concurrency=WORKER_CONCURRENCY,
        parallelism=PARALLELISM,
        env={
            **connections,
            "AIRFLOW_CONN_LP_DIST_ORBIT": sandbox.connection_json(ORBIT_KEY),
            "AIRFLOW_CONN_LP_DIST_VISITORS": sandbox.connection_json(VISITORS_KEY),
            "AIRFLOW_CONN_LEADPIPE_DEFAULT": sandbox.connection_json(),
            "LEADPIPE_DIST_POKE_INTERVAL": str(POKE_INTERVAL),
            "LEADPIPE_EXAMPLE_AUDIENCE_ID": watched_audience["id"],
            "LEADPIPE_EXAMPLE_WATCH_INTERVAL": "0.5",
            "LEADPIPE_EXAMPLE_OUTPUT_DIR": str(root / "audience-runs"),
        },
    )
    stack.out = root / "audience-runs"  # type: ignore[attr-defined]
    with always_stopped(stack):
        stack.start()
        yield stack


@pytest.fixture(scope="package")
def api(cluster: DistributedAirflow):
    """An authenticated REST client (admin's JWT) for /api/v2."""
    with cluster.client() as client:
        yield client
