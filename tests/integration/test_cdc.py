"""Debezium CDC on the live stack: PostgreSQL user_profiles -> Kafka -> Bronze -> dim_user.

The connector writes the shared ``user_profiles`` topic; each test uses user ids of its own
and a lake of its own (Bronze reads the whole topic, the assertions look at its users).
"""

from __future__ import annotations

import signal
import threading
import time
import uuid

import fastavro
import pytest
from pyspark.sql import functions as F

from ingestion import avro_codec, cdc
from ingestion.profiles import ProfileChange, add_user, delete_user, update_user
from ingestion.registry import SchemaRegistry
from ingestion.streams import Stream
from spark_jobs.bronze.ingest import run as bronze
from spark_jobs.silver import dim_user
from tests.support import throwaway_lake
from tunelake.clients import kafka_consumer
from tunelake_ops.stack import manager, process
from tunelake_ops.stack.services import all_services

# A committed change reaches the topic within this (measured: about a second).
TOPIC_LATENCY_BOUND_S = 30


@pytest.fixture(scope="module")
def lake(kafka, registry, s3, postgres, connect):
    with (
        pytest.MonkeyPatch.context() as env,
        throwaway_lake(env, "it_cdc", topic_user_profiles=kafka.topic_user_profiles) as settings,
    ):
        yield settings


class TopicWatch:
    """Counts the distinct changes on the topic of users whose id starts with ``prefix``.

    A crashed connector re-emits what it had not committed, so records are counted once
    per (key, LSN, operation): the key dim_user deduplicates on.
    """

    def __init__(self, settings, prefix: str) -> None:
        from kafka import TopicPartition

        self._consumer = kafka_consumer(settings, group_id=None)
        self._registry = SchemaRegistry(settings.schema_registry_url)
        self._parsed: dict[int, object] = {}
        topic = settings.topic_user_profiles
        partitions = self._consumer.partitions_for_topic(topic) or set()
        self._consumer.assign([TopicPartition(topic, p) for p in partitions])
        self._consumer.seek_to_beginning()
        self._needle = prefix.encode()
        self._changes: set[tuple[bytes, int, str]] = set()

    @property
    def count(self) -> int:
        return len(self._changes)

    def _writer(self, schema_id: int):
        if schema_id not in self._parsed:
            self._parsed[schema_id] = fastavro.parse_schema(self._registry.schema(schema_id))
        return self._parsed[schema_id]

    def poll(self) -> int:
        for records in self._consumer.poll(timeout_ms=500).values():
            for record in records:
                if self._needle in (record.key or b"") and record.value is not None:
                    _, change = avro_codec.decode(record.value, self._writer)
                    self._changes.add((record.key, change["cdc_lsn"], change["cdc_op"]))
        return self.count

    def close(self) -> None:
        self._consumer.close()
        self._registry.close()


def land_and_build(spark, settings, prefix: str) -> list:
    bronze(spark, settings, [Stream.USER_PROFILES], once=True)
    dim_user.build(spark, settings)
    rows = (
        spark.read.format("delta")
        .load(settings.silver_path(dim_user.TABLE))
        .where(F.col("user_id").startswith(prefix))
        .collect()
    )
    return sorted(rows, key=lambda r: (r.user_id, r.valid_from))


def test_insert_update_delete_reach_dim_user_as_scd2_history(spark, lake):
    prefix = f"cdc-{uuid.uuid4().hex[:8]}-"
    kept, gone = f"{prefix}kept", f"{prefix}gone"
    watch = TopicWatch(lake, prefix)
    try:
        add_user(lake, kept, ProfileChange("Kept", "DE", 1990, {"genres": ["jazz"]}))
        add_user(lake, gone, ProfileChange("Gone", "FR", 1985))
        update_user(lake, kept, ProfileChange(country="FR"))
        update_user(lake, gone, ProfileChange(display_name="Gone Soon"))
        delete_user(lake, gone)
        committed = time.monotonic()
        assert process.wait_until(lambda: watch.poll() >= 5, timeout_s=TOPIC_LATENCY_BOUND_S), (
            f"{watch.count} of 5 changes reached the topic in {TOPIC_LATENCY_BOUND_S} s"
        )
        print(f"PostgreSQL commit -> topic: {time.monotonic() - committed:.2f} s")
    finally:
        watch.close()
    started = time.monotonic()
    rows = land_and_build(spark, lake, prefix)
    print(f"Bronze + dim_user: {time.monotonic() - started:.1f} s")

    history = [r for r in rows if r.user_id == kept]
    assert [(r.country, r.display_name, r.is_current, r.is_deleted) for r in history] == [
        ("DE", "Kept", False, False),
        ("FR", "Kept", True, False),
    ]
    assert history[0].valid_to == history[1].valid_from and history[1].valid_to is None
    assert history[0].birth_year == 1990 and '"jazz"' in history[1].preferences
    assert history[0].signup_time is not None

    closed = [r for r in rows if r.user_id == gone]
    assert [(r.is_current, r.is_deleted) for r in closed] == [
        (False, False),
        (False, False),
        (True, True),
    ]
    assert closed[0].valid_to == closed[1].valid_from
    assert closed[1].valid_to == closed[2].valid_from and closed[2].valid_to is None
    # The deleted user's profile is erased from every version; the validity stays.
    assert {(r.display_name, r.country, r.birth_year) for r in closed} == {(None, None, None)}


def restart_connect(settings) -> float:
    """SIGKILL the worker (a crash: no offset flush on the way out), start it again and
    wait until the connector runs; returns the seconds the restart took."""
    service = all_services(settings)["connect"]
    started = time.monotonic()
    stopped = process.stop(service.pid_file, stop_signal=signal.SIGKILL)
    assert stopped is not None, "Kafka Connect was not running"
    manager.up(settings, ["connect"])
    cdc.wait_running(settings)
    return time.monotonic() - started


def test_a_connect_crash_mid_burst_loses_and_duplicates_no_change_in_dim_user(spark, lake):
    prefix = f"burst-{uuid.uuid4().hex[:8]}-"
    users = [f"{prefix}{i:02d}" for i in range(10)]
    updates_per_user = 14
    expected = len(users) * (1 + updates_per_user)
    written = threading.Event()
    errors: list[Exception] = []

    def burst() -> None:
        try:
            for user in users:
                add_user(lake, user, ProfileChange("v0", "DE"))
            for n in range(1, updates_per_user + 1):
                for user in users:
                    update_user(lake, user, ProfileChange(display_name=f"v{n}"))
                time.sleep(0.1)  # spread the burst over the restart
        except Exception as exc:
            errors.append(exc)
        finally:
            written.set()

    watch = TopicWatch(lake, prefix)
    writer = threading.Thread(target=burst, name="profile-burst")
    try:
        writer.start()
        assert process.wait_until(lambda: watch.poll() >= len(users), timeout_s=30)
        restart_s = restart_connect(lake)
        writer.join(timeout=120)
        assert written.is_set() and not errors, errors
        assert process.wait_until(lambda: watch.poll() >= expected, timeout_s=60), (
            f"{watch.count} of {expected} changes reached the topic after the restart"
        )
        print(f"restart {restart_s:.1f} s; topic records {watch.count} for {expected} changes")
    finally:
        writer.join(timeout=120)
        watch.close()

    rows = land_and_build(spark, lake, prefix)
    assert len(rows) == expected, f"{len(rows)} dim_user versions for {expected} changes"
    for user in users:
        names = [r.display_name for r in rows if r.user_id == user]
        assert names == [f"v{n}" for n in range(updates_per_user + 1)], (user, names)
        current = [r for r in rows if r.user_id == user and r.is_current]
        assert len(current) == 1 and current[0].display_name == f"v{updates_per_user}"
