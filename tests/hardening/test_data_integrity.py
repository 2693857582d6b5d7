"""What reaches the user's file, and what the credit report says, whatever the data looks like.

Each class is proven over real loopback HTTP against the sandbox and real fsspec stores (the local
disk and ``memory://``, an object store whose folders are key prefixes, as on S3/GCS/Azure):

* a target that is an existing folder or prefix is refused before anything is pulled, on every
  store, given as text or as an ObjectStoragePath, and again if one appears during the pull;
* records JSON can carry but UTF-8 cannot (lone UTF-16 surrogates) are written, losslessly;
* a pull that ends short of the announced total (visitors' ``meta.total``, an export's
  ``min(resultCount, row cap)``) warns with both numbers or fails writing nothing;
* the credit projection survives a grid of extreme balances and rates, and never compares two
  organisations.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging

import pendulum
import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError, LeadpipeIncompleteError
from airflow_provider_leadpipe.models import AccountStatus
from airflow_provider_leadpipe.models.credit_report import PROJECTION_YEARS, Observation, build_credit_report
from airflow_provider_leadpipe.operators.audience_results import LeadpipeAudienceResultsToStorageOperator
from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator
from leadpipe_sandbox import Fault
from tests.hardening.figures import record
from tests.stores import STORES, listing, put
from tests.unit.conftest import account_data

pytestmark = pytest.mark.integration
VISITORS = "/v1/data"


def _root(store: str, tmp_path, request) -> ObjectStoragePath:
    if store == "memory":
        request.getfixturevalue("memory_store")
        return ObjectStoragePath("memory://bucket/leadpipe")
    return ObjectStoragePath(f"file://{tmp_path}")


def test_folder_and_prefix_targets_are_refused_on_every_store(leadpipe_sandbox, tmp_path, request):
    cases = 0
    for store in STORES:
        root = _root(store, tmp_path / store, request)
        put(root / "visitors" / "2026-01-01.jsonl", b"{}\n")
        put(root / "day.jsonl", b"{}\n")
        # (target, what the error must name): a folder/prefix, and a file's "child".
        for target, named in (
            (root / "visitors", root / "visitors"),
            (root / "day.jsonl/v.jsonl", root / "day.jsonl"),
        ):
            for given in (str(target), target):
                with pytest.raises(LeadpipeConfigError) as info:
                    LeadpipeVisitorsToStorageOperator(task_id="pull", path=given).execute({})
                assert str(named) in str(info.value)
                cases += 1
        assert listing(root) == ["day.jsonl", "visitors/2026-01-01.jsonl"], "nothing written or moved"
    requests = leadpipe_sandbox.request_count(VISITORS)
    assert requests == 0, "refused before any request"

    # A prefix that appears while the pull runs: refused at the move, nothing hidden inside it.
    root = _root("memory", tmp_path, request)
    op = LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(root / "late"), concurrency=1)
    real_pull = op._pull

    async def pull_then_someone_writes(out):
        result = await real_pull(out)
        put(root / "late" / "theirs.jsonl", b"{}\n")
        return result

    op._pull = pull_then_someone_writes
    with pytest.raises(LeadpipeConfigError, match="is a folder"):
        op.execute({})
    assert "late/theirs.jsonl" in listing(root) and not [p for p in listing(root) if ".tmp" in p]
    cases += 1
    record(
        "data",
        f"folder/prefix targets on {len(STORES)} stores (file, memory://): {cases} refused, "
        "before the pull or at the move",
        requests=requests,
    )


#: What JavaScript APIs emit when they cut a string mid-emoji, and neighbours of it.
BROKEN_TEXT = ["\ud83d", "\ude00", "\ude00\ud83d", "Zoë \ud83d 東京", "\\\ud83d", "line\u2028break\x85"]


def test_records_utf8_cannot_carry_are_written_losslessly(leadpipe_sandbox, tmp_path):
    records = [
        {"id": str(index), "firstName": text, "company": {"name": text, text: [text]}}
        for index, text in enumerate(BROKEN_TEXT)
    ]
    page = {"data": records, "meta": {"total": len(records), "page": 1, "perPage": 50}}
    leadpipe_sandbox.queue_faults(Fault.wrong_shape(body=page, path=VISITORS))
    target = tmp_path / "v.jsonl.gz"
    result = LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(target)).execute({})
    lines = gzip.decompress(target.read_bytes()).decode("utf-8").splitlines()  # strict UTF-8
    assert [json.loads(line) for line in lines] == records
    assert result["records"] == len(records) == result["expected_records"]
    record(
        "data",
        f"{len(records)} records with lone UTF-16 surrogates / line separators: written, read back equal",
        requests=leadpipe_sandbox.request_count(VISITORS),
    )


def _stop_early(sandbox, pages_served: int, total: int) -> None:
    """Serve ``pages_served`` real pages, then an empty page that still announces ``total``."""
    sandbox.queue_faults(
        Fault.slow(0.001, count=pages_served, path=VISITORS),
        Fault.wrong_shape(body={"data": [], "meta": {"total": total}}, path=VISITORS),
    )


def test_a_pull_short_of_the_announced_total_warns_or_fails(leadpipe_sandbox, tmp_path, caplog, capsys):
    caplog.set_level(logging.WARNING)
    _stop_early(leadpipe_sandbox, 4, 1000)
    target = tmp_path / "warn.jsonl"
    result = LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(target), concurrency=1).execute({})
    assert (result["records"], result["expected_records"]) == (200, 1000)
    assert len(target.read_text().splitlines()) == 200
    logged = caplog.text + capsys.readouterr().out
    assert "announced 1000 visitor records but the pull returned 200 (800 missing)" in logged

    _stop_early(leadpipe_sandbox, 4, 1000)
    target = tmp_path / "fail.jsonl"
    op = LeadpipeVisitorsToStorageOperator(
        task_id="pull", path=str(target), concurrency=1, on_incomplete="fail"
    )
    with pytest.raises(LeadpipeIncompleteError) as info:
        op.execute({})
    assert (info.value.expected, info.value.received) == (1000, 200)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warn.jsonl"], "fail writes nothing"
    record(
        "data",
        "pull ending at 200 of 1,000 announced records: warn (expected_records) / fail (nothing written)",
        requests=leadpipe_sandbox.request_count(VISITORS),
    )


def test_an_export_short_of_the_run_warns_or_fails(leadpipe_sandbox, tmp_path, caplog, capsys):
    """The same class for ``method="export"``: export.csv is due ``min(resultCount, row cap)`` rows."""
    caplog.set_level(logging.WARNING)
    audience = leadpipe_sandbox.create_audience("Short export", people=437)["id"]
    run = leadpipe_sandbox.add_daily_run(audience, data_date="2026-05-04")["id"]
    leadpipe_sandbox.set_export_row_cap(300)
    leadpipe_sandbox.set_export_csv_short_by(237)  # 200 rows of the 300 due
    outcomes = {}
    for on_incomplete in ("fail", "warn"):
        op = LeadpipeAudienceResultsToStorageOperator(
            task_id="land",
            audience_id=audience,
            audience_run_id=run,
            path=str(tmp_path / f"{on_incomplete}.csv"),
            method="export",
            format="csv",
            on_truncated="warn",
            on_incomplete=on_incomplete,
        )
        try:
            outcomes[on_incomplete] = op.execute({})["records"]
        except LeadpipeIncompleteError as exc:
            outcomes[on_incomplete] = (exc.expected, exc.received)
    assert outcomes == {"fail": (300, 200), "warn": 200}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warn.csv"], "fail writes nothing"
    assert "announced 300 people but the pull returned 200" in caplog.text + capsys.readouterr().out
    record(
        "data",
        "export.csv ending at 200 of min(resultCount 437, cap 300) rows: warn (file kept) / fail "
        "(nothing written)",
        requests=leadpipe_sandbox.request_count(),
    )


EXTREMES = [0, 1, 5e-324, 1e-300, 1e-6, 10**6, 10**15, 1.7e308, 10**400]


def _status(used, remaining, organisation="Acme") -> AccountStatus:
    credits = {"used": used, "limit": 10**400, "remaining": remaining, "percentUsed": None}
    credits["resetsAt"] = "2026-12-01T00:00:00Z"
    return AccountStatus.from_data(
        account_data(credits=credits, organization={"name": organisation, "status": "active"})
    )


def test_credit_projection_over_a_grid_of_extremes_and_across_organisations():
    start = pendulum.datetime(2026, 11, 1, tz="UTC")
    combinations = beyond = 0
    for used_before, used_now, remaining, seconds in itertools.product(
        EXTREMES, EXTREMES, EXTREMES, (1, 86_400, 10 * 365 * 86_400)
    ):
        previous = Observation(_status(used_before, remaining), start)
        report = build_credit_report(
            _status(used_now, remaining), observed_at=start.add(seconds=seconds), previous=previous
        )
        json.dumps(report.to_dict(), allow_nan=False)
        text = report.render()
        if report.exhaustion_not_within_years is not None:
            assert f"not within {PROJECTION_YEARS} years" in text
            beyond += 1
        combinations += 1
    assert beyond > 0
    other = build_credit_report(
        _status(10, 100),
        observed_at=start.add(days=1),
        previous=Observation(_status(90, 10, "Globex"), start),
    )
    assert other.daily_burn_rate is None and "another organisation" in other.render()
    record(
        "data",
        f"credit projection: {combinations:,} extreme combinations ({beyond:,} 'not within "
        f"{PROJECTION_YEARS} years'), strict JSON; another organisation not compared",
    )


def test_long_target_names_are_written_or_refused_before_the_pull(leadpipe_sandbox, tmp_path, request):
    """A name that fits the store gets a temporary that fits; one that does not is refused first."""
    from types import SimpleNamespace

    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="pull", map_index=-1)
    written = 0
    for store in STORES:
        root = _root(store, tmp_path / store, request)
        for name in ("v" * 235 + ".jsonl", "é" * 123 + ".jsonl.gz", "p" * 249 + ".jsonl"):
            for context in ({}, {"ti": ti}):  # without and with a task owner in the temporary's name
                result = LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(root / name)).execute(
                    context
                )
                assert result["records"] > 0 and listing(root) == [name]
                (root / name).unlink()
                written += 1
    requests = leadpipe_sandbox.request_count(VISITORS)
    too_long = tmp_path / ("v" * 251 + ".jsonl")
    with pytest.raises(LeadpipeConfigError, match="too long") as info:
        LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(too_long)).execute({})
    assert str(too_long) in str(info.value)
    assert leadpipe_sandbox.request_count(VISITORS) == requests, "refused before any request"
    record(
        "data",
        f"target names of 241-255 bytes on {len(STORES)} stores: {written} pulls written; "
        "a 257-byte local name refused naming the path",
        requests=0,
    )
