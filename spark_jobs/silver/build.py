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
results are kept under ``s3a://<lakehouse>/_quality/<run_id>/``. The gate cannot be
skipped: each validation records its verdict beside the run's staging, ``stage`` reads
exactly the Bronze versions a passing ``validate_bronze`` checked, and ``publish`` refuses
(``UnvalidatedStagingError``) unless a passing ``validate_silver`` is recorded for this very
staging (its ``staged_at``), whoever calls it (the CLI by hand, a task marked successful).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dq import reports as quality
from ingestion.streams import EVENT_STREAMS, STREAMS, Stream
from ingestion.validity import SYNTHETIC_USER_PREFIX
from spark_jobs.silver import aggregates, events, privacy
from spark_jobs.silver.aggregates import days_around, on_dates
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


class SilverError(RuntimeError):
    """A Silver stage refused to run; nothing was published."""


class MissingInputError(SilverError):
    """A table the build reads does not exist yet."""


class UnvalidatedStagingError(SilverError):
    """A stage's input has no passing validation recorded for it."""


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


def _bronze_table(settings: Settings, stream: Stream) -> str:
    return settings.bronze_path(STREAMS[stream].topic(settings))


def bronze_slice(
    spark: SparkSession, settings: Settings, stream: Stream, run: SilverRun, version: int
) -> DataFrame:
    """The rows of ``stream``'s Bronze table at ``version`` ingested in the run's dates,
    without the synthetic users' (the deploy smoke test's) and, for the event streams,
    without what a privacy delete erased (``privacy.erasures`` of ``dim_user``), so no
    rebuild brings a deleted user back."""
    rows = (
        spark.read.format("delta")
        .option("versionAsOf", version)
        .load(_bronze_table(settings, stream))
        .where(F.col("ingest_date").between(F.lit(run.start), F.lit(run.end)))
        .where(~F.coalesce(F.col("user_id").startswith(SYNTHETIC_USER_PREFIX), F.lit(False)))
    )
    dim_user = privacy.read_dim_user(spark, settings) if stream in EVENT_STREAMS else None
    if dim_user is None:
        return rows
    return privacy.keep(rows, privacy.erasures(dim_user), "event_time")


def _verdict_key(run: SilverRun, stage: str) -> str:
    return f"{_staging_key(run)}/{stage}_validation.json"


def _record_verdict(
    settings: Settings,
    run: SilverRun,
    stage: str,
    reports: list[quality.QualityReport],
    **identity: object,
) -> None:
    """Keep a validation's verdict beside the run's staging, with what it validated."""
    _put_json(
        settings,
        _verdict_key(run, stage),
        {
            "passed": all(r.passed for r in reports),
            "validated_at": datetime.now(UTC).isoformat(),
            "results": quality.store(settings, reports, stage),
            **identity,
        },
    )


def validate_bronze(
    spark: SparkSession, settings: Settings, run: SilverRun
) -> list[quality.QualityReport]:
    """Validate the run's Bronze slice as of now; ``stage`` reads exactly these versions."""
    # Great Expectations takes seconds to import: only the two validation stages load it.
    from dq.gate import validate
    from spark_jobs.suites import bronze_suite

    versions = {}
    for stream in EVENT_STREAMS:
        path = _bronze_table(settings, stream)
        versions[stream.value] = _latest_commit(spark, path)[0]
        if versions[stream.value] < 0:
            raise MissingInputError(
                f"no Bronze table at {path}: run `tunelake bronze --once` first"
            )
    now = datetime.now(UTC)
    reports = [
        validate(
            bronze_slice(spark, settings, stream, run, versions[stream.value]),
            f"bronze_{stream.value}",
            bronze_suite(stream.value, settings, now),
            run.run_id,
        )
        for stream in EVENT_STREAMS
    ]
    _record_verdict(settings, run, "bronze", reports, bronze_versions=versions)
    quality.gate(reports)
    return reports


def _passing_verdict(settings: Settings, run: SilverRun, stage: str, before: str) -> dict:
    verdict = _get_json(settings, _verdict_key(run, stage))
    if verdict is None:
        raise UnvalidatedStagingError(
            f"run {run.run_id}: no {stage} validation is recorded; run "
            f"`tunelake silver validate-{stage}` for it before {before}"
        )
    if not verdict["passed"]:
        raise UnvalidatedStagingError(
            f"run {run.run_id}: its last {stage} validation failed (results in "
            f"s3://{settings.lakehouse_bucket}/{verdict['results']}); fix the data and "
            f"validate again before {before}"
        )
    return verdict


def _published(spark: SparkSession, settings: Settings, table: str, like: DataFrame) -> DataFrame:
    path = SILVER_TABLES[table].path(settings)
    if _exists(spark, path):
        return spark.read.format("delta").load(path)
    return like.limit(0)


def _dates(df: DataFrame, column: str) -> list[date]:
    return sorted(r[0] for r in df.select(column).distinct().collect() if r[0] is not None)


def stage(
    spark: SparkSession,
    settings: Settings,
    run: SilverRun,
    window_hours: int = aggregates.DEFAULT_ATTRIBUTION_HOURS,
) -> dict:
    """Compute and stage every Silver change of ``run``; returns (and stores) the manifest.

    Reads only the dates the run touches (plus the attribution window around them), so a
    day costs the same on top of a week or a year of history."""
    _finish_interrupted_publish(spark, settings, run)
    validated = _passing_verdict(settings, run, "bronze", "staging")["bronze_versions"]
    # What the staged rows are computed from: publish refuses if any of it moved since.
    base_versions = {
        n: _latest_commit(spark, t.path(settings))[0] for n, t in SILVER_TABLES.items()
    }
    incoming = {
        name: TRANSFORM_OF[name](
            bronze_slice(spark, settings, BRONZE_OF[name], run, validated[BRONZE_OF[name].value])
        )
        for name in TRANSFORM_OF
    }
    published = {name: _published(spark, settings, name, incoming[name]) for name in incoming}
    # Every event date the slice touches is recomputed whole, from all known events.
    touched = {t.name: _dates(incoming[t.name], t.date_column) for t in EVENT_TABLES}
    new = {}
    for table in EVENT_TABLES:
        keys = list(table.keys)
        # A duplicate has the same event time, so only the touched dates can hold it.
        known = published[table.name].where(on_dates(table.date_column, touched[table.name]))
        new[table.name] = (
            incoming[table.name].join(known.select(*keys), keys, "left_anti").persist()
        )
    everything = {name: published[name].unionByName(new[name]) for name in incoming}
    # A play or reaction at time t answers a list served in [t - window, t + 5 minutes].
    window_days = aggregates.window_days(window_hours)

    def on(name: str, dates: list[date]) -> DataFrame:
        return everything[name].where(on_dates(SILVER_TABLES[name].date_column, dates))

    daily_dates = sorted(set().union(*touched.values()))
    plays = aggregates.plays_on(
        everything["listens"], everything["impressions"], daily_dates, window_hours
    ).persist()
    # Outcomes live on the impression's date: a late play re-opens the list it answers.
    answering = sorted(set(touched["listens"]) | set(touched["feedback"]))
    answered_lists = on("impressions", days_around(answering, window_days, 1)).join(
        incoming["listens"]
        .select("request_id")
        .union(incoming["feedback"].select("request_id"))
        .distinct(),
        "request_id",
        "semi",
    )
    outcome_dates = sorted(
        set(touched["impressions"]) | set(_dates(answered_lists, "impression_date"))
    )
    answer_window = days_around(outcome_dates, 1, window_days)
    staged = {
        **new,
        "track_daily_stats": aggregates.track_daily_stats(
            plays, on("impressions", daily_dates), on("feedback", daily_dates)
        ).where(on_dates("date", daily_dates)),
        "user_daily_stats": aggregates.user_daily_stats(
            plays, on("impressions", daily_dates)
        ).where(on_dates("date", daily_dates)),
        "recommendation_outcomes": aggregates.recommendation_outcomes(
            on("impressions", outcome_dates),
            aggregates.attribute(
                on("listens", answer_window), on("impressions", outcome_dates), window_hours
            ),
            on("feedback", answer_window),
            window_hours,
        ),
    }
    manifest = {
        "run_id": run.run_id,
        "start": run.start.isoformat(),
        "end": run.end.isoformat(),
        "staged_at": datetime.now(UTC).isoformat(),
        "base_versions": base_versions,
        "tables": {},
    }
    # The dates each table's publication touches: replaced for the daily tables, the
    # only partitions a new event's key can already be in for the event tables.
    dates_of = {
        **touched,
        "track_daily_stats": daily_dates,
        "user_daily_stats": daily_dates,
        "recommendation_outcomes": outcome_dates,
    }

    def write(name: str, df: DataFrame) -> None:
        path = run.staging(settings, name)
        df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
        manifest["tables"][name] = {
            "rows": spark.read.format("delta").load(path).count(),
            "dates": [d.isoformat() for d in dates_of.get(name, [])],
        }

    for name, df in staged.items():
        write(name, df)
    write("user_track_interactions", _interactions(spark, settings, run, new, outcome_dates))
    plays.unpersist()
    for df in new.values():
        df.unpersist()
    _put_json(settings, f"{_staging_key(run)}/manifest.json", manifest)
    log.info(
        "staged silver run %s: %s",
        run.run_id,
        {k: v["rows"] for k, v in manifest["tables"].items()},
    )
    return manifest


def _interactions(
    spark: SparkSession,
    settings: Settings,
    run: SilverRun,
    new: dict[str, DataFrame],
    outcome_dates: list[date],
) -> DataFrame:
    """All-time interactions of every pair the new events touch: the published counts plus
    those events' counts. An answered list counts once, when its outcome turns played
    (the staged outcomes against the published ones)."""
    outcomes = spark.read.format("delta").load(run.staging(settings, "recommendation_outcomes"))
    before = _published(spark, settings, "recommendation_outcomes", outcomes).where(
        on_dates("impression_date", outcome_dates)
    )
    increment = aggregates.user_track_interactions(
        new["listens"],
        new["impressions"],
        aggregates.newly_answered(outcomes, before),
        new["feedback"],
    )
    current = _published(spark, settings, "user_track_interactions", increment)
    return aggregates.add_interactions(current, increment)


def _staging_key(run: SilverRun) -> str:
    return f"_staging/silver/{run.run_id}"


def _put_json(settings: Settings, key: str, value: dict) -> None:
    s3_client(settings).put_object(
        Bucket=settings.lakehouse_bucket, Key=key, Body=json.dumps(value, indent=1).encode()
    )


def _get_json(settings: Settings, key: str) -> dict | None:
    s3 = s3_client(settings)
    try:
        obj = s3.get_object(Bucket=settings.lakehouse_bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(obj["Body"].read())


def read_manifest(settings: Settings, run: SilverRun) -> dict:
    manifest = _get_json(settings, f"{_staging_key(run)}/manifest.json")
    if manifest is None:
        raise MissingInputError(f"run {run.run_id} has nothing staged: stage it first")
    return manifest


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
    from dq.gate import validate
    from spark_jobs.suites import row_count_drift, silver_suite

    manifest = read_manifest(settings, run)
    now = datetime.now(UTC)
    reports = []
    for name, info in manifest["tables"].items():
        staged = spark.read.format("delta").load(run.staging(settings, name))
        expectations = silver_suite(name, settings, now)
        usual = _usual_rows(spark, settings, name)
        if usual and info["dates"]:
            expectations += row_count_drift(usual * len(info["dates"]))
        reports.append(validate(staged, f"silver_{name}", expectations, run.run_id))
    _record_verdict(settings, run, "silver", reports, staged_at=manifest["staged_at"])
    quality.gate(reports)
    return reports


USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


class StaleStagingError(SilverError):
    """A table changed between staging and publishing: the staged rows are out of date."""


def _publishing_marker(run: SilverRun) -> str:
    return f"{_staging_key(run)}/publishing.json"


def _commit_tag(manifest: dict) -> str:
    return f"tunelake silver {manifest['run_id']} staged {manifest['staged_at']}"


def _latest_commit(spark: SparkSession, path: str) -> tuple[int, str | None]:
    """(version, user metadata) of the table's last commit; (-1, None) if there is none."""
    if not _exists(spark, path):
        return -1, None
    latest = DeltaTable.forPath(spark, path).history(1).first()
    return latest["version"], latest["userMetadata"]


def _already_published(spark: SparkSession, settings: Settings, manifest: dict) -> set[str]:
    """The staged tables whose last commit is this staging's (a retried publish reached
    them); raises if any other table moved since it was staged."""
    done, stale = set(), []
    for name in manifest["tables"]:
        version, tag = _latest_commit(spark, SILVER_TABLES[name].path(settings))
        base = manifest["base_versions"][name]
        if tag == _commit_tag(manifest):
            done.add(name)
        elif version != base:
            stale.append(f"{name} (staged on version {base}, now {version})")
    if stale:
        raise StaleStagingError(
            f"run {manifest['run_id']}: Silver changed after it was staged: "
            f"{', '.join(stale)}; stage it again"
        )
    return done


def _publish_table(
    spark: SparkSession, settings: Settings, run: SilverRun, manifest: dict, name: str
) -> None:
    table = SILVER_TABLES[name]
    path = table.path(settings)
    dates = manifest["tables"][name]["dates"]
    staged = spark.read.format("delta").load(run.staging(settings, name))
    if not _exists(spark, path):
        writer = staged.write.format("delta").mode("overwrite")
        if table.date_column:
            writer = writer.partitionBy(table.date_column)
        # No deletion vectors, on any table: they would spare the interactions MERGE from
        # rewriting the files it touches, but delta-rs (what pandas and Polars users read
        # with) cannot read a table that has them.
        writer.save(path)
        return
    if manifest["tables"][name]["rows"] == 0 and table.publish is not Publish.REPLACE_DATES:
        return
    if table.publish is Publish.UPSERT:
        match = " AND ".join(f"t.{k} = s.{k}" for k in table.keys)
        DeltaTable.forPath(spark, path).alias("t").merge(
            staged.alias("s"), match
        ).whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
        return
    if not dates:
        return
    in_dates = f"{table.date_column} IN ({', '.join(repr(d) for d in dates)})"
    if table.publish is Publish.REPLACE_DATES:
        staged.write.format("delta").mode("overwrite").option("replaceWhere", in_dates).save(path)
        return
    # Insert-new events: the date bound lets the MERGE read only the touched partitions.
    match = " AND ".join([f"t.{in_dates}", *(f"t.{k} = s.{k}" for k in table.keys)])
    DeltaTable.forPath(spark, path).alias("t").merge(
        staged.alias("s"), match
    ).whenNotMatchedInsertAll().execute()


def publish(spark: SparkSession, settings: Settings, run: SilverRun) -> dict[str, int]:
    """Publish every staged table. Each step is idempotent and the start is recorded, so an
    interrupted publish is finished by a retry, or by the next ``stage`` of the run."""
    manifest = read_manifest(settings, run)
    verdict = _passing_verdict(settings, run, "silver", "publishing")
    if verdict["staged_at"] != manifest["staged_at"]:
        raise UnvalidatedStagingError(
            f"run {run.run_id} was staged again (at {manifest['staged_at']}) after its "
            f"last Silver validation (of the staging at {verdict['staged_at']}); run "
            "`tunelake silver validate-silver` for it before publishing"
        )
    done = _already_published(spark, settings, manifest)
    _put_json(settings, _publishing_marker(run), {"staged_at": manifest["staged_at"]})
    # Every commit carries the staging's tag: Silver history names the run behind each
    # version, and a retry can tell which tables it already reached.
    spark.conf.set(USER_METADATA, _commit_tag(manifest))
    try:
        for name in [n for n in manifest["tables"] if n not in done]:
            _publish_table(spark, settings, run, manifest, name)
    finally:
        spark.conf.unset(USER_METADATA)
    s3_client(settings).delete_object(Bucket=settings.lakehouse_bucket, Key=_publishing_marker(run))
    log.info("published silver run %s", run.run_id)
    return {name: info["rows"] for name, info in manifest["tables"].items()}


def _finish_interrupted_publish(spark: SparkSession, settings: Settings, run: SilverRun) -> None:
    """Restaging over a half-published run would lose its not-yet-published counts."""
    if _get_json(settings, _publishing_marker(run)) is not None:
        log.warning("run %s was partly published: finishing that first", run.run_id)
        publish(spark, settings, run)


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
