import json

import pytest

from tests.unit.triggers.conftest import task_log  # noqa: F401


@pytest.fixture(autouse=True)
def no_hook_retries(leadpipe_conn):
    leadpipe_conn(extra=json.dumps({"max_retries": 0}))
