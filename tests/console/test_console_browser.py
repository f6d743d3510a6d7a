"""The operations console in a real browser, against real web and worker processes (SPEC §7).

What a person at the console must see, and never by reloading the page: a pipeline dispatched
elsewhere appears and goes RUNNING → SUCCESS; its row expands into the job DAG (an SVG node
per job, an edge per parent → child link) and each job's timeline; a message copies to the
clipboard; abort goes through a confirmation and ends CANCELLED; "errors only" keeps the
erroring pipelines and the counters follow; a bulk action states how many pipelines match;
mixed worker code raises a banner; a lost connection re-syncs on reconnect. Each test sets
``window.__marker`` and checks it survives: a reload or a navigation would drop it.

Synchronisation is Playwright's auto-waiting ``expect`` on the page, and ``wait_for`` polling
on the database; never a sleep. Screenshots of the console go to ``docs/screenshots/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from carbon.models import User
from pipelines import services
from pipelines.choices import IngestionMethod, JobType, PipelineStatus, TargetType, WorkerKind
from pipelines.models import IngestionJob, Pipeline, Worker
from tests.console import demo
from tests.console.conftest import PASSWORD, Console, login, screenshot
from tests.factories import CarbonReportFactory, CarbonReportModuleFactory
from tests.pipelines.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.slow]

CONSOLE = "/admin/pipelines/console/"
MARKER = "window.__marker"


def row_of(page: Any, pipeline: Pipeline) -> Any:
    return page.locator(f'tr.pc-row[data-pipeline-id="{pipeline.pk}"]')


def counter(page: Any, status: str) -> Any:
    return page.locator(f'#pc-counters button[data-status="{status}"] .pc-counter-n')


def mark_page(page: Any) -> None:
    page.evaluate(f"{MARKER} = 'no reload'")


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate(MARKER) == "no reload", "the page reloaded or navigated"


def settled(*pipelines: Pipeline) -> bool:
    return not Pipeline.objects.filter(pk__in=[p.pk for p in pipelines], finished_at__isnull=True).exists()


def status_of(pipeline: Pipeline) -> str:
    return str(Pipeline.objects.values_list("status", flat=True).get(pk=pipeline.pk))


def open_console(page: Any, user: User) -> None:
    login(page, user, next_path=CONSOLE)
    expect(page.locator("#pc")).to_have_attribute("data-ready", "true")
    expect(page.locator("#pc-connection")).to_have_attribute("data-state", "live")


def test_a_dispatched_pipeline_runs_live_and_expands_into_its_dag_and_timeline(
    console: Console, page: Any, operator: User
) -> None:
    # given: a worker, and the console opened from the admin index after logging in
    console.start_worker()
    login(page, operator)
    page.get_by_role("link", name="Operations console").first.click()
    page.wait_for_url(f"**{CONSOLE}")
    expect(page.locator("#pc-connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#pc-rows")).to_contain_text("No pipeline matches these filters.")
    mark_page(page)

    # when: a pipeline is dispatched (its root job holds until released)
    release = console.hold_file("equipment")
    pipeline = demo.dispatch(
        JobType.CSV_INGEST,
        demo.per_year(4),
        demo.hold(
            release,
            message="2 rows inserted, 0 skipped",
            chain=[demo.recalc(10, "1 scientific entry recalculated"), demo.recalc(11, "1 IT entry recalculated")],
        ),
        user=operator,
    )

    # then: its row appears RUNNING, then turns SUCCESS, without a reload
    row = row_of(page, pipeline)
    expect(row).to_have_attribute("data-status", "RUNNING")
    expect(row.locator('[data-role="status-badge"]')).to_have_text(re.compile("Running"))
    expect(counter(page, "RUNNING")).to_have_text("1")
    release.touch()
    expect(row).to_have_attribute("data-status", "SUCCESS", timeout=60_000)
    expect(row.locator('[data-role="status-badge"]')).to_have_text(re.compile("Success"))
    expect(row.locator(".pc-col-jobs")).to_contain_text("4/4")
    expect(counter(page, "SUCCESS")).to_have_text("1")
    expect(counter(page, "RUNNING")).to_have_text("0")
    assert_not_reloaded(page)

    # when: the row is expanded with the keyboard
    row.focus()
    page.keyboard.press("Enter")
    detail = page.locator(f'tr.pc-detail[data-pipeline-id="{pipeline.pk}"]')
    expect(detail).to_be_visible()
    expect(row).to_have_attribute("aria-expanded", "true")

    # then: the DAG has a node per job and an edge per parent → child link, as stored
    jobs = list(IngestionJob.objects.filter(pipeline=pipeline).order_by("id").values("id", "parent_id", "job_type"))
    assert [j["job_type"] for j in jobs] == ["csv_ingest", "emission_recalc", "emission_recalc", "aggregation"]
    nodes = detail.locator("svg.pc-dag-svg g.pc-dag-node")
    expect(nodes).to_have_count(len(jobs))
    for job in jobs:
        expect(detail.locator(f'g.pc-dag-node[data-job-id="{job["id"]}"]')).to_have_attribute("data-result", "SUCCESS")
    edges = detail.locator("svg.pc-dag-svg path.pc-dag-edge")
    expect(edges).to_have_count(len(jobs) - 1)
    drawn = {(int(e.get_attribute("data-from")), int(e.get_attribute("data-to"))) for e in edges.all()}
    assert drawn == {(j["parent_id"], j["id"]) for j in jobs if j["parent_id"]}

    # and each job's timeline lists its status history
    root = jobs[0]
    history = IngestionJob.objects.values_list("status_history", flat=True).get(pk=root["id"])
    item = detail.locator(f"#pc-job-{root['id']}")
    item.locator("summary").click()
    entries = item.locator(".pc-timeline-entry")
    expect(entries).to_have_count(len(history))
    expect(entries.first).to_be_visible()
    expect(item.locator(".pc-timeline-list")).to_contain_text("claim")
    expect(entries.last).to_contain_text("2 rows inserted, 0 skipped")

    # when: a job's message is opened and copied
    opener = item.locator(".pc-job-message button")
    opener.click()
    dialog = page.locator("#pc-message-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#pc-message-text")).to_have_text("2 rows inserted, 0 skipped")
    dialog.get_by_role("button", name="Copy").click()

    # then: the clipboard holds it, and Escape closes the dialog back onto its opener
    expect(page.locator("#pc-toasts")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "2 rows inserted, 0 skipped"
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()

    # and Space on the row collapses it again
    row.focus()
    page.keyboard.press(" ")
    expect(detail).to_have_count(0)
    assert_not_reloaded(page)


def test_abort_goes_through_a_confirmation_and_ends_cancelled(console: Console, page: Any, operator: User) -> None:
    # given: the console open, and a running pipeline that would never end by itself
    console.start_worker()
    open_console(page, operator)
    mark_page(page)
    pipeline = demo.dispatch(
        JobType.API_INGEST,
        demo.per_year(2, method=IngestionMethod.API),
        demo.hold(console.hold_file("never")),
        user=operator,
    )
    row = row_of(page, pipeline)
    expect(row).to_have_attribute("data-status", "RUNNING")
    abort = row.get_by_role("button", name=re.compile("^Abort pipeline"))
    dialog = page.locator("#pc-confirm-dialog")

    # when: abort is asked, then dismissed with Escape
    abort.click()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Abort pipeline?")
    expect(page.locator("#pc-confirm-caption")).to_contain_text(str(pipeline.pk))
    expect(page.locator("#pc-confirm-caption")).to_contain_text("api_ingest · Professional travel / 2025")
    cancel, confirm = page.locator("#pc-confirm-cancel"), page.locator("#pc-confirm-ok")
    expect(cancel).to_be_focused()  # the safe choice first
    page.keyboard.press("Tab")
    expect(confirm).to_be_focused()
    page.keyboard.press("Tab")
    expect(cancel).to_be_focused()  # focus stays in the dialog
    page.keyboard.press("Escape")

    # then: nothing happened
    expect(dialog).to_be_hidden()
    expect(abort).to_be_focused()
    assert not Pipeline.objects.filter(pk=pipeline.pk, cancel_requested_at__isnull=False).exists()

    # when: abort is confirmed
    abort.click()
    confirm.click()

    # then: the row ends CANCELLED, live
    expect(page.locator("#pc-toasts")).to_contain_text("Pipeline aborted")
    expect(row).to_have_attribute("data-status", "CANCELLED", timeout=60_000)
    expect(row.locator('[data-role="status-badge"]')).to_have_text(re.compile("Cancelled"))
    expect(row.get_by_role("button", name=re.compile("^Abort pipeline"))).to_have_count(0)
    expect(row.get_by_role("button", name=re.compile("^Retry the failed jobs"))).to_be_visible()
    expect(counter(page, "CANCELLED")).to_have_text("1")
    wait_for(lambda: status_of(pipeline) == PipelineStatus.CANCELLED, timeout=30, what="the pipeline to end")
    assert_not_reloaded(page)


def test_errors_only_keeps_the_erroring_pipelines_and_the_counters_follow(
    console: Console, page: Any, operator: User
) -> None:
    # given: two pipelines that succeeded and one that failed
    console.start_worker()
    ok_equipment = demo.dispatch(JobType.CSV_INGEST, demo.per_year(4), {"message": "12 rows inserted"})
    ok_factors = demo.dispatch(
        JobType.FACTOR_INGEST, demo.per_year(3, target=TargetType.FACTORS), {"message": "40 factors upserted"}
    )
    failed = demo.dispatch(JobType.CSV_INGEST, demo.per_year(5), {"fail": "Row 3: amount 'abc' is not a number"})
    wait_for(lambda: settled(ok_equipment, ok_factors, failed), timeout=60, what="the three pipelines to end")
    open_console(page, operator)
    mark_page(page)
    rows = page.locator("tr.pc-row")
    expect(rows).to_have_count(3)
    expect(counter(page, "")).to_have_text("3")
    expect(counter(page, "SUCCESS")).to_have_text("2")
    expect(counter(page, "FAILED")).to_have_text("1")

    # when
    page.get_by_label("Errors only").check()

    # then: only the failed one is left, and the counters count the filtered set
    expect(rows).to_have_count(1)
    expect(row_of(page, failed)).to_be_visible()
    expect(row_of(page, failed).locator(".pc-col-message")).to_contain_text("amount 'abc' is not a number")
    expect(counter(page, "")).to_have_text("1")
    expect(counter(page, "FAILED")).to_have_text("1")
    expect(counter(page, "SUCCESS")).to_have_text("0")
    expect(page.locator("#pc-summary")).to_contain_text("1 pipeline match — with errors.")
    expect(page).to_have_url(re.compile(r"\?has_errors=true$"))

    # and the other filters narrow the same way: job type, then message search
    page.get_by_label("Errors only").uncheck()
    expect(rows).to_have_count(3)
    page.get_by_label("Job type").select_option("factor_ingest")
    expect(rows).to_have_count(1)
    expect(row_of(page, ok_factors)).to_be_visible()
    page.get_by_role("button", name="Clear filters").click()
    expect(rows).to_have_count(3)
    page.get_by_label("Message search").fill("12 rows")
    expect(rows).to_have_count(1)
    expect(row_of(page, ok_equipment)).to_be_visible()
    page.get_by_role("button", name="Clear filters").click()
    expect(rows).to_have_count(3)
    assert_not_reloaded(page)


def test_bulk_abort_states_how_many_pipelines_match_before_acting(console: Console, page: Any, operator: User) -> None:
    # given: two finished pipelines, then three queued with no worker to take them
    worker = console.start_worker()
    finished = [demo.dispatch(JobType.CSV_INGEST, demo.per_year(m), {"message": "Done"}) for m in (4, 5)]
    wait_for(lambda: settled(*finished), timeout=60, what="the finished pipelines")
    console.stop_worker(worker)
    queued = [demo.dispatch(JobType.CSV_INGEST, demo.per_year(m), {}) for m in (1, 2, 3)]
    open_console(page, operator)
    mark_page(page)
    rows = page.locator("tr.pc-row")
    expect(rows).to_have_count(5)

    # when: the list is narrowed to the queued ones and a bulk abort is asked
    page.locator('#pc-counters button[data-status="NOT_STARTED"]').click()
    expect(rows).to_have_count(3)
    page.get_by_role("button", name="Abort all matching…").click()

    # then: the confirmation states the count of the list's filter
    dialog = page.locator("#pc-confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Abort 3 pipelines?")
    expect(page.locator("#pc-confirm-body")).to_contain_text(
        "3 pipelines match the current filters (status Not started)"
    )
    expect(page.locator("#pc-confirm-ok")).to_have_text("Abort 3")

    # when: confirmed
    page.locator("#pc-confirm-ok").click()

    # then: exactly those three end CANCELLED, and the page follows
    expect(page.locator("#pc-toasts")).to_contain_text("Aborted 3 of 3 matching (0 skipped)")
    expect(page.locator("#pc-rows")).to_contain_text("No pipeline matches these filters.")
    assert sorted(status_of(p) for p in queued) == [PipelineStatus.CANCELLED] * 3
    assert sorted(status_of(p) for p in finished) == [PipelineStatus.SUCCESS] * 2
    page.get_by_role("button", name="Clear filters").click()
    expect(rows).to_have_count(5)
    expect(counter(page, "CANCELLED")).to_have_text("3")

    # and a bulk retry over no filter counts every pipeline; cancelling it changes nothing
    page.get_by_role("button", name="Retry failed in all matching…").click()
    expect(dialog.get_by_role("heading")).to_have_text("Retry failed jobs of 5 pipelines?")
    expect(page.locator("#pc-confirm-body")).to_contain_text("no filter: every pipeline")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert sorted(status_of(p) for p in queued) == [PipelineStatus.CANCELLED] * 3
    assert_not_reloaded(page)


def test_workers_panel_warns_when_live_workers_run_different_code(console: Console, page: Any, operator: User) -> None:
    # given: no worker at all
    open_console(page, operator)
    banner = page.locator("#pc-banners")
    expect(banner.locator('[data-banner="no-worker"]')).to_be_visible()
    expect(page.locator("#pc-workers-body")).to_contain_text("No live workers.")

    # when: two workers of different releases heartbeat (a deploy half done)
    now = timezone.now()
    for host, pid, sha, version in (("ops-a", 4121, "3f9c2e1d7a", "1.4.2"), ("ops-b", 977, "a41b7d09ee", "1.5.0")):
        Worker.objects.create(
            id=f"worker:{host}:{pid}", kind=WorkerKind.WORKER, hostname=host, pid=pid,
            git_sha=sha, version=version, started_at=now, last_heartbeat_at=now,
        )  # fmt: skip
    page.get_by_role("button", name="Refresh workers").click()

    # then: both are listed, and a banner names the two versions
    expect(page.locator("#pc-workers-body tbody tr")).to_have_count(2)
    expect(page.locator("#pc-workers-badge")).to_have_text("2 live")
    mixed = banner.locator('[data-banner="mixed-code"]')
    expect(mixed).to_be_visible()
    expect(mixed).to_contain_text("1.4.2@3f9c2e1")
    expect(mixed).to_contain_text("1.5.0@a41b7d0")
    expect(banner.locator('[data-banner="no-worker"]')).to_have_count(0)


def test_a_lost_connection_resyncs_from_the_api_on_reconnect(console: Console, page: Any, operator: User) -> None:
    # given: the console live
    console.start_worker()
    open_console(page, operator)
    mark_page(page)
    connection = page.locator("#pc-connection")

    # when: the web server goes away, a pipeline runs meanwhile, and the server comes back
    console.stop_web()
    expect(connection).to_have_attribute("data-state", "reconnecting")
    missed = demo.dispatch(JobType.CSV_INGEST, demo.per_year(4), {"message": "Ran while the console was offline"})
    wait_for(lambda: settled(missed), timeout=60, what="the pipeline to end")
    console.start_web()

    # then: the page reconnects by itself and shows what it missed
    expect(connection).to_have_attribute("data-state", "live", timeout=60_000)
    expect(row_of(page, missed)).to_have_attribute("data-status", "SUCCESS")
    assert_not_reloaded(page)


def test_screenshots_of_a_working_day_and_the_processed_file_download(
    console: Console, page: Any, operator: User, django_user_model: type[User], tmp_path: Path
) -> None:
    """Realistic data for docs/screenshots: list, expanded row, confirmation dialog."""
    uploader = django_user_model.objects.create_user(
        username="marie.dubois", email="marie.dubois@example.org", password=PASSWORD,
        first_name="Marie", last_name="Dubois",
    )  # fmt: skip
    report = CarbonReportFactory.create(year=demo.YEAR, unit__name="LCBM", unit__institutional_code="14270")
    for module in range(1, 9):  # a report's eight modules: those never aggregated show as stale
        CarbonReportModuleFactory.create(report=report, module_type_id=module)
    console.start_worker()
    made = demo.finished_day(author=operator, uploader=uploader)
    wait_for(lambda: settled(*made.values()), timeout=120, what="the day's pipelines to end")
    assert {k: status_of(p) for k, p in made.items()} == {
        "units": "SUCCESS",
        "factors": "SUCCESS",
        "equipment": "SUCCESS",
        "travel": "FAILED",
        "purchases": "PARTIAL",
    }
    rooms = demo.dispatch(
        JobType.REFERENCE_INGEST,
        demo.per_year(3, target=TargetType.REFERENCE_DATA),
        demo.hold(console.hold_file("rooms")),
        user=operator,
    )
    wait_for(lambda: status_of(rooms) == PipelineStatus.RUNNING, timeout=60, what="the rooms import to start")
    services.pipeline_abort(pipeline_id=rooms.pk, user=operator)
    wait_for(lambda: settled(rooms), timeout=60, what="the rooms import to stop")
    open_console(page, operator)
    # Last, a running import and one queued behind it (on SQLite a running job holds the write lock).
    with transaction.atomic():
        running = demo.dispatch(
            JobType.API_INGEST,
            demo.per_year(2, method=IngestionMethod.API),
            {"steps": 2400, "step_seconds": 0.25},
            user=operator,
        )
        queued = demo.dispatch(
            JobType.MODULE_EMISSION_RECALC,
            demo.per_year(1, method=IngestionMethod.COMPUTED),
            {"message": "Headcount emissions recalculated"},
            user=operator,
        )
    rows = page.locator("tr.pc-row")
    expect(rows).to_have_count(8)
    expect(row_of(page, running)).to_have_attribute("data-status", "RUNNING")
    expect(row_of(page, made["purchases"]).locator('[data-role="status-badge"]')).to_have_text(re.compile("Partial"))
    expect(row_of(page, made["equipment"]).locator('[data-role="status-badge"]')).to_have_text(re.compile("Warning"))
    # aggregated today: buildings (factors), equipment, purchases; the five others never were
    expect(page.locator("#pc-stale-badge")).to_have_text("5 stale")
    page.mouse.move(0, 0)
    screenshot(page, "console-list.png", full_page=True)

    # the processed file of the equipment upload downloads from its row
    equipment = row_of(page, made["equipment"])
    with page.expect_download() as download:
        equipment.get_by_role("link", name=re.compile("Download the processed file")).click()
    assert download.value.suggested_filename == "equipment-2025.csv"
    saved = tmp_path / "downloaded.csv"
    download.value.save_as(saved)
    assert saved.read_text(encoding="utf-8") == demo.EQUIPMENT_CSV

    # expanded: the equipment upload's DAG, and its root job's timeline
    equipment.get_by_role("button", name=re.compile("^Show the jobs")).click()
    detail = page.locator(f'tr.pc-detail[data-pipeline-id="{made["equipment"].pk}"]')
    expect(detail.locator("g.pc-dag-node")).to_have_count(5)
    expect(detail.locator("path.pc-dag-edge")).to_have_count(4)
    detail.locator(".pc-job").first.locator("summary").click()
    expect(detail.locator(".pc-job").first.locator(".pc-timeline-entry").first).to_be_visible()
    page.mouse.move(0, 0)
    screenshot(page, "console-expanded.png", full_page=True)

    # the confirmation of an abort
    equipment.get_by_role("button", name=re.compile("^Hide the jobs")).click()
    row_of(page, running).get_by_role("button", name=re.compile("^Abort pipeline")).click()
    expect(page.locator("#pc-confirm-dialog")).to_be_visible()
    screenshot(page, "console-confirm.png")
    page.keyboard.press("Escape")
    expect(page.locator("#pc-confirm-dialog")).to_be_hidden()
    assert status_of(running) == PipelineStatus.RUNNING

    # the day ends: the long import is stopped, the queued recalculation then runs
    services.pipeline_abort(pipeline_id=running.pk, user=operator)
    expect(row_of(page, running)).to_have_attribute("data-status", "CANCELLED")
    expect(row_of(page, queued)).to_have_attribute("data-status", "SUCCESS")
