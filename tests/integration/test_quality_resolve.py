"""The operator's path when a row bypassed the Bronze rules and the Bronze gate blocks a day:
`tunelake quality show` finds it, `tunelake quality quarantine` moves it out with a reason,
and the repeated run publishes Silver without it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import functions as F
from typer.testing import CliRunner

from dq.reports import QualityGateError
from ingestion.producer import EventProducer
from ingestion.streams import Stream
from spark_jobs.bronze.ingest import BronzeTarget
from spark_jobs.bronze.ingest import run as bronze
from spark_jobs.silver import build
from spark_jobs.silver.tables import SILVER_TABLES
from tests.support import throwaway_lake
from tunelake_ops import cli

TODAY = datetime.now(UTC).date()
REASON = "hand-written 1999 play, see ticket 42"


@pytest.fixture
def lake(kafka, registry, s3, postgres, trino, monkeypatch):
    with throwaway_lake(monkeypatch, "it_quality") as settings:
        monkeypatch.setattr(cli, "get_settings", lambda: settings)
        producer = EventProducer(settings)
        producer.register_schemas()
        yield settings, producer
        producer.close()


def _tunelake(*args: str):
    return CliRunner().invoke(cli.app, list(args))


def test_a_row_that_bypassed_the_rules_is_found_quarantined_and_the_run_published(spark, lake):
    settings, producer = lake
    good_id = str(uuid.uuid4())
    producer.publish(
        Stream.LISTENS,
        [
            {
                "event_id": good_id,
                "event_time": datetime.now(UTC),
                "schema_version": 1,
                "user_id": "u1",
                "track_id": "t1",
                "played_at": datetime.now(UTC) - timedelta(minutes=10),
                "ms_played": 1000,
                "context": None,
                "request_id": None,
            }
        ],
    )
    bronze(spark, settings, list(Stream), once=True)
    listens = BronzeTarget.of(settings, Stream.LISTENS)
    # Written by hand, past the rules: a 1999 play with an offset Kafka never gave out.
    bad_id = str(uuid.uuid4())
    landed = spark.read.format("delta").load(listens.table_path)
    [source] = landed.select("partition", "offset").collect()
    landed.withColumns(
        {
            "event_id": F.lit(bad_id),
            "played_at": F.lit(datetime(1999, 6, 1, tzinfo=UTC)),
            "offset": F.col("offset") + 1000,
        }
    ).write.format("delta").mode("append").save(listens.table_path)
    run = build.SilverRun.for_dates(TODAY, TODAY)

    with pytest.raises(QualityGateError) as blocked:
        build.build(spark, settings, run)
    assert "played_at" in str(blocked.value)
    assert "tunelake quality show" in str(blocked.value)

    shown = _tunelake("quality", "show", "--from", str(TODAY), "--to", str(TODAY))
    assert shown.exit_code == 1, shown.output
    [failing] = [line for line in shown.output.splitlines() if "CRITICAL" in line]
    assert "bronze_listens" in shown.output
    assert '"column": "played_at"' in failing
    assert "1999-06-01" in failing
    assert "tunelake quality quarantine" in shown.output

    where = f"played_at < TIMESTAMP'{settings.earliest_event_date}'"
    move = ("quality", "quarantine", "listens", "--where", where, "--reason", REASON)
    dates = ("--from", str(TODAY), "--to", str(TODAY))
    moved = _tunelake(*move, *dates)
    assert moved.exit_code == 0, moved.output
    assert "moved 1 row(s)" in moved.output
    again = _tunelake(*move, *dates)
    assert again.exit_code == 0, again.output
    assert "moved 0 row(s)" in again.output

    build.build(spark, settings, run)

    silver = spark.read.format("delta").load(SILVER_TABLES["listens"].path(settings))
    assert [r.event_id for r in silver.collect()] == [good_id]
    kept = spark.read.format("delta").load(listens.quarantine_path).collect()
    [row] = [r for r in kept if r.error.endswith(REASON)]
    assert len(kept) == 1  # the repeated move added nothing
    assert row.error == f"moved from Bronze by an operator: {REASON}"
    assert json.loads(bytes(row.value))["event_id"] == bad_id
    assert (row.topic, row.partition, row.offset) == (
        listens.topic,
        source.partition,
        source.offset + 1000,
    )
    remaining = spark.read.format("delta").load(listens.table_path)
    assert [r.event_id for r in remaining.collect()] == [good_id]
