"""Privacy deletes: a user deleted in PostgreSQL leaves Silver and every later training set.

Input: Silver ``dim_user`` (SCD2, built from the ``user_profiles`` CDC stream): every row
with ``is_deleted`` is a deletion, at its ``valid_from``. Outputs:

- the deleted users' rows gone from the current version of every Silver table:
  ``listens``, ``impressions``, ``feedback`` and ``recommendation_outcomes`` lose them (one
  MERGE each); ``user_daily_stats`` and ``user_track_interactions`` have the users' rows
  replaced by what their remaining events give (none, for a user still deleted);
  ``track_daily_stats`` holds no user id, so the dates their removed events fall on are
  recomputed whole from the remaining events (unique listeners cannot be subtracted);
- their profile attributes scrubbed from ``dim_user``'s history (ids, validity and
  ``is_deleted`` stay, so the deletion itself is still known): the dimension's own build
  (``spark_jobs.silver.dim_user``) already writes them so; this keeps it so whatever
  wrote the table;
- one row per processed deletion appended to ``audit/privacy_deletions``: user, deletion
  time, processing time, who asked for the run, rows removed per table.

What a deletion erases: a user whose current ``dim_user`` row is deleted, every event; a
user id created again since its last deletion, the events from before that deletion
(``erase_before``). The same rule keeps them out of every later Silver build
(``spark_jobs.silver.build.bronze_slice``) and training set (``ml.train.read_silver``).

Idempotent: a deletion that has an audit row is not processed again, and removing rows
that are already gone removes nothing. A Silver run staged before a privacy run is refused
at publication (its tables moved since staging: ``StaleStagingError``) and staged again,
without the deleted users. Removed rows stay in older table versions until ``vacuum``
deletes the files that only those versions use, once they are older than the table's
``delta.deletedFileRetentionDuration`` (7 days by default); the job vacuums at the end of
every run, so a deletion's files are gone for good at the first run 7 days after it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.silver import aggregates
from spark_jobs.silver.aggregates import on_dates
from spark_jobs.silver.dim_user import PROFILE_COLUMNS
from spark_jobs.silver.dim_user import TABLE as DIM_USER
from spark_jobs.silver.tables import SILVER_TABLES
from tunelake.settings import Settings

log = logging.getLogger(__name__)

AUDIT_TABLE = "privacy_deletions"
# The time each table's rows happened at (the event's ``event_time``), for ``erase_before``.
EVENT_TIME = {
    "listens": "accepted_at",
    "impressions": "served_at",
    "feedback": "given_at",
    "recommendation_outcomes": "served_at",
}
# Tables whose rows are one user's, replaced by a recomputation from their remaining events.
PER_USER = ("user_daily_stats", "user_track_interactions")
LITE_REFUSED = "DELTA_CANNOT_VACUUM_LITE"
AUDIT_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), False),
        T.StructField("deleted_at", T.TimestampType(), False),  # dim_user's valid_from
        T.StructField("processed_at", T.TimestampType(), False),
        T.StructField("requested_by", T.StringType(), True),
        T.StructField("rows_removed", T.MapType(T.StringType(), T.LongType()), False),
    ]
)


def _load(spark: SparkSession, path: str) -> DataFrame | None:
    """The Delta table at ``path``, or None before it exists."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return spark.read.format("delta").load(path)


def read_dim_user(spark: SparkSession, settings: Settings) -> DataFrame | None:
    """Silver ``dim_user``, or None before it exists (then nobody was deleted)."""
    return _load(spark, settings.silver_path(DIM_USER))


def erasures(dim_user: DataFrame) -> DataFrame:
    """(user_id, erase_before) of every user ever deleted: their events before
    ``erase_before`` are erased, all of them when it is null (deleted now)."""
    deleted = F.col("is_deleted")
    per_user = dim_user.groupBy("user_id").agg(
        F.max(F.when(deleted, F.col("valid_from"))).alias("last_deleted_at"),
        F.max(F.col("is_current") & deleted).alias("deleted_now"),
    )
    return per_user.where(F.col("last_deleted_at").isNotNull()).select(
        "user_id",
        F.when(F.col("deleted_now"), F.lit(None).cast("timestamp"))
        .otherwise(F.col("last_deleted_at"))
        .alias("erase_before"),
    )


def _erased(time_column: str) -> Column:
    before = F.col("e.erase_before")
    return before.isNull() | (F.col(f"r.{time_column}") < before)


def keep(rows: DataFrame, erased: DataFrame, time_column: str) -> DataFrame:
    """``rows`` without those ``erased`` (see ``erasures``) covers."""
    on = (F.col("r.user_id") == F.col("e.user_id")) & _erased(time_column)
    return rows.alias("r").join(F.broadcast(erased.alias("e")), on, "left_anti")


def removed(rows: DataFrame, erased: DataFrame, time_column: str) -> DataFrame:
    """The ``rows`` that ``erased`` covers."""
    on = (F.col("r.user_id") == F.col("e.user_id")) & _erased(time_column)
    return rows.alias("r").join(F.broadcast(erased.alias("e")), on, "left_semi")


def deletions(dim_user: DataFrame) -> DataFrame:
    """(user_id, deleted_at): every deletion ``dim_user`` records."""
    return (
        dim_user.where("is_deleted")
        .select("user_id", F.col("valid_from").alias("deleted_at"))
        .distinct()
    )


def pending(deleted: DataFrame, audit: DataFrame | None) -> DataFrame:
    """The deletions the audit table has no row for yet."""
    if audit is None:
        return deleted
    return deleted.join(audit.select("user_id", "deleted_at"), ["user_id", "deleted_at"], "anti")


@dataclass(frozen=True)
class PrivacyRun:
    """What one run processed: the audit rows it appended, the track dates it recomputed."""

    deletions: list[dict]
    recomputed_dates: list[date]

    @property
    def rows_removed(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for deletion in self.deletions:
            for table, rows in deletion["rows_removed"].items():
                totals[table] = totals.get(table, 0) + rows
        return totals


def _read(spark: SparkSession, settings: Settings, table: str) -> DataFrame | None:
    return _load(spark, SILVER_TABLES[table].path(settings))


def _counts(df: DataFrame) -> dict[str, int]:
    return {r["user_id"]: r["count"] for r in df.groupBy("user_id").count().collect()}


def _dates(df: DataFrame, column: str) -> set[date]:
    return {r[0] for r in df.select(column).distinct().collect()}


def _delete_events(
    spark: SparkSession, settings: Settings, erased: DataFrame
) -> tuple[dict[str, dict[str, int]], set[date]]:
    """Delete the erased rows of the event tables and outcomes; returns the rows removed
    per table and user, and the dates of the removed events (for the track aggregates)."""
    removed_rows, dates = {}, set()
    date_of = {
        "listens": "play_date",
        "impressions": "impression_date",
        "feedback": "feedback_date",
    }
    for name, time_column in EVENT_TIME.items():
        table = _read(spark, settings, name)
        if table is None:
            continue
        gone = removed(table, erased, time_column).cache()
        removed_rows[name] = _counts(gone)
        if name in date_of:
            dates |= _dates(gone, date_of[name])
        gone.unpersist()
        if removed_rows[name]:
            on = (
                "t.user_id = e.user_id "
                f"AND (e.erase_before IS NULL OR t.{time_column} < e.erase_before)"
            )
            DeltaTable.forPath(spark, SILVER_TABLES[name].path(settings)).alias("t").merge(
                F.broadcast(erased).alias("e"), on
            ).whenMatchedDelete().execute()
    return removed_rows, dates


def _sql_list(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _replace_users(
    spark: SparkSession, settings: Settings, users: list[str], window_hours: int
) -> dict[str, dict[str, int]]:
    """Replace the users' rows of the per-user aggregates by what their remaining events
    give; returns the rows removed per table and user (before minus after)."""
    if _read(spark, settings, "listens") is None:
        return {}
    users_df = spark.createDataFrame([(u,) for u in users], "user_id string")

    def theirs(name: str) -> DataFrame:
        return _read(spark, settings, name).join(F.broadcast(users_df), "user_id", "semi")

    listens, impressions, feedback = theirs("listens"), theirs("impressions"), theirs("feedback")
    plays = aggregates.attribute(listens, impressions, window_hours)
    outcomes = theirs("recommendation_outcomes")
    recomputed = {
        "user_daily_stats": aggregates.user_daily_stats(plays, impressions),
        "user_track_interactions": aggregates.user_track_interactions(
            listens, impressions, outcomes.where("played"), feedback
        ),
    }
    removed_rows = {}
    for name in PER_USER:
        current = _read(spark, settings, name)
        if current is None:
            continue
        table = SILVER_TABLES[name]
        new = recomputed[name].select(*current.columns).cache()
        before, after = _counts(theirs(name)), _counts(new)
        removed_rows[name] = {u: n - after.get(u, 0) for u, n in before.items()}
        match = " AND ".join(f"t.{k} = s.{k}" for k in table.keys)
        DeltaTable.forPath(spark, table.path(settings)).alias("t").merge(
            new.alias("s"), match
        ).whenMatchedUpdateAll().whenNotMatchedInsertAll().whenNotMatchedBySourceDelete(
            f"t.user_id IN ({_sql_list(users)})"
        ).execute()
        new.unpersist()
    return removed_rows


def _recompute_track_days(
    spark: SparkSession, settings: Settings, dates: list[date], window_hours: int
) -> None:
    """Recompute ``track_daily_stats`` on ``dates`` from the remaining events, as the Silver
    build computes a day (plays attributed to lists served up to the window before)."""
    table = SILVER_TABLES["track_daily_stats"]
    if not dates or _read(spark, settings, table.name) is None:
        return
    impressions = _read(spark, settings, "impressions")
    plays = aggregates.plays_on(_read(spark, settings, "listens"), impressions, dates, window_hours)
    stats = aggregates.track_daily_stats(
        plays,
        impressions.where(on_dates("impression_date", dates)),
        _read(spark, settings, "feedback").where(on_dates("feedback_date", dates)),
    ).where(on_dates("date", dates))
    in_dates = f"date IN ({_sql_list([d.isoformat() for d in dates])})"
    stats.write.format("delta").mode("overwrite").option("replaceWhere", in_dates).save(
        table.path(settings)
    )


def _scrub_dim_user(spark: SparkSession, settings: Settings, erased: DataFrame) -> int:
    """Null the profile attributes of the erased users' rows; returns the rows scrubbed."""
    path = settings.silver_path(DIM_USER)
    dim_user = spark.read.format("delta").load(path)
    any_attribute = " OR ".join(f"t.{c} IS NOT NULL" for c in PROFILE_COLUMNS)
    on = (
        "t.user_id = e.user_id AND (e.erase_before IS NULL OR t.valid_from < e.erase_before) "
        f"AND ({any_attribute})"
    )
    to_scrub = (
        removed(dim_user, erased, "valid_from")
        .where(" OR ".join(f"{c} IS NOT NULL" for c in PROFILE_COLUMNS))
        .count()
    )
    if to_scrub:
        DeltaTable.forPath(spark, path).alias("t").merge(
            F.broadcast(erased).alias("e"), on
        ).whenMatchedUpdate(set={c: "NULL" for c in PROFILE_COLUMNS}).execute()
    return to_scrub


def delete_users(
    spark: SparkSession,
    settings: Settings,
    requested_by: str | None = None,
    window_hours: int = aggregates.DEFAULT_ATTRIBUTION_HOURS,
) -> PrivacyRun:
    """Process every deletion of ``dim_user`` that has no audit row yet (see the module)."""
    dim_user = read_dim_user(spark, settings)
    if dim_user is None:
        log.info("no Silver dim_user at %s: nobody to delete", settings.silver_path(DIM_USER))
        return PrivacyRun([], [])
    todo = pending(deletions(dim_user), _load(spark, settings.audit_path(AUDIT_TABLE))).collect()
    if not todo:
        log.info("privacy: no deletion to process")
        return PrivacyRun([], [])
    # A user's rows are counted once, on their latest pending deletion.
    latest: dict[str, datetime] = {}
    for r in todo:
        latest[r["user_id"]] = max(latest.get(r["user_id"], r["deleted_at"]), r["deleted_at"])
    users = sorted(latest)
    # Collected: the later steps rewrite tables that a lazy plan would read again.
    everyone = erasures(dim_user)
    erased = everyone.where(F.col("user_id").isin(users))
    erased = spark.createDataFrame(erased.collect(), everyone.schema)
    removed_rows, dates = _delete_events(spark, settings, erased)
    removed_rows |= _replace_users(spark, settings, users, window_hours)
    recomputed = sorted(dates)
    _recompute_track_days(spark, settings, recomputed, window_hours)
    scrubbed_rows = _scrub_dim_user(spark, settings, erased)
    processed_at = datetime.now(UTC)
    rows = [
        {
            "user_id": r["user_id"],
            "deleted_at": r["deleted_at"],
            "processed_at": processed_at,
            "requested_by": requested_by,
            "rows_removed": {
                name: per_user.get(r["user_id"], 0)
                if r["deleted_at"] == latest[r["user_id"]]
                else 0
                for name, per_user in removed_rows.items()
            },
        }
        for r in todo
    ]
    spark.createDataFrame(rows, AUDIT_SCHEMA).write.format("delta").mode("append").save(
        settings.audit_path(AUDIT_TABLE)
    )
    run = PrivacyRun(rows, recomputed)
    log.info(
        "privacy: %d deletion(s) of %d user(s) processed; rows removed %s; track days "
        "recomputed %d; dim_user rows scrubbed %d",
        len(rows),
        len(users),
        run.rows_removed,
        len(recomputed),
        scrubbed_rows,
    )
    return run


def _vacuum_table(spark: SparkSession, path: str, lite: bool) -> None:
    if lite:
        try:
            spark.sql(f"VACUUM delta.`{path}` LITE").collect()
            return
        except Exception as exc:  # Delta's IllegalStateException reaches Python as py4j's
            # LITE reads the removals from the log: a table whose older commits were
            # cleaned up (not vacuumed for longer than the log's retention) needs a listing.
            if LITE_REFUSED not in str(exc):
                raise
            log.warning("VACUUM LITE of %s refused, vacuuming FULL", path)
    DeltaTable.forPath(spark, path).vacuum()


def vacuum(spark: SparkSession, settings: Settings, lite: bool = True) -> list[str]:
    """VACUUM every Silver table and ``dim_user`` with their retention (7 days unless a
    table sets ``delta.deletedFileRetentionDuration``): the files that only versions older
    than that read are deleted, the rows a privacy delete removed among them. ``lite``:
    the files the log records as removed (what DELETE, MERGE and replaceWhere leave), read
    from the log, which is cheap; FULL lists the whole table, orphans of failed writes too.
    Returns the tables vacuumed."""
    paths = {name: t.path(settings) for name, t in SILVER_TABLES.items()}
    paths[DIM_USER] = settings.silver_path(DIM_USER)
    done = []
    # Delta lists a table with this many tasks (10,000 by default): a few are plenty.
    listing = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
    spark.conf.set(listing, str(settings.spark_shuffle_partitions))
    try:
        for name, path in paths.items():
            if DeltaTable.isDeltaTable(spark, path):
                _vacuum_table(spark, path, lite)
                done.append(name)
    finally:
        spark.conf.unset(listing)
    return done


def run(spark: SparkSession, settings: Settings, requested_by: str | None = None) -> PrivacyRun:
    """The job: process pending deletions, then VACUUM."""
    processed = delete_users(spark, settings, requested_by)
    vacuum(spark, settings)
    return processed
