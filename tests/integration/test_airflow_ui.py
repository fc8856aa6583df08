"""A person's path through the Airflow UI: log in, trigger silver_daily, see it succeed."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from ingestion.streams import Stream
from spark_jobs.bronze.ingest import run as bronze
from tunelake.stack.install import chromium

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RUN_TIMEOUT_S = 900


def _ui(settings) -> str:
    return f"http://127.0.0.1:{settings.airflow_port}"


def _set_paused(settings, paused: bool) -> None:
    token = httpx.post(
        f"{_ui(settings)}/auth/token",
        json={
            "username": settings.airflow_admin_user,
            "password": settings.airflow_admin_password.get_secret_value(),
        },
    ).json()["access_token"]
    httpx.patch(
        f"{_ui(settings)}/api/v2/dags/silver_daily",
        json={"is_paused": paused},
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()


def _run_rows(page: Page, settings) -> dict[str, str]:
    """Run id -> the row's text, as the Runs tab shows them."""
    page.goto(f"{_ui(settings)}/dags/silver_daily/runs")
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


@pytest.fixture
def ui_settings(spark, settings, kafka, s3, registry):
    # The scheduler's tasks use the stack's default settings: their Bronze tables must exist.
    bronze(spark, settings, list(Stream), once=True)
    yield settings
    _set_paused(settings, True)


def test_log_in_trigger_silver_daily_and_see_it_succeed(ui_settings, tmp_path):
    settings = ui_settings
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

            page.goto(f"{_ui(settings)}/dags/silver_daily")
            page.get_by_role("button", name="Trigger").first.click()
            page.get_by_text("Unpause silver_daily on trigger").wait_for()
            page.get_by_role("button", name="Trigger").last.click()

            deadline = time.monotonic() + RUN_TIMEOUT_S
            mine: str | None = None
            while time.monotonic() < deadline:
                rows = _run_rows(page, settings)
                new = [
                    r
                    for r, text in rows.items()
                    if r not in before and r.startswith("manual__") and "admin" in text
                ]
                if new:
                    mine = new[0]
                    state = rows[mine]
                    assert "Failed" not in state, f"silver_daily run {mine} failed"
                    if "Success" in state:
                        break
                page.wait_for_timeout(5_000)
            else:
                pytest.fail(f"no successful UI-triggered run within {RUN_TIMEOUT_S}s (run: {mine})")
            page.screenshot(path=str(tmp_path / "silver_daily_runs.png"))
        finally:
            browser.close()
