"""Bronze decode/split on tiny DataFrames of Kafka-shaped rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import fastavro

from ingestion import avro_codec
from ingestion.schemas import load_schema
from ingestion.streams import Stream
from spark_jobs.bronze.ingest import decode, split, with_ingest_metadata
from tunelake.settings import Settings

LISTEN = load_schema("listen")
PARSED = fastavro.parse_schema(LISTEN)
INGESTED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MS_OUT = "ms_played is outside [0, 86400000]"
NOT_AN_ID = "not an id (1-128 of A-Za-z0-9._:@-)"
TOO_EARLY = (
    "played_at is before the earliest event time 2000-01-01T00:00:00Z "
    "(TUNELAKE_EARLIEST_EVENT_DATE)"
)
KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
)


def make_listen(**overrides) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_time": datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        "schema_version": 1,
        "user_id": "u-1",
        "track_id": "t-1",
        "played_at": datetime(2026, 11, 25, 9, 59, 1, 250000, tzinfo=UTC),
        "ms_played": 180_000,
        "context": None,
        "request_id": "req-1",
    } | overrides


def kafka_rows(spark, values: list[bytes]):
    rows = [(b"u-1", v, "user_listening_history", 0, i, INGESTED_AT) for i, v in enumerate(values)]
    return with_ingest_metadata(spark.createDataFrame(rows, KAFKA_SCHEMA), INGESTED_AT)


def run_split(spark, values, writers=None):
    decoded = decode(kafka_rows(spark, values), writers or {7: LISTEN}, LISTEN, Stream.LISTENS)
    # Checkpointed, as write_batch does: else each side's filter would inline the decoding
    # into every rule and grow past what Spark's code generator compiles. (Not persist():
    # that would leave the plan in the session's cache for every later test to match.)
    decoded = decoded.localCheckpoint()
    accepted, quarantined = split(decoded, LISTEN)
    return accepted.collect(), {r.offset: r for r in quarantined.collect()}


def test_good_records_keep_every_field_and_kafka_metadata(spark):
    listen = make_listen(context="playlist")
    [row], quarantined = run_split(spark, [avro_codec.encode(7, PARSED, listen)])
    assert quarantined == {}
    assert row.event_id == listen["event_id"]
    assert (row.user_id, row.track_id, row.ms_played, row.context, row.request_id) == (
        "u-1",
        "t-1",
        180_000,
        "playlist",
        "req-1",
    )
    # collect() hands timestamps back as naive local times.
    assert row.played_at.astimezone(UTC) == listen["played_at"]
    assert (row.schema_id, row.topic, row.partition, row.offset) == (
        7,
        "user_listening_history",
        0,
        0,
    )
    assert str(row.ingest_date) == "2026-11-26"


MALFORMED = [
    (b"", "shorter than the 5-byte Confluent header"),
    (b"\x00\x00\x00", "shorter than the 5-byte Confluent header"),
    (b"\x01\x00\x00\x00\x07abc", "magic byte 0x01 is not 0x00"),
    (b"\x00\x00\x00\x00\x63abc", "unknown schema id 99"),
    (b"\x00\x00\x00\x00\x07\xff\xff", "body does not decode with schema id 7"),
]
RULE_BREAKING = [
    ({"ms_played": -5}, f"invalid: {MS_OUT}"),
    ({"ms_played": 86_400_001}, f"invalid: {MS_OUT}"),
    ({"track_id": ""}, f"invalid: track_id is {NOT_AN_ID}"),
    ({"track_id": "has space"}, f"invalid: track_id is {NOT_AN_ID}"),
    ({"event_id": "not-a-uuid"}, "invalid: event_id is not a UUID"),
    ({"user_id": "", "ms_played": -1}, f"invalid: user_id is {NOT_AN_ID}; {MS_OUT}"),
    ({"played_at": datetime(1999, 12, 31, tzinfo=UTC)}, f"invalid: {TOO_EARLY}"),
    ({"played_at": datetime(1970, 1, 1, tzinfo=UTC)}, f"invalid: {TOO_EARLY}"),
]


# One batch holds every case (a Spark job per case cost 5-9 s each): offset i is case i.
def test_malformed_bytes_are_quarantined_with_the_reason(spark):
    good = avro_codec.encode(7, PARSED, make_listen())
    values = [good] + [value for value, _ in MALFORMED]
    accepted, quarantined = run_split(spark, values)
    assert len(accepted) == 1  # the good record keeps flowing
    assert {offset: bad.error for offset, bad in quarantined.items()} == {
        i: reason for i, (_, reason) in enumerate(MALFORMED, start=1)
    }
    for offset, (value, _) in enumerate(MALFORMED, start=1):
        bad = quarantined[offset]
        assert bytes(bad.value) == value
        assert (bad.topic, bad.partition, bad.offset) == ("user_listening_history", 0, offset)


def test_schema_valid_but_rule_breaking_records_are_quarantined(spark):
    values = [avro_codec.encode(7, PARSED, make_listen(**fields)) for fields, _ in RULE_BREAKING]
    accepted, quarantined = run_split(spark, values)
    assert accepted == []
    assert {offset: bad.error for offset, bad in quarantined.items()} == {
        i: reason for i, (_, reason) in enumerate(RULE_BREAKING)
    }
    assert {bad.schema_id for bad in quarantined.values()} == {7}


def test_records_of_an_older_schema_get_the_new_fields_defaults(spark):
    old = {**LISTEN, "fields": [f for f in LISTEN["fields"] if f["name"] != "context"]}
    record = {k: v for k, v in make_listen().items() if k != "context"}
    value = avro_codec.encode(3, fastavro.parse_schema(old), record)
    new_value = avro_codec.encode(7, PARSED, make_listen(context="radio"))
    accepted, quarantined = run_split(spark, [value, new_value], writers={3: old, 7: LISTEN})
    assert quarantined == {}
    assert sorted((r.schema_id, r.context) for r in accepted) == [(3, None), (7, "radio")]


def test_a_play_more_than_five_minutes_ahead_is_quarantined(spark):
    soon = make_listen(played_at=datetime.now(UTC) + timedelta(minutes=3))
    later = make_listen(played_at=datetime.now(UTC) + timedelta(minutes=6))
    accepted, quarantined = run_split(
        spark, [avro_codec.encode(7, PARSED, soon), avro_codec.encode(7, PARSED, later)]
    )
    assert [r.event_id for r in accepted] == [soon["event_id"]]
    assert quarantined[1].error == "invalid: played_at is more than 5 minutes in the future"


def test_the_earliest_event_date_comes_from_the_settings(spark, monkeypatch):
    from spark_jobs.bronze import rules

    later = Settings(_env_file=None, earliest_event_date="2026-11-25")
    monkeypatch.setattr(rules, "get_settings", lambda: later)
    on_the_day = make_listen(played_at=datetime(2026, 11, 25, tzinfo=UTC))
    before = make_listen(played_at=datetime(2026, 11, 24, 23, 59, tzinfo=UTC))
    accepted, quarantined = run_split(
        spark, [avro_codec.encode(7, PARSED, on_the_day), avro_codec.encode(7, PARSED, before)]
    )
    assert [r.event_id for r in accepted] == [on_the_day["event_id"]]
    assert "before the earliest event time 2026-11-25T00:00:00Z" in quarantined[1].error


def test_a_recommendation_with_a_rank_below_one_is_quarantined(spark):
    schema = load_schema("recommendation_event")
    event = {
        "event_id": str(uuid.uuid4()),
        "event_time": datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        "schema_version": 1,
        "request_id": "req-1",
        "user_id": "u-1",
        "model_version": "popularity",
        "items": [
            {"track_id": "t-1", "rank": 1, "score": 0.9},
            {"track_id": "t-2", "rank": 0, "score": 0.5},
        ],
    }
    value = avro_codec.encode(5, fastavro.parse_schema(schema), event)
    decoded = decode(kafka_rows(spark, [value]), {5: schema}, schema, Stream.RECOMMENDATIONS)
    accepted, quarantined = split(decoded.localCheckpoint(), schema)
    assert accepted.count() == 0
    assert [r.error for r in quarantined.collect()] == ["invalid: items[].rank is below 1"]
