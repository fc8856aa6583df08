"""Silver ``dim_user``: user profiles as a type-2 slowly changing dimension, from the
Bronze ``user_profiles`` changes Debezium captured from PostgreSQL.

One row per version of a profile: ``valid_from`` is the commit time of the change that
made it, ``valid_to`` the next change's (null while current), ``is_current`` marks the
latest. A delete closes the current row and adds a current row with ``is_deleted`` true,
and the profile attributes of every version before a delete are nulled (those rows keep
only the id and the validity: when the user existed and that they are gone). A user id
created again later starts a new, live version.

The table is rebuilt from the whole Bronze table on each run, so a run is idempotent and
a change Debezium sent twice (at-least-once after a Connect restart: same user, LSN and op)
counts once; a version that changes nothing (a re-snapshot) is not a new version.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from ingestion.streams import STREAMS, Stream
from spark_jobs.silver import dimensions
from spark_jobs.silver.tables import DIM_USER
from tunelake.settings import Settings

log = logging.getLogger(__name__)

TABLE = DIM_USER
PROFILE_COLUMNS = ("display_name", "country", "birth_year", "signup_time", "preferences")
COLUMNS = (
    "user_id",
    *PROFILE_COLUMNS,
    "valid_from",
    "valid_to",
    "is_current",
    "is_deleted",
    "change_lsn",
)


class DimUserError(RuntimeError):
    """The rebuilt dimension breaks its own invariants: nothing was published."""


def changes(bronze: DataFrame) -> DataFrame:
    """Bronze change rows -> one row per distinct change, typed."""
    return (
        bronze.dropDuplicates(["user_id", "cdc_lsn", "cdc_op"])
        .select(
            "user_id",
            *[c for c in PROFILE_COLUMNS if c != "signup_time"],
            F.to_timestamp("signup_time").alias("signup_time"),
            F.timestamp_millis("cdc_source_ts_ms").alias("changed_at"),
            ((F.col("cdc_op") == "d") | (F.col("__deleted") == "true")).alias("is_deleted"),
            F.col("cdc_lsn").alias("change_lsn"),
        )
        .withColumn("birth_year", F.col("birth_year").cast("int"))
    )


def versions(changes: DataFrame) -> DataFrame:
    """Distinct changes -> SCD2 rows."""
    # A deletion's state is only that: two deletions in a row, or a change that leaves the
    # profile as it was (a re-snapshot), add no version.
    deleted = F.col("is_deleted")
    state = F.to_json(F.struct(deleted, *[F.when(~deleted, F.col(c)) for c in PROFILE_COLUMNS]))
    order = ["change_lsn", "changed_at"]
    kept = dimensions.versions(changes, "user_id", order, state, "changed_at")
    # A version a delete followed held data the user had erased.
    erased = F.max(deleted.cast("int")).over(
        Window.partitionBy("user_id")
        .orderBy(*order)
        .rowsBetween(Window.currentRow, Window.unboundedFollowing)
    )
    return kept.select(
        "user_id",
        *[F.when(erased == 0, F.col(c)).alias(c) for c in PROFILE_COLUMNS],
        "valid_from",
        "valid_to",
        "is_current",
        "is_deleted",
        "change_lsn",
    )


def check(dim: DataFrame) -> None:
    """One current row per user, and validity intervals that do not overlap."""
    problems = dim.groupBy("user_id").agg(
        F.count_if("is_current").alias("current_rows"),
        F.count("*").alias("rows"),
        F.countDistinct("valid_from").alias("starts"),
    )
    bad = problems.where((F.col("current_rows") != 1) | (F.col("rows") != F.col("starts")))
    sample = [r.user_id for r in bad.limit(5).collect()]
    if sample:
        raise DimUserError(
            f"{TABLE}: users {sample} would not have exactly one current row and distinct "
            "version starts; the table was not published"
        )


def build(spark: SparkSession, settings: Settings) -> int:
    """Rebuild ``dim_user`` from Bronze; returns its row count."""
    bronze_path = settings.bronze_path(STREAMS[Stream.USER_PROFILES].topic(settings))
    dim = versions(changes(spark.read.format("delta").load(bronze_path))).persist()
    try:
        check(dim)
        rows = dim.count()
        (
            dim.select(*COLUMNS)
            .write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true")
            .save(settings.silver_path(TABLE))
        )
    finally:
        dim.unpersist()
    log.info("silver %s: %d rows published", TABLE, rows)
    return rows
