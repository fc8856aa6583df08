"""Operator quarantine: move Bronze rows out of Bronze, into the topic's quarantine, with a reason.

The Bronze rules keep invalid records out as they land, so a critical Bronze expectation
fails only for rows that bypassed them (written into the table by hand) or that landed
before a bound was tightened. Such a row blocks its ingest dates' Silver run until it
leaves the slice: ``tunelake quality quarantine`` moves it, then the run is repeated.

Input: the Bronze table of one stream, a SQL predicate, a reason and an ingest-date range.
Output: the matching rows appended to ``bronze/_quarantine/<topic>`` (their
``topic``/``partition``/``offset``, ``schema_id`` and ingest metadata kept; ``value`` is the
row as JSON, since Bronze keeps no raw bytes; ``key`` null; ``error`` says an operator moved
it and why), then deleted from Bronze. One Delta transaction per table: the quarantine
MERGE inserts only offsets it does not hold yet, then the Bronze MERGE deletes exactly the
offsets read, so an interrupted or repeated move neither loses nor duplicates a row.
The move holds the topic's Bronze lease (``lease.py``): Delta's S3 log store assumes one
writer, so a running ``bronze --follow`` must be stopped for it (the move otherwise waits
``TUNELAKE_BRONZE_LEASE_WAIT_SECONDS`` and fails naming the holder).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ingestion.streams import Stream
from spark_jobs.bronze.ingest import METADATA_COLUMNS, QUARANTINE_COLUMNS, BronzeTarget
from spark_jobs.bronze.lease import BronzeLease
from tunelake.settings import Settings

log = logging.getLogger(__name__)

SOURCE_KEY = ("topic", "partition", "offset")
OPERATOR_REASON_PREFIX = "moved from Bronze by an operator: "


class QuarantineError(RuntimeError):
    """The rows could not be moved (no table, a bad predicate); nothing was changed."""


@dataclass(frozen=True)
class Moved:
    table: str
    quarantine: str
    rows: int
    bronze_version: int


def as_quarantined(bronze_rows: DataFrame, reason: str) -> DataFrame:
    """Bronze rows in the quarantine table's shape, the payload kept as JSON in ``value``."""
    payload = [c for c in bronze_rows.columns if c not in ("schema_id", *METADATA_COLUMNS)]
    columns = {
        "key": F.lit(None).cast("binary"),
        "value": F.to_json(F.struct(*payload)).cast("binary"),
        "error": F.lit(OPERATOR_REASON_PREFIX + reason),
    }
    return bronze_rows.select(
        *[columns[c].alias(c) if c in columns else F.col(c) for c in QUARANTINE_COLUMNS]
    ).dropDuplicates(list(SOURCE_KEY))


def _same_source(left: str, right: str) -> str:
    return " AND ".join(f"{left}.`{c}` = {right}.`{c}`" for c in SOURCE_KEY)


def move_to_quarantine(
    spark: SparkSession,
    settings: Settings,
    stream: Stream,
    where: str,
    reason: str,
    start: date,
    end: date,
) -> Moved:
    """Move the Bronze rows of ``stream`` ingested in [start, end] that match ``where``."""
    if not reason.strip():
        raise QuarantineError("give a reason: it is kept with every moved row")
    target = BronzeTarget.of(settings, stream)
    if not DeltaTable.isDeltaTable(spark, target.table_path):
        raise QuarantineError(f"no Bronze table at {target.table_path}")
    with BronzeLease(settings, {target.topic: target.checkpoint_path}):
        return _move(spark, target, where, reason, start, end)


def _move(
    spark: SparkSession, target: BronzeTarget, where: str, reason: str, start: date, end: date
) -> Moved:
    bronze = DeltaTable.forPath(spark, target.table_path)
    # One snapshot for both commits: rows landing meanwhile are neither copied nor deleted.
    version = bronze.history(1).first()["version"]
    in_dates = f"ingest_date BETWEEN DATE'{start.isoformat()}' AND DATE'{end.isoformat()}'"
    try:
        matching = (
            spark.read.format("delta")
            .option("versionAsOf", version)
            .load(target.table_path)
            .where(in_dates)
            .where(F.expr(where))
        )
        moved = as_quarantined(matching, reason)
        count = moved.count()
    except AnalysisException as exc:  # ParseException is one too
        raise QuarantineError(f"--where {where!r} does not apply to {target.topic}: {exc}") from exc
    result = Moved(target.table_path, target.quarantine_path, count, version)
    if not count:
        log.info("no row of %s matches %r in %s..%s", target.topic, where, start, end)
        return result
    DeltaTable.forPath(spark, target.quarantine_path).alias("q").merge(
        moved.alias("m"), _same_source("q", "m")
    ).whenNotMatchedInsertAll().execute()
    bronze.alias("b").merge(
        moved.select(*SOURCE_KEY).alias("m"), f"b.{in_dates} AND {_same_source('b', 'm')}"
    ).whenMatchedDelete().execute()
    log.warning(
        "moved %d rows of %s (version %d, %s) to %s: %s",
        count,
        target.table_path,
        version,
        where,
        target.quarantine_path,
        reason,
    )
    return result
