"""An analyst backfills newswire_archive from the Airflow UI, in Chromium, against the real components.

The stack (broker, sample sites, api-server, scheduler, dag-processor, triggerer) runs on free ports with only
newswire_archive unpaused. The test logs in, opens the DAG, fills the backfill dialog with a range of past
days, waits for the runs, and checks in the warehouse that exactly the sample articles published in those
days were ingested, from the paged feed, the archived feed and the sitemap. The same backfill submitted again
with "All Runs" re-runs every day and adds no row.

Chromium is Debian's (``make browser-deps``), driven by the Playwright package; ``playwright install`` is never
used.
"""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from ports import free_block

from devtools import stack
from newswire.warehouse import Warehouse

pytestmark = [pytest.mark.browser, pytest.mark.airflow]

REPO = Path(__file__).resolve().parents[2]
ARCHIVE: dict[str, Any] = tomllib.loads((REPO / "devtools" / "corpus" / "EXPECTED-archive.toml").read_text())
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DAG = "newswire_archive"
FIRST_DAY, LAST_DAY = -20, -17  # the backfill's range, in days from the sample sites' today
DAYS = LAST_DAY - FIRST_DAY + 1

# The waits derive from a budget per Airflow task on a loaded 2-core machine (`make test`'s other xdist worker
# busy beside the stack): queued by the scheduler, started by the executor, its process run, its state
# recorded. A backfill's runs are done after the longest chain of tasks that run one after another: the
# archive_day tasks of all runs (one at a time across the DAG's runs: the DAYS of the backfill, plus the run the
# scheduler creates for yesterday when the DAG is unpaused, which may hold the slot first), then the last
# day's summarize and rebuild_events.
TASK_SECONDS = 20.0
RUNS_SECONDS = (DAYS + 1 + 2) * TASK_SECONDS
# Airflow's scheduler marks a backfill completed in a check it runs every 30 s (fixed in SchedulerJobRunner);
# another backfill of the DAG is refused until then.
BACKFILL_COMPLETED_SECONDS = 30.0 + TASK_SECONDS
# Logging in, or filling and submitting the backfill dialog (its dry run and "Backfill generated" included).
UI_SECONDS = 90.0
# The test function as a whole (the stack's start is bounded by its own StackConfig.timeout): two backfills.
TEST_SECONDS = UI_SECONDS + 2 * (UI_SECONDS + RUNS_SECONDS + BACKFILL_COMPLETED_SECONDS)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's Chromium is missing: `make browser-deps` (a prerequisite of `make test`) installs it")
    home = tmp_path_factory.mktemp("browser") / "home"
    config = stack.StackConfig(
        home=home,
        port=free_block(1),
        sample=True,
        sample_base_port=free_block(8),
        host_interval=0.05,
        timeout=240,
        # Only the DAG under test runs: polling every sample feed meanwhile would only slow the test down.
        extra_env={"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"},
        unpause=(DAG,),
        sample_lists=("feeds-archive.toml",),
    )
    t0 = time.monotonic()
    with pytest.MonkeyPatch.context() as env:
        # Module-scoped: the per-test isolation of conftest does not apply yet; the stack inherits this env.
        for key in [k for k in os.environ if k.startswith(("NEWSWIRE_", "AIRFLOW"))]:
            env.delenv(key)
        env.chdir(home.parent)
        state = stack.up(config, log=lambda *_: None)
    state["up_seconds"] = time.monotonic() - t0
    try:
        yield state
    finally:
        stopped = stack.down(home, log=lambda *_: None)
        assert stopped["left"] == []


def api(state: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
    home = Path(state["home"])
    token = stack.api_token(state["url"], "admin", stack.admin_password(home / "airflow", "admin"))
    return stack.api(state["url"], token, method, path, body)


def backfill_runs(state: dict[str, Any]) -> list[dict[str, Any]]:
    runs = api(state, "GET", f"dags/{DAG}/dagRuns?limit=100")["dag_runs"]
    return [r for r in runs if r["run_type"] == "backfill"]


def wait_for(predicate: Any, timeout: float, what: str, describe: Any = None) -> Any:
    """Poll ``predicate`` until truthy; on time-out, say what was still pending (``describe``) rather than only
    that the budget ran out."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(1.0)
    pending = f"; pending: {describe()}" if describe else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last}){pending}")


def unfinished_tasks(state: dict[str, Any]) -> str:
    """Every task instance of the DAG not yet successful, with its state and try (a retry waits its delay), and
    any component the stack restarted (a scheduler that died leaves every run queued until it is back)."""
    tis = api(state, "GET", f"dags/{DAG}/dagRuns/~/taskInstances?limit=100")["task_instances"]
    pending = "; ".join(
        f"{t['dag_run_id']} {t['task_id']}: {t['state']} (try {t['try_number']})"
        for t in tis
        if t["state"] != "success"
    )
    restarts = [
        line
        for log in sorted((Path(state["home"]) / "logs" / "stack").glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("[keepalive]")
    ]
    return pending + (f"; restarted: {restarts}" if restarts else "")


def successful_runs(state: dict[str, Any], ended_after: str = "") -> list[dict[str, Any]]:
    """The backfill's runs once all DAYS succeeded (and ended after ``ended_after``), else []; a failed run
    fails the test at once, with its tasks' states, instead of waiting out the budget."""
    runs = backfill_runs(state)
    if any(r["state"] == "failed" for r in runs):
        raise AssertionError(f"a backfill run failed: {runs}; tasks: {unfinished_tasks(state)}")
    done = [r for r in runs if r["state"] == "success" and r["end_date"] and r["end_date"] > ended_after]
    return runs if len(runs) == DAYS and len(done) == DAYS else []


def submit_backfill(page: Any, url: str, first: date, last: date, *, reprocess: str | None = None) -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}/dags/{DAG}")
    page.get_by_role("button", name="Trigger Dag").click()
    page.get_by_text("Run this Dag for a range of dates").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"Run Backfill - {DAG}").wait_for()
    for index, day in enumerate((first, last)):
        trigger = page.get_by_test_id("datetime-input").nth(index)
        trigger.click()
        # Each field opens its own picker (a popover named after the trigger): fill that one, then close it.
        picker = page.locator(f"[id='{trigger.get_attribute('id').replace(':trigger', ':content')}']")
        picker.get_by_placeholder("YYYY/MM/DD").fill(day.strftime("%Y/%m/%d"))
        picker.get_by_placeholder("HH:mm").fill("00:00")
        page.keyboard.press("Escape")
        expect(picker).to_be_hidden()
    shown = [page.get_by_test_id("datetime-input").nth(i).inner_text() for i in (0, 1)]
    assert shown == [f"{d.strftime('%b %d, %Y')} 00:00" for d in (first, last)]
    if reprocess:
        dialog.get_by_text(reprocess, exact=True).click()
    dialog.locator("input[name=max_active_runs]").fill("4")
    submit = dialog.get_by_role("button", name="Run Backfill")
    # Enabled once the dialog's dry run (how many runs the range makes) has come back.
    expect(submit).to_be_enabled(timeout=20_000)
    submit.click()
    # The API server creates the runs before it answers; on a loaded 2-core machine that took over 15 s.
    page.get_by_text("Backfill generated").first.wait_for(timeout=60_000)


def archive_tasks(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The archive_day task instances of every run of the DAG (each run's latest try)."""
    path = f"dags/{DAG}/dagRuns/~/taskInstances?task_id=archive_day&limit=100"
    return list(api(state, "GET", path)["task_instances"])


def assert_one_archive_task_at_a_time(tasks: list[dict[str, Any]]) -> None:
    """Issue 12's slot rule, as the scheduler applied it: no two archive tasks ran at the same time, whatever
    their runs (the scheduled day and the backfill's days), so the archive held one fetch slot."""
    spans = sorted((datetime.fromisoformat(t["start_date"]), datetime.fromisoformat(t["end_date"])) for t in tasks)
    overlapping = [(a, b) for a, b in pairwise(spans) if b[0] < a[1]]
    assert not overlapping, overlapping


def ledger(warehouse: Warehouse) -> dict[str, Any]:
    counts = {
        table: warehouse.scalar(f"SELECT COUNT(*) FROM {table}")
        for table in ("feed_entries", "article_urls", "ingest_runs", "dead_letters", "article_duplicates")
    }
    counts["new_articles"] = warehouse.scalar("SELECT COALESCE(SUM(new_articles), 0) FROM ingest_runs")
    return counts


@pytest.mark.timeout(TEST_SECONDS, func_only=True)
def test_backfill_from_the_ui_ingests_exactly_the_days_and_all_runs_adds_nothing(running: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    home = Path(running["home"])
    today = date.fromisoformat(running["sample"]["today"])
    first, last = today + timedelta(days=FIRST_DAY), today + timedelta(days=LAST_DAY)
    password = stack.admin_password(home / "airflow", "admin")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(timezone_id="UTC", viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(30_000)
            page.goto(running["url"])
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda u: "/auth/login" not in u)

            try:
                submit_backfill(page, running["url"], first, last)
            except Exception:
                page.screenshot(path=str(home / "backfill-dialog.png"), full_page=True)
                print("screenshot:", home / "backfill-dialog.png")
                raise
            runs = wait_for(
                lambda: successful_runs(running),
                RUNS_SECONDS,
                "four successful backfill runs",
                lambda: unfinished_tasks(running),
            )
            wait_for(
                lambda: all(b["completed_at"] for b in api(running, "GET", f"backfills?dag_id={DAG}")["backfills"]),
                BACKFILL_COMPLETED_SECONDS,
                "the backfill to complete",
            )
            tasks = archive_tasks(running)
            # One archive task per day (the scheduler's run for yesterday too), all successful, never two at once.
            assert {t["dag_run_id"] for t in tasks} >= {r["dag_run_id"] for r in runs}
            assert len(tasks) == len({t["dag_run_id"] for t in tasks}) and {t["state"] for t in tasks} == {"success"}
            assert_one_archive_task_at_a_time(tasks)
            runs_done = max(datetime.fromisoformat(r["end_date"]) for r in runs)
            runs_seconds = (runs_done - min(datetime.fromisoformat(r["start_date"]) for r in runs)).total_seconds()

            warehouse = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
            intervals = sorted(
                (datetime.fromisoformat(r["data_interval_start"]), datetime.fromisoformat(r["data_interval_end"]))
                for r in runs
            )
            assert [s.date() for s, _ in intervals] == [first + timedelta(days=i) for i in range(4)]
            start, end = intervals[0][0], intervals[-1][1]
            wanted = {}
            for article in ARCHIVE["articles"]:
                offset, clock = article["published"].split()
                moment = datetime.combine(today + timedelta(days=int(offset)), datetime.min.time(), UTC)
                moment += timedelta(hours=int(clock[:2]), minutes=int(clock[3:]))
                if start <= moment < end:
                    wanted[article["path"]] = article["sources"]
            assert {s for sources in wanted.values() for s in sources} >= {
                "paged_feed",
                "archived_feed",
                "posts_sitemap",
            }
            run_ids = [r["dag_run_id"] for r in runs]
            marks = ",".join("?" * len(run_ids))
            new = warehouse.query(
                f"SELECT entry_url, published_at FROM feed_entries WHERE outcome = 'new' AND run_id IN ({marks})",
                run_ids,
            )
            got = sorted("/" + row["entry_url"].split("/", 3)[3] for row in new)
            assert got == sorted(wanted)  # each exactly once
            # Nothing else was recorded for those days: no other entry, no failure.
            recorded = warehouse.query(
                "SELECT entry_url, outcome FROM feed_entries WHERE published_at >= ? AND published_at < ?", (start, end)
            )
            assert sorted("/" + r["entry_url"].split("/", 3)[3] for r in recorded) == got
            run_rows = warehouse.query(f"SELECT status FROM ingest_runs WHERE run_id IN ({marks})", run_ids)
            assert len(run_rows) == 8 and {r["status"] for r in run_rows} == {"ok"}
            before = ledger(warehouse)
            first_pass = time.monotonic() - t0

            # The same range again, "All Runs": every day is re-run, and nothing is added anywhere.
            submit_backfill(page, running["url"], first, last, reprocess="All Runs")
            wait_for(
                lambda: len(api(running, "GET", f"backfills?dag_id={DAG}")["backfills"]) == 2,
                UI_SECONDS,
                "the second backfill",
            )
            rerun = wait_for(
                lambda: successful_runs(running, ended_after=max(r["end_date"] for r in runs)),
                RUNS_SECONDS,
                "the four runs to be re-run",
                lambda: unfinished_tasks(running),
            )
            assert len(rerun) == DAYS
            assert ledger(warehouse) == before
            assert_one_archive_task_at_a_time(archive_tasks(running))
            rerun_seconds = (
                max(datetime.fromisoformat(r["end_date"]) for r in rerun)
                - min(datetime.fromisoformat(r["start_date"]) for r in rerun)
            ).total_seconds()
        finally:
            browser.close()
    print(
        f"\nbrowser test: stack healthy after {running['healthy_after_seconds']} s, "
        f"first backfill {first_pass:.1f} s (its runs {runs_seconds:.1f} s of a {RUNS_SECONDS:.0f} s budget), "
        f"re-run's runs {rerun_seconds:.1f} s, whole test {time.monotonic() - t0 + running['up_seconds']:.1f} s"
    )
