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
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow.dataset as ds
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ingestion.schemas import load_schema
from ingestion.streams import STREAMS, Stream
from spark_jobs.bronze.ingest import KAFKA_ROW_SCHEMA, decode, split, with_ingest_metadata
from spark_jobs.common.session import build_spark
from spark_jobs.silver import aggregates, build, events
from tunelake.clients import arrow_s3_filesystem, s3_client
from tunelake.settings import Settings, get_settings
from tunelake.stack.probes import ensure_buckets

DAY0 = date(2026, 10, 1)
USERS, TRACKS = 50_000, 20_000


def bronze_schema(spark: SparkSession, stream: Stream):
    reader = load_schema(STREAMS[stream].schema_name)
    empty = with_ingest_metadata(spark.createDataFrame([], KAFKA_ROW_SCHEMA), datetime.now(UTC))
    return split(decode(empty, {}, reader, stream), reader)[0].schema


def synthetic_bronze(
    spark: SparkSession, stream: Stream, rows: int, first_day: int, days: int, seed: int
) -> DataFrame:
    """``rows`` Bronze rows spread over ``days`` ingest days from DAY0 + first_day."""
    day = (F.col("id") % days + first_day).cast("int")
    ingest = F.date_add(F.lit(DAY0), day)
    at = F.timestamp_seconds(
        F.unix_timestamp(ingest.cast("timestamp")) + (F.col("id") * 7919 % 86_000)
    )
    user = F.concat(F.lit("usr-"), (F.abs(F.hash("id", F.lit(seed))) % USERS).cast("string"))
    track = F.concat(F.lit("trk-"), (F.pow(F.rand(seed), 3) * TRACKS).cast("int").cast("string"))
    # Lists are unique per (batch, id); listens quote a list of their batch.
    lists = max(int(rows * 0.01 / 1.0), 1) if stream is Stream.LISTENS else rows
    request = F.concat(F.lit(f"req-{first_day}-"), (F.col("id") % lists).cast("string"))
    base = spark.range(rows).select(
        F.expr("uuid()").alias("event_id"),
        at.alias("event_time"),
        F.lit(1).alias("schema_version"),
        user.alias("user_id"),
        track.alias("track_id"),
        request.alias("request_id"),
        F.lit("bench").alias("topic"),
        (F.col("id") % 3).cast("int").alias("partition"),
        F.col("id").alias("offset"),
        at.alias("kafka_timestamp"),
        at.alias("ingested_at"),
        ingest.alias("ingest_date"),
        F.lit(1).alias("schema_id"),
        F.col("id"),
    )
    if stream is Stream.LISTENS:
        df = (
            base.select(
                "*",
                F.col("event_time").alias("played_at"),
                (F.col("id") * 31 % 240_000).cast("long").alias("ms_played"),
                F.lit(None).cast("string").alias("context"),
                F.when(F.col("id") % 5 == 0, F.col("request_id")).alias("request_id_"),
            )
            .drop("request_id")
            .withColumnRenamed("request_id_", "request_id")
        )
    elif stream is Stream.RECOMMENDATIONS:
        items = F.transform(
            F.sequence(F.lit(1), F.lit(10)),
            lambda r: F.struct(
                F.concat(F.lit("trk-"), ((F.col("id") + r * 97) % TRACKS).cast("string")).alias(
                    "track_id"
                ),
                r.alias("rank"),
                (F.lit(1.0) / r).alias("score"),
            ),
        )
        df = base.select("*", F.lit("popularity").alias("model_version"), items.alias("items"))
    else:
        df = base.select(
            "*",
            F.element_at(
                F.array(*[F.lit(a) for a in ("play", "skip", "like", "dislike")]),
                (F.col("id") % 4 + 1).cast("int"),
            ).alias("action"),
        )
    schema = bronze_schema(spark, stream)
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def write_bronze(
    spark: SparkSession, settings: Settings, events_per_day: int, first_day: int, days: int
) -> None:
    for stream, share in (
        (Stream.LISTENS, 1.0),
        (Stream.RECOMMENDATIONS, 0.01),
        (Stream.FEEDBACK, 0.03),
    ):
        rows = int(events_per_day * days * share)
        path = settings.bronze_path(STREAMS[stream].topic(settings))
        (
            synthetic_bronze(spark, stream, rows, first_day, days, seed=first_day)
            .write.format("delta")
            .mode("append")
            .partitionBy("ingest_date")
            .save(path)
        )


def spark_aggregation(spark: SparkSession, settings: Settings) -> float:
    def bronze(stream: Stream) -> DataFrame:
        return spark.read.format("delta").load(
            settings.bronze_path(STREAMS[stream].topic(settings))
        )

    listens = events.listens(bronze(Stream.LISTENS))
    impressions = events.impressions(bronze(Stream.RECOMMENDATIONS))
    feedback = events.feedback(bronze(Stream.FEEDBACK))
    began = time.perf_counter()
    for result in (
        aggregates.track_daily_stats(listens, impressions, feedback),
        aggregates.user_daily_stats(listens, impressions),
        aggregates.user_track_interactions(listens, impressions, feedback),
    ):
        result.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - began


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


DUCKDB_SQL = """
WITH listens AS (
  SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY ingested_at) n
                 FROM bronze_listens) WHERE n = 1),
impressions AS (
  SELECT request_id, user_id, event_time AS served_at, CAST(event_time AS DATE) AS d,
         unnest(items, recursive := true)
  FROM bronze_recs),
feedback AS (SELECT *, CAST(event_time AS DATE) AS d FROM bronze_feedback),
attributed AS (
  SELECT DISTINCT p.event_id, p.user_id, p.track_id, i.request_id FROM listens p
  JOIN impressions i ON p.request_id = i.request_id AND p.user_id = i.user_id
   AND p.track_id = i.track_id AND p.played_at BETWEEN i.served_at - INTERVAL 5 MINUTE
   AND i.served_at + INTERVAL 24 HOUR)
SELECT
 (SELECT count(*) FROM (
   SELECT CAST(played_at AS DATE) d, track_id, count(*), count(a.event_id),
          count(DISTINCT l.user_id), sum(ms_played)
   FROM listens l LEFT JOIN (SELECT DISTINCT event_id FROM attributed) a USING (event_id)
   GROUP BY 1, 2)) AS track_daily,
 (SELECT count(*) FROM (SELECT d, track_id, count(DISTINCT request_id), count(*)
                        FROM impressions GROUP BY 1, 2)) AS track_daily_impressions,
 (SELECT count(*) FROM (SELECT d, track_id, count(*) FILTER (action = 'skip'),
                        count(*) FILTER (action = 'like') FROM feedback GROUP BY 1, 2))
   AS track_daily_feedback,
 (SELECT count(*) FROM (SELECT CAST(played_at AS DATE), user_id, count(*),
                        count(DISTINCT track_id), sum(ms_played) FROM listens GROUP BY 1, 2))
   AS user_daily,
 (SELECT count(*) FROM (SELECT user_id, track_id, count(*), sum(ms_played), max(played_at)
                        FROM listens GROUP BY 1, 2)) AS interactions,
 (SELECT count(*) FROM (SELECT user_id, track_id, count(DISTINCT request_id)
                        FROM attributed GROUP BY 1, 2)) AS interactions_answered
"""


def duckdb_aggregation(settings: Settings) -> float:
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
    con.execute(DUCKDB_SQL).fetchall()
    return time.perf_counter() - began


def daily_run(spark: SparkSession, settings: Settings, day: int) -> float:
    run = build.SilverRun.for_dates(DAY0 + timedelta(days=day), DAY0 + timedelta(days=day))
    began = time.perf_counter()
    build.build(spark, settings, run)
    return time.perf_counter() - began


def lake(base: Settings, tag: str) -> Settings:
    settings = base.model_copy(update={"lakehouse_bucket": f"bench-{tag}-{uuid.uuid4().hex[:6]}"})
    ensure_buckets(settings, (settings.lakehouse_bucket,))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="listens over 30 days")
    args = parser.parse_args()
    base = get_settings()
    spark = build_spark(base, "bench-silver")
    per_day = args.events // 30

    history30 = lake(base, "h30")
    write_bronze(spark, history30, per_day, first_day=0, days=30)
    spark_s = spark_aggregation(spark, history30)
    duck_s = duckdb_aggregation(history30)
    print(
        f"aggregation over {args.events:,} listens: spark {spark_s:.1f}s, "
        f"duckdb {duck_s:.1f}s, ratio {spark_s / duck_s:.2f} (target <= 2)",
        flush=True,
    )

    history1 = lake(base, "h1")
    write_bronze(spark, history1, per_day, first_day=29, days=1)
    daily_run(spark, history1, 29)
    build.build(spark, history30, build.SilverRun.for_dates(DAY0, DAY0 + timedelta(days=29)))
    for settings in (history1, history30):
        write_bronze(spark, settings, per_day, first_day=30, days=1)
    one = daily_run(spark, history1, 30)
    thirty = daily_run(spark, history30, 30)
    print(
        f"daily run ({per_day:,} listens) on 1 day of history: {one:.1f}s; on 30 days: "
        f"{thirty:.1f}s; ratio {thirty / one:.2f} (target: flat)",
        flush=True,
    )


if __name__ == "__main__":
    main()
