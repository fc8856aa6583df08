"""Kafka -> Bronze throughput against the raw Kafka consumer, and API -> Bronze freshness.

    python -m benchmarks.bench_ingest [--events 1000000] [--fresh-seconds 60]

1. Produces ``--events`` listen events (Avro, acknowledged) to a fresh topic.
2. Raw rate: a plain kafka-python consumer reads every record of that topic (no decoding).
3. Bronze rate: ``tunelake bronze --once`` semantics (availableNow) on the same topic, in
   the same process, with the SparkSession already started.
4. Freshness: Bronze runs in follow mode (a separate process, as in production) while
   traffic is posted through the HTTP API at a steady rate; each event's freshness is the
   commit time of the Delta version that made it visible minus the time the API accepted
   it (``event_time``), read from the table's own log.
Prints events/s, the ratio (target >= 0.5) and freshness p50/p95 (target p95 <= 10 s).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pyarrow.parquet as pq
import uvicorn

from ingestion.producer import EventProducer
from ingestion.streams import STREAMS, Stream
from service.app import build_app
from spark_jobs.bronze.ingest import run
from spark_jobs.common.session import build_spark
from tunelake.clients import arrow_s3_filesystem, kafka_admin, kafka_consumer, s3_client
from tunelake.settings import Settings, get_settings
from tunelake_ops.stack.ports import free_port
from tunelake_ops.stack.probes import ensure_topics
from tunelake_ops.stack.process import wait_until

BATCH = 10_000


def bench_settings(base: Settings, tag: str) -> Settings:
    topic = f"bench_{tag}_{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(update={STREAMS[Stream.LISTENS].topic_setting: topic})
    ensure_topics(settings, (topic,))
    EventProducer(settings).register_schemas()
    return settings


def produce(settings: Settings, n: int) -> float:
    producer = EventProducer(settings, timeout_s=60)
    began = time.perf_counter()
    now = datetime.now(UTC)
    for start in range(0, n, BATCH):
        producer.publish(
            Stream.LISTENS,
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "event_time": now,
                    "schema_version": 1,
                    "user_id": f"usr-{i % 10_000:05d}",
                    "track_id": f"trk-{i % 5_000:06d}",
                    "played_at": now - timedelta(seconds=i),
                    "ms_played": 1000 + i % 200_000,
                    "context": None,
                    "request_id": None,
                }
                for i in range(start, min(n, start + BATCH))
            ],
        )
    producer.close()
    return time.perf_counter() - began


def raw_consume(settings: Settings, n: int) -> float:
    topic = STREAMS[Stream.LISTENS].topic(settings)
    consumer = kafka_consumer(
        settings,
        topic,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        max_poll_records=5000,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    seen = 0
    began = time.perf_counter()
    while seen < n:
        for messages in consumer.poll(timeout_ms=1000).values():
            seen += len(messages)
    elapsed = time.perf_counter() - began
    consumer.close()
    return elapsed


def commit_freshness(settings: Settings, since: datetime) -> list[float]:
    """Seconds from event_time to the commit that made each event visible in Bronze."""
    topic = STREAMS[Stream.LISTENS].topic(settings)
    bucket, _, table = settings.bronze_path(topic).removeprefix("s3a://").partition("/")
    s3 = s3_client(settings)
    s3fs = arrow_s3_filesystem(settings)
    ages = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{table}/_delta_log/"):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".json"):
                continue
            actions = [
                json.loads(line)
                for line in s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().splitlines()
            ]
            committed = next(a["commitInfo"]["timestamp"] for a in actions if "commitInfo" in a)
            for action in actions:
                if "add" not in action:
                    continue
                path = f"{bucket}/{table}/{action['add']['path']}"
                times = pq.read_table(path, columns=["event_time"], filesystem=s3fs)
                for event_time in times.column("event_time").to_pylist():
                    if event_time.replace(tzinfo=UTC) >= since:
                        ages.append(committed / 1000 - event_time.replace(tzinfo=UTC).timestamp())
    return ages


def serve_in_thread(app) -> tuple[uvicorn.Server, str]:
    """The real HTTP stack (uvicorn) on a free loopback port, in this process."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    if not wait_until(lambda: _answers(f"{url}/healthz"), timeout_s=30):
        raise RuntimeError("the bench service did not start")
    return server, url


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for_rows(settings: Settings, expected: int, timeout_s: float) -> None:
    """Poll the Delta log until the follower has committed ``expected`` rows."""
    topic = STREAMS[Stream.LISTENS].topic(settings)
    bucket, _, table = settings.bronze_path(topic).removeprefix("s3a://").partition("/")
    s3 = s3_client(settings)

    def committed_rows() -> int:
        rows = 0
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{table}/_delta_log/")
        for obj in listed.get("Contents", []):
            if obj["Key"].endswith(".json"):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                for line in body.splitlines():
                    action = json.loads(line)
                    if "add" in action and action["add"].get("stats"):
                        rows += json.loads(action["add"]["stats"])["numRecords"]
        return rows

    if not wait_until(lambda: committed_rows() >= expected, timeout_s=timeout_s):
        raise RuntimeError(f"Bronze did not reach {expected} rows in {timeout_s}s")


def freshness(base: Settings, seconds: float, rate_per_s: float) -> list[float]:
    settings = bench_settings(base, "fresh")
    topic = STREAMS[Stream.LISTENS].topic(settings)
    env = {**os.environ, "TUNELAKE_TOPIC_LISTENING_HISTORY": topic}
    follower = subprocess.Popen(
        [sys.executable, "-m", "tunelake_ops", "bronze", "--follow", "--stream", "listens"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server, url = serve_in_thread(build_app(settings))
    try:
        client = httpx.Client(base_url=url, headers={"X-API-Key": settings.client_api_key})
        # Measure a running stream, not its start-up: one event must land first.
        played = datetime.now(UTC).isoformat(timespec="milliseconds")
        client.post(
            "/users/warmup/listens",
            json={"listens": [{"track_id": "warmup", "played_at": played, "ms_played": 1}]},
        ).raise_for_status()
        wait_for_rows(settings, 1, timeout_s=180)
        since = datetime.now(UTC)
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            tick = time.monotonic()
            played = datetime.now(UTC).isoformat(timespec="milliseconds")
            response = client.post(
                f"/users/fresh-{i % 50}/listens",
                json={
                    "listens": [{"track_id": f"trk-{i}", "played_at": played, "ms_played": 1000}]
                },
            )
            response.raise_for_status()
            i += 1
            time.sleep(max(0.0, 1 / rate_per_s - (time.monotonic() - tick)))
        wait_for_rows(settings, i + 1, timeout_s=60)
    finally:
        server.should_exit = True
        os.killpg(follower.pid, signal.SIGTERM)
        follower.wait(timeout=60)
    return commit_freshness(settings, since)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--fresh-seconds", type=float, default=60)
    parser.add_argument("--fresh-rate", type=float, default=20, help="POSTs per second")
    args = parser.parse_args()
    base = get_settings()

    settings = bench_settings(base, "rate")
    produce_s = produce(settings, args.events)
    print(f"produced {args.events:,} events in {produce_s:.1f}s", flush=True)
    raw_s = raw_consume(settings, args.events)
    raw_rate = args.events / raw_s
    print(f"raw kafka-python consumer: {raw_rate:,.0f} events/s ({raw_s:.1f}s)", flush=True)

    spark = build_spark(settings, "bench-ingest")
    spark.range(1).count()  # session warm, as in a running job
    began = time.perf_counter()
    run(spark, settings, [Stream.LISTENS], once=True)
    bronze_s = time.perf_counter() - began
    topic = STREAMS[Stream.LISTENS].topic(settings)
    landed = spark.read.format("delta").load(settings.bronze_path(topic)).count()
    assert landed == args.events, f"Bronze holds {landed:,} of {args.events:,}"
    bronze_rate = args.events / bronze_s
    print(f"kafka -> bronze: {bronze_rate:,.0f} events/s ({bronze_s:.1f}s)", flush=True)
    print(f"ratio bronze/raw: {bronze_rate / raw_rate:.2f} (target >= 0.5)", flush=True)
    admin = kafka_admin(settings)
    admin.delete_topics([topic])
    admin.close()
    spark.stop()

    ages = freshness(base, args.fresh_seconds, args.fresh_rate)
    print(
        f"API -> bronze freshness over {len(ages):,} events: p50 {percentile(ages, 50):.2f}s, "
        f"p95 {percentile(ages, 95):.2f}s (target p95 <= 10s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
