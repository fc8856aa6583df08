"""A person's path through the Airflow UI: log in, trigger a DAG, see it succeed, and find
its data in the lake.

The DAG is ``bronze_catchup``, the smallest that still runs the real thing: the scheduler's
executor runs its spark-submit task (the Bronze job, every topic up to date) and its Trino
registration with the stack's default settings, so the test's listens go to the default
topics under users of its own. (silver_daily's four Spark tasks run the same registered
jobs as the in-process pipeline and the wheel test; tests/unit/test_dags.py checks its
wiring and dates.)

The trigger dialog unpauses the DAG, and an unpaused ``catchup=False`` DAG gets a run for
its latest schedule tick at once; with ``max_active_runs=1`` that run would go first and
double the test's time. A finished run on that tick, made beforehand through the API, takes
the tick's place (Airflow makes one run per logical date). It stays, its tasks shown as
skipped: deleted, the scheduler would start the tick's run after all.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from ingestion.producer import EventProducer
from ingestion.streams import STREAMS, Stream
from tunelake_ops.airflow_env import airflow_home
from tunelake_ops.stack.install import chromium
from tunelake_ops.stack.process import wait_until

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RUN_TIMEOUT_S = 900


DAG_ID = "bronze_catchup"
DAG_API = f"/api/v2/dags/{DAG_ID}"
TICK_RUN_PREFIX = "ui_test_tick__"


def _ui(settings) -> str:
    return f"http://127.0.0.1:{settings.airflow_port}"


def _api(settings) -> httpx.Client:
    token = httpx.post(
        f"{_ui(settings)}/auth/token",
        json={
            "username": settings.airflow_admin_user,
            "password": settings.airflow_admin_password.get_secret_value(),
        },
    ).json()["access_token"]
    return httpx.Client(
        base_url=_ui(settings), headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _take_the_due_tick(api: httpx.Client) -> None:
    """Fill the schedule tick that unpausing would run now with a finished run of ours."""
    # A fresh stack's DAG processor may not have parsed the DAG file yet.
    assert wait_until(lambda: api.get(DAG_API).status_code != 404, timeout_s=120), "no DAG"
    tick = api.get(DAG_API).raise_for_status().json()["next_dagrun_logical_date"]
    api.patch(DAG_API, json={"is_paused": True}).raise_for_status()
    # An interrupted earlier test's run would go first (max_active_runs=1): end it.
    unfinished = api.get(f"{DAG_API}/dagRuns", params={"state": ["queued", "running"]})
    for run in unfinished.raise_for_status().json()["dag_runs"]:
        api.patch(
            f"{DAG_API}/dagRuns/{quote(run['dag_run_id'], safe='')}", json={"state": "failed"}
        ).raise_for_status()
    if tick is None or datetime.fromisoformat(tick) > datetime.now(UTC):
        return  # nothing due: unpausing starts nothing
    run_id = f"{TICK_RUN_PREFIX}{tick}"
    created = api.post(
        f"{DAG_API}/dagRuns",
        json={
            "dag_run_id": run_id,
            "logical_date": tick,
            "note": "stands in for the scheduled run: tests/integration/test_airflow_ui.py",
        },
    )
    if created.status_code == 409:  # the tick has its run already
        return
    created.raise_for_status()
    # Marked successful while the DAG is paused: its tasks are skipped, none ever starts.
    api.patch(f"{DAG_API}/dagRuns/{run_id}", json={"state": "success"}).raise_for_status()


def _run_rows(page: Page, settings) -> dict[str, str]:
    """Run id -> the row's text, as the Runs tab shows them."""
    page.goto(f"{_ui(settings)}/dags/{DAG_ID}/runs")
    page.get_by_role("row").nth(1).wait_for(timeout=30_000)
    page.wait_for_load_state("networkidle")
    # One read of the whole table: it re-renders as runs progress.
    texts = page.get_by_role("row").evaluate_all("rows => rows.map(r => r.innerText)")
    rows = {}
    for text in texts[1:]:
        run_id = next((part for part in text.split() if "__" in part), None)
        if run_id:
            rows[run_id] = text
    return rows


def _new_run(page: Page, settings, before: set[str]) -> str:
    """The run the trigger made, once the Runs tab shows it: the only new one, the person's."""
    deadline = time.monotonic() + 60
    while True:
        rows = _run_rows(page, settings)
        new = [r for r in rows if r not in before]
        if new:
            break
        if time.monotonic() > deadline:
            pytest.fail("the triggered run never showed in the Runs tab")
        page.wait_for_timeout(2_000)
    # The scheduler made no run of its own ahead of it.
    assert len(new) == 1, f"runs besides the one triggered: {new}"
    assert new[0].startswith("manual__") and "admin" in rows[new[0]], rows[new[0]]
    return new[0]


def _publish_listens(settings, users: list[str], per_user: int) -> None:
    now = datetime.now(UTC)
    producer = EventProducer(settings)
    try:
        producer.publish(
            Stream.LISTENS,
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "event_time": now,
                    "schema_version": 1,
                    "user_id": users[i % len(users)],
                    "track_id": f"t{i % 5}",
                    "played_at": now,
                    "ms_played": 1000,
                    "context": None,
                    "request_id": None,
                }
                for i in range(per_user * len(users))
            ],
        )
    finally:
        producer.close()


@pytest.fixture
def users() -> list[str]:
    return [f"ui-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]


@pytest.fixture
def airflow_api(settings, kafka, s3, registry, users) -> Iterator[httpx.Client]:
    # What the triggered run lands in Bronze.
    _publish_listens(settings, users, per_user=10)
    with _api(settings) as api:
        _take_the_due_tick(api)
        try:
            yield api
        finally:
            api.patch(DAG_API, json={"is_paused": True}).raise_for_status()


# The run's wait is bounded by RUN_TIMEOUT_S; pytest's bound covers the setup around it.
@pytest.mark.timeout(1200)
def test_log_in_trigger_bronze_catchup_and_see_it_succeed(
    airflow_api, spark, settings, users, tmp_path
):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium()), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(_ui(settings))
            page.get_by_label("Username").fill(settings.airflow_admin_user)
            page.get_by_label("Password").fill(settings.airflow_admin_password.get_secret_value())
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
            before = set(_run_rows(page, settings))

            page.goto(f"{_ui(settings)}/dags/{DAG_ID}")
            page.get_by_role("button", name="Trigger").first.click()
            page.get_by_text(f"Unpause {DAG_ID} on trigger").wait_for()
            page.get_by_role("button", name="Trigger").last.click()
            mine = _new_run(page, settings, before)

            # While the Spark tasks run, ask the API (cheap) and leave the UI: an open Runs
            # tab refreshes itself and its renderer took 40% of a core from those tasks.
            # Then look as the person.
            page.goto("about:blank")
            run = f"{DAG_API}/dagRuns/{quote(mine, safe='')}"
            assert wait_until(
                lambda: (
                    airflow_api.get(run).raise_for_status().json()["state"] in ("success", "failed")
                ),
                timeout_s=RUN_TIMEOUT_S,
            ), f"{DAG_ID} run {mine} not finished within {RUN_TIMEOUT_S}s"
            rows = _run_rows(page, settings)
            page.screenshot(path=str(tmp_path / f"{DAG_ID}_runs.png"))
            assert "Success" in rows[mine], f"{DAG_ID} run {mine}: {rows[mine]}"
        finally:
            browser.close()
    listens = spark.read.format("delta").load(
        settings.bronze_path(STREAMS[Stream.LISTENS].topic(settings))
    )
    mine_only = listens.where(listens.user_id.isin(users)).groupBy("user_id").count().collect()
    assert sorted((r.user_id, r["count"]) for r in mine_only) == [(u, 10) for u in sorted(users)]
    # The job's own log lines reach the task log through spark-submit.
    task_logs = airflow_home(settings) / "logs" / f"dag_id={DAG_ID}" / f"run_id={mine}"
    bronze_log = "".join(p.read_text() for p in task_logs.glob("task_id=bronze_once/attempt=*.log"))
    assert "INFO spark_jobs.bronze.ingest: bronze " in bronze_log
