"""Audience files checked without Airflow running: ``python -m airflow_provider_leadpipe.hooks.config_files``
against the sandbox over loopback HTTP, one line per problem and a non-zero exit status."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.hooks.config_files import KEYS, check_audience_files, read_audience_file
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook

GOOD = """\
name: CRM switchers
status: active
topic_names: [CRM Software]
min_audience_size: 1
config:
  topicIds: [101]
  filters:
    role.seniority: {values: [VP, Director]}
"""


def write(folder, files):
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def command(sandbox, folder, *args, connection=None):
    # A metadata DB of its own: a second process writing to the suite's SQLite file while this one
    # holds it open leaves it "malformed" for every later test (the connection comes from the env).
    home = Path(tempfile.mkdtemp(prefix="leadpipe-cli-home-"))
    env = {
        **os.environ,
        "AIRFLOW_CONN_LEADPIPE_DEFAULT": connection or sandbox.connection_json(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_leadpipe.hooks.config_files", str(folder), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_a_clean_folder_exits_0(leadpipe_sandbox, tmp_path):
    write(tmp_path, {"crm.yaml": GOOD, "notes.txt": "not an audience"})
    done = command(leadpipe_sandbox, tmp_path)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert "1 audience file(s) checked, 0 problem(s)" in done.stderr
    assert leadpipe_sandbox.request_count("/v1/intent/audiences/validate", method="POST") == 1
    assert leadpipe_sandbox.request_count("/v1/intent/audiences", method="POST") == 0  # nothing created


def test_each_problem_is_one_line_and_the_exit_status_is_1(leadpipe_sandbox, tmp_path):
    write(
        tmp_path,
        {
            "a_good.yaml": GOOD,
            "b_bad_filter.json": json.dumps(
                {
                    "name": "Bad",
                    "config": {
                        "topicIds": [101],
                        "filters": {"role.seniorty": ["VP"], "role.seniority": ["boss"]},
                    },
                }
            ),
            "c_broken.yml": "name: [unclosed\n",
            "d_no_config.yaml": "name: Nothing\nextra: 1\n",
            "e_topics.yaml": (
                "name: T\ntopic_names: [Intent Data, Quantum Baking]\nconfig: {topicIds: [101]}\n"
            ),
            "f_empty.yaml": GOOD.replace("min_audience_size: 1", "min_audience_size: 2000"),
        },
    )
    done = command(leadpipe_sandbox, tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    by_file = {
        name: [line for line in lines if line.startswith(str(tmp_path / name))]
        for name in sorted(os.listdir(tmp_path))
    }
    assert by_file["a_good.yaml"] == []
    assert [line.split(": ", 1)[1] for line in by_file["b_bad_filter.json"]] == [
        "config: filters.role.seniorty: Unknown filter key 'role.seniorty'",
        "config: filters.role.seniority: 'boss' is not a value of filter 'role.seniority'",
    ]
    assert len(by_file["c_broken.yml"]) == 1 and "not valid YML" in by_file["c_broken.yml"][0]
    assert by_file["d_no_config.yaml"][0].endswith("unknown key 'extra' (known: " + ", ".join(KEYS) + ")")
    assert "config must be a dict" in by_file["d_no_config.yaml"][1]
    topics = "\n".join(by_file["e_topics.yaml"])
    assert "'Intent Data' is ambiguous" in topics and "'Quantum Baking' matches no topic" in topics
    assert "outside min_audience_size 2000" in by_file["f_empty.yaml"][0]
    assert len(lines) == sum(len(found) for found in by_file.values())
    assert "6 audience file(s) checked" in done.stderr
    assert leadpipe_sandbox.request_count("/v1/intent/audiences", method="POST") == 0


def test_the_function_and_a_missing_folder(leadpipe_sandbox, tmp_path):
    write(tmp_path, {"crm.yaml": GOOD})
    with LeadpipeHook() as hook:
        assert check_audience_files(tmp_path, hook) == []
    with pytest.raises(LeadpipeConfigError, match="is not a folder"):
        check_audience_files(tmp_path / "missing")
    done = command(leadpipe_sandbox, tmp_path / "missing")
    assert done.returncode == 2 and "is not a folder" in done.stderr


def test_a_wrong_key_exits_2_without_echoing_it(leadpipe_sandbox, tmp_path):
    write(tmp_path, {"crm.yaml": GOOD})
    conn = json.loads(leadpipe_sandbox.connection_json())
    conn["password"] = "sk_wrong_key_0123456789"
    done = command(leadpipe_sandbox, tmp_path, connection=json.dumps(conn))
    assert done.returncode == 2, done.stderr
    assert "sk_wrong_key_0123456789" not in done.stdout + done.stderr


def test_an_undefined_connection_exits_2(leadpipe_sandbox, tmp_path):
    write(tmp_path, {"crm.yaml": GOOD})
    done = command(leadpipe_sandbox, tmp_path, "--conn-id", "leadpipe_nowhere")
    assert done.returncode == 2, done.stderr
    assert "leadpipe_nowhere" in done.stderr and done.stdout == ""


def test_read_audience_file_gives_the_upsert_arguments_or_a_typed_error(tmp_path):
    good = read_audience_file(write(tmp_path, {"crm.yaml": GOOD}) / "crm.yaml")
    assert good.upsert_arguments() == {
        "name": "CRM switchers",
        "config": {"topicIds": [101], "filters": {"role.seniority": {"values": ["VP", "Director"]}}},
        "status": "active",
        "topic_names": ["CRM Software"],
        "min_audience_size": 1,
        "max_audience_size": None,
    }
    # A misspelt size bound must not drop the gate silently.
    typo = tmp_path / "typo.yaml"
    typo.write_text(GOOD.replace("min_audience_size", "min_audiance_size"))
    with pytest.raises(
        LeadpipeConfigError, match=re.escape(f"audience file {typo}: unknown key 'min_audiance_size'")
    ):
        read_audience_file(typo)
    broken = write(tmp_path, {"broken.json": '{"name": "X", "config": {"topicIds": [1]},'}) / "broken.json"
    with pytest.raises(LeadpipeConfigError, match=r"broken\.json: not valid JSON"):
        read_audience_file(broken)
    with pytest.raises(LeadpipeConfigError, match=r"missing\.yaml cannot be read"):
        read_audience_file(tmp_path / "missing.yaml")


def test_a_min_size_above_the_max_size_is_a_problem(leadpipe_sandbox, tmp_path):
    inverted = GOOD.replace("min_audience_size: 1", "min_audience_size: 500\nmax_audience_size: 100")
    write(tmp_path, {"crm.yaml": inverted})
    with LeadpipeHook() as hook:
        lines = check_audience_files(tmp_path, hook)
    assert f"{tmp_path / 'crm.yaml'}: min_audience_size (500) is larger than max_audience_size (100)" in lines
