"""Publish events to Kafka in Avro (Confluent framing), acknowledged by every in-sync replica.

``publish`` returns only once the broker has acknowledged every record, or raises
``PublishError``: a caller never reports as accepted what Kafka did not take.

A producer that failed a publish is replaced by a fresh one: kafka-python's idempotent
producer does not recover from losing its broker (measured with kafka-python 3.0.12 and
Kafka 4.1: after a SIGKILL and restart of the broker, every send of the old producer timed
out for minutes while a new producer was taking writes at once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import httpx
from kafka.errors import KafkaError

from ingestion.avro_codec import TopicCodec
from ingestion.registry import Compatibility, RegistryError, SchemaRegistry
from ingestion.schemas import load_schema
from ingestion.streams import EVENT_STREAMS, STREAMS, Stream
from tunelake.clients import kafka_admin, kafka_producer
from tunelake.settings import Settings

log = logging.getLogger(__name__)

# A readiness answer is reused this long, so probes cost at most one round trip per interval.
READY_TTL_S = 3.0
# Reconnect to a lost broker at least this often (kafka-python backs off to 30 s by default).
RECONNECT_BACKOFF_MAX_MS = 1000


class PublishError(RuntimeError):
    """Kafka or the schema registry did not take the events; nothing may count as accepted."""


class EventProducer:
    def __init__(self, settings: Settings, *, timeout_s: float = 10.0) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._registry = SchemaRegistry(settings.schema_registry_url, timeout_s=timeout_s)
        self._codecs = {
            stream: TopicCodec(self._registry, spec.topic(settings), load_schema(spec.schema_name))
            for stream, spec in STREAMS.items()
            if stream in EVENT_STREAMS
        }
        self._producer = None
        self._producer_lock = threading.Lock()
        self._admin = None
        self._probe_lock = threading.Lock()
        self._readiness: tuple[float, bool] = (float("-inf"), False)

    def _kafka(self):
        with self._producer_lock:
            if self._producer is None:
                timeout_ms = int(self._timeout_s * 1000)
                self._producer = kafka_producer(
                    self._settings,
                    max_block_ms=timeout_ms,
                    bootstrap_timeout_ms=timeout_ms,
                    request_timeout_ms=timeout_ms,
                    delivery_timeout_ms=timeout_ms * 2,
                    reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                )
            return self._producer

    def _replace(self, producer) -> None:
        """Drop ``producer`` after a failed publish; the next publish builds a fresh one.

        Concurrent publishes that fail on the same producer replace it once. Its records
        still in flight fail (their callers answer 503); closing waits for them to expire,
        in the background, so the failing request does not wait twice."""
        with self._producer_lock:
            if self._producer is not producer:
                return
            self._producer = None
        threading.Thread(
            target=self._close_quietly,
            args=(producer, self._timeout_s * 2 + 1),
            name="close-failed-producer",
            daemon=True,
        ).start()

    @staticmethod
    def _close_quietly(producer, timeout_s: float) -> None:
        try:
            producer.close(timeout=timeout_s)
        except KafkaError as exc:
            # close() flushes first and gives up while records are pending, leaving the
            # producer's I/O thread running: stop that thread without sending anything.
            log.info("force-closing a failed Kafka producer: %s", exc)
            producer._sender.force_close()

    def register_schemas(self) -> dict[str, int]:
        """Register every stream's schema (BACKWARD compatibility); returns subject -> id."""
        ids = {}
        try:
            for codec in self._codecs.values():
                self._registry.set_compatibility(codec.subject, Compatibility.BACKWARD)
                ids[codec.subject] = codec.schema_id
        except (RegistryError, httpx.HTTPError) as exc:
            raise PublishError(f"schema registry: {exc}") from exc
        return ids

    def publish(self, stream: Stream, events: Iterable[dict]) -> int:
        """Send ``events`` keyed by ``user_id``; return how many Kafka acknowledged (all)."""
        codec = self._codecs[stream]
        try:
            payloads = [(e["user_id"].encode(), codec.encode(e)) for e in events]
        except (RegistryError, httpx.HTTPError, OSError) as exc:
            raise self._failed(stream, exc) from exc
        try:
            producer = self._kafka()  # bootstrapping a new one may fail too
        except (KafkaError, OSError) as exc:
            raise self._failed(stream, exc) from exc
        try:
            futures = [producer.send(codec.topic, key=k, value=v) for k, v in payloads]
            producer.flush(timeout=self._timeout_s * 2)
            for future in futures:
                future.get(timeout=0)
        except (KafkaError, OSError) as exc:
            self._replace(producer)
            raise self._failed(stream, exc) from exc
        return len(futures)

    def _failed(self, stream: Stream, exc: Exception) -> PublishError:
        log.warning("publishing %s failed: %s", stream.value, exc)
        self._readiness = (float("-inf"), False)  # the next /readyz probes again
        return PublishError(f"Kafka did not acknowledge the {stream.value} events: {exc}")

    def ready(self) -> bool:
        """Whether a publish can succeed now: the registry answers and a broker is up.

        Probes at most once per ``READY_TTL_S`` with long-lived clients; while a probe runs,
        other callers get the last answer instead of queueing behind it."""
        checked_at, answer = self._readiness
        if time.monotonic() - checked_at < READY_TTL_S or not self._probe_lock.acquire(
            blocking=False
        ):
            return answer
        try:
            answer = self._registry_answers() and self._broker_up()
            self._readiness = (time.monotonic(), answer)
            return answer
        finally:
            self._probe_lock.release()

    def _registry_answers(self) -> bool:
        try:
            self._registry.subjects()
        except (RegistryError, httpx.HTTPError):
            return False
        return True

    def _broker_up(self) -> bool:
        try:
            if self._admin is None:
                self._admin = kafka_admin(self._settings, timeout_ms=2000)
            brokers = self._admin.describe_cluster().get("brokers", [])
        except Exception as exc:  # any failure means "not now"; rebuilt next time
            log.info("Kafka readiness probe failed: %s", exc)
            self._close_admin()
            return False
        return any(not broker.get("is_fenced") for broker in brokers)

    def _close_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception as exc:  # a broken client may fail to close too
                log.debug("closing the readiness admin client: %s", exc)

    def close(self) -> None:
        with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=self._timeout_s)
        with self._probe_lock:
            self._close_admin()
        self._registry.close()
