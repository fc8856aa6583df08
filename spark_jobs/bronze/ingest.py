"""Bronze ingestion: one Kafka topic -> one append-only Delta table, exactly once.

Input: a topic of Confluent-framed Avro records (magic byte, 4-byte schema id, body).
Output: ``s3a://<lakehouse>/bronze/<topic>``, one row per accepted record: the payload's
fields (the repo's reader schema), ``schema_id`` and Kafka metadata (``topic``,
``partition``, ``offset``, ``kafka_timestamp``, ``ingested_at``), partitioned by
``ingest_date``. Records that fail framing, decoding or the rules in ``rules.py`` go to
``bronze/_quarantine/<topic>`` with their raw bytes, the reason and their source offset.

Exactly once: each micro-batch is written by ``foreachBatch`` as Delta idempotent writes
keyed by (checkpoint, the checkpoint's query id, batch id); a batch replayed after a crash is
skipped by Delta, and the checkpoint keeps offsets gap-free. A reset (deleted) checkpoint
gets a new query id, so its restarted batch ids are written, and it starts after the last
offset each partition already has in Bronze or quarantine, so nothing lands twice.

One writer per topic: ``run`` holds the topic's lease (``lease.py``) for its whole life.
A topic whose schema subject the registry does not know stops with
``MissingSubjectError`` before anything of the batch is written (its offsets stay for the
next run), and ``tunelake_bronze_stream_errors_total{topic,reason}`` counts it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime

from delta.tables import DeltaTable
from prometheus_client import Counter, Gauge, start_http_server
from pyspark.errors import StreamingQueryException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.avro.functions import from_avro
from pyspark.sql.streaming import StreamingQuery

from ingestion.registry import SchemaRegistry, subject_for
from ingestion.schemas import load_schema
from ingestion.streams import STREAMS, Stream
from spark_jobs.bronze.lease import BronzeLease, BronzeLeaseError
from spark_jobs.bronze.rules import rules_for
from spark_jobs.common.avro_schema import field_default, record_struct
from tunelake.clients import kafka_consumer, spark_kafka_options
from tunelake.settings import Settings

log = logging.getLogger(__name__)

STREAM_ERRORS = Counter(
    "tunelake_bronze_stream_errors_total",
    "Bronze streams stopped by an error that needs an operator",
    ["topic", "reason"],
)
STREAM_UP = Gauge("tunelake_bronze_stream_up", "1 while a topic's Bronze stream runs", ["topic"])


class BronzeStreamError(RuntimeError):
    """A topic's Bronze stream stopped; its uncommitted batch stays in Kafka for the next run."""

    reason = "stream_failed"


class MissingSubjectError(BronzeStreamError):
    reason = "missing_subject"

    def __init__(self, topic: str, subject: str, registry_url: str, batch_id: int) -> None:
        super().__init__(
            f"schema registry {registry_url} has no schema under subject {subject!r}, so "
            f"topic {topic!r} cannot be decoded: its Bronze stream stopped before batch "
            f"{batch_id} (nothing written, the offsets stay in Kafka). Register the "
            "topic's schema (the service and `tunelake up` do), then run Bronze again"
        )


HEADER_BYTES = 5
METADATA_COLUMNS = ["topic", "partition", "offset", "kafka_timestamp", "ingested_at", "ingest_date"]
QUARANTINE_COLUMNS = [
    "topic",
    "partition",
    "offset",
    "kafka_timestamp",
    "key",
    "value",
    "schema_id",
    "error",
    "ingested_at",
    "ingest_date",
]


def frame_errors(raw: DataFrame, known_ids: list[int]) -> DataFrame:
    """Add ``schema_id``, ``body`` and ``_frame_error`` (why the framing is unusable)."""
    magic = F.substring("value", 1, 1)
    schema_id = F.conv(F.hex(F.substring("value", 2, 4)), 16, 10).cast("int")
    error = (
        F.when(
            F.col("value").isNull() | (F.length("value") < HEADER_BYTES),
            F.lit(f"shorter than the {HEADER_BYTES}-byte Confluent header"),
        )
        .when(
            F.hex(magic) != "00",
            F.concat(F.lit("magic byte 0x"), F.hex(magic), F.lit(" is not 0x00")),
        )
        .when(
            ~schema_id.isin(known_ids) if known_ids else F.lit(True),
            F.concat(F.lit("unknown schema id "), schema_id.cast("string")),
        )
    )
    return (
        raw.withColumn("schema_id", F.when(F.length("value") >= HEADER_BYTES, schema_id))
        .withColumn("body", F.expr(f"substring(value, {HEADER_BYTES + 1}, length(value))"))
        .withColumn("_frame_error", error)
    )


def _decode_failed(decoded: Column, writer: dict) -> Column:
    """True when ``from_avro`` (PERMISSIVE) could not decode the body.

    Spark then yields a struct of nulls rather than a null struct; a field that is not a
    union with null can never be null after a successful decode, so one such null means
    the body did not decode.
    """
    required = [
        f["name"]
        for f in writer["fields"]
        if not (isinstance(f["type"], list) and "null" in f["type"])
    ]
    failed = decoded.isNull()
    for name in required:
        failed = failed | decoded[name].isNull()
    return failed


def _as_reader(decoded: Column, writer: dict, reader: dict) -> Column:
    """Project a record decoded with ``writer`` onto ``reader``'s fields (defaults fill gaps)."""
    writer_fields = {f["name"] for f in writer["fields"]}
    fields = [
        (decoded[f["name"]] if f["name"] in writer_fields else field_default(f)).alias(f["name"])
        for f in reader["fields"]
    ]
    return F.when(_decode_failed(decoded, writer), F.lit(None)).otherwise(F.struct(*fields))


def decode(raw: DataFrame, writers: dict[int, dict], reader: dict, stream: Stream) -> DataFrame:
    """Kafka rows -> rows with ``payload`` (reader-shaped struct or null) and ``error``.

    ``writers`` maps every schema id registered for the topic to its schema: records are
    decoded with the schema they were written with, then resolved to the reader's.
    """
    framed = frame_errors(raw, sorted(writers))
    reader_type = record_struct(reader)
    payload = F.lit(None).cast(reader_type)
    for schema_id, writer in writers.items():
        decoded = from_avro(F.col("body"), json.dumps(writer), {"mode": "PERMISSIVE"})
        payload = F.when(
            F.col("schema_id") == schema_id, _as_reader(decoded, writer, reader)
        ).otherwise(payload)
    with_payload = framed.withColumn("payload", F.when(F.col("_frame_error").isNull(), payload))
    rule_failures = F.concat_ws(
        "; ",
        *[
            F.when(~F.coalesce(cond, F.lit(False)), F.lit(reason))
            for reason, cond in rules_for(stream)
        ],
    )
    checked = with_payload.select("*", "payload.*") if reader["fields"] else with_payload
    # A column of its own: the error both tests and quotes it, which inline evaluated every
    # rule twice per record (a warm 1M-record run: 21 s, 17.6 s with the column).
    with_failures = checked.withColumn("_rule_failures", rule_failures)
    failures = F.col("_rule_failures")
    error = (
        F.when(F.col("_frame_error").isNotNull(), F.col("_frame_error"))
        .when(
            F.col("payload").isNull(),
            F.concat(
                F.lit("body does not decode with schema id "), F.col("schema_id").cast("string")
            ),
        )
        .when(failures != "", F.concat(F.lit("invalid: "), failures))
    )
    return with_failures.withColumn("error", error).drop("_rule_failures")


def split(decoded: DataFrame, reader: dict) -> tuple[DataFrame, DataFrame]:
    """(accepted rows in Bronze's shape, quarantined rows in quarantine's shape)."""
    payload_columns = [f["name"] for f in reader["fields"]]
    accepted = decoded.where(F.col("error").isNull()).select(
        *payload_columns, "schema_id", *METADATA_COLUMNS
    )
    quarantined = decoded.where(F.col("error").isNotNull()).select(*QUARANTINE_COLUMNS)
    return accepted, quarantined


def with_ingest_metadata(kafka_rows: DataFrame, ingested_at: datetime) -> DataFrame:
    return kafka_rows.select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        F.lit(ingested_at).cast("timestamp").alias("ingested_at"),
        F.to_date(F.lit(ingested_at).cast("timestamp")).alias("ingest_date"),
    )


@dataclass(frozen=True)
class BronzeTarget:
    stream: Stream
    topic: str
    table_path: str
    quarantine_path: str
    checkpoint_path: str

    @classmethod
    def of(cls, settings: Settings, stream: Stream) -> BronzeTarget:
        topic = STREAMS[stream].topic(settings)
        return cls(
            stream,
            topic,
            settings.bronze_path(topic),
            settings.quarantine_path(topic),
            settings.checkpoint_path(f"bronze/{topic}"),
        )


def _append(df: DataFrame, path: str, app_id: str, batch_id: int) -> None:
    (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", batch_id)
        .option("mergeSchema", "true")
        .partitionBy("ingest_date")
        .save(path)
    )


def write_batch(
    settings: Settings,
    target: BronzeTarget,
    kafka_rows: DataFrame,
    batch_id: int,
    *,
    checkpoint_id: str,
) -> None:
    """One micro-batch: decode once, count, then idempotent Delta appends of each side.

    ``checkpoint_id`` names the checkpoint's incarnation (its query id), so the Delta
    transaction ids of a reset checkpoint never collide with the old ones."""
    reader = load_schema(STREAMS[target.stream].schema_name)
    subject = subject_for(target.topic)
    with SchemaRegistry(settings.schema_registry_url) as registry:
        writers = registry.versions(subject)
    # Without a writer schema every record would be quarantined as undecodable. A batch
    # with no record (a fresh checkpoint starting at given offsets runs one) needs none.
    if not writers and not kafka_rows.isEmpty():
        raise MissingSubjectError(target.topic, subject, settings.schema_registry_url, batch_id)
    rows = with_ingest_metadata(kafka_rows, datetime.now(UTC))
    # Decoded once into a local checkpoint, not persist(): a persisted plan joins the
    # session-wide cache that every query is matched against, so the other topics' stream
    # threads evaluated this plan while its own thread did. Spark shares from_avro's options
    # map (one builder) between plan copies; the race left a key in the builder, and every
    # later query of the session failed with DUPLICATED_MAP_KEY (key "mode"). A local
    # checkpoint is matched against nothing; its blocks go once the JVM collects the
    # batch's DataFrame.
    decoded = decode(rows, writers, reader, target.stream).localCheckpoint(eager=True)
    counts = decoded.agg(
        F.count_if(F.col("error").isNull()).alias("accepted"),
        F.count_if(F.col("error").isNotNull()).alias("quarantined"),
    ).first()
    accepted, quarantined = split(decoded, reader)
    # The app id names the checkpoint and its incarnation: a replay of the same batch is a
    # no-op in Delta. An empty side is not written at all (a replay reads the same offsets,
    # so it skips the same side).
    app_id = f"{target.checkpoint_path}:{checkpoint_id}"
    if counts.accepted:
        _append(accepted, target.table_path, f"bronze:{app_id}", batch_id)
    if counts.quarantined:
        _append(quarantined, target.quarantine_path, f"quarantine:{app_id}", batch_id)
    log.info(
        "bronze %s batch %d: %d accepted, %d quarantined",
        target.topic,
        batch_id,
        counts.accepted,
        counts.quarantined,
    )


KAFKA_ROW_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
)


def _nullable(schema: T.DataType) -> T.DataType:
    """``schema`` with every field, element and value nullable, as a Delta append stores a
    DataFrame's schema (a created table would otherwise enforce NOT NULL)."""
    if isinstance(schema, T.StructType):
        return T.StructType([T.StructField(f.name, _nullable(f.dataType)) for f in schema])
    if isinstance(schema, T.ArrayType):
        return T.ArrayType(_nullable(schema.elementType))
    if isinstance(schema, T.MapType):
        return T.MapType(schema.keyType, _nullable(schema.valueType))
    return schema


def ensure_tables(spark: SparkSession, target: BronzeTarget) -> bool:
    """Create the Bronze and quarantine tables empty, so readers find both from the start;
    True when both were created now (then nothing has landed from the topic yet).

    Their schemas come from running the batch transforms on zero rows; creating a table is
    one metadata commit, no Spark job (half the time of appending zero rows).
    """
    reader = load_schema(STREAMS[target.stream].schema_name)
    empty = with_ingest_metadata(spark.createDataFrame([], KAFKA_ROW_SCHEMA), datetime.now(UTC))
    accepted, quarantined = split(decode(empty, {}, reader, target.stream), reader)
    created = 0
    for df, path in ((accepted, target.table_path), (quarantined, target.quarantine_path)):
        if not DeltaTable.isDeltaTable(spark, path):
            (
                DeltaTable.createIfNotExists(spark)
                .location(path)
                .addColumns(_nullable(df.schema))
                .partitionedBy("ingest_date")
                .execute()
            )
            created += 1
    return created == 2


def _has_offsets(spark: SparkSession, checkpoint_path: str) -> bool:
    """True once the checkpoint has planned a batch (Spark then ignores startingOffsets)."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(f"{checkpoint_path}/offsets")
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs.exists(path) and len(fs.listStatus(path)) > 0


def starting_offsets(spark: SparkSession, settings: Settings, target: BronzeTarget) -> str:
    """Where a fresh checkpoint starts: after the last offset of each partition already in
    Bronze or quarantine (earliest for a partition with none), so a reset lands nothing
    twice."""
    # The log says whether a table holds any file: a new topic costs no Spark job here.
    landed = [
        spark.read.format("delta").load(path).select("partition", "offset")
        for path in (target.table_path, target.quarantine_path)
        if DeltaTable.forPath(spark, path).detail().first()["numFiles"]
    ]
    if not landed:
        return "earliest"
    rows = landed[0] if len(landed) == 1 else landed[0].unionByName(landed[1])
    last = dict(rows.groupBy("partition").agg(F.max("offset")).collect())
    consumer = kafka_consumer(settings, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(target.topic) or set()
    finally:
        consumer.close()
    # Spark needs every partition named; -2 is "earliest".
    offsets = {str(p): last[p] + 1 if p in last else -2 for p in sorted(partitions | set(last))}
    log.info("bronze %s: fresh checkpoint, resuming after Bronze at %s", target.topic, offsets)
    return json.dumps({target.topic: offsets})


@dataclass
class BronzeRun:
    """What the streams of one run share: the lease and the errors that stopped a stream."""

    lease: BronzeLease
    failures: dict[str, Exception] = field(default_factory=dict)

    def write(
        self, settings: Settings, target: BronzeTarget, checkpoint_id: Future
    ) -> Callable[[DataFrame, int], None]:
        def batch(kafka_rows: DataFrame, batch_id: int) -> None:
            try:
                self.lease.check(target.topic)
                write_batch(
                    settings,
                    target,
                    kafka_rows,
                    batch_id,
                    checkpoint_id=checkpoint_id.result(timeout=120),
                )
            except (BronzeStreamError, BronzeLeaseError) as exc:
                reason = getattr(exc, "reason", "lease_lost")
                STREAM_ERRORS.labels(target.topic, reason).inc()
                log.error("bronze %s stopped (%s): %s", target.topic, reason, exc)
                self.failures[target.topic] = exc
                raise

        return batch


def start(
    spark: SparkSession,
    settings: Settings,
    target: BronzeTarget,
    bronze_run: BronzeRun,
    *,
    once: bool,
) -> StreamingQuery:
    created = ensure_tables(spark, target)
    resume = (
        "earliest"
        if created or _has_offsets(spark, target.checkpoint_path)
        else starting_offsets(spark, settings, target)
    )
    source = (
        spark.readStream.format("kafka")
        .options(**spark_kafka_options(settings))
        .option("subscribe", target.topic)
        .option("startingOffsets", resume)
        .option("maxOffsetsPerTrigger", settings.bronze_max_offsets_per_trigger)
        .load()
    )
    # The query id is Spark's, persisted in <checkpoint>/metadata: known once started.
    checkpoint_id: Future[str] = Future()
    writer = (
        source.writeStream.queryName(f"bronze_{target.topic}")
        .option("checkpointLocation", target.checkpoint_path)
        .foreachBatch(bronze_run.write(settings, target, checkpoint_id))
    )
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{settings.bronze_trigger_seconds} seconds")
    query = writer.start()
    checkpoint_id.set_result(query.id)
    STREAM_UP.labels(target.topic).set(1)
    return query


def run(spark: SparkSession, settings: Settings, streams: list[Stream], *, once: bool) -> None:
    """Ingest ``streams``: until caught up (``once``) or until stopped (follow).

    Holds every topic's lease for the run (``BronzeLeaseHeldError`` if another writer keeps
    one past the wait). A stream stopped by a ``BronzeStreamError`` lets the others go on
    and gives its topic's lease back; the run then raises it. Any other failure stops every
    stream (a supervisor restarts the job)."""
    targets = {t.topic: t for t in (BronzeTarget.of(settings, s) for s in streams)}
    with BronzeLease(settings, {t.topic: t.checkpoint_path for t in targets.values()}) as lease:
        if not once and settings.bronze_metrics_port:
            start_http_server(settings.bronze_metrics_port)
        bronze_run = BronzeRun(lease)
        queries = {}
        try:
            for topic, target in targets.items():
                queries[topic] = start(spark, settings, target, bronze_run, once=once)
            crashed = _await(queries, bronze_run)
        finally:
            for topic, query in queries.items():
                if query.isActive:
                    query.stop()
                STREAM_UP.labels(topic).set(0)
    if crashed:
        raise BronzeStreamError(
            "bronze streams failed: "
            + "; ".join(f"{t}: {str(queries[t].exception()).splitlines()[0]}" for t in crashed)
        ) from queries[crashed[0]].exception()
    if len(bronze_run.failures) == 1:
        raise next(iter(bronze_run.failures.values()))
    if bronze_run.failures:
        raise BronzeStreamError("\n".join(str(e) for e in bronze_run.failures.values()))


def _await(queries: dict[str, StreamingQuery], bronze_run: BronzeRun) -> list[str]:
    """Wait until every query ends, or one fails unexpectedly; returns those that did."""
    while True:
        ended = {t for t, q in queries.items() if not q.isActive}
        for topic in ended & set(bronze_run.failures):
            bronze_run.lease.release(topic)
        crashed = [t for t in ended if t not in bronze_run.failures and queries[t].exception()]
        active = [q for t, q in queries.items() if t not in ended]
        if crashed or not active:
            return crashed
        try:
            active[0].awaitTermination(timeout=1)
        except StreamingQueryException:
            continue
