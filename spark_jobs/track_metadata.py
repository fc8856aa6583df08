"""The ``track_metadata`` chain, one function per DAG task: fetch -> build -> check.

1. ``fetch``: metadata of the tracks the run's Bronze events name that lack it or are
   stale, from the source settings choose, appended to ``bronze/track_metadata``;
2. ``build``: ``silver/dim_track`` (SCD2) rebuilt from it, gated by its suite;
3. ``check``: the warning-level report of event tracks that have no metadata.

A run covers the Bronze rows ingested in [start, end] (a day, or a backfill's range); its
quality results sit beside that range's Silver results (``_quality/<run_id>/``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from dq.reports import QualityReport
from ingestion.metadata import metadata_source
from spark_jobs.bronze import track_metadata
from spark_jobs.silver import dim_track
from spark_jobs.silver.build import SilverRun
from tunelake.settings import Settings


def fetch(
    spark: SparkSession, settings: Settings, run: SilverRun, now: datetime | None = None
) -> track_metadata.FetchResult:
    source = metadata_source(settings)
    try:
        return track_metadata.fetch(
            spark, settings, source, run.start, run.end, now or datetime.now(UTC)
        )
    finally:
        source.close()


def build(spark: SparkSession, settings: Settings, run: SilverRun) -> int:
    return dim_track.build(spark, settings, run.run_id)


def check(spark: SparkSession, settings: Settings, run: SilverRun) -> QualityReport:
    return dim_track.check(spark, settings, run.run_id)


STAGES: dict[str, Callable] = {"fetch": fetch, "build": build, "check": check}


@dataclass(frozen=True)
class MetadataSummary:
    fetched: track_metadata.FetchResult
    dim_track_rows: int
    report: QualityReport

    def describe(self) -> str:
        missing = sum(f.unexpected_count or 0 for f in self.report.failures)
        return (
            f"track metadata from {self.fetched.source}: {self.fetched.fetched:,} of "
            f"{self.fetched.asked:,} tracks fetched; dim_track {self.dim_track_rows:,} rows; "
            f"{missing:,} of {self.report.rows:,} event tracks without metadata"
        )


def refresh(spark: SparkSession, settings: Settings, run: SilverRun) -> MetadataSummary:
    """The whole chain once (the in-process pipeline and the demo)."""
    fetched = fetch(spark, settings, run)
    return MetadataSummary(fetched, build(spark, settings, run), check(spark, settings, run))
