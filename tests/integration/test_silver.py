"""Silver on the live stack: idempotent re-runs, late events, and the quality gate.

The module works in its own lakehouse bucket and topics, so every table starts empty.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pyarrow.compute as pc
import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, LongType

from dq.reports import QualityGateError
from ingestion.producer import EventProducer
from ingestion.streams import STREAMS, Stream
from ingestion.validity import SYNTHETIC_USER_PREFIX
from spark_jobs.bronze.ingest import run as bronze
from spark_jobs.silver import build
from spark_jobs.silver.tables import SILVER_TABLES
from tests.support import throwaway_lake
from tunelake.clients import delta_table
from tunelake_ops.trino import lake_tables, query, register_tables, schema_of

TODAY = datetime.now(UTC).date()


def _envelope(user: str, at: datetime) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_time": at, "schema_version": 1, "user_id": user}


def listen(
    user: str, track: str, played_at: datetime, ms: int = 1000, request_id: str | None = None
) -> dict:
    return _envelope(user, datetime.now(UTC)) | {
        "track_id": track,
        "played_at": played_at,
        "ms_played": ms,
        "context": None,
        "request_id": request_id,
    }


@pytest.fixture(scope="module")
def lake(kafka, registry, s3, trino):
    with pytest.MonkeyPatch.context() as env, throwaway_lake(env, "it_silver") as settings:
        producer = EventProducer(settings)
        producer.register_schemas()
        yield settings, producer
        producer.close()


def snapshot(spark, settings) -> dict[str, list]:
    return {
        name: sorted(tuple(r) for r in spark.read.format("delta").load(t.path(settings)).collect())
        for name, t in SILVER_TABLES.items()
    }


def run_day(spark, settings) -> None:
    bronze(spark, settings, list(Stream), once=True)
    build.build(spark, settings, build.SilverRun.for_dates(TODAY, TODAY))


def test_build_then_rebuild_leaves_every_table_identical_and_late_events_join_their_day(
    spark, lake
):
    settings, producer = lake
    now = datetime.now(UTC) - timedelta(minutes=30)
    long_ago = datetime.combine(TODAY - timedelta(days=3), datetime.min.time(), UTC)
    request_id = f"req-{uuid.uuid4().hex[:6]}"
    impression = _envelope("u1", now) | {
        "request_id": request_id,
        "model_version": "popularity",
        "items": [
            {"track_id": "t1", "rank": 1, "score": 0.9},
            {"track_id": "t2", "rank": 2, "score": 0.5},
        ],
    }
    producer.publish(Stream.RECOMMENDATIONS, [impression])
    producer.publish(
        Stream.LISTENS,
        [
            listen("u1", "t1", now + timedelta(minutes=1), 200_000, request_id),
            listen("u1", "t3", now + timedelta(minutes=5), 1000),
            listen("u2", "t1", now + timedelta(minutes=7), 3000),
            # The deploy smoke test's kind of user: in Bronze, never in Silver.
            listen(f"{SYNTHETIC_USER_PREFIX}smoke", "t1", now + timedelta(minutes=8), 3000),
            # Played three days ago, sent today: it belongs to its own day.
            listen("u9", "t-late", long_ago + timedelta(hours=9), 4321),
        ],
    )
    producer.publish(
        Stream.FEEDBACK,
        [_envelope("u1", now) | {"request_id": request_id, "track_id": "t2", "action": "skip"}],
    )

    run_day(spark, settings)
    first = snapshot(spark, settings)
    run_day(spark, settings)

    assert snapshot(spark, settings) == first
    assert not any(SYNTHETIC_USER_PREFIX in str(row) for rows in first.values() for row in rows), (
        "a synthetic user's event reached Silver"
    )
    stats = {
        (r.date, r.track_id): r
        for r in spark.read.format("delta")
        .load(SILVER_TABLES["track_daily_stats"].path(settings))
        .collect()
    }
    t1 = stats[(now.date(), "t1")]
    assert (t1.plays, t1.plays_from_recommendations, t1.unique_listeners, t1.impressions) == (
        2,
        1,
        2,
        1,
    )
    outcomes = {
        r.track_id: r
        for r in spark.read.format("delta")
        .load(SILVER_TABLES["recommendation_outcomes"].path(settings))
        .collect()
    }
    assert (outcomes["t1"].played, outcomes["t2"].skipped) == (True, True)
    # The late play is counted on the day it was played, by track and by user.
    late = stats[(long_ago.date(), "t-late")]
    assert (late.plays, late.ms_played) == (1, 4321)
    assert [d for d, track in stats if track == "t-late"] == [long_ago.date()]
    users = spark.read.format("delta").load(SILVER_TABLES["user_daily_stats"].path(settings))
    assert users.where(f"user_id = 'u9' AND date = '{long_ago.date()}'").count() == 1


def interactions_of(spark, settings, user: str) -> dict:
    path = SILVER_TABLES["user_track_interactions"].path(settings)
    rows = spark.read.format("delta").load(path).where(f"user_id = '{user}'").collect()
    return {r.track_id: r for r in rows}


def test_an_interrupted_publish_is_finished_and_a_run_staged_before_it_is_not_published(
    spark, lake, monkeypatch
):
    settings, producer = lake
    producer.publish(Stream.LISTENS, [listen("u-cut", "t1", datetime.now(UTC), 1500)])
    bronze(spark, settings, list(Stream), once=True)
    # A run staged and validated before the others publish: its rows are out of date then.
    early = build.SilverRun.for_dates(TODAY, TODAY, run_id="staged-early")
    build.validate_bronze(spark, settings, early)
    build.stage(spark, settings, early)
    build.validate_silver(spark, settings, early)

    run = build.SilverRun.for_dates(TODAY, TODAY)
    build.validate_bronze(spark, settings, run)
    build.stage(spark, settings, run)
    build.validate_silver(spark, settings, run)
    publish_table = build._publish_table

    def killed_before_interactions(spark, settings, run, manifest, name):
        if name == "user_track_interactions":
            raise RuntimeError("publish killed")
        publish_table(spark, settings, run, manifest, name)

    monkeypatch.setattr(build, "_publish_table", killed_before_interactions)
    with pytest.raises(RuntimeError, match="publish killed"):
        build.publish(spark, settings, run)
    monkeypatch.undo()
    listens = spark.read.format("delta").load(SILVER_TABLES["listens"].path(settings))
    assert listens.where("user_id = 'u-cut'").count() == 1  # the event made it, its counts not
    assert interactions_of(spark, settings, "u-cut") == {}

    # Staging the run again (the daily DAG's retry) finds the event published: only
    # finishing the cut publish first keeps its counts. (That a run repeated after it
    # counts nothing twice is the rebuild test's.)
    build.stage(spark, settings, run)

    counts = interactions_of(spark, settings, "u-cut")["t1"]
    assert (counts.play_count, counts.ms_played) == (1, 1500)
    before = snapshot(spark, settings)
    with pytest.raises(build.StaleStagingError, match="stage it again"):
        build.publish(spark, settings, early)
    assert snapshot(spark, settings) == before


def test_nothing_is_staged_or_published_without_a_passing_validation_of_it(spark, lake):
    settings, producer = lake
    producer.publish(Stream.LISTENS, [listen("u-gate", "t1", datetime.now(UTC), 77)])
    bronze(spark, settings, list(Stream), once=True)
    run = build.SilverRun.for_dates(TODAY, TODAY, run_id="gate")
    published = SILVER_TABLES["listens"].path(settings)

    def gated_listens() -> int:
        return spark.read.format("delta").load(published).where("user_id = 'u-gate'").count()

    with pytest.raises(build.UnvalidatedStagingError, match="no bronze validation"):
        build.stage(spark, settings, run)
    build.validate_bronze(spark, settings, run)
    build.stage(spark, settings, run)
    with pytest.raises(build.UnvalidatedStagingError, match="no silver validation"):
        build.publish(spark, settings, run)

    build.validate_silver(spark, settings, run)
    build.stage(spark, settings, run)
    with pytest.raises(build.UnvalidatedStagingError, match="was staged again"):
        build.publish(spark, settings, run)

    # A staged row that breaks the suite (a second row with the same event_id).
    staged = spark.read.format("delta").load(run.staging(settings, "listens"))
    [good] = staged.where("user_id = 'u-gate'").collect()
    spark.createDataFrame([good], staged.schema).write.format("delta").mode("append").save(
        run.staging(settings, "listens")
    )
    with pytest.raises(QualityGateError):
        build.validate_silver(spark, settings, run)
    with pytest.raises(build.UnvalidatedStagingError, match="validation failed"):
        build.publish(spark, settings, run)
    assert gated_listens() == 0

    build.stage(spark, settings, run)
    build.validate_silver(spark, settings, run)
    build.publish(spark, settings, run)
    assert gated_listens() == 1


NUMERIC = (IntegerType, LongType, DoubleType)


def test_every_table_reads_the_same_in_spark_trino_and_delta_rs(spark, lake):
    """What analysts reach for: Trino (registered with no manual step) and delta-rs (pandas,
    Polars) read every Bronze and Silver table with Spark's row counts and column totals."""
    settings, _ = lake
    registered = set(register_tables(settings))
    tables = lake_tables(settings)
    assert {f"{t.schema}.{t.name}" for t in tables} == registered
    silver = schema_of(settings, "silver")
    assert {f"{silver}.{name}" for name in SILVER_TABLES} <= registered
    assert register_tables(settings) == []  # registered once

    for table in tables:
        df = spark.read.format("delta").load(table.location.replace("s3://", "s3a://", 1))
        numbers = [f.name for f in df.schema.fields if isinstance(f.dataType, NUMERIC)]
        in_spark = list(df.agg(F.count("*"), *[F.sum(c) for c in numbers]).first())
        sums = "".join(f", sum({c})" for c in numbers)
        name = f"delta.{table.schema}.{table.name}"
        [in_trino] = query(settings, f"SELECT count(*){sums} FROM {name}").rows
        assert in_trino == pytest.approx(in_spark), table
        arrow = delta_table(settings, table.location).to_pyarrow_table()
        in_delta_rs = [arrow.num_rows, *(pc.sum(arrow[c]).as_py() for c in numbers)]
        assert in_delta_rs == pytest.approx(in_spark), table


def test_a_bad_bronze_batch_fails_validation_and_nothing_is_published(spark, lake):
    settings, _ = lake
    published_before = snapshot(spark, settings)
    versions_before = {
        name: spark.sql(f"DESCRIBE HISTORY delta.`{t.path(settings)}`").count()
        for name, t in SILVER_TABLES.items()
    }
    # A hand-made backfill straight into Bronze, bypassing the stream's rules.
    path = settings.bronze_path(STREAMS[Stream.LISTENS].topic(settings))
    bronze_rows = spark.read.format("delta").load(path)
    good = bronze_rows.limit(1).collect()[0].asDict()
    bad = [
        good | {"event_id": str(uuid.uuid4()), "ms_played": -500},
        good | {"event_id": str(uuid.uuid4()), "user_id": None},
    ]
    spark.createDataFrame(bad, bronze_rows.schema).write.format("delta").mode("append").save(path)

    with pytest.raises(QualityGateError) as failed:
        build.build(spark, settings, build.SilverRun.for_dates(TODAY, TODAY))

    message = str(failed.value)
    assert "bronze_listens" in message
    assert "expect_column_values_to_be_between" in message and "-500" in message
    assert "expect_column_values_to_not_be_null" in message and '"user_id"' in message
    assert snapshot(spark, settings) == published_before  # still readable, unchanged
    assert {
        name: spark.sql(f"DESCRIBE HISTORY delta.`{t.path(settings)}`").count()
        for name, t in SILVER_TABLES.items()
    } == versions_before
    # The failed results are kept in the object store.
    from tunelake.clients import s3_client

    key = f"_quality/{TODAY.isoformat()}_{TODAY.isoformat()}/bronze.json"
    body = s3_client(settings).get_object(Bucket=settings.lakehouse_bucket, Key=key)
    assert b'"passed": false' in body["Body"].read()


def test_date_ranges_are_validated():
    with pytest.raises(ValueError, match="before start"):
        build.SilverRun.for_dates(date(2026, 1, 2), date(2026, 1, 1))
