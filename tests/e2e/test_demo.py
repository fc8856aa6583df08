"""The main job end to end, as `make demo` runs it: listening history years in the past and
live traffic over HTTP, Bronze, checks, Silver, a trained and promoted model, and the
running service serving it.

It runs in a lake, topics and service port of its own (through the environment, which the
service process it starts inherits), so it neither reads nor disturbs the stack's data.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from pyspark.sql import functions as F

from spark_jobs.silver.tables import SILVER_TABLES
from tests.support import free_port, throwaway_lake
from tunelake.settings import Settings
from tunelake_ops.demo import run_demo


@pytest.fixture
def own_lake(kafka, s3, registry, trino, monkeypatch) -> Iterator[Settings]:
    with throwaway_lake(
        monkeypatch,
        "e2e",
        service_port=str(free_port()),
        # A short search (a few trials) and a service that looks for models every second.
        model_search_seconds="20",
        model_refresh_seconds="1",
    ) as lake:
        yield lake


@pytest.mark.timeout(1200)
def test_the_demo_runs_the_pipeline_end_to_end(spark, own_lake):
    summary = run_demo(own_lake)

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

    # Over a year of history, years in the past, went all the way to a served model.
    first, last = (
        table("listens")
        .where("context = 'history'")
        .agg(F.min("played_at"), F.max("played_at"))
        .first()
    )
    assert (last - first).days > 365
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
