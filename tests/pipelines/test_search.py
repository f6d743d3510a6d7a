"""The list's ``q``: the messages a pipeline's status refresh stored, the live messages of its
queued and running jobs, its unit code — and nothing in between two messages."""

from __future__ import annotations

import pytest

from pipelines.choices import JobState
from pipelines.models import IngestionJob, Pipeline
from pipelines.services import pipeline_status_refresh
from tests.pipelines.api_helpers import DONE_OK, FAILED, RUNNING, pipeline_build
from tests.roles import Roles

pytestmark = pytest.mark.django_db

LIST = "/api/v1/sync/pipelines"


def _found(roles: Roles, q: str) -> set[str]:
    response = roles.client("superadmin").get(LIST, {"q": q})
    assert response.status_code == 200, response.json()
    return {item["pipeline_id"] for item in response.json()["items"]}


def test_a_finished_jobs_message_is_found_once_its_pipeline_is_refreshed(roles: Roles) -> None:
    failed = pipeline_build(FAILED, message="row 2, column unit: unknown unit 'XYZ-9'")
    pipeline_build(DONE_OK)
    assert Pipeline.objects.get(pk=failed.pk).search_text == "row 2, column unit: unknown unit 'XYZ-9'"
    assert _found(roles, "xyz-9") == {str(failed.pk)}
    assert _found(roles, "UNKNOWN UNIT") == {str(failed.pk)}
    assert _found(roles, "nothing like it") == set()


def test_a_running_jobs_live_message_is_found_before_any_refresh(roles: Roles) -> None:
    running = pipeline_build(RUNNING)
    recalc = IngestionJob.objects.get(pipeline=running, state=JobState.RUNNING)
    # a progress write: the job row changes, the pipeline row does not
    IngestionJob.objects.filter(pk=recalc.pk).update(status_message="Recalculating 40/120 entries of lab 77")
    assert "lab 77" not in Pipeline.objects.get(pk=running.pk).search_text
    assert _found(roles, "LAB 77") == {str(running.pk)}
    # once it finishes with another message, the stored text has the final one
    IngestionJob.objects.filter(pk=recalc.pk).update(status_message="Emission recalculation completed: lab 78")
    assert _found(roles, "lab 77") == set()


def test_an_old_message_of_a_finished_job_is_not_found_after_it_changed(roles: Roles) -> None:
    done = pipeline_build(DONE_OK, message="first wording")
    IngestionJob.objects.filter(pipeline=done).update(status_message="second wording")
    pipeline_status_refresh(pipeline_id=done.pk)
    assert _found(roles, "first") == set()
    assert _found(roles, "second wording") == {str(done.pk)}


def test_the_unit_code_matches_whole_not_as_a_substring(roles: Roles) -> None:
    coded = pipeline_build(DONE_OK, unit_code="40123")
    assert _found(roles, "40123") == {str(coded.pk)}
    assert _found(roles, "4012") == set()


@pytest.mark.parametrize("q", ["ends\x1fstarts", "two\nlines", "a\tb", "bell\x07"])
def test_a_term_with_a_control_character_is_refused(roles: Roles, q: str) -> None:
    # search_text joins messages with U+001F: such a term could match across two of them
    response = roles.client("superadmin").get(LIST, {"q": q})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("q: must not contain control characters")
