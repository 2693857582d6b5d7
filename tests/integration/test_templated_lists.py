"""What Airflow renders for a templated list argument is read as the list it stands for, or refused.

``fail_on_statuses="{{ params.fail_on }}"`` with ``params.fail_on = ["expired", "suspended"]``
renders to the string ``"['expired', 'suspended']"`` (or to the list itself with
``render_template_as_native_obj``): both, and a comma-separated string, must make a suspended
organization fail both tasks at once. A value that is no list fails them before any request.
"""

from __future__ import annotations

import pytest

from tests.conftest import DAGS_FOLDER
from tests.integration.dag_runs import dagbag, task_states

pytestmark = pytest.mark.integration

ACCOUNT = "/v1/data/account"
TASKS = ("check_account", "wait_for_account")


def run(dag_id: str, fail_on):
    bag = dagbag(DAGS_FOLDER / "leadpipe_test_templated_lists.py")
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id].test(run_conf={"fail_on": fail_on})


@pytest.mark.parametrize(
    ("native", "fail_on"),
    [
        (False, ["expired", "suspended"]),  # renders to "['expired', 'suspended']"
        (False, "expired, suspended"),
        (True, ["expired", "suspended"]),  # renders to the list itself
        (True, "['expired', 'suspended']"),
    ],
    ids=["list-as-text", "comma-separated", "native-list", "native-list-literal"],
)
def test_each_rendered_form_fails_fast_on_a_listed_status(native, fail_on, airflow_db, leadpipe_sandbox):
    leadpipe_sandbox.set_organization(status="suspended")
    dag_run = run("leadpipe_test_templated_lists" + ("_native" if native else ""), fail_on)
    states = task_states(dag_run)
    assert [states[task_id] for task_id in TASKS] == ["failed", "failed"], states
    # Each task asked once and failed on the answer: the sensor did not wait.
    assert leadpipe_sandbox.request_count(ACCOUNT) == 2


@pytest.mark.parametrize("native", [False, True], ids=["text", "native"])
def test_a_value_that_is_no_list_fails_before_any_request(native, airflow_db, leadpipe_sandbox):
    dag_run = run("leadpipe_test_templated_lists" + ("_native" if native else ""), {"expired": True})
    states = task_states(dag_run)
    assert [states[task_id] for task_id in TASKS] == ["failed", "failed"], states
    assert leadpipe_sandbox.request_count(ACCOUNT) == 0
