"""The main job on local defaults: prove the lakehouse's moving parts work together.

Today it (1) writes a partitioned Delta table to ``s3a://lakehouse/_demo/stack_check``
with Spark and reads it back, and (2) produces Avro records through the schema registry to
Kafka and consumes them back. Later stages (events, Bronze, Silver, checks, training,
serving) join this chain as they are built.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rich.table import Table

from tunelake.settings import Settings

Progress = Callable[[str, str], None]

DEMO_TOPIC = "tunelake_stack_check"
DEMO_ROWS = 10_000
DEMO_RECORDS = 1_000


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

    def render(self) -> Table:
        table = Table("step", "result", "seconds", title="tunelake demo summary")
        for step in self.steps:
            table.add_row(step.step, step.detail, f"{step.seconds:.1f}")
        return table


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
    from tunelake.stack.probes import ensure_topics

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


def run_demo(settings: Settings, progress: Progress = lambda s, m: None) -> DemoSummary:
    summary = DemoSummary()
    steps: list[tuple[str, Callable[[Settings], str]]] = [
        ("delta on s3a", delta_round_trip),
        ("avro via registry", avro_round_trip),
    ]
    for name, step in steps:
        progress("demo", f"{name} ...")
        began = time.monotonic()
        detail = step(settings)
        summary.steps.append(StepResult(name, detail, time.monotonic() - began))
        progress("demo", f"{name}: {detail}")
    return summary
