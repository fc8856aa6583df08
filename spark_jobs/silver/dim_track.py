"""Silver ``dim_track``: each track's metadata as a slowly changing dimension (type 2).

Input: ``bronze/track_metadata`` (every fetch of every track). Output: one row per track
and *version* of its metadata (title, artist, album, genres, duration, release year,
recording MBID): ``valid_from`` is when a fetch first saw that version, ``valid_to`` when
a fetch first saw the next one (null while current), ``is_current`` the open row. A
re-fetch that answers the same closes nothing. Rebuilt whole from Bronze on each run
(a dimension is one row per track and change, small beside the events), so a run, a
retry and a backfill all leave the same table; the Great Expectations suite gates the
write.

``without_metadata`` is the quality check of the dimension against the events: every
track that Silver listens or impressions name and that has no current row, reported as a
warning (it never blocks a publication: plays of an unknown track are still plays).
"""

from __future__ import annotations

import logging

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dq import reports as quality
from spark_jobs.bronze import track_metadata
from spark_jobs.silver import dimensions
from spark_jobs.silver.tables import DIM_TRACK, SILVER_TABLES
from tunelake.settings import Settings

log = logging.getLogger(__name__)

ATTRIBUTES = (
    "recording_mbid",
    "title",
    "artist",
    "album",
    "genres",
    "duration_ms",
    "release_year",
)
COLUMNS = ("track_id", *ATTRIBUTES, "valid_from", "valid_to", "is_current")
# The events whose tracks should have metadata (Silver tables).
EVENT_TABLES = ("listens", "impressions")


def path(settings: Settings) -> str:
    return settings.silver_path(DIM_TRACK)


def scd2(history: DataFrame) -> DataFrame:
    """Fetches (track_id, ATTRIBUTES, fetched_at) -> dimension rows, one per version."""
    fetches = (
        history.select("track_id", *ATTRIBUTES, "fetched_at")
        # Two fetches at one instant (a retried write) are one observation.
        .dropDuplicates(["track_id", "fetched_at"])
    )
    state = F.to_json(F.struct(*ATTRIBUTES))
    return dimensions.versions(fetches, "track_id", ["fetched_at"], state, "fetched_at").select(
        "track_id", *ATTRIBUTES, "valid_from", "valid_to", "is_current"
    )


def suite() -> list:
    import great_expectations as gx

    E = gx.expectations
    return [
        *(
            E.ExpectColumnValuesToNotBeNull(column=c)
            for c in ("track_id", "recording_mbid", "title", "genres", "valid_from", "is_current")
        ),
        E.ExpectCompoundColumnsToBeUnique(column_list=["track_id", "valid_from"]),
        E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="valid_to", column_B="valid_from", ignore_row_if="either_value_is_missing"
        ),
        E.ExpectColumnValuesToBeBetween(column="duration_ms", min_value=0),
    ]


def build(spark: SparkSession, settings: Settings, run_id: str) -> int:
    """Validate the rebuilt dimension, then replace ``silver/dim_track``; returns its rows.
    Raises ``QualityGateError`` (nothing written) if a critical expectation fails."""
    from dq.gate import validate

    source = track_metadata.path(settings)
    if DeltaTable.isDeltaTable(spark, source):
        # The Bronze version validated is the one written, whatever lands in between.
        version = DeltaTable.forPath(spark, source).history(1).first()["version"]
        history = spark.read.format("delta").option("versionAsOf", version).load(source)
    else:
        # No source has answered for any track yet: an empty dimension, so that readers
        # (Trino, the check) find the table; the check reports every event track.
        version, history = -1, spark.createDataFrame([], track_metadata.SCHEMA)
    dimension = scd2(history)
    report = validate(dimension, f"silver_{DIM_TRACK}", suite(), run_id)
    quality.store(settings, [report], DIM_TRACK)
    quality.gate([report])
    dimension.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
        path(settings)
    )
    log.info("dim_track: %d rows from %s version %d", report.rows, source, version)
    return report.rows


def event_tracks(spark: SparkSession, settings: Settings) -> DataFrame:
    tables = [SILVER_TABLES[name].path(settings) for name in EVENT_TABLES]
    present = [t for t in tables if DeltaTable.isDeltaTable(spark, t)]
    tracks = spark.createDataFrame([], "track_id string")
    for table in present:
        tracks = tracks.unionByName(spark.read.format("delta").load(table).select("track_id"))
    return tracks.distinct()


def tracks_without_metadata(events: DataFrame, dimension: DataFrame) -> DataFrame:
    """Every event track with ``missing_metadata`` = its id when no current row has it."""
    current = dimension.where("is_current").select("track_id", F.lit(True).alias("known"))
    return events.join(current, "track_id", "left").select(
        "track_id", F.when(F.col("known").isNull(), F.col("track_id")).alias("missing_metadata")
    )


def check(spark: SparkSession, settings: Settings, run_id: str) -> quality.QualityReport:
    """The warning-level report of event tracks without metadata (a sample of their ids)."""
    import great_expectations as gx
    from great_expectations.expectations.metadata_types import FailureSeverity

    from dq.gate import validate

    dim_path = path(settings)
    dimension = (
        spark.read.format("delta").load(dim_path)
        if DeltaTable.isDeltaTable(spark, dim_path)
        else spark.createDataFrame([], "track_id string, is_current boolean")
    )
    report = validate(
        tracks_without_metadata(event_tracks(spark, settings), dimension),
        "tracks_without_metadata",
        [
            gx.expectations.ExpectColumnValuesToBeNull(
                column="missing_metadata", severity=FailureSeverity.WARNING
            )
        ],
        run_id,
    )
    quality.store(settings, [report], "tracks_without_metadata")
    return report
