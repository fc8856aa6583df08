"""The batch chain the DAGs run, as one in-process call for scripts, CI and the demo.

Bronze catch-up -> dim_user -> privacy deletes -> validate Bronze -> stage Silver ->
validate Silver -> publish -> track metadata (fetch, dim_track, check) -> register the lake's
new tables in Trino -> retrain the model (train, evaluate, register, promote if it passes
the gate). The ``silver_daily`` DAG runs the same Silver stages (``SILVER_STAGES``), one
task each; ``track_metadata`` the metadata stages (``METADATA_STAGES``); ``user_profiles``
dim_user and the privacy deletes; ``bronze_catchup`` the first step; ``als_retrain`` the
last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table

from tunelake.settings import Settings

if TYPE_CHECKING:
    from ml.train import RetrainResult
    from spark_jobs.silver.privacy import PrivacyRun
    from spark_jobs.track_metadata import MetadataSummary

Progress = Callable[[str, str], None]

# The order of the silver_daily DAG's Spark tasks; names are `tunelake silver` stages.
SILVER_STAGES = ("validate-bronze", "stage", "validate-silver", "publish")
# The order of the track_metadata DAG's Spark tasks; names are `tunelake metadata` stages.
METADATA_STAGES = ("fetch", "build", "check")


@dataclass
class PipelineSummary:
    seconds: dict[str, float] = field(default_factory=dict)
    quality: list = field(default_factory=list)
    staged_rows: dict[str, int] = field(default_factory=dict)
    table_rows: dict[str, int] = field(default_factory=dict)
    model: RetrainResult | None = None
    # Why no model was trained (too little history to evaluate one), when none was.
    no_model_reason: str | None = None
    metadata: MetadataSummary | None = None
    dimension_rows: dict[str, int] = field(default_factory=dict)
    privacy: PrivacyRun | None = None

    def render(self) -> Group:
        tables = Table("silver table", "rows changed this run", "rows in table", title="Silver")
        for name, rows in self.table_rows.items():
            tables.add_row(name, f"{self.staged_rows.get(name, 0):,}", f"{rows:,}")
        checks = Table(
            "checked", "rows", "expectations passed", "result", title="Great Expectations"
        )
        for report in self.quality:
            passed = report.evaluated - len(report.failures)
            verdict = (
                "passed"
                if report.passed and not report.failures
                else ("passed with warnings" if report.passed else "FAILED")
            )
            checks.add_row(
                report.table, f"{report.rows:,}", f"{passed}/{report.evaluated}", verdict
            )
        for name, rows in self.dimension_rows.items():
            tables.add_row(name, "rebuilt", f"{rows:,}")
        parts = [tables, checks]
        if self.privacy is not None:
            removed = sum(self.privacy.rows_removed.values())
            parts.append(
                f"privacy deletes: {len(self.privacy.deletions)} user(s) processed, "
                f"{removed:,} Silver rows removed"
            )
        if self.metadata is not None:
            parts.append(self.metadata.describe())
        if self.model is not None:
            return Group(*parts, retrain_table(self.model))
        return Group(*parts, f"model: not trained: {self.no_model_reason}")


METRICS = ("ndcg@10", "precision@10", "recall@10", "map@10", "hit_rate@10", "coverage@10", "users")


def retrain_table(result: RetrainResult) -> Table:
    """The candidate's offline metrics beside the baselines, and the gate's decision."""
    verdict = "promoted" if result.promoted else "refused"
    table = Table(
        "on held-out plays",
        *result.metrics,
        title=f"model {result.version}: {verdict} ({result.reason})",
        caption=f"{result.params.to_dict()}; {result.seconds:.0f} s",
    )
    for metric in METRICS:
        table.add_row(metric, *(f"{values[metric]:.4g}" for values in result.metrics.values()))
    return table


def run_pipeline(
    settings: Settings, start: date, end: date, progress: Progress = lambda s, m: None
) -> PipelineSummary:
    from ingestion.streams import Stream
    from ml.train import TrainingDataError, retrain
    from spark_jobs import track_metadata
    from spark_jobs.bronze.ingest import run as bronze
    from spark_jobs.common.session import build_spark
    from spark_jobs.silver import build, dim_user, privacy
    from spark_jobs.silver.tables import DIM_TRACK, DIM_USER, SILVER_TABLES
    from tunelake_ops.trino import register_tables

    spark = build_spark(settings, "tunelake-pipeline")
    run = build.SilverRun.for_dates(start, end)
    summary = PipelineSummary()

    def timed(name: str, action: Callable[[], object]) -> object:
        progress("pipeline", f"{name} ({run.run_id}) ...")
        began = time.monotonic()
        result = action()
        summary.seconds[name] = time.monotonic() - began
        progress("pipeline", f"{name} done in {summary.seconds[name]:.1f}s")
        return result

    timed("bronze catch-up", lambda: bronze(spark, settings, list(Stream), once=True))
    # Profiles before Silver: the build leaves out users dim_user marks deleted, and the
    # privacy job removes them from what earlier runs published.
    summary.dimension_rows[DIM_USER] = timed("dim_user", lambda: dim_user.build(spark, settings))
    summary.privacy = timed("privacy deletes", lambda: privacy.run(spark, settings, "pipeline"))
    summary.quality += timed("validate bronze", lambda: build.validate_bronze(spark, settings, run))
    manifest = timed("stage silver", lambda: build.stage(spark, settings, run))
    summary.staged_rows = {name: info["rows"] for name, info in manifest["tables"].items()}
    summary.quality += timed("validate silver", lambda: build.validate_silver(spark, settings, run))
    timed("publish", lambda: build.publish(spark, settings, run))
    summary.metadata = timed("track metadata", lambda: track_metadata.refresh(spark, settings, run))
    summary.quality.append(summary.metadata.report)
    summary.dimension_rows[DIM_TRACK] = summary.metadata.dim_track_rows
    timed("register in Trino", lambda: register_tables(settings))
    summary.table_rows = {
        name: spark.read.format("delta").load(table.path(settings)).count()
        for name, table in SILVER_TABLES.items()
    }
    try:
        summary.model = timed("retrain model", lambda: retrain(spark, settings))
    except TrainingDataError as exc:  # Silver is published; the service keeps what it serves
        summary.no_model_reason = str(exc)
        progress("pipeline", f"no model trained: {exc}")
    return summary
