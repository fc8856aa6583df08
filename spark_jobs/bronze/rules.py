"""Record-level checks a decoded event must pass to enter Bronze (else: quarantine).

Each rule is ``(reason, condition that holds for a valid record)`` over the decoded
payload's columns. Decoding already enforced the Avro types; these catch values the types
cannot (negative durations, empty ids).
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from ingestion.streams import Stream

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

Rule = tuple[str, Column]


def _not_empty(name: str) -> Rule:
    return (f"{name} is empty", F.length(F.col(name)) > 0)


def _envelope() -> list[Rule]:
    return [
        ("event_id is not a UUID", F.col("event_id").rlike(UUID_PATTERN)),
        ("event_time is null", F.col("event_time").isNotNull()),
        _not_empty("user_id"),
    ]


def rules_for(stream: Stream) -> list[Rule]:
    if stream is Stream.LISTENS:
        return [
            *_envelope(),
            _not_empty("track_id"),
            ("played_at is null", F.col("played_at").isNotNull()),
            ("ms_played is negative", F.col("ms_played") >= 0),
        ]
    if stream is Stream.FEEDBACK:
        return [*_envelope(), _not_empty("track_id"), _not_empty("request_id")]
    if stream is Stream.RECOMMENDATIONS:
        return [
            *_envelope(),
            _not_empty("request_id"),
            _not_empty("model_version"),
            ("an item rank is below 1", F.forall("items", lambda item: item["rank"] >= 1)),
            (
                "an item has an empty track_id",
                F.forall("items", lambda item: F.length(item["track_id"]) > 0),
            ),
        ]
    raise ValueError(f"no rules for {stream}")
