"""The main job on local defaults: the pipeline end to end on the local stack.

1. Delta on S3: write a partitioned table to ``s3a://lakehouse/_demo/stack_check`` with
   Spark and read it back.
2. Avro through the registry: produce records to Kafka and consume them back.
3. Traffic: start the recommendation service, seed the track catalog, post over a year of
   listening history that ended two years ago (timestamps years in the past), then one
   live recommendation session per active user (plays, skips, likes), all through its
   HTTP API.
4. Profiles: every demo user's profile written in PostgreSQL, three users move, one deletes
   their account; Debezium delivers the changes to Kafka.
5. Pipeline: Bronze catch-up, dim_user (SCD2), privacy deletes, Great Expectations on
   Bronze, Silver staged, Great Expectations on Silver, publish, track metadata (offline
   catalog), then retrain the model (search, train, evaluate against most-popular,
   register, promote if it passes the gate).
6. Serving: the running service picks the promoted model up without a restart and serves
   a personal list; the deleted user gets most-popular.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table

from tunelake.settings import Settings
from tunelake_ops.pipeline import PipelineSummary

Progress = Callable[[str, str], None]

DEMO_TOPIC = "tunelake_stack_check"
DEMO_ROWS = 10_000
DEMO_RECORDS = 1_000
DEMO_USERS, DEMO_TRACKS = 100, 500
# 400 days of history ending two years ago, at 5% of the generator's daily sessions: about
# 190 plays a user, spread thin over more than a year.
HISTORY_DAYS, HISTORY_ENDS_DAYS_AGO, HISTORY_ACTIVITY = 400, 730, 0.05
# The demo user who deletes their account (not the one the summary asks for a list).
DELETED_DEMO_USER = f"usr-{DEMO_USERS - 1:05d}"


class DemoCheckError(RuntimeError):
    """A demo step read back something other than what it wrote."""


@dataclass
class StepResult:
    step: str
    detail: str
    seconds: float


@dataclass
class DemoSummary:
    steps: list[StepResult] = field(default_factory=list)
    bronze_rows: dict[str, tuple[int, int]] = field(default_factory=dict)
    sample_recommendation: dict = field(default_factory=dict)
    pipeline: PipelineSummary | None = None

    def render(self) -> Group:
        steps = Table("step", "result", "seconds", title="tunelake demo summary")
        for step in self.steps:
            steps.add_row(step.step, step.detail, f"{step.seconds:.1f}")
        bronze = Table("topic", "bronze rows", "quarantined", title="Bronze tables")
        for topic, (rows, quarantined) in self.bronze_rows.items():
            bronze.add_row(topic, f"{rows:,}", f"{quarantined:,}")
        head = {k: v for k, v in self.sample_recommendation.items() if k != "items"}
        items = self.sample_recommendation.get("items", [])
        sample = Syntax(
            "{"
            + json.dumps(head)[1:-1]
            + ', "items": [\n'
            + ",\n".join(f"  {json.dumps(item)}" for item in items)
            + "\n]}",
            "json",
            word_wrap=True,
        )
        silver = self.pipeline.render() if self.pipeline else ""
        return Group(
            steps,
            bronze,
            silver,
            "one recommendation response (GET /users/{id}/recommendations):",
            sample,
        )


def delta_round_trip(settings: Settings, rows: int = DEMO_ROWS) -> str:
    """Write ``rows`` rows over 7 daily partitions to Delta on S3, read back, compare."""
    from pyspark.sql import functions as F

    from spark_jobs.common.session import build_spark

    spark = build_spark(settings, "tunelake-demo")
    path = settings.lakehouse_uri("_demo", "stack_check")
    written = (
        spark.range(rows)
        .withColumn("event_date", F.date_sub(F.current_date(), (F.col("id") % 7).cast("int")))
        .withColumn("ms_played", (F.col("id") * 7919 % 300_000).cast("long"))
    )
    written.write.format("delta").mode("overwrite").partitionBy("event_date").save(path)
    back = spark.read.format("delta").load(path)
    expected = written.agg(F.count("*"), F.sum("ms_played")).first()
    actual = back.agg(F.count("*"), F.sum("ms_played")).first()
    if tuple(expected) != tuple(actual):
        raise DemoCheckError(f"Delta read back {tuple(actual)}, wrote {tuple(expected)}")
    partitions = back.select("event_date").distinct().count()
    return f"{actual[0]:,} rows in {partitions} partitions at {path}"


def avro_round_trip(settings: Settings, records: int = DEMO_RECORDS) -> str:
    """Produce ``records`` Avro records via the registry to Kafka and consume them back."""
    from ingestion.avro_codec import TopicCodec
    from ingestion.registry import Compatibility, SchemaRegistry
    from ingestion.schemas import load_schema
    from tunelake.clients import kafka_producer
    from tunelake_ops.stack.probes import ensure_topics

    ensure_topics(settings, (DEMO_TOPIC,))
    run_id = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    sent = [
        {
            "event_id": str(uuid.uuid4()),
            "event_time": now - timedelta(seconds=i),
            "schema_version": 1,
            "sequence": i,
            "note": f"demo run {run_id}",
        }
        for i in range(records)
    ]
    with SchemaRegistry(settings.schema_registry_url) as registry:
        codec = TopicCodec(registry, DEMO_TOPIC, load_schema("stack_check"))
        registry.set_compatibility(codec.subject, Compatibility.BACKWARD)
        producer = kafka_producer(settings)
        futures = [
            producer.send(DEMO_TOPIC, key=r["event_id"].encode(), value=codec.encode(r))
            for r in sent
        ]
        producer.flush(timeout=30)
        producer.close()
        received = read_back(settings, codec, [f.get(timeout=0) for f in futures])
    mismatched = [
        r for r in sent if received.get(r["event_id"], {}).get("sequence") != r["sequence"]
    ]
    if mismatched:
        raise DemoCheckError(
            f"{len(mismatched)} of {records} Avro records did not come back as sent"
        )
    return (
        f"{records:,} records via schema id {codec.schema_id} "
        f"(subject {codec.subject}) produced and consumed"
    )


def read_back(settings: Settings, codec, acknowledged: list) -> dict[str, dict]:
    """Read exactly the records the broker acknowledged (by partition and offset)."""
    from kafka import TopicPartition

    from tunelake.clients import kafka_consumer

    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for meta in acknowledged:
        first[meta.partition] = min(first.get(meta.partition, meta.offset), meta.offset)
        last[meta.partition] = max(last.get(meta.partition, meta.offset), meta.offset)
    consumer = kafka_consumer(settings, group_id=None)
    partitions = [TopicPartition(codec.topic, p) for p in first]
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, first[tp.partition])
    received: dict[str, dict] = {}
    deadline = time.monotonic() + 30
    while len(received) < len(acknowledged) and time.monotonic() < deadline:
        for tp, messages in consumer.poll(timeout_ms=1000).items():
            for message in messages:
                if message.offset <= last[tp.partition]:
                    record = codec.decode(message.value)
                    # fastavro hands uuid logical types back as UUID objects.
                    received[str(record["event_id"])] = record
    consumer.close()
    return received


@contextmanager
def running_service(settings: Settings) -> Iterator[str]:
    """The recommendation service at ``settings.service_url``: reused, or started for now."""
    from tunelake_ops.stack import process

    url = settings.service_url

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    if ready():
        yield url
        return
    pid_file = settings.state_dir / "run" / "service.pid"
    log_file = settings.state_dir / "logs" / "service.log"
    proc = process.spawn(
        [sys.executable, "-m", "tunelake_ops", "serve"], pid_file=pid_file, log_file=log_file
    )
    try:
        if (
            not process.wait_until(lambda: ready() or not process.is_alive(proc), timeout_s=60)
            or not ready()
        ):
            raise DemoCheckError(f"the service did not get ready:\n{process.tail(log_file)}")
        yield url
    finally:
        process.stop(pid_file, timeout_s=10)


def post_traffic(settings: Settings, url: str, history_days: int = HISTORY_DAYS) -> str:
    """The history's plays (as many on any span: denser on a shorter one), then live
    sessions."""
    from ingestion.catalog import write_catalog
    from ingestion.generator import TrafficPoster, TrafficReport, build_world

    world = build_world(DEMO_USERS, DEMO_TRACKS)
    write_catalog(settings, world.catalog())
    report = TrafficReport()
    history_end = datetime.now(UTC) - timedelta(days=HISTORY_ENDS_DAYS_AGO)
    poster = TrafficPoster(url, settings.client_api_key)
    try:
        activity = min(1.0, HISTORY_ACTIVITY * HISTORY_DAYS / history_days)
        poster.post_history(world, history_days, history_end, report, activity=activity)
        history_listens = report.listens
        poster.live_sessions(world, report)
    finally:
        poster.close()
    first = history_end - timedelta(days=history_days)
    return (
        f"{history_listens:,} history listens from {first:%Y-%m-%d} to {history_end:%Y-%m-%d}; "
        f"then {report.recommendations:,} recommendation requests, "
        f"{report.listens - history_listens:,} listens and {report.feedback:,} feedback now"
    )


def write_profiles(settings: Settings) -> str:
    """Every demo user's profile in PostgreSQL, then a few changes: three users move, one
    deletes their account (the privacy delete removes their rows from Silver). Waits until
    Debezium has delivered them to Kafka."""
    from ingestion.cdc import wait_caught_up
    from ingestion.generator import build_world, profile_of
    from ingestion.profiles import ProfileChange, delete_user, update_user, upsert_user

    world = build_world(DEMO_USERS, DEMO_TRACKS)
    for user, user_id in enumerate(world.user_ids):
        upsert_user(settings, user_id, profile_of(world, user))
    moved = world.user_ids[1:4]
    for user_id in moved:
        update_user(settings, user_id, ProfileChange(country="PT"))
    delete_user(settings, DELETED_DEMO_USER)
    waited = wait_caught_up(settings)
    return (
        f"{len(world.user_ids)} profiles written, {len(moved)} moved, {DELETED_DEMO_USER} "
        f"deleted; Debezium delivered them in {waited:.1f} s"
    )


def pipeline(settings: Settings, summary: DemoSummary, progress: Progress) -> str:
    from ingestion.streams import STREAMS
    from spark_jobs.common.session import build_spark
    from tunelake_ops.pipeline import run_pipeline

    today = datetime.now(UTC).date()
    summary.pipeline = run_pipeline(settings, today, today, progress)
    spark = build_spark(settings, "tunelake-demo")
    for spec in STREAMS.values():
        topic = spec.topic(settings)
        rows = spark.read.format("delta").load(settings.bronze_path(topic)).count()
        bad = spark.read.format("delta").load(settings.quarantine_path(topic)).count()
        summary.bronze_rows[topic] = (rows, bad)
    checks = summary.pipeline.quality
    passed = sum(r.passed for r in checks)
    model = summary.pipeline.model
    trained = (
        f"model {model.version} {'promoted' if model.promoted else 'refused'}"
        if model
        else f"no model: {summary.pipeline.no_model_reason}"
    )
    return (
        f"{sum(r for r, _ in summary.bronze_rows.values()):,} Bronze rows; "
        f"{len(summary.pipeline.table_rows)} Silver tables published; "
        f"{passed}/{len(checks)} quality checks passed; {trained}"
    )


def serve_model(settings: Settings, url: str, summary: DemoSummary) -> str:
    """Wait (bounded) until the service serves the promoted model, then ask it for a list;
    the user who deleted their account gets most-popular, not a personal list."""
    from service.recommender import POPULARITY_MODEL
    from tunelake_ops.stack import process

    model = summary.pipeline.model if summary.pipeline else None
    wanted = model.version if model and model.promoted else None
    http = httpx.Client(base_url=url, headers={"X-API-Key": settings.client_api_key})
    with http:
        if wanted and not process.wait_until(
            lambda: http.get("/readyz").json().get("model_version") == wanted,
            timeout_s=settings.model_refresh_seconds + 30,
        ):
            raise DemoCheckError(f"the service did not pick up model {wanted}")
        user = f"usr-{0:05d}"
        response = http.get(f"/users/{user}/recommendations", params={"k": 10})
        response.raise_for_status()

        def deleted_user_served() -> str:
            answer = http.get(f"/users/{DELETED_DEMO_USER}/recommendations", params={"k": 10})
            answer.raise_for_status()
            return answer.json()["model_version"]

        # The service reloads the deleted users with the model: within one refresh.
        if not process.wait_until(
            lambda: deleted_user_served() == POPULARITY_MODEL,
            timeout_s=settings.model_refresh_seconds + 30,
        ):
            raise DemoCheckError(f"the service still serves {DELETED_DEMO_USER} a personal list")
    summary.sample_recommendation = response.json()
    return (
        f"{user} served {summary.sample_recommendation['model_version']}; "
        f"{DELETED_DEMO_USER} (deleted) served {POPULARITY_MODEL}"
    )


def run_demo(
    settings: Settings,
    progress: Progress = lambda s, m: None,
    history_days: int = HISTORY_DAYS,
) -> DemoSummary:
    """``history_days``: the span of the history's plays; every day of it is a partition
    each Silver table stages and publishes."""
    summary = DemoSummary()

    def step(name: str, action: Callable[[], str]) -> None:
        progress("demo", f"{name} ...")
        began = time.monotonic()
        detail = action()
        summary.steps.append(StepResult(name, detail, time.monotonic() - began))
        progress("demo", f"{name}: {detail}")

    step("delta on s3a", lambda: delta_round_trip(settings))
    step("avro via registry", lambda: avro_round_trip(settings))
    with running_service(settings) as url:
        step("traffic via the API", lambda: post_traffic(settings, url, history_days))
        step("user profiles via CDC", lambda: write_profiles(settings))
        step("bronze, checks, silver, model", lambda: pipeline(settings, summary, progress))
        step("serve the model", lambda: serve_model(settings, url, summary))
    return summary
