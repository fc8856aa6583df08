"""Bronze against the live stack: HTTP -> Kafka -> Delta, crash recovery, poison records,
a reset checkpoint, one writer per topic, a topic the registry does not know.

Each test works on its own topics (settings overrides), so Bronze tables, quarantine and
checkpoints are fresh and counts are exact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import fastavro
import pytest
from delta.tables import DeltaTable
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from ingestion import avro_codec
from ingestion.producer import EventProducer
from ingestion.registry import SchemaRegistry, subject_for
from ingestion.schemas import load_schema
from ingestion.streams import EVENT_STREAMS, STREAMS, Stream
from service.app import build_app
from spark_jobs.bronze import ingest
from spark_jobs.bronze.ingest import BronzeTarget, MissingSubjectError, run
from spark_jobs.bronze.lease import BronzeLease, BronzeLeaseHeldError
from tunelake.clients import kafka_admin, kafka_producer, s3_client
from tunelake_ops.jobs import spark_submit_argv
from tunelake_ops.stack.probes import ensure_topics

KEY = {"X-API-Key": "tunelake-local-key"}


def isolated_settings(base, tag: str):
    suffix = f"{tag}_{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(
        update={STREAMS[s].topic_setting: f"it_{s.value}_{suffix}" for s in Stream}
    )
    ensure_topics(settings, tuple(STREAMS[s].topic(settings) for s in Stream))
    EventProducer(settings).register_schemas()
    return settings


def drop_topics(settings) -> None:
    admin = kafka_admin(settings)
    admin.delete_topics([STREAMS[s].topic(settings) for s in Stream])
    admin.close()


def bronze(spark, settings, stream: Stream):
    return spark.read.format("delta").load(settings.bronze_path(STREAMS[stream].topic(settings)))


def quarantine(spark, settings, stream: Stream):
    topic = STREAMS[stream].topic(settings)
    return spark.read.format("delta").load(settings.quarantine_path(topic))


def listen_event(user_id: str, i: int) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_time": datetime.now(UTC),
        "schema_version": 1,
        "user_id": user_id,
        "track_id": f"t-{i % 97}",
        "played_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
        "ms_played": 1000 + i,
        "context": None,
        "request_id": None,
    }


@pytest.fixture
def topics(kafka, registry, s3, postgres):
    created = []

    def make(tag: str):
        settings = isolated_settings(kafka, tag)
        created.append(settings)
        return settings

    yield make
    for settings in created:
        drop_topics(settings)


def test_events_posted_over_http_land_exactly_once(spark, topics):
    settings = topics("e2e")
    posted = []
    impressions = []
    with TestClient(build_app(settings)) as client:
        for u in range(6):
            user = f"user-{u}"
            body = {
                "listens": [
                    {
                        "track_id": f"t-{u}-{i}",
                        "ms_played": 1000 * i + u,
                        "context": "album",
                        "played_at": f"2026-11-{1 + i % 20:02d}T10:{i % 60:02d}:00.123Z",
                        "request_id": None if i % 3 else f"req-{u}",
                    }
                    for i in range(50)
                ]
            }
            assert client.post(f"/users/{user}/listens", json=body, headers=KEY).json() == {
                "accepted": 50
            }
            posted += [(user, listen) for listen in body["listens"]]
            response = client.get(f"/users/{user}/recommendations", params={"k": 5}, headers=KEY)
            impressions.append(response.json()["request_id"])
            fb = {"request_id": impressions[-1], "track_id": "t-x", "action": "skip"}
            assert client.post(f"/users/{user}/feedback", json=fb, headers=KEY).status_code == 202

    run(spark, settings, list(Stream), once=True)

    rows = bronze(spark, settings, Stream.LISTENS).collect()
    assert len(rows) == len(posted) == 300
    assert len({r.event_id for r in rows}) == 300
    stored = {
        (r.user_id, r.track_id): (r.ms_played, r.context, r.request_id, r.played_at.astimezone(UTC))
        for r in rows
    }
    for user, listen in posted:
        assert stored[(user, listen["track_id"])] == (
            listen["ms_played"],
            listen["context"],
            listen["request_id"],
            datetime.fromisoformat(listen["played_at"]),
        )
    recs = bronze(spark, settings, Stream.RECOMMENDATIONS).collect()
    assert sorted(r.request_id for r in recs) == sorted(impressions)
    feedback = bronze(spark, settings, Stream.FEEDBACK).collect()
    assert sorted(r.request_id for r in feedback) == sorted(impressions)
    assert {r.action for r in feedback} == {"skip"}
    assert quarantine(spark, settings, Stream.LISTENS).count() == 0
    # Kafka metadata rides along.
    first = rows[0]
    assert first.topic == STREAMS[Stream.LISTENS].topic(settings)
    assert first.offset >= 0 and first.kafka_timestamp is not None
    assert first.ingest_date is not None

    # A second catch-up finds nothing new and writes nothing twice.
    run(spark, settings, list(Stream), once=True)
    assert bronze(spark, settings, Stream.LISTENS).count() == 300


def _produce_listens(settings, n: int, user_id: str) -> set[str]:
    producer = EventProducer(settings)
    ids = set()
    try:
        for start in range(0, n, 5000):
            batch = [listen_event(user_id, i) for i in range(start, min(n, start + 5000))]
            producer.publish(Stream.LISTENS, batch)
            ids |= {e["event_id"] for e in batch}
    finally:
        producer.close()
    return ids


def test_sigkill_mid_run_then_restart_keeps_every_event_exactly_once(spark, topics, tmp_path):
    settings = topics("crash")
    sent = _produce_listens(settings, 30_000, "crash-user")
    topic = STREAMS[Stream.LISTENS].topic(settings)
    env = {
        **os.environ,
        "TUNELAKE_TOPIC_LISTENING_HISTORY": topic,
        # Small micro-batches, so the kill lands between commits of a long catch-up.
        "TUNELAKE_BRONZE_MAX_OFFSETS_PER_TRIGGER": "1500",
        "TUNELAKE_BRONZE_TRIGGER_SECONDS": "0.2",
        # A killed driver never removes its scratch folder (its copy of every jar, ~640 MB):
        # in the test's own folder, pytest prunes it with the rest.
        "SPARK_LOCAL_DIRS": str(tmp_path / "spark-local"),
    }
    # Started as Airflow and the Helm chart start it: spark-submit of the jobs' entry point.
    job_log = tmp_path / "bronze.log"
    job = subprocess.Popen(
        spark_submit_argv(settings, "bronze", "--follow", "--stream", "listens"),
        env=env,
        # spark-submit hands the Python driver's output to its own stdout.
        stdout=job_log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log_path = settings.bronze_path(topic).replace("s3a://", "") + "/_delta_log/"
    bucket, _, prefix = log_path.partition("/")

    def committed_versions() -> int:
        listed = s3_client(settings).list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sum(1 for o in listed.get("Contents", []) if o["Key"].endswith(".json"))

    try:
        deadline = time.monotonic() + 180
        while committed_versions() < 3:
            assert job.poll() is None, job_log.read_text()[-3000:]
            assert time.monotonic() < deadline, "bronze never committed 3 batches"
            time.sleep(0.2)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    landed_before_restart = bronze(spark, settings, Stream.LISTENS).count()
    assert 0 < landed_before_restart < len(sent), "the kill did not land mid-run"
    # The job's own log lines survive spark-submit (nothing else configures logging there).
    assert f"INFO spark_jobs.bronze.ingest: bronze {topic} batch " in job_log.read_text()

    run(spark, settings, [Stream.LISTENS], once=True)

    rows = bronze(spark, settings, Stream.LISTENS).select("event_id", "partition", "offset")
    rows = rows.collect()
    assert len(rows) == len(sent)
    assert {r.event_id for r in rows} == sent
    assert len({(r.partition, r.offset) for r in rows}) == len(sent)  # no source record twice
    assert quarantine(spark, settings, Stream.LISTENS).count() == 0


def _encoded(settings, stream: Stream, record: dict) -> bytes:
    topic = STREAMS[stream].topic(settings)
    schema = load_schema(STREAMS[stream].schema_name)
    with SchemaRegistry(settings.schema_registry_url) as registry:
        schema_id = registry.register(subject_for(topic), schema)
    return avro_codec.encode(schema_id, fastavro.parse_schema(schema), record)


def test_poison_records_are_quarantined_while_good_ones_flow(spark, topics, monkeypatch):
    settings = topics("poison")
    now = datetime.now(UTC)
    envelope = {"event_time": now, "schema_version": 1, "user_id": "p-user"}
    good = {
        Stream.LISTENS: {
            **envelope,
            "track_id": "t",
            "played_at": now,
            "ms_played": 5,
            "context": None,
            "request_id": None,
        },
        Stream.FEEDBACK: {**envelope, "request_id": "r", "track_id": "t", "action": "like"},
        Stream.RECOMMENDATIONS: {
            **envelope,
            "request_id": "r",
            "model_version": "popularity",
            "items": [{"track_id": "t", "rank": 1, "score": 1.0}],
        },
    }
    violations = {
        Stream.LISTENS: ({"ms_played": -40}, "invalid: ms_played is outside [0, 86400000]"),
        Stream.FEEDBACK: ({"track_id": ""}, "invalid: track_id is not an id (1-128 of"),
        Stream.RECOMMENDATIONS: (
            {"items": [{"track_id": "t", "rank": 0, "score": 1.0}]},
            "invalid: items[].rank is below 1",
        ),
    }
    producer = kafka_producer(settings)
    expected_errors = {}
    for stream in EVENT_STREAMS:
        topic = STREAMS[stream].topic(settings)
        fields, reason = violations[stream]
        sends = [
            (_encoded(settings, stream, {**good[stream], "event_id": str(uuid.uuid4())}), None),
            (b"\x07garbage", "magic byte 0x07 is not 0x00"),
            (b"\x00\x00", "shorter than the 5-byte Confluent header"),
            (b"\x00\x00\x0f\x42\x40{}", "unknown schema id 1000000"),
            (
                _encoded(settings, stream, {**good[stream], "event_id": str(uuid.uuid4())})[:7],
                "body does not decode with schema id",
            ),
            (
                _encoded(
                    settings, stream, {**good[stream], **fields, "event_id": str(uuid.uuid4())}
                ),
                reason,
            ),
            (_encoded(settings, stream, {**good[stream], "event_id": str(uuid.uuid4())}), None),
        ]
        for value, error in sends:
            meta = producer.send(topic, key=b"p-user", value=value).get(timeout=30)
            if error is not None:
                expected_errors[(topic, meta.partition, meta.offset)] = (error, value)
    producer.close()
    # Every topic's stream runs at once here. A batch must not publish its decoding plan to
    # the session's cache: the other streams' threads would evaluate it while this one does
    # (that race once broke every later query of the session).
    cache = spark._jsparkSession.sharedState().cacheManager()
    cached_before = cache.numCachedEntries()
    cached_while_writing = []
    append = ingest._append

    def recording_append(df, *args):
        cached_while_writing.append(cache.numCachedEntries())
        append(df, *args)

    monkeypatch.setattr(ingest, "_append", recording_append)

    run(spark, settings, list(Stream), once=True)

    assert cached_while_writing, "no batch wrote"
    assert set(cached_while_writing) == {cached_before}, (cached_before, cached_while_writing)
    for stream in EVENT_STREAMS:
        assert bronze(spark, settings, stream).count() == 2, stream
    quarantined = {}
    for stream in EVENT_STREAMS:
        for row in quarantine(spark, settings, stream).collect():
            quarantined[(row.topic, row.partition, row.offset)] = (row.error, bytes(row.value))
    assert set(quarantined) == set(expected_errors)
    for source, (error, value) in expected_errors.items():
        got_error, got_value = quarantined[source]
        assert got_error.startswith(error), (source, got_error)
        assert got_value == value


def _delete_checkpoint(settings, stream: Stream) -> None:
    bucket, _, prefix = BronzeTarget.of(settings, stream).checkpoint_path[6:].partition("/")
    s3 = s3_client(settings)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
    keys = [{"Key": o["Key"]} for o in listed.get("Contents", [])]
    assert keys, "no checkpoint to delete"
    s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def test_a_reset_checkpoint_lands_what_came_after_it_once(spark, topics):
    settings = topics("reset")
    before = _produce_listens(settings, 200, "reset-user")
    run(spark, settings, [Stream.LISTENS], once=True)
    assert bronze(spark, settings, Stream.LISTENS).count() == 200

    _delete_checkpoint(settings, Stream.LISTENS)
    after = _produce_listens(settings, 150, "reset-user")
    run(spark, settings, [Stream.LISTENS], once=True)

    rows = bronze(spark, settings, Stream.LISTENS).select("event_id", "partition", "offset")
    rows = rows.collect()
    # Batch ids restart at 0 in a fresh checkpoint: none may be skipped, none re-read.
    assert len({(r.partition, r.offset) for r in rows}) == len(rows) == 350
    assert {r.event_id for r in rows} == before | after


def test_a_second_writer_of_a_topic_waits_then_exits_naming_the_holder(spark, topics, monkeypatch):
    from typer.testing import CliRunner

    from tunelake_ops import cli, jobs

    settings = topics("lease").model_copy(update={"bronze_lease_wait_seconds": 2.0})
    _produce_listens(settings, 10, "lease-user")
    target = BronzeTarget.of(settings, Stream.LISTENS)
    monkeypatch.setattr(jobs, "get_settings", lambda: settings)

    with BronzeLease(settings, {target.topic: target.checkpoint_path}):
        began = time.monotonic()
        with pytest.raises(BronzeLeaseHeldError) as held:
            run(spark, settings, [Stream.LISTENS], once=True)
        assert time.monotonic() - began >= 2.0  # it waited the bound first
        assert target.topic in str(held.value)
        assert f"tunelake-bronze {os.uname().nodename}:{os.getpid()}" in str(held.value)
        result = CliRunner().invoke(cli.app, ["bronze", "--once", "--stream", "listens"])
        assert result.exit_code == 1
        assert "another Bronze writer holds topic" in result.output
        assert "Traceback" not in result.output
    assert not DeltaTable.isDeltaTable(spark, target.table_path)  # nothing ran

    # The holder is gone, so its lease is: the next writer runs.
    run(spark, settings, [Stream.LISTENS], once=True)
    assert bronze(spark, settings, Stream.LISTENS).count() == 10


def test_a_topic_the_registry_does_not_know_stops_its_stream_and_loses_nothing(
    spark, kafka, registry, s3, postgres
):
    settings = kafka.model_copy(
        update={"topic_listening_history": f"it_listens_nosubject_{uuid.uuid4().hex[:8]}"}
    )
    topic = STREAMS[Stream.LISTENS].topic(settings)
    ensure_topics(settings, (topic,))
    schema = load_schema(STREAMS[Stream.LISTENS].schema_name)
    with SchemaRegistry(settings.schema_registry_url) as registry:
        # Ids are global: the stack's own listens subject gives the listen schema's id.
        schema_id = registry.register(subject_for(kafka.topic_listening_history), schema)
    producer = kafka_producer(settings)
    for i in range(20):
        record = listen_event("nosubject", i)
        value = avro_codec.encode(schema_id, fastavro.parse_schema(schema), record)
        producer.send(topic, key=b"nosubject", value=value).get(timeout=30)
    producer.close()
    counted = {"topic": topic, "reason": "missing_subject"}
    try:
        with pytest.raises(MissingSubjectError) as stopped:
            run(spark, settings, [Stream.LISTENS], once=True)
        assert subject_for(topic) in str(stopped.value)
        assert settings.schema_registry_url in str(stopped.value)
        assert REGISTRY.get_sample_value("tunelake_bronze_stream_errors_total", counted) == 1
        assert bronze(spark, settings, Stream.LISTENS).count() == 0
        assert quarantine(spark, settings, Stream.LISTENS).count() == 0

        with SchemaRegistry(settings.schema_registry_url) as registry:
            assert registry.register(subject_for(topic), schema) == schema_id
        run(spark, settings, [Stream.LISTENS], once=True)
        assert bronze(spark, settings, Stream.LISTENS).count() == 20
        assert quarantine(spark, settings, Stream.LISTENS).count() == 0
    finally:
        admin = kafka_admin(settings)
        admin.delete_topics([topic])
        admin.close()
