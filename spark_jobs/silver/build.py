"""Silver build, write-audit-publish, for the Bronze rows ingested in a date range.

Stages (each a function the DAG, the CLI and ``tunelake pipeline run`` call alike):

1. ``validate_bronze``: Great Expectations on the Bronze rows ingested in [start, end];
2. ``stage``: new Silver events (deduplicated against what is published) and every
   aggregate row those events touch (daily tables: whole event dates, recomputed from the
   published events plus the new ones, so late events re-merge into their day), written to
   ``s3a://<lakehouse>/_staging/silver/<run_id>/<table>`` with a manifest;
3. ``validate_silver``: the Silver suites on every staged table;
4. ``publish``: events MERGEd in by key, daily tables ``replaceWhere`` their staged dates,
   all-time aggregates MERGEd by key. Re-running a range rewrites the same rows.

A failing critical expectation raises ``QualityGateError`` before anything is published;
results are kept under ``s3a://<lakehouse>/_quality/<run_id>/``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dq import gate as quality
from dq.suites import bronze_suite, row_count_drift, silver_suite
from ingestion.streams import STREAMS, Stream
from spark_jobs.silver import aggregates, events
from spark_jobs.silver.tables import EVENT_TABLES, SILVER_TABLES, Publish
from tunelake.clients import s3_client
from tunelake.settings import Settings

log = logging.getLogger(__name__)

BRONZE_OF = {
    "listens": Stream.LISTENS,
    "impressions": Stream.RECOMMENDATIONS,
    "feedback": Stream.FEEDBACK,
}
TRANSFORM_OF = {
    "listens": events.listens,
    "impressions": events.impressions,
    "feedback": events.feedback,
}


class MissingInputError(RuntimeError):
    """A table the build reads does not exist yet."""


@dataclass(frozen=True)
class SilverRun:
    start: date
    end: date
    run_id: str

    @classmethod
    def for_dates(cls, start: date, end: date, run_id: str | None = None) -> SilverRun:
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        return cls(start, end, run_id or f"{start.isoformat()}_{end.isoformat()}")

    def staging(self, settings: Settings, table: str = "") -> str:
        return settings.lakehouse_uri("_staging", "silver", self.run_id, table).rstrip("/")


def _exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def bronze_slice(
    spark: SparkSession, settings: Settings, stream: Stream, run: SilverRun
) -> DataFrame:
    path = settings.bronze_path(STREAMS[stream].topic(settings))
    if not _exists(spark, path):
        raise MissingInputError(f"no Bronze table at {path}: run `tunelake bronze --once` first")
    return (
        spark.read.format("delta")
        .load(path)
        .where(F.col("ingest_date").between(F.lit(run.start), F.lit(run.end)))
    )


def validate_bronze(
    spark: SparkSession, settings: Settings, run: SilverRun
) -> list[quality.QualityReport]:
    now = datetime.now(UTC)
    reports = [
        quality.validate(
            bronze_slice(spark, settings, stream, run),
            f"bronze_{stream.value}",
            bronze_suite(stream.value, now),
            run.run_id,
        )
        for stream in Stream
    ]
    quality.store(settings, reports, "bronze")
    quality.gate(reports)
    return reports


def _published(spark: SparkSession, settings: Settings, table: str, like: DataFrame) -> DataFrame:
    path = SILVER_TABLES[table].path(settings)
    if _exists(spark, path):
        return spark.read.format("delta").load(path)
    return like.limit(0)


def _dates(df: DataFrame, column: str) -> list[date]:
    return sorted(r[0] for r in df.select(column).distinct().collect() if r[0] is not None)


def _in(column: str, dates: list[date]):
    return F.col(column).isin([d.isoformat() for d in dates]) if dates else F.lit(False)


def stage(
    spark: SparkSession,
    settings: Settings,
    run: SilverRun,
    window_hours: int = aggregates.DEFAULT_ATTRIBUTION_HOURS,
) -> dict:
    """Compute and stage every Silver change of ``run``; returns (and stores) the manifest."""
    incoming = {
        name: TRANSFORM_OF[name](bronze_slice(spark, settings, BRONZE_OF[name], run))
        for name in TRANSFORM_OF
    }
    published = {name: _published(spark, settings, name, incoming[name]) for name in incoming}
    # Every event date the slice touches is recomputed whole, from all known events.
    touched = {t.name: _dates(incoming[t.name], t.date_column) for t in EVENT_TABLES}
    new = {}
    for table in EVENT_TABLES:
        keys = list(table.keys)
        # A duplicate has the same event time, so only the touched dates can hold it.
        known = published[table.name].where(_in(table.date_column, touched[table.name]))
        new[table.name] = (
            incoming[table.name].join(known.select(*keys), keys, "left_anti").persist()
        )
    daily_dates = sorted(set().union(*touched.values()))
    everything = {name: published[name].unionByName(new[name]) for name in incoming}
    window_days = window_hours // 24 + 1
    lookback = [d - timedelta(days=k) for d in daily_dates for k in range(window_days + 1)]

    def on(name: str, dates: list[date]) -> DataFrame:
        return everything[name].where(_in(SILVER_TABLES[name].date_column, dates))

    listens_d, feedback_d = on("listens", daily_dates), on("feedback", daily_dates)
    impressions_lb = on("impressions", sorted(set(lookback)))
    # Outcomes live on the impression's date: a late play re-opens the list it answers.
    answered = everything["impressions"].join(
        incoming["listens"]
        .select("request_id")
        .union(incoming["feedback"].select("request_id"))
        .distinct(),
        "request_id",
        "semi",
    )
    outcome_dates = sorted(set(touched["impressions"]) | set(_dates(answered, "impression_date")))
    impressions_o = on("impressions", outcome_dates)
    requests = impressions_o.select("request_id").distinct()
    listens_o = everything["listens"].join(requests, "request_id", "semi")
    feedback_o = everything["feedback"].join(requests, "request_id", "semi")
    users = (
        incoming["listens"]
        .select("user_id")
        .union(incoming["impressions"].select("user_id"))
        .union(incoming["feedback"].select("user_id"))
        .distinct()
    )

    def of_users(name: str) -> DataFrame:
        return everything[name].join(users, "user_id", "semi")

    staged = {
        **new,
        "track_daily_stats": aggregates.track_daily_stats(
            listens_d, impressions_lb, feedback_d, window_hours
        ).where(_in("date", daily_dates)),
        "user_daily_stats": aggregates.user_daily_stats(
            listens_d, impressions_lb, window_hours
        ).where(_in("date", daily_dates)),
        "recommendation_outcomes": aggregates.recommendation_outcomes(
            impressions_o, listens_o, feedback_o, window_hours
        ),
        "user_track_interactions": aggregates.user_track_interactions(
            of_users("listens"), of_users("impressions"), of_users("feedback"), window_hours
        ),
    }
    manifest = {
        "run_id": run.run_id,
        "start": run.start.isoformat(),
        "end": run.end.isoformat(),
        "tables": {},
    }
    # The dates each daily table replaces when published (events and all-time tables merge).
    replaced = {
        "track_daily_stats": daily_dates,
        "user_daily_stats": daily_dates,
        "recommendation_outcomes": outcome_dates,
    }
    for name, df in staged.items():
        path = run.staging(settings, name)
        df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
        dates = replaced.get(name, [])
        manifest["tables"][name] = {
            "rows": spark.read.format("delta").load(path).count(),
            "dates": [d.isoformat() for d in dates],
        }
    for df in new.values():
        df.unpersist()
    _put_json(settings, f"{_staging_key(run)}/manifest.json", manifest)
    log.info(
        "staged silver run %s: %s",
        run.run_id,
        {k: v["rows"] for k, v in manifest["tables"].items()},
    )
    return manifest


def _staging_key(run: SilverRun) -> str:
    return f"_staging/silver/{run.run_id}"


def _put_json(settings: Settings, key: str, value: dict) -> None:
    s3_client(settings).put_object(
        Bucket=settings.lakehouse_bucket, Key=key, Body=json.dumps(value, indent=1).encode()
    )


def read_manifest(settings: Settings, run: SilverRun) -> dict:
    try:
        obj = s3_client(settings).get_object(
            Bucket=settings.lakehouse_bucket, Key=f"{_staging_key(run)}/manifest.json"
        )
    except s3_client(settings).exceptions.NoSuchKey as exc:
        raise MissingInputError(f"run {run.run_id} has nothing staged: stage it first") from exc
    return json.loads(obj["Body"].read())


def _usual_rows(spark: SparkSession, settings: Settings, table: str) -> float | None:
    """Mean rows per date of the published daily table (for the drift warning)."""
    spec = SILVER_TABLES[table]
    if spec.publish is not Publish.REPLACE_DATES or not _exists(spark, spec.path(settings)):
        return None
    per_date = (
        spark.read.format("delta").load(spec.path(settings)).groupBy(spec.date_column).count()
    )
    mean = per_date.agg(F.avg("count")).first()[0]
    return float(mean) if mean else None


def validate_silver(
    spark: SparkSession, settings: Settings, run: SilverRun
) -> list[quality.QualityReport]:
    manifest = read_manifest(settings, run)
    now = datetime.now(UTC)
    reports = []
    for name, info in manifest["tables"].items():
        staged = spark.read.format("delta").load(run.staging(settings, name))
        expectations = silver_suite(name, now)
        usual = _usual_rows(spark, settings, name)
        if usual and info["dates"]:
            expectations += row_count_drift(usual * len(info["dates"]))
        reports.append(quality.validate(staged, f"silver_{name}", expectations, run.run_id))
    quality.store(settings, reports, "silver")
    quality.gate(reports)
    return reports


def _publish_table(
    spark: SparkSession, settings: Settings, run: SilverRun, name: str, dates: list[str]
) -> None:
    table = SILVER_TABLES[name]
    staged = spark.read.format("delta").load(run.staging(settings, name))
    path = table.path(settings)
    if not _exists(spark, path):
        writer = staged.write.format("delta").mode("overwrite")
        if table.date_column:
            writer = writer.partitionBy(table.date_column)
        writer.save(path)
        return
    if table.publish is Publish.REPLACE_DATES:
        if not dates:
            return
        predicate = f"{table.date_column} IN ({', '.join(repr(d) for d in dates)})"
        (
            staged.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", predicate)
            .save(path)
        )
        return
    match = " AND ".join(f"t.{k} = s.{k}" for k in table.keys)
    merge = DeltaTable.forPath(spark, path).alias("t").merge(staged.alias("s"), match)
    if table.publish is Publish.UPSERT:
        merge = merge.whenMatchedUpdateAll()
    merge.whenNotMatchedInsertAll().execute()


def publish(spark: SparkSession, settings: Settings, run: SilverRun) -> dict[str, int]:
    manifest = read_manifest(settings, run)
    for name, info in manifest["tables"].items():
        _publish_table(spark, settings, run, name, info["dates"])
    log.info("published silver run %s", run.run_id)
    return {name: info["rows"] for name, info in manifest["tables"].items()}


def build(spark: SparkSession, settings: Settings, run: SilverRun) -> dict[str, int]:
    """The whole chain once: validate Bronze, stage, validate Silver, publish."""
    validate_bronze(spark, settings, run)
    stage(spark, settings, run)
    validate_silver(spark, settings, run)
    return publish(spark, settings, run)


STAGES = {
    "validate-bronze": validate_bronze,
    "stage": stage,
    "validate-silver": validate_silver,
    "publish": publish,
    "all": build,
}


def main(argv: list[str] | None = None) -> None:
    """``python -m spark_jobs.silver.build STAGE --from D --to D`` is ``tunelake silver``."""
    import sys

    from tunelake.cli import app

    app(["silver", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
