"""The main job end to end, as `make demo` runs it: traffic over HTTP, Bronze, checks, Silver.

It runs in a lake, topics and service port of its own (through the environment, which the
service process it starts inherits), so it neither reads nor disturbs the stack's data.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from spark_jobs.silver.tables import SILVER_TABLES
from tests.support import throwaway_lake
from tunelake.settings import Settings
from tunelake_ops.demo import run_demo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def own_lake(kafka, s3, registry, monkeypatch) -> Iterator[Settings]:
    with throwaway_lake(monkeypatch, "e2e", service_port=str(free_port())) as lake:
        yield lake


def test_the_demo_runs_the_pipeline_end_to_end(spark, own_lake):
    summary = run_demo(own_lake)

    assert summary.sample_recommendation["items"], "the service served no recommendation"
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
