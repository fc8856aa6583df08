"""What a valid event is: declared once, as data, for every consumer to render.

The Avro schemas (``ingestion/schemas``) fix the types; this module fixes the values:
id patterns and lengths, time bounds, ranges and enums, field by field and stream by
stream. Each consumer renders the same declaration in its own form:

- the API (``service/models.py``): pydantic constraints, so a bad value is a 422 naming
  the field and the bound, and nothing is published;
- the Bronze rules (``spark_jobs/bronze/rules.py``): Spark conditions, so a bad record
  goes to quarantine with the reason and the rest of its batch flows on;
- the quality suites (``spark_jobs/suites.py``): expectations with the same bounds, which can
  only fail for rows that bypassed the rules (written into a table by hand).

Time bounds: an event may not be older than ``TUNELAKE_EARLIEST_EVENT_DATE`` (history
imports go back years, but not before that date) nor more than ``FUTURE_TOLERANCE`` ahead
of the clock that checks it (clients' clocks drift a little). Checked later, the upper
bound only widens, so a record the API or Bronze accepted keeps passing.

Imports nothing heavier than the settings: the service image has no pyspark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

from ingestion.streams import Stream
from tunelake.settings import Settings

ID_PATTERN = r"^[A-Za-z0-9._:@-]+$"
ID_MAX_LENGTH = 128
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
FUTURE_TOLERANCE = timedelta(minutes=5)
# Users whose id starts with this are synthetic: the deploy smoke test's
# (scripts/smoke-test.sh). Their events land in Bronze like any other, but Silver, and so
# every dashboard and training set, leaves them out.
SYNTHETIC_USER_PREFIX = "synthetic-"
MAX_MS_PLAYED = 24 * 3600 * 1000
MIN_RANK = 1
MAX_CONTEXT_LENGTH = 256
MAX_DISPLAY_NAME_LENGTH = 256
# Debezium's ops: create, update, delete, read (a snapshot's row).
CDC_OPS = ("c", "u", "d", "r")


class FeedbackAction(StrEnum):
    """The reactions a client can report (the Avro enum of ``feedback.avsc``)."""

    PLAY = "play"
    SKIP = "skip"
    LIKE = "like"
    DISLIKE = "dislike"


@dataclass(frozen=True)
class Text:
    """A string of ``min_length``..``max_length`` characters matching ``pattern``."""

    pattern: str | None = None
    min_length: int = 1
    max_length: int | None = None
    what: str = "text"


@dataclass(frozen=True)
class Whole:
    """An integer in [minimum, maximum] (either end open when None)."""

    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class Instant:
    """A UTC time in [earliest event time, now + FUTURE_TOLERANCE]."""


@dataclass(frozen=True)
class OneOf:
    values: tuple[str, ...]


@dataclass(frozen=True)
class Present:
    """Any value (its type is the schema's business); only its presence is checked."""


Constraint = Text | Whole | Instant | OneOf | Present

IDENTIFIER = Text(ID_PATTERN, 1, ID_MAX_LENGTH, f"an id (1-{ID_MAX_LENGTH} of A-Za-z0-9._:@-)")
UUID = Text(UUID_PATTERN, 36, 36, "a UUID")


@dataclass(frozen=True)
class FieldRule:
    """One field's constraint; ``within`` names the array of records it applies to each of."""

    name: str
    constraint: Constraint
    required: bool = True
    within: str | None = None

    @property
    def label(self) -> str:
        return f"{self.within}[].{self.name}" if self.within else self.name


_ENVELOPE = (
    FieldRule("event_id", UUID),
    FieldRule("event_time", Instant()),
    FieldRule("user_id", IDENTIFIER),
)

EVENT_RULES: dict[Stream, tuple[FieldRule, ...]] = {
    Stream.LISTENS: (
        *_ENVELOPE,
        FieldRule("track_id", IDENTIFIER),
        FieldRule("played_at", Instant()),
        FieldRule("ms_played", Whole(0, MAX_MS_PLAYED)),
        FieldRule("context", Text(max_length=MAX_CONTEXT_LENGTH, min_length=0), required=False),
        FieldRule("request_id", IDENTIFIER, required=False),
    ),
    Stream.FEEDBACK: (
        *_ENVELOPE,
        FieldRule("request_id", IDENTIFIER),
        FieldRule("track_id", IDENTIFIER),
        FieldRule("action", OneOf(tuple(FeedbackAction))),
    ),
    Stream.RECOMMENDATIONS: (
        *_ENVELOPE,
        FieldRule("request_id", IDENTIFIER),
        FieldRule("model_version", Text(max_length=ID_MAX_LENGTH)),
        FieldRule("items", Present()),
        FieldRule("track_id", IDENTIFIER, within="items"),
        FieldRule("rank", Whole(MIN_RANK), within="items"),
    ),
    # Debezium's change events of PostgreSQL user_profiles (ingestion/cdc.py). The table's
    # CHECK constraints hold the same bounds; these catch rows written around them.
    Stream.USER_PROFILES: (
        FieldRule("user_id", IDENTIFIER),
        FieldRule("display_name", Text(max_length=MAX_DISPLAY_NAME_LENGTH)),
        FieldRule("country", Text(r"^[A-Z]{2}$", 2, 2, "an ISO 3166 country code"), False),
        FieldRule("birth_year", Whole(1900, 2100), required=False),
        FieldRule("cdc_op", OneOf(CDC_OPS)),
        FieldRule("cdc_lsn", Present()),
        FieldRule("cdc_source_ts_ms", Present()),
    ),
}


@dataclass(frozen=True)
class TimeBounds:
    earliest: datetime
    latest: datetime

    @classmethod
    def at(cls, settings: Settings, now: datetime) -> TimeBounds:
        """The bounds a check made at ``now`` applies."""
        return cls(earliest_event_time(settings), now + FUTURE_TOLERANCE)


def earliest_event_time(settings: Settings) -> datetime:
    return datetime.combine(settings.earliest_event_date, time.min, UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# The reasons, worded once: the API's 422 messages and the quarantine reasons say the same.
def null_reason(rule: FieldRule) -> str:
    return f"{rule.label} is null"


def too_early_reason(rule: FieldRule, earliest: datetime) -> str:
    return (
        f"{rule.label} is before the earliest event time {_iso(earliest)} "
        "(TUNELAKE_EARLIEST_EVENT_DATE)"
    )


def too_late_reason(rule: FieldRule) -> str:
    minutes = int(FUTURE_TOLERANCE.total_seconds() // 60)
    return f"{rule.label} is more than {minutes} minutes in the future"


def out_of_range_reason(rule: FieldRule) -> str:
    bound = rule.constraint
    assert isinstance(bound, Whole)
    if bound.maximum is None:
        return f"{rule.label} is below {bound.minimum}"
    if bound.minimum is None:
        return f"{rule.label} is above {bound.maximum}"
    return f"{rule.label} is outside [{bound.minimum}, {bound.maximum}]"


def text_reason(rule: FieldRule) -> str:
    text = rule.constraint
    assert isinstance(text, Text)
    if text.pattern is None:
        if text.min_length and text.max_length:
            return f"{rule.label} is empty or longer than {text.max_length} characters"
        return f"{rule.label} is longer than {text.max_length} characters"
    return f"{rule.label} is not {text.what}"


def not_one_of_reason(rule: FieldRule) -> str:
    allowed = rule.constraint
    assert isinstance(allowed, OneOf)
    return f"{rule.label} is not one of {', '.join(allowed.values)}"


def instant_problem(rule: FieldRule, value: datetime, bounds: TimeBounds) -> str | None:
    """Why ``value`` breaks ``rule``'s time bounds, or None (the API's check)."""
    if value < bounds.earliest:
        return too_early_reason(rule, bounds.earliest)
    if value > bounds.latest:
        return too_late_reason(rule)
    return None


def rule_of(stream: Stream, name: str, within: str | None = None) -> FieldRule:
    [rule] = [r for r in EVENT_RULES[stream] if r.name == name and r.within == within]
    return rule
