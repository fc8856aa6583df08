"""The main job end to end, as `make demo` runs it: listening history years in the past and
live traffic over HTTP, Bronze, checks, Silver, a trained and promoted model, and the
running service serving it.

It runs in a lake, topics and service port of its own (through the environment, which the
service process it starts inherits), so it neither reads nor disturbs the stack's data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import nbformat
import pytest
from nbclient import NotebookClient
from pyspark.sql import functions as F

from dashboards.build import Lake, build, expand_macros, render
from ingestion.streams import Stream
from spark_jobs.silver.privacy import AUDIT_TABLE
from spark_jobs.silver.tables import DIM_TRACK, DIM_USER, SILVER_TABLES
from tests.support import throwaway_lake
from tunelake.settings import SOURCE_ROOT, Settings
from tunelake_ops.demo import DELETED_DEMO_USER, DEMO_USERS, DemoSummary, run_demo
from tunelake_ops.stack.ports import free_port
from tunelake_ops.trino import query

# make demo's history plays, over two months instead of 400 days: each day is a partition
# every Silver table stages and publishes, which cost the demo a minute.
HISTORY_DAYS = 60


@dataclass(frozen=True)
class Demo:
    lake: Settings
    summary: DemoSummary


@pytest.fixture(scope="module")
def demo(kafka, s3, registry, trino, postgres, connect) -> Iterator[Demo]:
    """One demo run for the module's tests (it takes minutes)."""
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        throwaway_lake(
            monkeypatch,
            "e2e",
            # Debezium writes the one user_profiles topic.
            topic_user_profiles=kafka.topic_user_profiles,
            service_port=str(free_port()),
            # A short search (its proven first point and little more) and a service that
            # looks for models every second.
            model_search_seconds="5",
            model_refresh_seconds="1",
        ) as lake,
    ):
        yield Demo(lake, run_demo(lake, history_days=HISTORY_DAYS))


@pytest.mark.timeout(1200)
def test_the_demo_runs_the_pipeline_end_to_end(spark, demo):
    own_lake, summary = demo.lake, demo.summary

    assert all(rows > 0 for rows, _ in summary.bronze_rows.values()), summary.bronze_rows
    pipeline = summary.pipeline
    assert all(report.passed for report in pipeline.quality)
    assert set(pipeline.table_rows) == set(SILVER_TABLES)
    assert all(rows > 0 for rows in pipeline.table_rows.values()), pipeline.table_rows

    def table(name: str):
        return spark.read.format("delta").load(SILVER_TABLES[name].path(own_lake))

    # The tables agree with each other: every Silver play is counted once per grain.
    plays = table("listens").count()
    assert table("user_track_interactions").agg({"play_count": "sum"}).first()[0] == plays
    assert table("track_daily_stats").agg({"plays": "sum"}).first()[0] == plays
    answered = table("recommendation_outcomes").where("played").count()
    assert answered > 0  # the generated users play some of what they are recommended
    assert (
        table("user_track_interactions").agg({"recommended_and_played": "sum"}).first()[0]
        == answered
    )

    # Months of history, years in the past, went all the way to a served model.
    first, last = (
        table("listens")
        .where("context = 'history'")
        .agg(F.min("played_at"), F.max("played_at"))
        .first()
    )
    assert (last - first).days >= HISTORY_DAYS - 2  # sessions start on the first day
    assert datetime.now() - last > timedelta(days=365)  # Spark hands back local naive times
    model = pipeline.model
    assert model is not None and model.promoted, pipeline.no_model_reason or model.reason
    assert model.metrics["candidate"]["ndcg@10"] > model.metrics["most_popular"]["ndcg@10"]
    served = summary.sample_recommendation
    assert served["model_version"] == model.version
    theirs = table("listens").where(F.col("user_id") == served["user_id"])
    played = {row.track_id for row in theirs.collect()}
    assert len(served["items"]) == 10
    assert played.isdisjoint(item["track_id"] for item in served["items"])

    # The pipeline ran its thousands of jobs in this driver (getOrCreate: the tests' own
    # session), which remembers only the last hundred: make demo's ten-minute search once
    # filled a 2 GiB driver with the records of every job before.
    assert len(spark.sparkContext.statusTracker().getJobIdsForGroup()) <= 100


def test_the_demo_profiles_reach_dim_user_and_the_deleted_user_leaves_silver(spark, demo):
    own_lake, pipeline = demo.lake, demo.summary.pipeline
    dim = spark.read.format("delta").load(own_lake.silver_path(DIM_USER))
    current = {r.user_id: r for r in dim.where("is_current").collect()}
    demo_users = [f"usr-{i:05d}" for i in range(DEMO_USERS)]
    live = [u for u in demo_users if u != DELETED_DEMO_USER]
    assert all(u in current and not current[u].is_deleted for u in live)
    assert {current[u].country for u in demo_users[1:4]} == {"PT"}  # the three who moved
    assert current[DELETED_DEMO_USER].is_deleted
    assert pipeline.dimension_rows[DIM_USER] == dim.count()
    assert pipeline.dimension_rows[DIM_TRACK] > 0

    # The user listened before leaving (Bronze keeps the raw events), yet no Silver table
    # holds a row of theirs: the deletion was processed (its audit row) before this lake's
    # first Silver build, which left them out. (Removal from published tables:
    # tests/integration/test_privacy.py.)
    bronze = spark.read.format("delta").load(own_lake.bronze_path(own_lake.topic_listening_history))
    assert bronze.where(F.col("user_id") == DELETED_DEMO_USER).count() > 0
    for name, table in SILVER_TABLES.items():
        rows = spark.read.format("delta").load(table.path(own_lake))
        if "user_id" in rows.columns:
            assert rows.where(F.col("user_id") == DELETED_DEMO_USER).count() == 0, name
    audit = spark.read.format("delta").load(own_lake.audit_path(AUDIT_TABLE))
    # One audit row per deletion (earlier demos' on the shared topic are deletions too).
    assert audit.where(F.col("user_id") == DELETED_DEMO_USER).count() >= 1
    assert pipeline.privacy is not None


PLAY_THROUGH = "Play-through rate per model version"
# The streams whose Bronze slice a Silver run validates.
BRONZE_VALIDATED = (Stream.LISTENS, Stream.RECOMMENDATIONS, Stream.FEEDBACK)
# Each panel's columns (Trino's types, precision left out), in order.
PANEL_COLUMNS = {
    "Plays vs recommendations per day": {
        "time": "timestamp",
        "plays": "bigint",
        "recommendations": "bigint",
        "plays_from_recommendations": "bigint",
    },
    "Top 20 tracks": {
        "track_id": "varchar",
        "plays": "bigint",
        "plays_from_recommendations": "bigint",
        "likes": "bigint",
        "skips": "bigint",
    },
    PLAY_THROUGH: {
        "model_version": "varchar",
        "play_through_rate": "double",
        "skip_rate": "double",
        "like_rate": "double",
    },
    "Freshness and row counts": {
        "layer": "varchar",
        "table_name": "varchar",
        "last_commit": "timestamp with time zone",
        "row_count": "bigint",
    },
    "Data-quality pass rate": {
        "day": "date",
        "stage": "varchar",
        "table_name": "varchar",
        "expectations": "bigint",
        "failed": "bigint",
        "critical_failed": "bigint",
        "pass_rate": "double",
    },
}


@pytest.mark.timeout(1200)
def test_every_dashboard_panel_query_returns_typed_rows_on_trino(spark, demo):
    lake, tables = demo.lake, demo.summary.pipeline.table_rows
    # The whole demo: history years in the past up to today's live traffic.
    start, end = date(2000, 1, 1), datetime.now(UTC).date() + timedelta(days=1)
    results = {}
    for dashboard in build(Lake.of(lake)).values():
        for panel in json.loads(render(dashboard))["panels"]:
            (target,) = panel["targets"]
            sql = expand_macros(target["rawSQL"], start, end)
            assert "$__" not in sql
            result = query(lake, sql)
            types = [re.sub(r"\(\d+\)", "", t) for t in result.types]
            assert dict(zip(result.columns, types, strict=True)) == PANEL_COLUMNS[panel["title"]]
            assert result.rows, f"{panel['title']}: no rows"
            results[panel["title"]] = [
                dict(zip(result.columns, row, strict=True)) for row in result.rows
            ]
    assert set(results) == set(PANEL_COLUMNS)

    # The panels agree with the tables Spark wrote.
    per_day = results["Plays vs recommendations per day"]
    assert sum(r["plays"] for r in per_day) == tables["listens"]
    assert sum(r["recommendations"] for r in per_day) == tables["impressions"]
    top = results["Top 20 tracks"]
    assert 0 < len(top) <= 20
    assert [r["plays"] for r in top] == sorted((r["plays"] for r in top), reverse=True)
    rates = {r["model_version"]: r["play_through_rate"] for r in results[PLAY_THROUGH]}
    outcomes = spark.read.format("delta").load(SILVER_TABLES["recommendation_outcomes"].path(lake))
    by_spark = outcomes.groupBy("model_version").agg(F.avg(F.col("played").cast("double")))
    assert rates == pytest.approx(dict(by_spark.collect()))
    assert any(rate > 0 for rate in rates.values())
    fresh = {(r["layer"], r["table_name"]): r for r in results["Freshness and row counts"]}
    assert {name: fresh["silver", name]["row_count"] for name in SILVER_TABLES} == tables
    assert all(r["row_count"] > 0 and r["last_commit"] for r in fresh.values())
    assert {t for layer, t in fresh if layer == "bronze"} == set(Lake.of(lake).bronze_tables)
    # The demo's validations passed: the event streams' Bronze and every Silver table checked.
    quality = results["Data-quality pass rate"]
    checked = {(r["stage"], r["table_name"]) for r in quality}
    assert {("bronze", f"bronze_{s.value}") for s in BRONZE_VALIDATED} <= checked
    assert {t for stage, t in checked if stage == "silver"} == {
        f"silver_{name}" for name in SILVER_TABLES
    }
    assert all(r["critical_failed"] == 0 and 0 < r["pass_rate"] <= 1 for r in quality)


@pytest.mark.timeout(600)
def test_the_analysis_notebook_runs_on_the_demo_lake_and_writes_its_plot(demo, tmp_path):
    """notebooks/analysis.ipynb, executed headlessly as a person runs it in JupyterLab: its
    kernel inherits this process's TUNELAKE_* variables, so it reads the demo's lake."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TUNELAKE_NOTEBOOK_OUTPUT", str(tmp_path))
        notebook = nbformat.read(SOURCE_ROOT / "notebooks" / "analysis.ipynb", as_version=4)
        client = NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()  # a failing cell raises CellExecutionError with its traceback

    plot = tmp_path / "play_through.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    results = [
        output["data"]["text/plain"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "execute_result"
    ]
    top_tracks, play_through, daily = results
    assert "trk-" in top_tracks  # the demo catalog's tracks, most played first
    assert "popularity" in play_through  # the live sessions were served before the model
    assert str(datetime.now(UTC).date()) in daily  # today's listens, through Trino
