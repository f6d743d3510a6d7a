"""The list page's jobs rendered by PostgreSQL equal ``job_payload`` (pipelines.selectors).

``pipeline_list_payloads`` builds each job's JSON in SQL on PostgreSQL; ``pipeline_payloads``
builds it in Python (the detail, the live events, SQLite). Both must give the same document
for any job the engine can store: the tests build jobs with every field set and unset, and
metas with row errors in each place and shape the providers and the rules know.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import rules, selectors
from pipelines.choices import JobResult, JobState, JobType
from pipelines.models import IngestionJob, Pipeline
from tests.pipelines.api_helpers import DONE_OK, FAILED, RUNNING, pipeline_build

SUMMER = datetime(2026, 7, 1, 12, 30, 5, 120000, tzinfo=UTC)


def _both(pipelines: list[Pipeline]) -> tuple[Any, Any]:
    """(Python-built, list-built) payloads of PIPELINES, each as the JSON a client parses."""
    rows = list(Pipeline.objects.select_related("created_by").filter(pk__in=[p.pk for p in pipelines]))
    rows.sort(key=lambda p: str(p.pk))
    python = orjson.loads(orjson.dumps(selectors.pipeline_payloads(rows)))
    listed = orjson.loads(orjson.dumps(selectors.pipeline_list_payloads(rows)))
    return python, listed


def test_python_whitespace_is_what_str_strip_removes() -> None:
    assert "".join(c for c in map(chr, range(0x110000)) if c.isspace()) == selectors.PY_WHITESPACE


@pytest.mark.postgres
@pytest.mark.django_db
def test_list_payloads_use_one_query_for_the_jobs_and_equal_the_snapshots(django_assert_num_queries: Any) -> None:
    made = [pipeline_build(DONE_OK), pipeline_build(FAILED, message="row 2: bad"), pipeline_build(RUNNING)]
    rows = list(Pipeline.objects.select_related("created_by").filter(pk__in=[p.pk for p in made]))
    with django_assert_num_queries(1):
        rendered = selectors.pipeline_list_payloads(rows)
    assert all(isinstance(item["jobs"], orjson.Fragment) for item in rendered)
    python, listed = _both(made)
    assert listed == python
    assert [len(item["jobs"]) for item in listed] == [len(item["jobs"]) for item in python]


@pytest.mark.postgres
@pytest.mark.django_db
def test_every_job_field_set_and_unset_renders_the_same() -> None:
    # given: jobs whose columns take their edge values
    pipeline = pipeline_build(DONE_OK)
    jobs = list(pipeline.jobs.order_by("id"))
    IngestionJob.objects.filter(pk=jobs[0].pk).update(
        started_at=SUMMER.replace(microsecond=0),  # isoformat() drops the fraction
        finished_at=SUMMER + timedelta(days=1, seconds=3, microseconds=7),
        cancel_requested_at=SUMMER,
        status_history=[{"ts": SUMMER.isoformat(), "kind": "claim", "message": "Claimed\u2028by w"}],
        status_message='Done — 12 rows, naïve “quotes” and "escapes"\n\ttab',
        data_entry_type_id=9999,  # no label
    )
    IngestionJob.objects.filter(pk=jobs[1].pk).update(started_at=None, finished_at=SUMMER, status_history={})
    IngestionJob.objects.filter(pk=jobs[2].pk).update(
        state=JobState.RUNNING,
        result=None,
        finished_at=None,
        lease_owner="host:42",
        lease_expires_at=SUMMER,
        attempts=2,
        max_attempts=5,
        year=None,
        module_type_id=None,
    )
    python, listed = _both([pipeline])
    assert listed == python
    job = listed[0]["jobs"][0]
    assert (job["started_at"], job["duration_seconds"]) == ("2026-07-01T12:30:05+00:00", 86403.120007)
    assert listed[0]["jobs"][1]["status_history"] == []


META_CASES: list[dict[str, Any]] = [
    {},
    {"config": {"file_path": "tmp/a.csv"}, "provider_name": "csv", "filters": {"year": None}, "fan_in": {"x": 1}},
    {"phases": [{"name": "fetch", "state": "finished"}], "progress": {"processed": 5, "total": 10}},
    {"processed_file_path": "processed/1/a.csv", "provider_name": None},
    {"stats": {"rows_processed": 3, "row_errors_count": 2, "other": 1, "inserted": 0}},
    {"stats": "not an object", "filters": []},
    {"stats": {"row_errors": [{"row": 4, "column": "kind", "reason": "  unknown value\u3000"}]}},
    {"row_errors": [{"row": None, "column": "", "reason": "first"}], "stats": {"row_errors": [{"reason": "x"}]}},
    {"row_errors": [{"row": 2, "reason": "   "}, "junk", {"reason": None}, {"row": 7, "column": 0, "reason": 12}]},
    {"row_errors": [], "stats": {"row_errors": [{"row": 1.5, "column": "c", "reason": "late"}]}},
    {"row_errors": "not a list", "stats": {"row_errors": [{"column": "unit", "reason": "no row"}]}},
    {"row_errors": [{"row": "3", "column": "x\ty", "reason": "\u00a0padded\u2029"}]},
]


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("meta", META_CASES, ids=[f"meta{i}" for i in range(len(META_CASES))])
def test_meta_summaries_and_first_row_errors_render_the_same(meta: dict[str, Any]) -> None:
    pipeline = pipeline_build([(JobType.CSV_INGEST, JobState.FINISHED, JobResult.WARNING)])
    IngestionJob.objects.filter(pipeline=pipeline).update(meta=meta)
    python, listed = _both([pipeline])
    assert listed == python
    expected = rules.first_row_error(meta)
    assert listed[0]["jobs"][0]["meta"].get("first_row_error", "") == expected


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
_scalar = st.one_of(st.none(), st.integers(-5, 10_000), _text)
_row_error = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"row": st.one_of(st.none(), st.integers(0, 10**6)), "column": _scalar, "reason": _scalar}
    ),
    _scalar,
)
_metas = st.fixed_dictionaries(
    {},
    optional={
        "row_errors": st.lists(_row_error, max_size=4),
        "stats": st.fixed_dictionaries(
            {}, optional={"row_errors": st.lists(_row_error, max_size=4), "inserted": st.integers(0, 9), "x": _scalar}
        ),
        "provider_name": _scalar,
        "progress": st.dictionaries(_text, _scalar, max_size=2),
        "config": st.dictionaries(_text, _scalar, max_size=2),
    },
)


@pytest.mark.postgres
@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(meta=_metas)
def test_any_meta_of_the_providers_shapes_renders_the_same(meta: dict[str, Any]) -> None:
    pipeline = Pipeline.objects.first() or pipeline_build([(JobType.CSV_INGEST, JobState.FINISHED, JobResult.ERROR)])
    IngestionJob.objects.filter(pipeline=pipeline).update(meta=meta)
    python, listed = _both([pipeline])
    assert listed == python


@pytest.mark.django_db
def test_on_sqlite_or_with_no_pipeline_the_list_payloads_are_the_snapshots() -> None:
    pipeline = pipeline_build(DONE_OK)
    assert selectors.pipeline_list_payloads([]) == []
    rows = list(Pipeline.objects.select_related("created_by").filter(pk=pipeline.pk))
    python, listed = _both(rows)
    assert listed == python
