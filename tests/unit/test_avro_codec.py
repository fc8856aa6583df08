from __future__ import annotations

import uuid
from datetime import UTC, datetime

import fastavro
import pytest

from ingestion import avro_codec
from ingestion.avro_codec import MalformedRecordError, TopicCodec
from ingestion.schemas import load_schema

SCHEMA = load_schema("stack_check")
PARSED = fastavro.parse_schema(SCHEMA)


def make_record(**overrides):
    record = {
        "event_id": str(uuid.UUID(int=7)),
        "event_time": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "schema_version": 1,
        "sequence": 42,
        "note": "hello",
    }
    return record | overrides


def test_encode_uses_the_confluent_wire_format():
    data = avro_codec.encode(513, PARSED, make_record())
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == 513
    assert avro_codec.schema_id_of(data) == 513


def test_round_trip_keeps_every_field():
    data = avro_codec.encode(3, PARSED, make_record())
    schema_id, record = avro_codec.decode(data, {3: PARSED}.__getitem__)
    assert schema_id == 3
    assert record["event_id"] == uuid.UUID(int=7)
    assert record["event_time"] == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert (record["sequence"], record["note"]) == (42, "hello")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than the 5-byte header"),
        (b"\x00\x00\x00", "shorter than the 5-byte header"),
        (b"\x01\x00\x00\x00\x03rest", "magic byte 1"),
        (b"\x00\x00\x00\x00\x03", "does not decode"),
        (avro_codec.encode(3, PARSED, make_record()) + b"junk", "trailing bytes"),
    ],
)
def test_malformed_bytes_raise_with_a_reason(data, reason):
    with pytest.raises(MalformedRecordError, match=reason):
        avro_codec.decode(data, {3: PARSED}.__getitem__)


class FakeRegistry:
    """In-memory stand-in for the registry's id bookkeeping (the real one is in integration)."""

    def __init__(self):
        self.by_id: dict[int, dict] = {}
        self.registered: list[str] = []

    def register(self, subject, schema):
        self.registered.append(subject)
        self.by_id[len(self.by_id) + 1] = schema
        return len(self.by_id)

    def schema(self, schema_id):
        return self.by_id[schema_id]


def test_topic_codec_reads_old_records_with_the_new_schema():
    registry = FakeRegistry()
    old_schema = {**SCHEMA, "fields": [f for f in SCHEMA["fields"] if f["name"] != "note"]}
    old = TopicCodec(registry, "plays", old_schema)
    new = TopicCodec(registry, "plays", SCHEMA)
    data = old.encode({k: v for k, v in make_record().items() if k != "note"})

    record = new.decode(data)

    assert registry.registered == ["plays-value"]
    assert record["sequence"] == 42
    assert record["note"] == ""  # the new field's default fills old records
