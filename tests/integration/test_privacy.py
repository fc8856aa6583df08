"""Privacy deletes on the live stack: a user deleted in PostgreSQL (a deletion row in Silver
``dim_user``, written here as the CDC build writes it) leaves every Silver table, the
training set and later Silver builds; the deletion is audited once; VACUUM removes the rows
from older table versions.

Three users: ``u-keep`` stays; ``u-gone`` is deleted; ``u-back`` was deleted and created
again, so only what it did before the deletion goes. To stay small, the events are written
straight into Bronze-shaped tables (no Kafka), and Silver is built from them with the
Silver transforms in one pass (tests/integration/test_silver.py runs the whole
write-audit-publish build, Kafka and Great Expectations included).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import functions as F

from ingestion.streams import EVENT_STREAMS, STREAMS, Stream
from ml import train, training_set
from service.sources import silver_deleted_users
from spark_jobs.silver import aggregates, build, privacy
from spark_jobs.silver.tables import SILVER_TABLES
from tests.support import throwaway_lake
from tunelake.clients import s3_client
from tunelake_ops.trino import query, register_tables, schema_of

NOW = datetime.now(UTC).replace(microsecond=0)
CREATED = NOW - timedelta(days=30)
DELETED = NOW - timedelta(minutes=20)  # u-gone's and u-back's deletion
RECREATED = NOW - timedelta(minutes=10)  # u-back's new account
DIM_USER_SCHEMA = (
    "user_id string, display_name string, country string, birth_year int, "
    "signup_time timestamp, preferences string, valid_from timestamp, valid_to timestamp, "
    "is_current boolean, is_deleted boolean, change_lsn long"
)


def _event(user: str, at: datetime) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_time": at, "schema_version": 1, "user_id": user}


def listen(user: str, track: str, at: datetime, request_id: str | None = None) -> dict:
    return _event(user, at) | {
        "track_id": track,
        "played_at": at - timedelta(minutes=1),
        "ms_played": 60_000,
        "context": None,
        "request_id": request_id,
    }


def shown(user: str, request_id: str, tracks: list[str], at: datetime) -> dict:
    return _event(user, at) | {
        "request_id": request_id,
        "model_version": "popularity",
        "items": [{"track_id": t, "rank": r, "score": 1.0 / r} for r, t in enumerate(tracks, 1)],
    }


def profile(user: str, name: str | None, start, end, current: bool, deleted: bool, lsn: int):
    attributes = (
        (None,) * 5 if name is None else (name, "DE", 1990, CREATED, '{"genres": ["jazz"]}')
    )
    return (user, *attributes, start, end, current, deleted, lsn)


DIM_USER = [
    profile("u-keep", "Keep", CREATED, None, True, False, 1),
    profile("u-gone", "Gone", CREATED, DELETED, False, False, 2),
    profile("u-gone", None, DELETED, None, True, True, 5),
    profile("u-back", "Back", CREATED, DELETED, False, False, 3),
    profile("u-back", None, DELETED, RECREATED, False, True, 6),
    profile("u-back", "Back again", RECREATED, None, True, False, 7),
]


@pytest.fixture(scope="module")
def lake(kafka, s3, trino):
    with pytest.MonkeyPatch.context() as env, throwaway_lake(env, "it_privacy") as settings:
        yield settings


ENVELOPE = "event_id string, event_time timestamp, schema_version int, user_id string"
KAFKA = "topic string, partition int, offset long, kafka_timestamp timestamp, ingested_at timestamp"
# The payload columns the Silver transforms read, as Bronze types them.
PAYLOAD = {
    Stream.LISTENS: "track_id string, played_at timestamp, ms_played long, context string, "
    "request_id string",
    Stream.RECOMMENDATIONS: "request_id string, model_version string, "
    "items array<struct<track_id:string,rank:int,score:double>>",
    Stream.FEEDBACK: "request_id string, track_id string, action string",
}


def land_in_bronze(spark, settings, stream: Stream, batch: list[dict]) -> None:
    """``batch`` as ``stream``'s Bronze table, with Kafka metadata and today's ingest date,
    partitioned as Bronze is."""
    landed = datetime.now(UTC)
    schema = f"{ENVELOPE}, {PAYLOAD[stream]}, {KAFKA}, ingest_date date"
    metadata = {"topic": stream.value, "partition": 0, "kafka_timestamp": landed}
    rows = [
        event | metadata | {"offset": n, "ingested_at": landed, "ingest_date": landed.date()}
        for n, event in enumerate(batch)
    ]
    df = spark.createDataFrame(rows, schema)
    df.write.format("delta").partitionBy("ingest_date").save(
        settings.bronze_path(STREAMS[stream].topic(settings))
    )


def build_silver(spark, settings, run: build.SilverRun) -> None:
    """Every Silver table from the run's Bronze slices in one pass, with the Silver build's
    transforms (its stage computes the same from what is published plus what is new)."""
    bronze = {
        name: build.bronze_slice(spark, settings, stream, run, 0)
        for name, stream in build.BRONZE_OF.items()
    }
    tables = {name: build.TRANSFORM_OF[name](df).cache() for name, df in bronze.items()}
    plays = aggregates.attribute(tables["listens"], tables["impressions"]).cache()
    tables |= {
        "track_daily_stats": aggregates.track_daily_stats(
            plays, tables["impressions"], tables["feedback"]
        ),
        "user_daily_stats": aggregates.user_daily_stats(plays, tables["impressions"]),
        "recommendation_outcomes": aggregates.recommendation_outcomes(
            tables["impressions"], plays, tables["feedback"]
        ),
    }
    tables["user_track_interactions"] = aggregates.user_track_interactions(
        tables["listens"],
        tables["impressions"],
        tables["recommendation_outcomes"].where("played"),
        tables["feedback"],
    )
    for name, df in tables.items():
        table = SILVER_TABLES[name]
        writer = df.write.format("delta")
        if table.date_column:
            writer = writer.partitionBy(table.date_column)
        writer.save(table.path(settings))


def rows(spark, settings, table: str) -> list[dict]:
    df = spark.read.format("delta").load(SILVER_TABLES[table].path(settings))
    return [r.asDict() for r in df.collect()]


def users(spark, settings, table: str) -> set[str]:
    return {r["user_id"] for r in rows(spark, settings, table)}


def snapshot(spark, settings) -> dict[str, list]:
    return {name: sorted(map(str, rows(spark, settings, name))) for name in SILVER_TABLES}


@pytest.mark.timeout(300)
def test_a_deleted_user_leaves_silver_training_and_later_builds_audited_once(spark, lake):
    settings = lake
    gone_at = NOW - timedelta(minutes=50)
    land_in_bronze(
        spark,
        settings,
        Stream.RECOMMENDATIONS,
        [
            shown("u-gone", "r-gone", ["t1", "t2"], gone_at),
            shown("u-keep", "r-keep", ["t1"], NOW - timedelta(minutes=3)),
        ],
    )
    land_in_bronze(
        spark,
        settings,
        Stream.LISTENS,
        [
            listen("u-keep", "t1", NOW - timedelta(minutes=1), "r-keep"),
            listen("u-gone", "t1", gone_at + timedelta(minutes=2), "r-gone"),
            listen("u-gone", "t-only", gone_at + timedelta(minutes=4)),
            listen("u-back", "t3", DELETED - timedelta(minutes=5)),  # before its deletion
            listen("u-back", "t4", RECREATED + timedelta(minutes=5)),  # after it came back
        ],
    )
    land_in_bronze(
        spark,
        settings,
        Stream.FEEDBACK,
        [
            _event("u-gone", gone_at + timedelta(minutes=3))
            | {"request_id": "r-gone", "track_id": "t2", "action": "skip"}
        ],
    )
    today = build.SilverRun.for_dates(datetime.now(UTC).date(), datetime.now(UTC).date())
    build_silver(spark, settings, today)
    assert "u-gone" in users(spark, settings, "listens")

    # The CDC build records the deletions.
    spark.createDataFrame(DIM_USER, DIM_USER_SCHEMA).write.format("delta").save(
        settings.silver_path(privacy.DIM_USER)
    )
    assert silver_deleted_users(settings)() == {"u-gone"}  # what the service stops serving

    # Training leaves them out at once, before the privacy job has run.
    tables, _ = train.read_silver(spark, settings)
    split = training_set.holdout_split(tables["user_track_interactions"], tables["listens"])
    training_users = {r.user_id for r in split.training.select("user_id").collect()}
    assert training_users == {"u-keep", "u-back"}
    assert {(r.user_id, r.track_id) for r in split.listens.collect()} == {
        ("u-keep", "t1"),
        ("u-back", "t4"),
    }

    done = privacy.delete_users(spark, settings, requested_by="test")

    # The current version of every Silver table holds nothing of u-gone, nor of u-back's
    # life before its deletion; u-keep is untouched.
    assert {(r["user_id"], r["track_id"]) for r in rows(spark, settings, "listens")} == {
        ("u-keep", "t1"),
        ("u-back", "t4"),
    }
    for table in ("impressions", "recommendation_outcomes"):
        assert users(spark, settings, table) == {"u-keep"}, table
    assert rows(spark, settings, "feedback") == []
    assert users(spark, settings, "user_daily_stats") == {"u-keep", "u-back"}
    assert sum(r["plays"] for r in rows(spark, settings, "user_daily_stats")) == 2
    assert {
        (r["user_id"], r["track_id"], r["play_count"], r["recommended_and_played"], r["skips"])
        for r in rows(spark, settings, "user_track_interactions")
    } == {("u-keep", "t1", 1, 1, 0), ("u-back", "t4", 1, 0, 0)}
    # The track aggregates no longer count them: t1 keeps u-keep's play and list only.
    tracks: dict[str, dict] = {}
    for r in rows(spark, settings, "track_daily_stats"):
        totals = tracks.setdefault(r["track_id"], {})
        for count in ("plays", "plays_from_recommendations", "unique_listeners", "impressions"):
            totals[count] = totals.get(count, 0) + r[count]
        totals["skips"] = totals.get("skips", 0) + r["skips"]
    assert tracks == {
        "t1": {
            "plays": 1,
            "plays_from_recommendations": 1,
            "unique_listeners": 1,
            "impressions": 1,
            "skips": 0,
        },
        "t4": {
            "plays": 1,
            "plays_from_recommendations": 0,
            "unique_listeners": 1,
            "impressions": 0,
            "skips": 0,
        },
    }

    # Profile attributes scrubbed from the erased rows; validity and deletions kept.
    dim_user = spark.read.format("delta").load(settings.silver_path(privacy.DIM_USER))
    since = F.col("valid_from").cast("long")
    names = {
        (r.user_id, r.since, r.is_deleted): r.display_name
        for r in dim_user.select(
            "user_id", since.alias("since"), "is_deleted", "display_name"
        ).collect()
    }
    created, deleted, recreated = (int(t.timestamp()) for t in (CREATED, DELETED, RECREATED))
    assert names == {
        ("u-keep", created, False): "Keep",
        ("u-gone", created, False): None,
        ("u-gone", deleted, True): None,
        ("u-back", created, False): None,
        ("u-back", deleted, True): None,
        ("u-back", recreated, False): "Back again",
    }
    assert dim_user.where("user_id = 'u-gone' AND country IS NOT NULL").count() == 0

    # One audit row per deletion, with the rows removed per table; readable in Trino.
    gone_days = len({gone_at.date(), (gone_at + timedelta(minutes=3)).date()})
    back_days_lost = int((DELETED - timedelta(minutes=5)).date() != RECREATED.date())
    expected = {
        "u-gone": {
            "listens": 2,
            "impressions": 2,
            "feedback": 1,
            "recommendation_outcomes": 2,
            "user_daily_stats": gone_days,
            "user_track_interactions": 3,
        },
        "u-back": {
            "listens": 1,
            "impressions": 0,
            "feedback": 0,
            "recommendation_outcomes": 0,
            "user_daily_stats": back_days_lost,
            "user_track_interactions": 1,
        },
    }
    assert {d["user_id"]: d["rows_removed"] for d in done.deletions} == expected
    audit = schema_of(settings, "audit")
    assert f"{audit}.{privacy.AUDIT_TABLE}" in register_tables(settings)
    in_trino = query(
        settings,
        "SELECT user_id, deleted_at, requested_by, rows_removed['listens'], "
        f"rows_removed['user_track_interactions'] FROM delta.{audit}.{privacy.AUDIT_TABLE} "
        "ORDER BY user_id",
    ).rows
    assert [[u, by, listens, pairs] for u, _, by, listens, pairs in in_trino] == [
        ["u-back", "test", 1, 1],
        ["u-gone", "test", 2, 3],
    ]
    assert [r[1][:19] for r in in_trino] == [DELETED.strftime("%Y-%m-%d %H:%M:%S")] * 2

    # A second run processes nothing and changes nothing.
    before = snapshot(spark, settings)
    again = privacy.delete_users(spark, settings, requested_by="test")
    assert again.deletions == []
    assert snapshot(spark, settings) == before
    assert spark.read.format("delta").load(settings.audit_path(privacy.AUDIT_TABLE)).count() == 2

    # Rebuilding from Bronze, which still holds their events, brings nobody back: what the
    # Silver build reads of Bronze leaves them out.
    for stream in EVENT_STREAMS:
        kept = build.bronze_slice(spark, settings, stream, today, 0)
        assert {r.user_id for r in kept.select("user_id").collect()} <= {"u-keep", "u-back"}
    kept = build.bronze_slice(spark, settings, Stream.LISTENS, today, 0)
    assert {(r.user_id, r.track_id) for r in kept.collect()} == {("u-keep", "t1"), ("u-back", "t4")}

    # VACUUM deletes the files only older versions read (theirs among them) once they are
    # past the retention, made 0 here (Delta refuses that unless its safety check is off).
    listens = SILVER_TABLES["listens"].path(settings)
    prefix = listens.removeprefix(f"s3a://{settings.lakehouse_bucket}/") + "/"

    def stored() -> set[str]:
        listed = s3_client(settings).list_objects_v2(
            Bucket=settings.lakehouse_bucket, Prefix=prefix
        )
        keys = (o["Key"] for o in listed.get("Contents", []))
        return {k for k in keys if k.endswith(".parquet") and "/_delta_log/" not in k}

    current = {f.split(prefix, 1)[1] for f in spark.read.format("delta").load(listens).inputFiles()}
    old = {k.removeprefix(prefix) for k in stored()} - current
    old_rows = spark.read.parquet(*(f"{listens}/{k}" for k in old))
    assert old_rows.where("user_id = 'u-gone'").count() == 2
    spark.sql(
        f"ALTER TABLE delta.`{listens}` "
        "SET TBLPROPERTIES ('delta.deletedFileRetentionDuration' = 'interval 0 hours')"
    )
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    spark.conf.set(check, "false")
    try:
        assert "listens" in privacy.vacuum(spark, settings)
    finally:
        spark.conf.unset(check)
    assert {k.removeprefix(prefix) for k in stored()} == current
