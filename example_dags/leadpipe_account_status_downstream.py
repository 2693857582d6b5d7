"""Use the Leadpipe account status downstream: through Jinja templating and through TaskFlow.

`account` pushes the API's own `data` object to XCom, so a template reads
`ti.xcom_pull(task_ids="account")["credits"]["remaining"]` and a TaskFlow function receives the
whole dict. Nothing here uses the logical date, so runs triggered through the API work too.

Needs a `leadpipe` connection (`leadpipe_default` unless the run sets the `leadpipe_conn_id` param).
"""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag, task
try:
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2.x without the standard provider
    from airflow.operators.bash import BashOperator

from airflow_provider_leadpipe.operators.account import LeadpipeAccountStatusOperator

#: Credits a pull must leave untouched.
RESERVE = 50


@dag(
    dag_id="leadpipe_account_status_downstream",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"leadpipe_conn_id": "leadpipe_default"},
    tags=["leadpipe", "example"],
    doc_md=__doc__,
)
def leadpipe_account_status_downstream():
    account = LeadpipeAccountStatusOperator(
        task_id="account",
        leadpipe_conn_id="{{ params.leadpipe_conn_id }}",  # templated
        require_healthy=True,
    )

    # 1. Jinja: any templated field can read the status. (A plan with no credit cap prints None.)
    credits_left = BashOperator(
        task_id="credits_left",
        bash_command=(
            "echo \"{{ ti.xcom_pull(task_ids='account')['organization']['name'] }} has "
            "{{ ti.xcom_pull(task_ids='account')['credits']['remaining'] }} credits left\" >&2; "
            "echo \"{{ ti.xcom_pull(task_ids='account')['credits']['remaining'] }}\""
        ),
    )

    # 2. TaskFlow: the operator's output is the status dict.
    @task
    def pull_budget(status: dict) -> dict:
        """How many credits a visitor pull may spend, keeping RESERVE in hand ("unlimited": no cap).

        Returning a dict also pushes each key as its own XCom. Not ``None`` for an uncapped plan:
        Airflow 3.0's execution API rejects an XCom whose value is null (HTTP 422).
        """
        remaining = status["credits"]["remaining"]
        budget = "unlimited" if remaining is None else max(int(remaining) - RESERVE, 0)
        return {"organization": status["organization"]["name"], "budget": budget}

    account >> credits_left
    pull_budget(account.output)


leadpipe_account_status_downstream()
