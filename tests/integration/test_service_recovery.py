"""The write path against a broker that dies: it heals, and retries are counted once.

A THROWAWAY Kafka broker (own ports and state folder) is SIGKILLed and restarted; the
session's broker on :9092 is never touched. The schema registry is the session's.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from kafka import TopicPartition
from pydantic import SecretStr

from ingestion.avro_codec import TopicCodec
from ingestion.producer import EventProducer
from ingestion.registry import SchemaRegistry
from ingestion.schemas import load_schema
from service.app import create_app
from service.recommender import PopularityRecommender
from tests.support import CATALOG, TEST_STACK_PORTS
from tunelake.clients import kafka_consumer
from tunelake.settings import SOURCE_ROOT
from tunelake_ops.stack import manager, process
from tunelake_ops.stack.ports import free_port
from tunelake_ops.stack.services import all_services

log = logging.getLogger(__name__)

KEY = "recovery-key"
HEALED_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def broker(registry):
    # Inside the checkout like test_stack_lifecycle; ports of its own.
    state = SOURCE_ROOT / ".tunelake" / "test-stacks" / f"recovery-{uuid.uuid4().hex[:8]}"
    settings = registry.model_copy(
        update={
            "state_dir": state,
            **TEST_STACK_PORTS["test_service_recovery"],
            "api_keys": SecretStr(KEY),
            "api_rate_per_second": 1e6,
            "api_rate_burst": 1_000_000,
        }
    )
    manager.up(settings, ["kafka"])
    yield settings
    manager.down(settings)
    shutil.rmtree(state, ignore_errors=True)


def kill_broker(settings) -> None:
    proc = process.read_pid_file(all_services(settings)["kafka"].pid_file)
    assert proc is not None and process.is_alive(proc)
    assert settings.kafka_bootstrap_servers != "127.0.0.1:9092"  # never the session's
    os.kill(proc.pid, signal.SIGKILL)
    assert process.wait_until(lambda: not process.is_alive(proc), timeout_s=10)


class Service:
    """The app with a real EventProducer, served by uvicorn on a free loopback port."""

    def __init__(self, settings, publisher) -> None:
        app = create_app(
            settings, publisher=publisher, recommender=PopularityRecommender(lambda: CATALOG)
        )
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        assert process.wait_until(lambda: self._answers("/healthz"), timeout_s=30)

    def _answers(self, path: str) -> bool:
        try:
            return httpx.get(f"{self.url}{path}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def ready(self) -> bool:
        return self._answers("/readyz")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": KEY}, timeout=60)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def listens(prefix: str, n: int) -> dict:
    played = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="milliseconds")
    return {
        "listens": [
            {"track_id": f"{prefix}-{i}", "played_at": played, "ms_played": 1000 + i}
            for i in range(n)
        ]
    }


def topic_records(settings) -> list[dict]:
    """Every listen in the throwaway broker's topic, decoded."""
    topic = settings.topic_listening_history
    consumer = kafka_consumer(settings, group_id=None)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    ends = consumer.end_offsets(partitions)
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records = []
    deadline = time.monotonic() + 60
    with SchemaRegistry(settings.schema_registry_url) as registry:
        codec = TopicCodec(registry, topic, load_schema("listen"))
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "topic not read within 60 s"
            for tp, messages in consumer.poll(timeout_ms=2000).items():
                records += [codec.decode(m.value) for m in messages if m.offset < ends[tp]]
    consumer.close()
    return records


def test_writes_heal_after_the_broker_is_killed_under_load(broker):
    producer = EventProducer(broker, timeout_s=5)
    producer.register_schemas()
    service = Service(broker, producer)
    acked: list[str] = []  # track ids of acknowledged listens
    outcomes: list[tuple[float, int]] = []  # (time, status)
    stop = threading.Event()

    def post_load(worker: int) -> None:
        with service.client() as client:
            batch = 0
            while not stop.is_set():
                body = listens(f"w{worker}-b{batch}", 5)
                try:
                    status = client.post(f"/users/load-{worker}/listens", json=body).status_code
                except httpx.HTTPError:
                    status = 0
                outcomes.append((time.monotonic(), status))
                if status == 202:
                    acked.extend(listen["track_id"] for listen in body["listens"])
                batch += 1
                time.sleep(0.05)

    workers = [threading.Thread(target=post_load, args=(w,)) for w in range(3)]
    try:
        for worker in workers:
            worker.start()
        assert process.wait_until(lambda: len(acked) >= 30, timeout_s=30)
        kill_broker(broker)
        killed_at = time.monotonic()
        assert process.wait_until(lambda: not service.ready(), timeout_s=15), (
            "/readyz still ready with the broker down"
        )
        manager.up(broker, ["kafka"])
        healthy_at = time.monotonic()
        assert process.wait_until(
            lambda: any(t > healthy_at and s == 202 for t, s in outcomes),
            timeout_s=HEALED_WITHIN_S,
        ), f"no write accepted within {HEALED_WITHIN_S}s of the broker being back"
        first_write = min(t for t, s in outcomes if t > killed_at and s == 202)
        assert process.wait_until(service.ready, timeout_s=HEALED_WITHIN_S)
        log.warning(
            "broker back %.1fs after the kill; first write accepted %.1fs after it was healthy",
            healthy_at - killed_at,
            first_write - healthy_at,
        )
        acked_before_stop = len(acked)
        assert process.wait_until(lambda: len(acked) >= acked_before_stop + 30, timeout_s=30)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
        service.stop()
        producer.close()

    statuses = Counter(s for _, s in outcomes)
    assert set(statuses) <= {202, 503}, statuses  # never a 500 or a dropped connection
    records = topic_records(broker)
    ids_by_track: dict[str, set[str]] = {}
    copies = Counter(r["track_id"] for r in records)
    for record in records:
        ids_by_track.setdefault(record["track_id"], set()).add(record["event_id"])
    missing = [t for t in acked if t not in copies]
    assert not missing, f"{len(missing)} acknowledged listens not in the topic"
    assert {t: copies[t] for t in acked if copies[t] != 1} == {}, "acknowledged twice"
    assert all(len(ids_by_track[t]) == 1 for t in acked)


class CutAfterFirstHalf:
    """Publishes half a batch for real, then kills the broker and publishes the rest."""

    def __init__(self, producer: EventProducer, settings) -> None:
        self._producer = producer
        self._settings = settings

    def publish(self, stream, events):
        half = len(events) // 2
        self._producer.publish(stream, events[:half])
        kill_broker(self._settings)
        return self._producer.publish(stream, events[half:])

    def ready(self) -> bool:
        return self._producer.ready()


def test_a_batch_cut_mid_way_and_retried_lands_once_per_event_id(broker):
    body = listens(f"cut-{uuid.uuid4().hex[:6]}", 40)
    tracks = {listen["track_id"] for listen in body["listens"]}
    producer = EventProducer(broker, timeout_s=3)
    producer.register_schemas()
    cutting = Service(broker, CutAfterFirstHalf(producer, broker))
    try:
        with cutting.client() as client:
            response = client.post("/users/cut/listens", json=body)
        assert response.status_code == 503
        assert "retrying the same request is safe" in response.json()["detail"]
    finally:
        cutting.stop()
    manager.up(broker, ["kafka"])
    retrying = Service(broker, producer)
    try:
        with retrying.client() as client:
            assert process.wait_until(
                lambda: client.post("/users/cut/listens", json=body).status_code == 202,
                timeout_s=HEALED_WITHIN_S,
            )
    finally:
        retrying.stop()
        producer.close()

    mine = [r for r in topic_records(broker) if r["track_id"] in tracks]
    ids_by_track: dict[str, set[str]] = {}
    for record in mine:
        ids_by_track.setdefault(record["track_id"], set()).add(record["event_id"])
    assert set(ids_by_track) == tracks  # every listen of the batch is there
    assert all(len(ids) == 1 for ids in ids_by_track.values())  # copies share their id
    assert len({r["event_id"] for r in mine}) == len(body["listens"])
    assert len(mine) > len(body["listens"])  # the first half did land twice
