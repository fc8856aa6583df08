"""Publish events to Kafka in Avro (Confluent framing), acknowledged by every in-sync replica.

``publish`` returns only once the broker has acknowledged every record, or raises
``PublishError``: a caller never reports as accepted what Kafka did not take.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import httpx
from kafka.errors import KafkaError

from ingestion.avro_codec import TopicCodec
from ingestion.registry import Compatibility, RegistryError, SchemaRegistry
from ingestion.schemas import load_schema
from ingestion.streams import STREAMS, Stream
from tunelake.clients import kafka_producer
from tunelake.settings import Settings

log = logging.getLogger(__name__)


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
        }
        self._producer = None

    def _kafka(self):
        if self._producer is None:
            timeout_ms = int(self._timeout_s * 1000)
            self._producer = kafka_producer(
                self._settings,
                max_block_ms=timeout_ms,
                bootstrap_timeout_ms=timeout_ms,
                request_timeout_ms=timeout_ms,
                delivery_timeout_ms=timeout_ms * 2,
            )
        return self._producer

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
            producer = self._kafka()
            futures = [producer.send(codec.topic, key=k, value=v) for k, v in payloads]
            producer.flush(timeout=self._timeout_s * 2)
            for future in futures:
                future.get(timeout=0)
        except (KafkaError, RegistryError, httpx.HTTPError, OSError) as exc:
            log.warning("publishing %s failed: %s", stream.value, exc)
            raise PublishError(
                f"Kafka did not acknowledge the {stream.value} events: {exc}"
            ) from exc
        return len(futures)

    def ready(self) -> bool:
        from tunelake.stack.probes import kafka_cluster_ready, registry_ready

        return kafka_cluster_ready(self._settings, timeout_ms=int(self._timeout_s * 1000)) and (
            registry_ready(self._settings)
        )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self._timeout_s)
        self._registry.close()
