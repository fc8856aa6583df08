"""Silver event tables: Bronze rows conformed, deduplicated and dated by event time.

Inputs: the Bronze tables (one row per accepted Kafka record, any ingest date).
Outputs (grain):
- ``listens``: one row per play (``event_id``), dated by ``play_date`` = date of ``played_at``;
- ``impressions``: one row per recommended item (``request_id``, ``track_id``), dated by
  ``impression_date`` = date the list was served;
- ``feedback``: one row per feedback event (``event_id``), dated by ``feedback_date``.
Duplicates (the same ``event_id`` landed twice) keep the earliest-ingested copy.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def _first_by_event_id(df: DataFrame) -> DataFrame:
    order = Window.partitionBy("event_id").orderBy("ingested_at", "partition", "offset")
    return df.withColumn("_n", F.row_number().over(order)).where(F.col("_n") == 1).drop("_n")


def listens(bronze: DataFrame) -> DataFrame:
    return _first_by_event_id(bronze).select(
        "event_id",
        "user_id",
        "track_id",
        "played_at",
        "ms_played",
        "context",
        "request_id",
        F.col("event_time").alias("accepted_at"),
        F.to_date("played_at").alias("play_date"),
    )


def impressions(bronze: DataFrame) -> DataFrame:
    served = _first_by_event_id(bronze)
    return served.select(
        "request_id",
        "user_id",
        "model_version",
        F.col("event_time").alias("served_at"),
        F.to_date("event_time").alias("impression_date"),
        F.explode("items").alias("item"),
    ).select(
        "request_id",
        "user_id",
        "model_version",
        "served_at",
        "impression_date",
        F.col("item.track_id").alias("track_id"),
        F.col("item.rank").alias("rank"),
        F.col("item.score").alias("score"),
    )


def feedback(bronze: DataFrame) -> DataFrame:
    return _first_by_event_id(bronze).select(
        "event_id",
        "user_id",
        "request_id",
        "track_id",
        "action",
        F.col("event_time").alias("given_at"),
        F.to_date("event_time").alias("feedback_date"),
    )
