"""Silver with Spark against DuckDB on the same files, and the daily run against history.

    python -m benchmarks.bench_silver [--events 10000000]

1. Writes Bronze-shaped Delta tables (listens, recommendation lists, feedback) with
   ``--events`` listens over 30 ingest days into a bucket of its own, plus a 31st day.
2. Aggregation, Spark vs DuckDB: the Silver daily aggregates (track and user daily stats,
   user-track interactions) over all 30 days, once with Spark (``spark_jobs.silver``
   transforms, results materialised with the ``noop`` sink) and once with DuckDB over the
   same Parquet files (the Delta log's active files, read through pyarrow's S3 filesystem).
   Prints both times and the ratio (target <= 2x).
3. Incremental: the real daily job (validate, stage, validate, publish) for one new day
   on top of 1 day and on top of 30 days of published Silver. Prints both (target: flat).
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow.dataset as ds
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ingestion.schemas import load_schema
from ingestion.streams import STREAMS, Stream
from service.models import FeedbackAction
from spark_jobs.bronze.ingest import KAFKA_ROW_SCHEMA, decode, split, with_ingest_metadata
from spark_jobs.common.session import build_spark
from spark_jobs.silver import aggregates, build, events
from tunelake.clients import arrow_s3_filesystem, s3_client
from tunelake.settings import Settings, get_settings
from tunelake_ops.stack.probes import drop_bucket, ensure_buckets

DAY0 = date(2026, 10, 1)
USERS, TRACKS = 50_000, 20_000


def bronze_schema(spark: SparkSession, stream: Stream):
    reader = load_schema(STREAMS[stream].schema_name)
    empty = with_ingest_metadata(spark.createDataFrame([], KAFKA_ROW_SCHEMA), datetime.now(UTC))
    return split(decode(empty, {}, reader, stream), reader)[0].schema


def synthetic_bronze(
    spark: SparkSession, stream: Stream, rows: int, lists: int, first_day: int, days: int, seed: int
) -> DataFrame:
    """``rows`` Bronze rows spread over ``days`` ingest days from DAY0 + first_day, for a
    batch of ``lists`` recommendation lists (at least ``days``).

    Row ``id`` of the recommendation stream is list ``id``: served to ``user_of(id)`` on
    day ``id % days``, items ``track_of(id, 1..10)``. A fifth of the listens and all the
    feedback answer a list of their own day (same user, a listed track, minutes after it
    was served), so attribution and outcomes have real work to do."""

    def day_of(n: Column) -> Column:
        return (n % days + first_day).cast("int")

    def served_at(n: Column) -> Column:
        ingest = F.date_add(F.lit(DAY0), day_of(n)).cast("timestamp")
        return F.timestamp_seconds(F.unix_timestamp(ingest) + (n * 7919 % 86_000))

    def user_of(n: Column) -> Column:
        return F.concat(F.lit("usr-"), (F.abs(F.hash(n, F.lit(seed))) % USERS).cast("string"))

    def track_of(n: Column, rank: Column) -> Column:
        return F.concat(F.lit("trk-"), ((n + rank * 97) % TRACKS).cast("string"))

    def request_of(n: Column) -> Column:
        return F.concat(F.lit(f"req-{first_day}-"), n.cast("string"))

    n = F.col("id")
    # The list a row answers: one of the same day (list numbers congruent modulo days).
    answered = F.floor(n / 3) % max(lists // days, 1) * days + n % days
    answers = (n % 5 == 0) if stream is Stream.LISTENS else F.lit(True)
    rank = (F.floor(n / 7) % 10 + 1).cast("int")
    random_track = F.concat(
        F.lit("trk-"), (F.pow(F.rand(seed), 3) * TRACKS).cast("int").cast("string")
    )
    if stream is Stream.RECOMMENDATIONS:
        at, user, track, request = served_at(n), user_of(n), F.lit(None), request_of(n)
    else:
        at = F.when(answers, served_at(answered) + F.expr("INTERVAL 10 MINUTES")).otherwise(
            served_at(n)
        )
        user = F.when(answers, user_of(answered)).otherwise(user_of(n + 7_777_777))
        track = F.when(answers, track_of(answered, rank)).otherwise(random_track)
        request = F.when(answers, request_of(answered))
    base = spark.range(rows).select(
        F.expr("uuid()").alias("event_id"),
        at.alias("event_time"),
        F.lit(1).alias("schema_version"),
        user.alias("user_id"),
        track.cast("string").alias("track_id"),
        request.cast("string").alias("request_id"),
        F.lit("bench").alias("topic"),
        (n % 3).cast("int").alias("partition"),
        n.alias("offset"),
        at.alias("kafka_timestamp"),
        at.alias("ingested_at"),
        F.date_add(F.lit(DAY0), day_of(n)).alias("ingest_date"),
        F.lit(1).alias("schema_id"),
        n,
    )
    if stream is Stream.LISTENS:
        df = base.select(
            "*",
            F.col("event_time").alias("played_at"),
            (n * 31 % 240_000).cast("long").alias("ms_played"),
            F.lit(None).cast("string").alias("context"),
        )
    elif stream is Stream.RECOMMENDATIONS:
        items = F.transform(
            F.sequence(F.lit(1), F.lit(10)),
            lambda r: F.struct(
                track_of(n, r).alias("track_id"), r.alias("rank"), (F.lit(1.0) / r).alias("score")
            ),
        )
        df = base.select("*", F.lit("popularity").alias("model_version"), items.alias("items"))
    else:
        actions = F.array(*[F.lit(a.value) for a in FeedbackAction])
        pick = (F.floor(n / 3) % len(FeedbackAction) + 1).cast("int")
        df = base.select("*", F.element_at(actions, pick).alias("action"))
    schema = bronze_schema(spark, stream)
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def write_bronze(
    spark: SparkSession, settings: Settings, events_per_day: int, first_day: int, days: int
) -> None:
    listens = events_per_day * days
    lists = max(listens // 100, days)
    for stream, rows in (
        (Stream.LISTENS, listens),
        (Stream.RECOMMENDATIONS, lists),
        (Stream.FEEDBACK, listens * 3 // 100),
    ):
        path = settings.bronze_path(STREAMS[stream].topic(settings))
        (
            synthetic_bronze(spark, stream, rows, lists, first_day, days, seed=first_day)
            .write.format("delta")
            .mode("append")
            .partitionBy("ingest_date")
            .save(path)
        )


CHECKED_COLUMNS = {
    "track_daily_stats": aggregates.TRACK_DAILY_COUNTS,
    "user_daily_stats": aggregates.USER_DAILY_COUNTS,
    "user_track_interactions": aggregates.INTERACTION_COUNTS,
    "recommendation_outcomes": ("played", "skipped", "liked", "disliked"),
}


def totals(rows: Iterable[Sequence]) -> dict[str, tuple[int, ...]]:
    return {
        name: tuple(int(v or 0) for v in row)
        for name, row in zip(CHECKED_COLUMNS, rows, strict=True)
    }


def _total_exprs(columns: Sequence[str]) -> list[str]:
    return ["count(*)", *(f"sum(CAST({c} AS BIGINT))" for c in columns)]


def spark_aggregation(spark: SparkSession, settings: Settings) -> tuple[float, dict]:
    """Silver from all of Bronze with the job's transforms; the results are materialised
    in memory (as DuckDB's are, in temporary tables) and their totals returned."""

    def bronze(stream: Stream) -> DataFrame:
        return spark.read.format("delta").load(
            settings.bronze_path(STREAMS[stream].topic(settings))
        )

    began = time.perf_counter()
    impressions = events.impressions(bronze(Stream.RECOMMENDATIONS)).persist()
    feedback = events.feedback(bronze(Stream.FEEDBACK)).persist()
    plays = aggregates.attribute(events.listens(bronze(Stream.LISTENS)), impressions).persist()
    outcomes = aggregates.recommendation_outcomes(impressions, plays, feedback).persist()
    results = {
        "track_daily_stats": aggregates.track_daily_stats(plays, impressions, feedback),
        "user_daily_stats": aggregates.user_daily_stats(plays, impressions),
        "user_track_interactions": aggregates.user_track_interactions(
            plays, impressions, outcomes.where("played"), feedback
        ),
        "recommendation_outcomes": outcomes,
    }
    for name, df in results.items():
        results[name] = df.persist()
        results[name].count()
    elapsed = time.perf_counter() - began
    found = totals(
        results[name].selectExpr(*_total_exprs(columns)).first()
        for name, columns in CHECKED_COLUMNS.items()
    )
    spark.catalog.clearCache()
    return elapsed, found


def active_files(settings: Settings, stream: Stream) -> list[str]:
    """The Parquet files of a Delta table's current version, from its log."""
    bucket, _, table = (
        settings.bronze_path(STREAMS[stream].topic(settings)).removeprefix("s3a://").partition("/")
    )
    s3 = s3_client(settings)
    files: set[str] = set()
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{table}/_delta_log/"
    )
    keys = sorted(
        o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".json")
    )
    for key in keys:
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines():
            action = json.loads(line)
            if "add" in action:
                files.add(f"{bucket}/{table}/{action['add']['path']}")
            elif "remove" in action:
                files.discard(f"{bucket}/{table}/{action['remove']['path']}")
    return sorted(files)


# The same Silver in SQL: the transforms' semantics (first-ingested copy wins, attribution
# inside [served - 5 min, served + 24 h], feedback inside the same window for outcomes).
DUCKDB_SQL = """
CREATE TEMP TABLE listens AS
SELECT event_id, user_id, track_id, played_at, ms_played, request_id,
       CAST(played_at AS DATE) AS play_date
FROM bronze_listens
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ingested_at, "partition", "offset") = 1;

CREATE TEMP TABLE impressions AS
SELECT request_id, user_id, model_version, served_at, CAST(served_at AS DATE) AS impression_date,
       item.track_id AS track_id, item.rank AS rank
FROM (SELECT request_id, user_id, model_version, event_time AS served_at, unnest(items) AS item
      FROM bronze_recs
      QUALIFY row_number() OVER (PARTITION BY event_id
                                 ORDER BY ingested_at, "partition", "offset") = 1);

CREATE TEMP TABLE feedback AS
SELECT event_id, user_id, request_id, track_id, action, event_time AS given_at,
       CAST(event_time AS DATE) AS feedback_date
FROM bronze_feedback
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ingested_at, "partition", "offset") = 1;

CREATE TEMP TABLE plays AS
SELECT l.*, i.served_at IS NOT NULL AS from_recommendation
FROM listens l LEFT JOIN impressions i
  ON l.request_id = i.request_id AND l.user_id = i.user_id AND l.track_id = i.track_id
 AND l.played_at BETWEEN i.served_at - INTERVAL 5 MINUTE AND i.served_at + INTERVAL 24 HOUR;

CREATE TEMP TABLE recommendation_outcomes AS
SELECT i.impression_date, i.request_id, i.track_id, i.user_id, i.rank, i.model_version,
       i.served_at, p.first_played_at IS NOT NULL AS played, p.first_played_at,
       coalesce(r.skipped, false) AS skipped, coalesce(r.liked, false) AS liked,
       coalesce(r.disliked, false) AS disliked
FROM impressions i
LEFT JOIN (SELECT request_id, track_id, min(played_at) AS first_played_at FROM plays
           WHERE from_recommendation GROUP BY ALL) p USING (request_id, track_id)
LEFT JOIN (SELECT f.request_id, f.track_id, bool_or(action = 'skip') AS skipped,
                  bool_or(action = 'like') AS liked, bool_or(action = 'dislike') AS disliked
           FROM feedback f JOIN impressions i
             ON f.request_id = i.request_id AND f.track_id = i.track_id
            AND f.given_at BETWEEN i.served_at - INTERVAL 5 MINUTE
                               AND i.served_at + INTERVAL 24 HOUR
           GROUP BY ALL) r USING (request_id, track_id);

CREATE TEMP TABLE track_daily_stats AS
SELECT date, track_id, coalesce(impressions, 0) AS impressions,
       coalesce(times_recommended, 0) AS times_recommended, coalesce(plays, 0) AS plays,
       coalesce(plays_from_recommendations, 0) AS plays_from_recommendations,
       coalesce(skips, 0) AS skips, coalesce(likes, 0) AS likes,
       coalesce(unique_listeners, 0) AS unique_listeners, coalesce(ms_played, 0) AS ms_played
FROM (SELECT play_date AS date, track_id, count(*) AS plays,
             count(*) FILTER (from_recommendation) AS plays_from_recommendations,
             count(DISTINCT user_id) AS unique_listeners, sum(ms_played) AS ms_played
      FROM plays GROUP BY ALL)
FULL JOIN (SELECT impression_date AS date, track_id, count(*) AS impressions,
                  count(*) AS times_recommended FROM impressions GROUP BY ALL)
  USING (date, track_id)
FULL JOIN (SELECT feedback_date AS date, track_id, count(*) FILTER (action = 'skip') AS skips,
                  count(*) FILTER (action = 'like') AS likes FROM feedback GROUP BY ALL)
  USING (date, track_id);

CREATE TEMP TABLE user_daily_stats AS
SELECT date, user_id, coalesce(plays, 0) AS plays,
       coalesce(distinct_tracks, 0) AS distinct_tracks, coalesce(ms_played, 0) AS ms_played,
       coalesce(recommendations_received, 0) AS recommendations_received,
       coalesce(recommended_tracks_played, 0) AS recommended_tracks_played
FROM (SELECT play_date AS date, user_id, count(*) AS plays,
             count(DISTINCT track_id) AS distinct_tracks, sum(ms_played) AS ms_played,
             count(*) FILTER (from_recommendation) AS recommended_tracks_played
      FROM plays GROUP BY ALL)
FULL JOIN (SELECT impression_date AS date, user_id,
                  count(DISTINCT request_id) AS recommendations_received
           FROM impressions GROUP BY ALL)
  USING (date, user_id);

CREATE TEMP TABLE user_track_interactions AS
SELECT user_id, track_id, coalesce(play_count, 0) AS play_count,
       coalesce(ms_played, 0) AS ms_played, coalesce(recommended_count, 0) AS recommended_count,
       coalesce(recommended_and_played, 0) AS recommended_and_played,
       coalesce(skips, 0) AS skips, coalesce(likes, 0) AS likes,
       coalesce(dislikes, 0) AS dislikes, last_played_at
FROM (SELECT user_id, track_id, count(*) AS play_count, sum(ms_played) AS ms_played,
             max(played_at) AS last_played_at FROM listens GROUP BY ALL)
FULL JOIN (SELECT user_id, track_id, count(*) AS recommended_count FROM impressions GROUP BY ALL)
  USING (user_id, track_id)
FULL JOIN (SELECT user_id, track_id, count(*) AS recommended_and_played
           FROM recommendation_outcomes WHERE played GROUP BY ALL)
  USING (user_id, track_id)
FULL JOIN (SELECT user_id, track_id, count(*) FILTER (action = 'skip') AS skips,
                  count(*) FILTER (action = 'like') AS likes,
                  count(*) FILTER (action = 'dislike') AS dislikes
           FROM feedback GROUP BY ALL)
  USING (user_id, track_id);
"""


def duckdb_aggregation(settings: Settings) -> tuple[float, dict]:
    s3fs = arrow_s3_filesystem(settings)
    began = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET threads = 2")
    for name, stream in (
        ("bronze_listens", Stream.LISTENS),
        ("bronze_recs", Stream.RECOMMENDATIONS),
        ("bronze_feedback", Stream.FEEDBACK),
    ):
        con.register(
            name, ds.dataset(active_files(settings, stream), filesystem=s3fs, format="parquet")
        )
    con.execute(DUCKDB_SQL)
    elapsed = time.perf_counter() - began
    found = totals(
        con.execute(f"SELECT {', '.join(_total_exprs(columns))} FROM {name}").fetchone()
        for name, columns in CHECKED_COLUMNS.items()
    )
    con.close()
    return elapsed, found


def daily_run(spark: SparkSession, settings: Settings, day: int) -> dict[str, float]:
    """Seconds per stage of the real daily job (what ``build.build`` chains)."""
    run = build.SilverRun.for_dates(DAY0 + timedelta(days=day), DAY0 + timedelta(days=day))
    seconds = {}
    for name, stage in build.STAGES.items():
        if stage is not build.build:
            began = time.perf_counter()
            stage(spark, settings, run)
            seconds[name] = time.perf_counter() - began
    return seconds


def lake(base: Settings, tag: str) -> Settings:
    settings = base.model_copy(update={"lakehouse_bucket": f"bench-{tag}-{uuid.uuid4().hex[:6]}"})
    ensure_buckets(settings, (settings.lakehouse_bucket,))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="listens over 30 days")
    parser.add_argument(
        "--part", choices=("all", "engines", "history"), default="all", help="what to measure"
    )
    args = parser.parse_args()
    base = get_settings()
    spark = build_spark(base, "bench-silver")
    per_day = args.events // 30

    history30, history1 = lake(base, "h30"), lake(base, "h1")
    try:
        if args.part in ("all", "engines"):
            compare_engines(spark, history30, args.events, per_day)
        else:
            write_bronze(spark, history30, per_day, first_day=0, days=30)
        if args.part in ("all", "history"):
            compare_histories(spark, history1, history30, per_day)
    finally:
        for settings in (history30, history1):
            drop_bucket(settings, settings.lakehouse_bucket)


def compare_engines(spark: SparkSession, history30: Settings, listens: int, per_day: int) -> None:
    write_bronze(spark, history30, per_day, first_day=0, days=30)
    spark_s, spark_totals = spark_aggregation(spark, history30)
    duck_s, duck_totals = duckdb_aggregation(history30)
    if spark_totals != duck_totals:
        raise SystemExit(f"the engines disagree: spark {spark_totals}, duckdb {duck_totals}")
    print(
        f"aggregation over {listens:,} listens: spark {spark_s:.1f}s, "
        f"duckdb {duck_s:.1f}s, ratio {spark_s / duck_s:.2f} (target <= 2)",
        flush=True,
    )


def compare_histories(
    spark: SparkSession, history1: Settings, history30: Settings, per_day: int
) -> None:
    """One new day on top of 1 and of 30 published days (history30 holds 30 Bronze days)."""
    write_bronze(spark, history1, per_day, first_day=29, days=1)
    daily_run(spark, history1, 29)
    build.build(spark, history30, build.SilverRun.for_dates(DAY0, DAY0 + timedelta(days=29)))
    for settings in (history1, history30):
        write_bronze(spark, settings, per_day, first_day=30, days=1)
    stages = {"1 day": daily_run(spark, history1, 30), "30 days": daily_run(spark, history30, 30)}
    one, thirty = (sum(s.values()) for s in stages.values())
    print(
        f"daily run ({per_day:,} listens) on 1 day of history: {one:.1f}s; on 30 days: "
        f"{thirty:.1f}s; ratio {thirty / one:.2f} (target: flat)",
        flush=True,
    )
    for history, seconds in stages.items():
        print(f"  on {history}: " + ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items()))


if __name__ == "__main__":
    main()
