"""Avro in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, body.

Every tunelake producer writes this framing and the Bronze jobs strip it, so any
Confluent-compatible consumer can read our topics.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import Any

import fastavro

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


class MalformedRecordError(ValueError):
    """Bytes that are not a Confluent-framed Avro record of a known schema."""


def encode(schema_id: int, parsed_schema: Any, record: dict) -> bytes:
    out = io.BytesIO()
    out.write(_HEADER.pack(MAGIC_BYTE, schema_id))
    fastavro.schemaless_writer(out, parsed_schema, record)
    return out.getvalue()


def schema_id_of(data: bytes) -> int:
    if len(data) < _HEADER.size:
        raise MalformedRecordError(f"{len(data)} bytes is shorter than the 5-byte header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise MalformedRecordError(f"magic byte {magic} is not {MAGIC_BYTE}")
    return schema_id


def decode(
    data: bytes, writer_schema: Callable[[int], Any], reader_schema: Any | None = None
) -> tuple[int, dict]:
    """Decode framed bytes; ``writer_schema`` maps a schema id to its parsed schema."""
    schema_id = schema_id_of(data)
    body = io.BytesIO(data[_HEADER.size :])
    try:
        record = fastavro.schemaless_reader(body, writer_schema(schema_id), reader_schema)
    except (EOFError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise MalformedRecordError(f"body does not decode with schema {schema_id}: {exc}") from exc
    if body.tell() != len(data) - _HEADER.size:
        raise MalformedRecordError(f"{len(data) - _HEADER.size - body.tell()} trailing bytes")
    return schema_id, record


class TopicCodec:
    """Encodes one topic's records with its registered schema; decodes any schema id."""

    def __init__(self, registry, topic: str, schema: dict) -> None:
        from ingestion.registry import subject_for

        self.topic = topic
        self.subject = subject_for(topic)
        self._registry = registry
        self._schema = schema
        self._parsed = fastavro.parse_schema(schema)
        self._schema_id: int | None = None
        self._parsed_by_id: dict[int, Any] = {}

    @property
    def schema_id(self) -> int:
        if self._schema_id is None:
            self._schema_id = self._registry.register(self.subject, self._schema)
        return self._schema_id

    def encode(self, record: dict) -> bytes:
        return encode(self.schema_id, self._parsed, record)

    def _writer_schema(self, schema_id: int) -> Any:
        if schema_id not in self._parsed_by_id:
            self._parsed_by_id[schema_id] = fastavro.parse_schema(self._registry.schema(schema_id))
        return self._parsed_by_id[schema_id]

    def decode(self, data: bytes) -> dict:
        """Decode with the writer's schema, resolved to this codec's (reader) schema."""
        return decode(data, self._writer_schema, self._parsed)[1]
