"""Bronze ``track_metadata``: what a metadata source said about the tracks the events name.

Input: the Bronze event tables (listens, recommendation lists, feedback) ingested in
[start, end], and what ``bronze/track_metadata`` already holds. Output: one appended row
per track that the events name and that has no metadata yet, or only metadata older than
``TUNELAKE_METADATA_STALE_DAYS``: the parsed fields, the source's answer as JSON, the
source's name and ``fetched_at``; partitioned by ``fetch_date``. Grain: one row per track
and fetch (append-only, the history ``silver/dim_track`` is built from).

A re-run of a day fetches nothing its first run fetched (those rows are fresh), so retries
and backfills append each track once per staleness period. Tracks the source does not
know get no row: they are asked again next run, and the quality check reports them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ingestion.metadata import MetadataSource
from ingestion.streams import STREAMS, Stream
from spark_jobs.silver.tables import BRONZE_TRACK_METADATA
from tunelake.settings import Settings

log = logging.getLogger(__name__)

# Tracks per source call and Bronze commit (20 MusicBrainz searches, about 20 s).
FETCH_CHUNK = 1000
# The event streams that name tracks (recommendation lists in their items).
TRACK_STREAMS = (Stream.LISTENS, Stream.RECOMMENDATIONS, Stream.FEEDBACK)
SCHEMA = T.StructType(
    [
        T.StructField("track_id", T.StringType(), False),
        T.StructField("recording_mbid", T.StringType(), False),  # MusicBrainz recording id
        T.StructField("title", T.StringType(), False),
        T.StructField("artist", T.StringType(), True),  # the artist credit as written
        T.StructField("album", T.StringType(), True),  # the earliest release's title
        T.StructField("genres", T.ArrayType(T.StringType(), False), False),  # most voted first
        T.StructField("duration_ms", T.LongType(), True),
        T.StructField("release_year", T.IntegerType(), True),  # first release
        T.StructField("response", T.StringType(), False),  # the recording as answered (JSON)
        T.StructField("source", T.StringType(), False),  # offline or musicbrainz
        T.StructField("fetched_at", T.TimestampType(), False),
        T.StructField("fetch_date", T.DateType(), False),
    ]
)


@dataclass(frozen=True)
class FetchResult:
    source: str
    tracks_seen: int
    asked: int
    fetched: int


def path(settings: Settings) -> str:
    return settings.bronze_path(BRONZE_TRACK_METADATA)


def tracks_seen(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    """Distinct ``track_id`` of every Bronze event ingested in [start, end]."""
    named = []
    for stream in TRACK_STREAMS:
        table = settings.bronze_path(STREAMS[stream].topic(settings))
        if not DeltaTable.isDeltaTable(spark, table):
            continue
        rows = spark.read.format("delta").load(table)
        rows = rows.where(F.col("ingest_date").between(F.lit(start), F.lit(end)))
        if stream is Stream.RECOMMENDATIONS:
            rows = rows.select(F.explode("items.track_id").alias("track_id"))
        named.append(rows.select("track_id"))
    if not named:
        return spark.createDataFrame([], "track_id string")
    seen = named[0]
    for more in named[1:]:
        seen = seen.unionByName(more)
    return seen.where(F.col("track_id").isNotNull()).distinct()


def needing_fetch(seen: DataFrame, known: DataFrame, now: datetime, stale_days: int) -> DataFrame:
    """The seen tracks with no metadata fetched after ``now - stale_days``."""
    fresh = known.where(F.col("fetched_at") > F.lit(now - timedelta(days=stale_days)))
    return seen.join(fresh.select("track_id"), "track_id", "left_anti")


def fetch(
    spark: SparkSession,
    settings: Settings,
    source: MetadataSource,
    start: date,
    end: date,
    now: datetime,
) -> FetchResult:
    """Fetch the missing or stale metadata of the tracks ingested in [start, end]."""
    seen = tracks_seen(spark, settings, start, end).persist()
    target = path(settings)
    if DeltaTable.isDeltaTable(spark, target):
        known = spark.read.format("delta").load(target)
    else:
        known = spark.createDataFrame([], SCHEMA)
    wanted = sorted(
        r.track_id for r in needing_fetch(seen, known, now, settings.metadata_stale_days).collect()
    )
    seen_count = seen.count()
    seen.unpersist()
    fetched = 0
    # Written a chunk at a time: at MusicBrainz's one request a second, a first run over a
    # large catalog takes long (100,000 tracks: 2,000 searches, over half an hour), and a
    # failure keeps what was fetched before it.
    for first in range(0, len(wanted), FETCH_CHUNK):
        found = source.fetch(wanted[first : first + FETCH_CHUNK])
        fetched += len(found)
        if not found:
            continue
        rows = [
            {**asdict(m), "genres": list(m.genres)}
            | {"source": source.name, "fetched_at": now, "fetch_date": now.date()}
            for m in found
        ]
        spark.createDataFrame(rows, SCHEMA).write.format("delta").mode("append").partitionBy(
            "fetch_date"
        ).save(target)
    result = FetchResult(source.name, seen_count, asked=len(wanted), fetched=fetched)
    log.info(
        "track metadata from %s: %d tracks seen in %s..%s, %d asked, %d fetched, %d unknown",
        source.name,
        result.tracks_seen,
        start,
        end,
        result.asked,
        result.fetched,
        result.asked - result.fetched,
    )
    return result
