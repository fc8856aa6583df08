from __future__ import annotations

import uuid

import pytest

from ingestion.avro_codec import TopicCodec
from ingestion.registry import Compatibility, IncompatibleSchemaError, SchemaRegistry
from ingestion.schemas import load_schema
from tunelake_ops.demo import avro_round_trip

BASE = {
    "type": "record",
    "name": "Listen",
    "namespace": "io.tunelake.test",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "track_id", "type": "string"},
        {"name": "ms_played", "type": "long"},
    ],
}


def _with_fields(*extra):
    return {**BASE, "fields": [*BASE["fields"], *extra]}


@pytest.fixture
def subject(registry):
    return f"it-{uuid.uuid4().hex[:8]}-value"


def test_register_is_idempotent_and_returns_a_fetchable_id(registry, subject):
    with SchemaRegistry(registry.schema_registry_url) as client:
        first = client.register(subject, BASE)
        assert client.register(subject, BASE) == first
        assert client.schema(first)["fields"] == BASE["fields"]
        assert subject in client.subjects()


def test_backward_compatibility_rejects_a_breaking_change(registry, subject):
    with SchemaRegistry(registry.schema_registry_url) as client:
        client.set_compatibility(subject, Compatibility.BACKWARD)
        client.register(subject, BASE)

        # A new required field: new readers could not read old records.
        breaking = _with_fields({"name": "context", "type": "string"})
        assert not client.is_compatible(subject, breaking)
        with pytest.raises(IncompatibleSchemaError) as rejected:
            client.register(subject, breaking)
        assert rejected.value.status_code == 409

        # The same field with a default is a compatible evolution.
        evolved = _with_fields({"name": "context", "type": "string", "default": ""})
        assert client.is_compatible(subject, evolved)
        assert client.register(subject, evolved) > 0


def test_records_written_with_an_old_schema_decode_with_the_new_one(registry, kafka):
    topic = f"it_codec_{uuid.uuid4().hex[:8]}"
    with SchemaRegistry(registry.schema_registry_url) as client:
        client.set_compatibility(f"{topic}-value", Compatibility.BACKWARD)
        old = TopicCodec(client, topic, BASE)
        data = old.encode({"event_id": "e1", "track_id": "t1", "ms_played": 1234})
        new = TopicCodec(
            client, topic, _with_fields({"name": "context", "type": "string", "default": "none"})
        )
        assert new.schema_id != old.schema_id
        assert new.decode(data) == {
            "event_id": "e1",
            "track_id": "t1",
            "ms_played": 1234,
            "context": "none",
        }


def test_avro_through_registry_and_kafka(registry, kafka):
    detail = avro_round_trip(kafka, records=200)
    assert detail.startswith("200 records via schema id")


def test_schema_files_parse_and_register(registry, subject):
    with SchemaRegistry(registry.schema_registry_url) as client:
        assert client.register(subject, load_schema("stack_check")) > 0
